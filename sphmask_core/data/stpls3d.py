"""STPLS3D Synthetic_v3 (METHOD 8.3): whole-scene text files cut into blocks, and the block .pth files.

Input: `<n>_points_GTv3.txt` (the leading number is the scene number), one point per line,
`x y z r g b semantic instance`, comma or whitespace separated (a header line is skipped).
Scenes {5, 10, 15, 20, 25} are validation, the other scenes of 1..25 training.

Cutting (`cut_scene`, our reading of the ISBNet/HAIS preparation; every number is in BlockConfig):
- the scene is shifted so its xyz minimum is 0; train copies 1..`extra_rotations` are first
  rotated about z by a random whole number of degrees in [1, 359] and keep only the classes of
  `rotation_keep_classes` (the generator is seeded by (seed, scene number, copy), so a run is
  reproducible and copies differ);
- square cells of `train_block` m (val/test `val_block` m) at multiples of the stride cover
  [0, max] in x and y; a point belongs to every cell whose closed square contains it (points on
  a shared edge go to both); cells with more than `min_points` points are kept;
- a block whose z range is below `min_z_range` gets one dummy point (mean x, mean y, max z raised
  so the range is exactly `min_z_range`, mean colour, labels -100), so voxel grids never collapse;
- train blocks are skipped when they hold fewer than `min_instances` instances, or when the
  number of distinct non-ground classes is >= instances - `instance_margin` (too few objects per
  class to be worth a block).
Per block Scene: xyz = block points minus their mean (dummy included), rgb = raw / 127.5 - 1,
semantic 0..14 (0 = ground), instance -100 for ground and the dummy, other ids compacted to
0..K-1 in order of the raw id; no superpoints.

Block files `<out>/<split>/<scene stem>_<copy>_<block>_inst_nostuff.pth` = torch.save of
(xyz float32, rgb float32, semantic float64, instance float64), test split (xyz, rgb) only.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sphmask_core.data.errors import DatasetError
from sphmask_core.data.scannet import read_pth_arrays, save_pth_arrays, scene_from_arrays_checked
from sphmask_core.data.scene import IGNORE_LABEL, STPLS3D_LABELS, Scene, compact_ids

VAL_SCENES: tuple[int, ...] = (5, 10, 15, 20, 25)
TRAIN_SCENES: tuple[int, ...] = tuple(i for i in range(1, 26) if i not in VAL_SCENES)
PTH_SUFFIX = "_inst_nostuff.pth"
SPLITS = ("train", "val", "test")
_LEADING_NUMBER = re.compile(r"^(\d+)")


@dataclass(frozen=True)
class BlockConfig:
    train_block: float = 50.0  # metres, square side of a training block
    train_stride: float = 50.0
    val_block: float = 250.0  # validation / test blocks
    val_stride: float = 250.0
    min_points: int = 10000  # a block needs more points than this
    min_z_range: float = 6.0  # metres; lower blocks get a dummy point
    min_instances: int = 10  # train blocks with fewer instances are skipped
    instance_margin: int = 2  # train blocks with n_classes >= n_instances - margin are skipped
    extra_rotations: int = 0  # randomly z-rotated copies per train scene (the authors used 6)
    rotation_keep_classes: tuple[int, ...] = (0, 2, 3, 7, 8, 9, 12, 13)
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("train_block", "train_stride", "val_block", "val_stride"):
            if not getattr(self, key) > 0:
                raise ValueError(f"BlockConfig.{key} must be > 0, got {getattr(self, key)}")
        if self.extra_rotations < 0 or self.min_points < 0 or self.min_z_range < 0:
            raise ValueError("BlockConfig.extra_rotations, min_points and min_z_range must be >= 0")


def scene_number(path: str | Path) -> int:
    """The scene number leading a Synthetic_v3 file name (`12_points_GTv3.txt` -> 12)."""
    m = _LEADING_NUMBER.match(Path(path).name)
    if m is None:
        raise DatasetError(path, "file name does not start with a scene number")
    return int(m.group(1))


def split_files(raw_dir: str | Path, split: str) -> list[Path]:
    """Scene files of a split, sorted by scene number ("test" = every file)."""
    raw_dir = Path(raw_dir)
    if split not in SPLITS:
        raise ValueError(f"STPLS3D split must be one of {SPLITS}, got {split!r}")
    if not raw_dir.is_dir():
        raise DatasetError(raw_dir, "STPLS3D folder not found")
    files = [p for p in raw_dir.glob("*.txt") if _LEADING_NUMBER.match(p.name)]
    wanted = {"train": TRAIN_SCENES, "val": VAL_SCENES}.get(split)
    out = sorted((p for p in files if wanted is None or scene_number(p) in wanted), key=scene_number)
    if not out:
        raise DatasetError(raw_dir, f"no scene files for split '{split}'")
    return out


def read_stpls3d_txt(path: str | Path, with_labels: bool = True) -> np.ndarray:
    """(N, 8) float64 x y z r g b semantic instance ((N, 6) without labels)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "file not found")
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    delimiter = "," if "," in first else None
    try:
        [float(t) for t in first.replace(",", " ").split()]
        skip = 0
    except ValueError:
        skip = 1  # a header line
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy warns on empty files; we raise below
            table = np.loadtxt(path, dtype=np.float64, delimiter=delimiter, skiprows=skip, ndmin=2)
    except ValueError as exc:
        raise DatasetError(path, f"not a table of numbers ({exc})") from None
    ncol = 8 if with_labels else 6
    if table.shape[0] == 0:
        raise DatasetError(path, "empty scene (0 points)")
    if table.shape[1] < ncol:
        raise DatasetError(path, f"expected {ncol} columns (x y z r g b{' semantic instance' if with_labels else ''}), got {table.shape[1]}")
    table = table[:, :ncol]
    if with_labels:
        sem = table[:, 6]
        bad = (sem != np.round(sem)) | (sem < 0) | (sem >= STPLS3D_LABELS.n_semantic)
        if bad.any():
            raise DatasetError(path, f"unknown semantic label {sem[bad][0]:g} (expected 0..{STPLS3D_LABELS.n_semantic - 1})")
    return table


