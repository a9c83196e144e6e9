"""ScanNetV2 (METHOD 8.1): raw scan folders, the preprocessed `_inst_nostuff.pth` files, the converter.

Raw layout, one folder per scan: `<root>/<scene>/` with
  `<scene>_vh_clean_2.ply`                  mesh vertices (x y z red green blue alpha) + faces
  `<scene>_vh_clean_2.labels.ply`           same vertices, `label` = NYU40 id per vertex (only checked)
  `<scene>.aggregation.json`                segGroups: {id, objectId, segments, label (raw category)}
  `<scene>_vh_clean_2.0.010000.segs.json`   segIndices: one mesh-segment id per vertex
  `<scene>.txt`                             metadata; `axisAlignment = m00 m01 ... m33` (optional)
and `<root>/scannetv2-labels.combined.tsv` mapping raw categories to NYU40 (`raw_category`, `nyu40id`;
earlier ScanNet releases name the raw column `category`, which is read when `raw_category` is absent).

Scene built from a raw scan (`load_scannet_raw`):
- xyz: the mesh vertices, first transformed by the 4x4 `axisAlignment` matrix of `<scene>.txt` when
  that file has one and `axis_align=True` (the released ISBNet/SM preprocessing does not align;
  pass `axis_align=False` to reproduce it bit for bit), then minus their mean.
- rgb: raw 0-255 / 127.5 - 1.
- ground truth, as the benchmark's own export builds it: a vertex belongs to the aggregation
  segGroup holding its segIndices segment (a later group wins if two claim it); vertices of no
  group are unannotated (-100).
- semantic: the group's raw category mapped through the tsv to NYU40, then to 0..19
  (SCANNET_LABELS); anything else -100. A category missing from the tsv makes its group void
  (-100, no instance), with one warning per scene naming the categories.
- instance: the groups that are neither wall (NYU40 1) nor floor (NYU40 2), in file order. Group
  points whose semantic label is -100 (an object class outside the 20 benchmark classes, e.g.
  lamp) are set to -100 because the Scene contract requires every instance point to carry an
  instance class; ids are then compacted to 0..K-1 keeping the group order. scene0217_00 stores
  every group twice: only the first half is used.
- `labels.ply`, when present, is checked against that semantic labelling and a disagreement is
  logged as a warning (earlier releases store ids there that are not NYU40); it is never used.
- superpoint: the segIndices, renumbered 0..S-1 (same segmentation as `superpoints/<scene>.pth`).

Preprocessed layout (ISBNet/SM, written by `convert_scannet`):
  `<out>/<split>/<scene>_inst_nostuff.pth` = torch.save of a tuple of numpy arrays
      train/val: (xyz float64 (N,3), rgb float64 (N,3), semantic float64 (N,), instance float64 (N,))
      test:      (xyz, rgb) only; the loader fills semantic and instance with -100 (unlabelled),
                 not zeros as ISBNet does, so a test scene can never pass for a labelled one.
  `<out>/superpoints/<scene>.pth` = torch.save of the per-vertex segment ids (int64 array).
Both are read with `torch.load(weights_only=True)` (numpy arrays allow-listed, see `read_pth_arrays`).

CLI: `python -m sphmask_core.data.scannet convert RAW OUT [--scenes S ...] [--split-file F]`.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sphmask_core.data.errors import DatasetError
from sphmask_core.data.ply import read_ply
from sphmask_core.data.scene import IGNORE_LABEL, SCANNET_LABELS, Scene, compact_ids

# METHOD 8.1: NYU40 ids of the 20 benchmark classes, in SCANNET_LABELS order.
NYU40_BENCHMARK_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
NYU40_WALL, NYU40_FLOOR = 1, 2
LABELS_TSV = "scannetv2-labels.combined.tsv"
DUPLICATED_GROUP_SCENES = frozenset({"scene0217_00"})
PTH_SUFFIX = "_inst_nostuff.pth"
SPLITS = ("train", "val", "test")
TSV_CATEGORY_COLUMNS = ("raw_category", "category")  # current release, earlier releases
LOG = logging.getLogger(__name__)

_NYU40_TO_SEMANTIC = np.full(41, IGNORE_LABEL, np.int64)
_NYU40_TO_SEMANTIC[list(NYU40_BENCHMARK_IDS)] = np.arange(len(NYU40_BENCHMARK_IDS))


# ----------------------------------------------------------------------------------- .pth io


def _numpy_safe_globals() -> list[Any]:
    """Globals a pickled numpy array needs; old files name numpy.core, new ones numpy._core."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    dtype_classes = {type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG"}
    return [
        _reconstruct,
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *dtype_classes,
    ]


