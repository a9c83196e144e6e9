"""S3DIS (METHOD 8.2): raw rooms of Stanford3dDataset_v1.2_Aligned_Version and the per-room .pth files.

Raw layout: `<root>/Area_k/<room>/<room>.txt` (x y z r g b per line, whitespace separated) with
`<root>/Area_k/<room>/Annotations/<class>_<i>.txt` (same columns), one file per object.

Labelling (`label_room`): every annotation point is matched to its nearest room point (scipy
cKDTree); the matched room points take the annotation's class and instance (files in sorted
name order, a later file wins a point claimed twice). Room points no annotation point matched
take the labels of their nearest matched room point, so no point stays unlabelled. `stairs` is
mapped to clutter; any class outside the 13 (+ stairs) is an error. Instance ids are the
annotation file index, compacted to 0..K-1.

Preprocessed file `<out>/Area_k_<room>_inst_nostuff.pth` (ISBNet layout) = torch.save of the
tuple (xyz float32 (N,3) raw world coordinates, rgb float32 (N,3) raw 0-255, semantic int32 (N,),
instance int32 (N,)); no -100 anywhere. Superpoints, when present, are
`<out>/../superpoints/Area_k_<room>.pth` (per-point ids).

Scene built from a room (`room_to_scene`, used for both layouts):
- xyz = raw coordinates minus the room mean (`center=True`, the default; the Scene contract is
  only "metres", and centred float32 keeps millimetres at S3DIS building coordinates).
- rgb = raw / 127.5 - 1, the same mapping as ScanNet, so the stored 0-255 floats become [-1, 1].
- semantic 0..12 (S3DIS_LABELS). instance: with `stuff_instances=False` (default, training with
  label_shift 2, METHOD 8.2) ceiling and floor points are set to -100 and the remaining ids
  compacted; `stuff_instances=True` keeps every annotated object (S3DIS evaluation counts ceiling
  and floor instances, METHOD 9.2), which then does not validate against S3DIS_LABELS.

Splits: Areas 1, 2, 3, 4, 6 train, Area 5 validation (`parse_areas`).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.spatial import cKDTree

from sphmask_core.data.errors import DatasetError
from sphmask_core.data.scannet import read_pth_arrays, save_pth_arrays, scene_from_arrays_checked
from sphmask_core.data.scene import IGNORE_LABEL, S3DIS_LABELS, Scene, compact_ids

S3DIS_AREAS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
S3DIS_VAL_AREA = 5
PTH_SUFFIX = "_inst_nostuff.pth"
CLASS_ALIASES = {"stairs": "clutter"}
_CLASS_ID = {name: i for i, name in enumerate(S3DIS_LABELS.semantic_names)}
_AREA_RE = re.compile(r"^(?:area_)?([1-6])$", re.IGNORECASE)


def parse_areas(spec: str | int | Sequence[int | str]) -> tuple[int, ...]:
    """Area numbers of a split: "train" (1,2,3,4,6), "val"/"test" (5), "all", "Area_1,Area_2", 3, [1, "Area_2"]."""
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key == "train":
            return tuple(a for a in S3DIS_AREAS if a != S3DIS_VAL_AREA)
        if key in ("val", "test"):
            return (S3DIS_VAL_AREA,)
        if key == "all":
            return S3DIS_AREAS
        items: Sequence[int | str] = [s for s in key.split(",") if s.strip()]
    elif isinstance(spec, (int, np.integer)):
        items = [int(spec)]
    else:
        items = list(spec)
    out = []
    for item in items:
        m = _AREA_RE.match(str(item).strip())
        if m is None:
            raise ValueError(f"S3DIS area must be 1..6 or 'Area_k', got {item!r}")
        out.append(int(m.group(1)))
    if not out:
        raise ValueError(f"no S3DIS areas in {spec!r}")
    return tuple(sorted(set(out)))


def read_point_table(path: str | Path) -> np.ndarray:
    """(N, 6) float64 x y z r g b of an S3DIS room or annotation file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy warns on empty files; we raise below
            table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DatasetError(path, f"not a table of x y z r g b numbers ({exc})") from None
    if table.shape[0] == 0:
        raise DatasetError(path, "empty (0 points)")
    if table.shape[1] != 6:
        raise DatasetError(path, f"expected 6 columns (x y z r g b), got {table.shape[1]}")
    return table