def rotate_copy(points: np.ndarray, rng: np.random.Generator, keep_classes: Sequence[int]) -> np.ndarray:
    """Points rotated about z by a random whole degree in [1, 359], only `keep_classes` kept."""
    angle = np.deg2rad(rng.integers(1, 360))
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    out = points[np.isin(points[:, 6], keep_classes)].copy()
    out[:, :3] = out[:, :3] @ rot.T
    return out


def grid_blocks(xy: np.ndarray, size: float, stride: float) -> list[np.ndarray]:
    """Point indices of each closed square cell [x0, x0+size] x [y0, y0+size], x-major order.

    Cells start at multiples of `stride` from 0 and are enough to reach the maximum of `xy`.
    """
    top = xy.max(axis=0)  # (2,)
    nx, ny = (max(1, int(np.ceil((t - size) / stride)) + 1) for t in top)
    blocks = []
    for i in range(nx):
        # test y only on the column's points: O(N * (nx + ny)) instead of O(N * nx * ny)
        col = np.nonzero((xy[:, 0] >= i * stride) & (xy[:, 0] <= i * stride + size))[0]  # (Nc,)
        y = xy[col, 1]
        for j in range(ny):
            blocks.append(col[(y >= j * stride) & (y <= j * stride + size)])
    return blocks


def add_z_dummy(block: np.ndarray, min_range: float) -> np.ndarray:
    """The block with one labelless point on top when its z range is below `min_range`."""
    z = block[:, 2]
    z_range = z.max() - z.min()
    if z_range >= min_range:
        return block
    dummy = block.mean(axis=0)
    dummy[2] = z.max() + (min_range - z_range)
    if block.shape[1] >= 8:
        dummy[6:8] = IGNORE_LABEL
    return np.vstack([block, dummy[None]])


def keep_train_block(semantic: np.ndarray, instance: np.ndarray, cfg: BlockConfig) -> bool:
    """False for training blocks with too few instances, or too few instances per class."""
    n_inst = np.unique(instance[instance >= 0]).size
    n_cls = np.unique(semantic[semantic >= 1]).size
    return n_inst >= cfg.min_instances and n_cls < n_inst - cfg.instance_margin