def read_pth_arrays(path: str | Path) -> tuple[np.ndarray, ...]:
    """A torch.save'd tuple/list of numpy arrays or tensors, as numpy arrays (weights_only load)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt / unsafe files
        raise DatasetError(path, f"cannot be read as a .pth tuple of arrays ({type(exc).__name__}: {exc})") from None
    items = obj if isinstance(obj, (tuple, list)) else (obj,)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, torch.Tensor):
            out.append(item.numpy())
        elif isinstance(item, np.ndarray):
            out.append(item)
        else:
            raise DatasetError(path, f"item {i} is a {type(item).__name__}, expected an array")
    return tuple(out)


def save_pth_arrays(path: str | Path, arrays: Sequence[np.ndarray]) -> None:
    """torch.save a tuple of numpy arrays (the ISBNet/SM preprocessed file layout)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tuple(np.ascontiguousarray(a) for a in arrays), path)


def scene_from_arrays_checked(path: Path, **kwargs: Any) -> Scene:
    """Scene.from_arrays with its ValueError re-raised as a DatasetError naming `path`."""
    try:
        return Scene.from_arrays(**kwargs)
    except DatasetError:
        raise
    except ValueError as exc:
        raise DatasetError(path, str(exc)) from None


# ----------------------------------------------------------------------------------- raw parts


def nyu40_to_semantic(nyu40: np.ndarray) -> np.ndarray:
    """(N,) NYU40 ids -> (N,) int64 benchmark ids 0..19, everything else -100."""
    ids = np.asarray(nyu40).astype(np.int64)
    out = np.full(ids.shape, IGNORE_LABEL, np.int64)
    inside = (ids >= 0) & (ids < _NYU40_TO_SEMANTIC.size)
    out[inside] = _NYU40_TO_SEMANTIC[ids[inside]]
    return out


def read_label_map(tsv_path: str | Path) -> dict[str, int]:
    """raw category -> nyu40id from `scannetv2-labels.combined.tsv` (blank nyu40id -> 0).

    The raw category column is `raw_category`, or `category` in earlier ScanNet releases.
    """
    tsv_path = Path(tsv_path)
    if not tsv_path.is_file():
        raise DatasetError(tsv_path, "label map not found (ScanNet's scannetv2-labels.combined.tsv)")
    with tsv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        fields = set(reader.fieldnames or ())
        column = next((c for c in TSV_CATEGORY_COLUMNS if c in fields), None)
        missing = ([] if column else ["raw_category (or category)"]) + ([] if "nyu40id" in fields else ["nyu40id"])
        if missing:
            raise DatasetError(tsv_path, f"missing column(s) {missing}")
        out: dict[str, int] = {}
        for lineno, row in enumerate(reader, start=2):
            value = (row["nyu40id"] or "").strip()
            try:
                out[row[column]] = int(value) if value else 0
            except ValueError:
                raise DatasetError(tsv_path, f"line {lineno}: nyu40id {value!r} is not an integer") from None
    return out


def read_axis_alignment(meta_path: str | Path) -> np.ndarray:
    """(4, 4) `axisAlignment` matrix of a scan's `<scene>.txt`; identity when the line is absent."""
    meta_path = Path(meta_path)
    for line in meta_path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "axisAlignment":
            try:
                numbers = [float(x) for x in value.split()]
            except ValueError:
                raise DatasetError(meta_path, f"axisAlignment is not numeric: {value.strip()!r}") from None
            if len(numbers) != 16:
                raise DatasetError(meta_path, f"axisAlignment needs 16 numbers, got {len(numbers)}")
            return np.array(numbers, np.float64).reshape(4, 4)
    return np.eye(4)