def annotation_class(path: str | Path) -> int:
    """Semantic id of an `Annotations/<class>_<i>.txt` file (stairs -> clutter)."""
    path = Path(path)
    name = path.stem.rsplit("_", 1)[0] if "_" in path.stem else path.stem
    name = CLASS_ALIASES.get(name, name)
    if name not in _CLASS_ID:
        raise DatasetError(path, f"unknown S3DIS class {name!r} (expected one of {sorted(_CLASS_ID)} or stairs)")
    return _CLASS_ID[name]


def label_room(room_xyz: np.ndarray, annotations: Sequence[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Semantic (N,) and instance (N,) int64 of room points from (class id, (M_i, 3) xyz) objects.

    Instance ids are annotation indices compacted to 0..K-1; see the module docstring for rules.
    """
    if not annotations:
        raise ValueError("label_room needs at least one annotation")
    n = room_xyz.shape[0]
    tree = cKDTree(room_xyz)
    ann_xyz = np.concatenate([a for _, a in annotations])  # (M, 3)
    ann_id = np.repeat(np.arange(len(annotations)), [len(a) for _, a in annotations])  # (M,)
    _, nearest = tree.query(ann_xyz, k=1)  # (M,)
    owner = np.full(n, -1, np.int64)
    np.maximum.at(owner, nearest, ann_id)  # later annotation file wins a shared point
    hit = owner >= 0
    if not hit.all():
        _, src = cKDTree(room_xyz[hit]).query(room_xyz[~hit], k=1)
        owner[~hit] = owner[hit][src]
    classes = np.array([c for c, _ in annotations], np.int64)
    return classes[owner], compact_ids(owner)


def room_name(room_dir: str | Path) -> str:
    """`Area_1_office_1` for `<root>/Area_1/office_1`."""
    room_dir = Path(room_dir)
    return f"{room_dir.parent.name}_{room_dir.name}"


def read_raw_room(room_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(xyz float32 raw, rgb float32 0-255, semantic int32, instance int32) of a raw room folder."""
    room_dir = Path(room_dir)
    if not room_dir.is_dir():
        raise DatasetError(room_dir, "room folder not found")
    table = read_point_table(room_dir / f"{room_dir.name}.txt")
    ann_dir = room_dir / "Annotations"
    if not ann_dir.is_dir():
        raise DatasetError(ann_dir, "missing Annotations folder")
    files = sorted(p for p in ann_dir.glob("*.txt") if p.is_file())
    if not files:
        raise DatasetError(ann_dir, "no annotation files")
    annotations = [(annotation_class(p), read_point_table(p)[:, :3]) for p in files]
    semantic, instance = label_room(table[:, :3], annotations)
    return (
        table[:, :3].astype(np.float32),
        table[:, 3:6].astype(np.float32),
        semantic.astype(np.int32),
        instance.astype(np.int32),
    )


def room_to_scene(
    xyz: np.ndarray,
    rgb_raw: np.ndarray,
    semantic: np.ndarray,
    instance: np.ndarray,
    name: str,
    superpoint: np.ndarray | None = None,
    center: bool = True,
    stuff_instances: bool = False,
    source: Path | None = None,
) -> Scene:
    """Scene of a room's raw arrays (see the module docstring for the mapping)."""
    xyz64 = np.asarray(xyz, np.float64)
    if center:
        xyz64 = xyz64 - xyz64.mean(axis=0)
    sem = np.asarray(semantic).astype(np.int64)
    inst = np.asarray(instance).astype(np.int64)
    if not stuff_instances:
        inst = compact_ids(np.where(sem < S3DIS_LABELS.label_shift, IGNORE_LABEL, inst))
    sp = None if superpoint is None else np.unique(superpoint, return_inverse=True)[1].reshape(-1)
    return scene_from_arrays_checked(
        source or Path(name),
        xyz=xyz64,
        rgb=np.asarray(rgb_raw, np.float64) / 127.5 - 1.0,
        semantic=sem,
        instance=inst,
        superpoint=sp,
        name=name,
    )


def save_room_pth(path: str | Path, xyz: np.ndarray, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray) -> None:
    save_pth_arrays(
        path,
        (xyz.astype(np.float32), rgb.astype(np.float32), semantic.astype(np.int32), instance.astype(np.int32)),
    )


def read_room_pth(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 4 arrays of a preprocessed room file (extra trailing items are ignored)."""
    path = Path(path)
    arrays = read_pth_arrays(path)
    if len(arrays) < 4:
        raise DatasetError(path, f"expected (xyz, rgb, semantic, instance), got {len(arrays)} items")
    xyz, rgb, sem, inst = arrays[:4]
    n = xyz.shape[0] if xyz.ndim == 2 else -1
    if xyz.ndim != 2 or xyz.shape[1] != 3 or n == 0:
        raise DatasetError(path, f"empty room or bad xyz shape {xyz.shape}")
    if rgb.shape != (n, 3) or sem.reshape(-1).shape != (n,) or inst.reshape(-1).shape != (n,):
        raise DatasetError(path, f"array lengths disagree: xyz {xyz.shape}, rgb {rgb.shape}, semantic {sem.shape}, instance {inst.shape}")
    return xyz, rgb, sem.reshape(-1), inst.reshape(-1)


def load_s3dis_room(
    path: str | Path,
    center: bool = True,
    stuff_instances: bool = False,
    superpoint_dir: str | Path | None = "auto",
) -> Scene:
    """Scene of a raw room folder (`Area_k/<room>`) or a preprocessed `Area_k_<room>_inst_nostuff.pth`.

    Superpoints: `<superpoint_dir>/<Area_k_room>.pth`; "auto" uses `../superpoints/` of a .pth
    file when that file exists (raw folders have none).
    """
    path = Path(path)
    if path.is_dir():
        xyz, rgb, sem, inst = read_raw_room(path)
        name = room_name(path)
        auto_sp = None
    else:
        xyz, rgb, sem, inst = read_room_pth(path)
        name = path.name[: -len(PTH_SUFFIX)] if path.name.endswith(PTH_SUFFIX) else path.stem
        auto_sp = path.parent.parent / "superpoints" / f"{name}.pth"
    if superpoint_dir == "auto":
        sp_path = auto_sp if auto_sp is not None and auto_sp.is_file() else None
    elif superpoint_dir is None:
        sp_path = None
    else:
        sp_path = Path(superpoint_dir) / f"{name}.pth"
        if not sp_path.is_file():
            raise DatasetError(sp_path, "missing superpoint file")
    superpoint = None
    if sp_path is not None:
        superpoint = read_pth_arrays(sp_path)[0].reshape(-1)
        if superpoint.shape[0] != xyz.shape[0]:
            raise DatasetError(sp_path, f"{superpoint.shape[0]} superpoint ids but the room has {xyz.shape[0]} points")
    return room_to_scene(xyz, rgb, sem, inst, name, superpoint, center, stuff_instances, source=path)


def list_rooms(root: str | Path, areas: str | int | Sequence[int | str] = S3DIS_AREAS) -> list[Path]:
    """Sorted raw room folders `<root>/Area_k/<room>/` (holding `<room>.txt`) of the given areas."""
    root = Path(root)
    out: list[Path] = []
    for area in parse_areas(areas):
        area_dir = root / f"Area_{area}"
        if not area_dir.is_dir():
            raise DatasetError(area_dir, "area folder not found")
        out += sorted(d for d in area_dir.iterdir() if d.is_dir() and (d / f"{d.name}.txt").is_file())
    if not out:
        raise DatasetError(root, f"no rooms in areas {parse_areas(areas)}")
    return out


def list_preprocessed_rooms(root: str | Path, areas: str | int | Sequence[int | str] = S3DIS_AREAS) -> list[Path]:
    """Sorted `Area_k_<room>_inst_nostuff.pth` files in `root` for the given areas."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "preprocessed S3DIS folder not found")
    out: list[Path] = []
    for area in parse_areas(areas):
        out += sorted(root.glob(f"Area_{area}_*{PTH_SUFFIX}"))
    if not out:
        raise DatasetError(root, f"no *{PTH_SUFFIX} rooms for areas {parse_areas(areas)}")
    return out


def preprocess_s3dis(
    raw_root: str | Path,
    out_dir: str | Path,
    areas: str | int | Sequence[int | str] = S3DIS_AREAS,
    progress: bool = True,
) -> list[Path]:
    """Label every room of `areas` and write `<out_dir>/Area_k_<room>_inst_nostuff.pth`."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    written = []
    for room_dir in tqdm(list_rooms(raw_root, areas), desc="s3dis", unit="room", disable=not progress):
        out_path = out_dir / f"{room_name(room_dir)}{PTH_SUFFIX}"
        save_room_pth(out_path, *read_raw_room(room_dir))
        written.append(out_path)
    return written