def block_to_scene(block: np.ndarray, name: str, source: Path | None = None) -> Scene:
    """Scene of one (M, 8) or (M, 6) block: centred xyz, [-1, 1] rgb, compacted instances."""
    xyz = block[:, :3] - block[:, :3].mean(axis=0)
    rgb = block[:, 3:6] / 127.5 - 1.0
    semantic = instance = None
    if block.shape[1] >= 8:
        semantic = block[:, 6].astype(np.int64)
        raw_inst = block[:, 7].astype(np.int64)
        not_object = (semantic <= 0) | (raw_inst < 0)  # ground (0) and the dummy (-100)
        instance = compact_ids(np.where(not_object, IGNORE_LABEL, raw_inst))
    return scene_from_arrays_checked(
        source or Path(name), xyz=xyz, rgb=rgb, semantic=semantic, instance=instance, name=name
    )


def cut_scene(
    points: np.ndarray, stem: str, split: str, cfg: BlockConfig = BlockConfig(), number: int = 0,
    source: Path | None = None,
) -> list[Scene]:
    """Scenes of the blocks of one STPLS3D scene (N, 8) (test: (N, 6)); see the module docstring."""
    if split not in SPLITS:
        raise ValueError(f"STPLS3D split must be one of {SPLITS}, got {split!r}")
    train = split == "train"
    size, stride = (cfg.train_block, cfg.train_stride) if train else (cfg.val_block, cfg.val_stride)
    copies = cfg.extra_rotations if train else 0
    scenes = []
    for copy in range(copies + 1):
        pts = points
        if copy > 0:
            pts = rotate_copy(points, np.random.default_rng([cfg.seed, number, copy]), cfg.rotation_keep_classes)
            if len(pts) == 0:
                continue
        pts = pts.copy()
        pts[:, :3] -= pts[:, :3].min(axis=0)
        for b, idx in enumerate(grid_blocks(pts[:, :2], size, stride)):
            if idx.size <= cfg.min_points:
                continue
            block = add_z_dummy(pts[idx], cfg.min_z_range)
            scene = block_to_scene(block, f"{stem}_{copy}_{b}", source)
            if train and not keep_train_block(scene.semantic, scene.instance, cfg):
                continue
            scenes.append(scene)
    return scenes


def prepare_stpls3d(
    raw_dir: str | Path, out_root: str | Path, split: str, cfg: BlockConfig = BlockConfig(), progress: bool = True
) -> list[Path]:
    """Cut every scene of `split` and write `<out_root>/<split>/<block name>_inst_nostuff.pth`."""
    from tqdm import tqdm

    out_dir = Path(out_root) / split
    written = []
    for path in tqdm(split_files(raw_dir, split), desc=f"stpls3d {split}", unit="scene", disable=not progress):
        labelled = split != "test"
        points = read_stpls3d_txt(path, with_labels=labelled)
        for scene in cut_scene(points, path.stem, split, cfg, scene_number(path), source=path):
            arrays: tuple[np.ndarray, ...] = (scene.xyz, scene.rgb)
            if labelled:
                arrays += (scene.semantic.astype(np.float64), scene.instance.astype(np.float64))
            out_path = out_dir / f"{scene.name}{PTH_SUFFIX}"
            save_pth_arrays(out_path, arrays)
            written.append(out_path)
    return written


def load_stpls3d_block(path: str | Path) -> Scene:
    """Scene of a block file; (xyz, rgb)-only test blocks get -100 labels."""
    path = Path(path)
    arrays = read_pth_arrays(path)
    if len(arrays) not in (2, 4):
        raise DatasetError(path, f"expected (xyz, rgb) or (xyz, rgb, semantic, instance), got {len(arrays)} items")
    name = path.name[: -len(PTH_SUFFIX)] if path.name.endswith(PTH_SUFFIX) else path.stem
    semantic = instance = None
    if len(arrays) == 4:
        semantic, instance = arrays[2].reshape(-1), arrays[3].reshape(-1)
    return scene_from_arrays_checked(path, xyz=arrays[0], rgb=arrays[1], semantic=semantic, instance=instance, name=name)


def list_stpls3d_blocks(root: str | Path, split: str) -> list[Path]:
    """Sorted block files of `<root>/<split>/`."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(folder, f"split folder '{split}' not found")
    out = sorted(folder.glob(f"*{PTH_SUFFIX}"))
    if not out:
        raise DatasetError(folder, f"no *{PTH_SUFFIX} blocks")
    return out