def read_split_file(path: str | Path) -> list[str]:
    """Scene names of a `scannetv2_<split>.txt` style list (one per line, blanks ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "split file not found")
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    bad = [n for n in names if "/" in n or "\\" in n or n.startswith(".")]
    if bad:
        raise DatasetError(path, f"not a scene name: {bad[0]!r}")
    if not names:
        raise DatasetError(path, "split file lists no scenes")
    return names


def split_name_of(path: str | Path) -> str | None:
    """'train' for `scannetv2_train.txt`; None when the file name names no split."""
    stem = Path(path).stem
    tail = stem.rsplit("_", 1)[-1]
    return tail if tail in SPLITS else None


@dataclass(frozen=True)
class ScanNetRawPaths:
    mesh: Path
    labels: Path
    aggregation: Path
    segs: Path
    meta: Path

    @classmethod
    def of(cls, scene_dir: str | Path) -> "ScanNetRawPaths":
        d = Path(scene_dir)
        s = d.name
        return cls(
            mesh=d / f"{s}_vh_clean_2.ply",
            labels=d / f"{s}_vh_clean_2.labels.ply",
            aggregation=d / f"{s}.aggregation.json",
            segs=d / f"{s}_vh_clean_2.0.010000.segs.json",
            meta=d / f"{s}.txt",
        )


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(path, f"missing {what}")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"invalid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise DatasetError(path, "expected a JSON object")
    return obj


def read_seg_indices(segs_path: Path, n_vertices: int) -> np.ndarray:
    """(N,) int64 mesh-segment id per vertex from a segs.json."""
    obj = _read_json(segs_path)
    if "segIndices" not in obj:
        raise DatasetError(segs_path, "has no 'segIndices'")
    seg = np.asarray(obj["segIndices"], dtype=np.int64)
    if seg.shape != (n_vertices,):
        raise DatasetError(segs_path, f"{seg.size} segIndices but the mesh has {n_vertices} vertices")
    return seg


@dataclass
class AnnotationGroups:
    """The annotated segGroups of one scan whose category the tsv knows, in file order.

    segments: segment ids of each group; nyu40: (G,) NYU40 id of each group's category;
    unknown: categories of the groups left out because the tsv lacks them (sorted, distinct).
    """

    segments: list[np.ndarray]
    nyu40: np.ndarray
    unknown: list[str]


def annotation_groups(agg_path: Path, label_map: dict[str, int], scene: str) -> AnnotationGroups:
    """Read an aggregation.json; groups of categories missing from `label_map` are left out."""
    groups = _read_json(agg_path).get("segGroups")
    if not isinstance(groups, list):
        raise DatasetError(agg_path, "has no 'segGroups' list")
    if scene in DUPLICATED_GROUP_SCENES:
        groups = groups[: len(groups) // 2]  # the annotation lists every group twice
    segments, nyu40, unknown = [], [], set()
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or "label" not in g or "segments" not in g:
            raise DatasetError(agg_path, f"segGroup {i} lacks 'label' or 'segments'")
        label = g["label"]
        if label not in label_map:
            unknown.add(str(label))
            continue
        segments.append(np.asarray(g["segments"], dtype=np.int64))
        nyu40.append(label_map[label])
    return AnnotationGroups(segments, np.asarray(nyu40, dtype=np.int64), sorted(unknown))


def ground_truth_from_groups(seg: np.ndarray, groups: AnnotationGroups) -> tuple[np.ndarray, np.ndarray]:
    """(semantic (N,) 0..19 / -100, instance (N,) group index / -100) per vertex.

    The benchmark export's rule: a vertex takes the category and object of the group holding its
    segment; wall and floor groups carry no instance.
    """
    group = instances_from_groups(seg, groups.segments)  # (N,) group index, -100 = none
    has = group >= 0
    nyu40 = np.zeros(seg.shape, np.int64)  # 0 = unannotated
    nyu40[has] = groups.nyu40[group[has]]
    semantic = nyu40_to_semantic(nyu40)
    stuff = np.isin(nyu40, (NYU40_WALL, NYU40_FLOOR))
    instance = np.where(has & ~stuff, group, IGNORE_LABEL)
    return semantic, instance


def check_labels_ply(labels_path: Path, semantic: np.ndarray, scene: str, mesh_name: str = "the mesh") -> int:
    """Vertices whose labels.ply class differs from `semantic`; one warning when there are any."""
    vert = read_ply(labels_path)["vertex"]
    if "label" not in (vert.dtype.names or ()):
        raise DatasetError(labels_path, "vertices have no 'label' property")
    if len(vert) != semantic.size:
        raise DatasetError(labels_path, f"{len(vert)} vertices but {mesh_name} has {semantic.size}")
    from_ply = nyu40_to_semantic(vert["label"])
    differ = np.flatnonzero(from_ply != semantic)
    if differ.size:
        v = int(differ[0])
        LOG.warning(
            "%s: %s disagrees with the aggregation on %d of %d vertices (e.g. vertex %d: class %d vs %d); "
            "the ground truth follows the aggregation",
            scene, labels_path.name, differ.size, semantic.size, v, int(from_ply[v]), int(semantic[v]),
        )
    return int(differ.size)


def instances_from_groups(seg: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """(N,) group index per vertex (-100 where no group holds its segment; later group wins)."""
    inst = np.full(seg.shape, IGNORE_LABEL, np.int64)
    if not groups:
        return inst
    seg_all = np.concatenate(groups)  # (M,)
    grp_all = np.repeat(np.arange(len(groups)), [g.size for g in groups])  # (M,)
    order = np.lexsort((grp_all, seg_all))  # by segment, then group
    seg_sorted, grp_sorted = seg_all[order], grp_all[order]
    last = np.r_[seg_sorted[1:] != seg_sorted[:-1], True]  # last (highest) group of each segment
    useg, ugrp = seg_sorted[last], grp_sorted[last]
    idx = np.searchsorted(useg, seg)
    idx_c = np.minimum(idx, useg.size - 1)
    hit = (idx < useg.size) & (useg[idx_c] == seg)
    inst[hit] = ugrp[idx_c[hit]]
    return inst


# ----------------------------------------------------------------------------------- loaders


def _mesh_xyz_rgb(mesh_path: Path) -> tuple[np.ndarray, np.ndarray]:
    vert = read_ply(mesh_path)["vertex"]
    names = vert.dtype.names or ()
    missing = [c for c in ("x", "y", "z", "red", "green", "blue") if c not in names]
    if missing:
        raise DatasetError(mesh_path, f"vertices lack properties {missing}")
    if len(vert) == 0:
        raise DatasetError(mesh_path, "empty scene (0 vertices)")
    xyz = np.stack([vert[c] for c in "xyz"], axis=1).astype(np.float64)  # (N, 3)
    rgb = np.stack([vert[c] for c in ("red", "green", "blue")], axis=1).astype(np.float64)  # (N, 3)
    return xyz, rgb


def _default_tsv(scene_dir: Path) -> Path:
    return scene_dir.parent / LABELS_TSV


def load_scannet_raw(
    scene_dir: str | Path,
    labels_tsv: str | Path | None = None,
    axis_align: bool = True,
    with_labels: bool = True,
    label_map: dict[str, int] | None = None,
) -> Scene:
    """Scene of one raw scan folder (see the module docstring for every rule).

    `labels_tsv` defaults to `<scene_dir>/../scannetv2-labels.combined.tsv`; `label_map` (from
    `read_label_map`) skips re-reading it for many scenes. `with_labels=False` reads the mesh
    (and segs.json for superpoints, when present) only, as for test scans.
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise DatasetError(scene_dir, "scan folder not found")
    name = scene_dir.name
    paths = ScanNetRawPaths.of(scene_dir)
    xyz, rgb_raw = _mesh_xyz_rgb(_require(paths.mesh, "mesh (_vh_clean_2.ply)"))
    n = xyz.shape[0]
    if axis_align and paths.meta.is_file():
        m = read_axis_alignment(paths.meta)  # (4, 4)
        xyz = xyz @ m[:3, :3].T + m[:3, 3]
    xyz = xyz - xyz.mean(axis=0)
    rgb = rgb_raw / 127.5 - 1.0
    seg = None
    if with_labels or paths.segs.is_file():
        seg = read_seg_indices(_require(paths.segs, "segment file (_vh_clean_2.0.010000.segs.json)"), n)
    semantic = instance = None
    if with_labels:
        tsv = Path(labels_tsv) if labels_tsv is not None else _default_tsv(scene_dir)
        lmap = label_map if label_map is not None else read_label_map(tsv)
        agg = _require(paths.aggregation, "instance annotation (.aggregation.json)")
        groups = annotation_groups(agg, lmap, name)
        if groups.unknown:
            LOG.warning("%s: categories not in %s, their points are void: %s", name, tsv.name, ", ".join(groups.unknown))
        semantic, instance = ground_truth_from_groups(seg, groups)
        if paths.labels.is_file():
            check_labels_ply(paths.labels, semantic, name, paths.mesh.name)
        not_object = (semantic == IGNORE_LABEL) | (semantic < SCANNET_LABELS.label_shift)
        instance = compact_ids(np.where(not_object, IGNORE_LABEL, instance))
    superpoint = None if seg is None else np.unique(seg, return_inverse=True)[1].reshape(-1)
    return scene_from_arrays_checked(
        scene_dir, xyz=xyz, rgb=rgb, semantic=semantic, instance=instance, superpoint=superpoint, name=name
    )


def scene_name_of_pth(path: str | Path) -> str:
    name = Path(path).name
    return name[: -len(PTH_SUFFIX)] if name.endswith(PTH_SUFFIX) else Path(path).stem


def load_scannet_pth(path: str | Path, superpoint_dir: str | Path | None = "auto") -> Scene:
    """Scene of a preprocessed `<scene>_inst_nostuff.pth`.

    Superpoints come from `<superpoint_dir>/<scene>.pth`; "auto" looks in the `superpoints`
    folder next to the split folder (ISBNet layout) and uses it when the file exists.
    """
    path = Path(path)
    arrays = read_pth_arrays(path)
    if len(arrays) not in (2, 4):
        raise DatasetError(path, f"expected (xyz, rgb) or (xyz, rgb, semantic, instance), got {len(arrays)} items")
    name = scene_name_of_pth(path)
    xyz, rgb = arrays[0], arrays[1]
    if xyz.ndim != 2 or xyz.shape[0] == 0:
        raise DatasetError(path, f"empty scene or bad xyz shape {xyz.shape}")
    semantic = instance = None
    if len(arrays) == 4:
        semantic, instance = arrays[2].reshape(-1), arrays[3].reshape(-1)
    superpoint = None
    if superpoint_dir == "auto":
        sp_path = path.parent.parent / "superpoints" / f"{name}.pth"
        sp_path = sp_path if sp_path.is_file() else None
    elif superpoint_dir is None:
        sp_path = None
    else:
        sp_path = _require(Path(superpoint_dir) / f"{name}.pth", "superpoint file")
    if sp_path is not None:
        (sp,) = read_pth_arrays(sp_path)[:1]
        sp = sp.reshape(-1)
        if sp.shape[0] != xyz.shape[0]:
            raise DatasetError(sp_path, f"{sp.shape[0]} superpoint ids but {path.name} has {xyz.shape[0]} points")
        superpoint = np.unique(sp, return_inverse=True)[1].reshape(-1)
    return scene_from_arrays_checked(
        path, xyz=xyz, rgb=rgb, semantic=semantic, instance=instance, superpoint=superpoint, name=name
    )


def list_scannet_split(root: str | Path, split: str) -> list[Path]:
    """Sorted `_inst_nostuff.pth` files of `root/<split>/`; "trainval" = train + val."""
    root = Path(root)
    parts = ("train", "val") if split == "trainval" else (split,)
    out: list[Path] = []
    for part in parts:
        folder = root / part
        if not folder.is_dir():
            raise DatasetError(folder, f"split folder '{part}' not found")
        out += sorted(folder.glob(f"*{PTH_SUFFIX}"))
    if not out:
        raise DatasetError(root, f"no *{PTH_SUFFIX} files in split '{split}'")
    return out


# ----------------------------------------------------------------------------------- converter


def list_raw_scenes(raw_root: str | Path) -> list[str]:
    """Names of the scan folders under `raw_root` (folders holding a `_vh_clean_2.ply`)."""
    raw_root = Path(raw_root)
    return sorted(d.name for d in raw_root.iterdir() if d.is_dir() and (d / f"{d.name}_vh_clean_2.ply").is_file())


def scene_to_pth_arrays(scene: Scene, with_labels: bool) -> tuple[np.ndarray, ...]:
    """The ISBNet tuple for `scene` (float64 arrays; labels as float as in the original files)."""
    arrays = (scene.xyz.astype(np.float64), scene.rgb.astype(np.float64))
    if with_labels:
        arrays += (scene.semantic.astype(np.float64), scene.instance.astype(np.float64))
    return arrays


def convert_scannet(
    raw_root: str | Path,
    out_root: str | Path,
    scenes: str | Path | Sequence[str] | None = None,
    split: str | None = None,
    labels_tsv: str | Path | None = None,
    axis_align: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Write `<out_root>/<split>/<scene>_inst_nostuff.pth` (+ `<out_root>/superpoints/<scene>.pth`).

    `scenes`: a split file (`scannetv2_val.txt`), a list of scene names, or None for every scan
    folder under `raw_root`. `split` defaults to the split the file name names, else "train";
    "test" writes (xyz, rgb) only. Returns the written scene files.
    """
    from tqdm import tqdm

    raw_root, out_root = Path(raw_root), Path(out_root)
    if not raw_root.is_dir():
        raise DatasetError(raw_root, "raw ScanNet folder not found")
    if scenes is None:
        names = list_raw_scenes(raw_root)
        if not names:
            raise DatasetError(raw_root, "holds no scan folders with a _vh_clean_2.ply")
    elif isinstance(scenes, (str, Path)):
        names = read_split_file(scenes)
        split = split or split_name_of(scenes)
    else:
        names = [str(s) for s in scenes]
        if not names:
            raise DatasetError(raw_root, "empty scene list")
    split = split or "train"
    if split not in SPLITS:
        raise DatasetError(out_root, f"split must be one of {SPLITS}, got {split!r}")
    with_labels = split != "test"
    tsv = Path(labels_tsv) if labels_tsv is not None else raw_root / LABELS_TSV
    label_map = read_label_map(tsv) if with_labels else None
    written = []
    for name in tqdm(names, desc=f"scannet {split}", unit="scene", disable=not progress):
        scene_dir = raw_root / name
        scene = load_scannet_raw(scene_dir, tsv, axis_align, with_labels, label_map)
        out_path = out_root / split / f"{name}{PTH_SUFFIX}"
        save_pth_arrays(out_path, scene_to_pth_arrays(scene, with_labels))
        segs = ScanNetRawPaths.of(scene_dir).segs
        if segs.is_file():
            save_pth_arrays(out_root / "superpoints" / f"{name}.pth", (read_seg_indices(segs, scene.n_points),))
        written.append(out_path)
    return written


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sphmask_core.data.scannet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="raw scans -> <OUT>/<split>/<scene>_inst_nostuff.pth")
    conv.add_argument("raw", help="folder of scan folders (+ scannetv2-labels.combined.tsv)")
    conv.add_argument("out", help="output dataset folder")
    group = conv.add_mutually_exclusive_group()
    group.add_argument("--scenes", nargs="+", help="scene names (default: every scan folder)")
    group.add_argument("--split-file", help="scannetv2_<split>.txt style list")
    conv.add_argument("--split", choices=SPLITS, help="output split (default: from --split-file, else train)")
    conv.add_argument("--labels-tsv", help=f"label map (default: RAW/{LABELS_TSV})")
    conv.add_argument("--no-align", action="store_true", help="ignore axisAlignment (as ISBNet/SM do)")
    conv.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        written = convert_scannet(
            args.raw,
            args.out,
            scenes=args.split_file if args.split_file else args.scenes,
            split=args.split,
            labels_tsv=args.labels_tsv,
            axis_align=not args.no_align,
            progress=not args.quiet,
        )
    except (DatasetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} scene(s) to {Path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
