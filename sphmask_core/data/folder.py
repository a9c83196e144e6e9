"""The `folder` dataset: a directory of the user's own labelled clouds and a classes file.

Formats (per point: x y z, optional colour, `semantic_id`, `instance_id`; see classes.py for ids):
  .ply  vertex properties x y z [red green blue] semantic_id instance_id
  .pcd  fields x y z [rgb | r g b] semantic_id instance_id
  .npz  arrays xyz (N, 3), semantic_id (N,), instance_id (N,), optional rgb (N, 3) in 0..255
  .npy  a structured array with fields x y z [red green blue] semantic_id instance_id
The names `semantic` / `instance` are accepted for the two label fields.

A split is a list of file names (relative to the folder) or glob patterns; a file listed in a
split that does not exist, a cloud without both label fields, a label outside the classes file
and a cloud with no points each stop with a DatasetError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sphmask_core.data.classes import ClassesFile, map_labels
from sphmask_core.data.errors import DatasetError
from sphmask_core.data.scene import Scene, compact_ids

FOLDER_SUFFIXES = (".ply", ".pcd", ".npy", ".npz")
_SEMANTIC = ("semantic_id", "semantic")
_INSTANCE = ("instance_id", "instance")


def list_folder_split(root: str | Path, split: str | Sequence[str]) -> list[Path]:
    """Sorted, de-duplicated files of a split: comma-separated or listed file names, sub-folders
    (all their clouds) or glob patterns, relative to `root`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(root, "dataset folder not found")
    entries = [s.strip() for s in split.split(",")] if isinstance(split, str) else [str(s).strip() for s in split]
    entries = [e for e in entries if e]
    if not entries:
        raise DatasetError(root, "empty split: give file names or glob patterns, e.g. 'train/*.ply'")
    files: set[Path] = set()
    for entry in entries:
        if any(ch in entry for ch in "*?["):
            matched = [p for p in root.glob(entry) if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES]
            if not matched:
                raise DatasetError(root, f"pattern '{entry}' matches no {'/'.join(FOLDER_SUFFIXES)} file")
            files.update(matched)
        elif (root / entry).is_dir():
            matched = [p for p in (root / entry).iterdir() if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES]
            if not matched:
                raise DatasetError(root / entry, f"split folder holds no {'/'.join(FOLDER_SUFFIXES)} file")
            files.update(matched)
        else:
            path = root / entry
            if not path.is_file():
                raise DatasetError(path, "file listed in the split does not exist")
            if path.suffix.lower() not in FOLDER_SUFFIXES:
                raise DatasetError(path, f"unsupported cloud format (use one of {FOLDER_SUFFIXES})")
            files.add(path)
    return sorted(files)


def _field(names: Sequence[str], wanted: tuple[str, ...]) -> str | None:
    return next((w for w in wanted if w in names), None)


def _byte_colour(rgb: np.ndarray) -> np.ndarray:
    """0..255 colours (any numeric dtype) -> [-1, 1]; floats already in [0, 1] are scaled first."""
    rgb = np.asarray(rgb, np.float64)
    if rgb.size and rgb.dtype.kind == "f" and np.nanmax(rgb) <= 1.0:
        rgb = rgb * 255.0
    return (rgb / 127.5 - 1.0).astype(np.float32)


def _from_structured(points: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    names = points.dtype.names or ()
    missing = [c for c in "xyz" if c not in names]
    if missing:
        raise DatasetError(path, f"no coordinate field(s) {missing}; fields are {list(names)}")
    sem_f, ins_f = _field(names, _SEMANTIC), _field(names, _INSTANCE)
    if sem_f is None or ins_f is None:
        raise DatasetError(path, f"cloud has no labels: needs fields semantic_id and instance_id, has {list(names)}")
    xyz = np.stack([points[c] for c in "xyz"], axis=1).astype(np.float32)  # (N, 3)
    rgb = None
    if all(c in names for c in ("red", "green", "blue")):
        rgb = _byte_colour(np.stack([points[c] for c in ("red", "green", "blue")], axis=1))
    else:
        from sphmask_core.data.colour import structured_colour

        rgb, _ = structured_colour(points, set(names), None)
    return xyz, rgb, points[sem_f], points[ins_f]


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix == ".ply":
        from sphmask_core.data.ply import read_ply

        return _from_structured(read_ply(path)["vertex"], path)
    if suffix == ".pcd":
        from sphmask_core.data.pcd import PcdError, read_pcd

        try:
            return _from_structured(read_pcd(path).points, path)
        except PcdError as exc:
            raise DatasetError(path, str(exc)) from None
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DatasetError(path, f"unreadable .npy ({exc})") from None
        if arr.dtype.names is None:
            raise DatasetError(path, "cloud has no labels: a .npy must be a structured array with fields "
                               "x y z semantic_id instance_id (or use .npz with named arrays)")
        return _from_structured(arr.reshape(-1), path)
    if suffix == ".npz":
        try:
            data = dict(np.load(path, allow_pickle=False))
        except ValueError as exc:
            raise DatasetError(path, f"unreadable .npz ({exc})") from None
        if "xyz" not in data:
            raise DatasetError(path, f"no 'xyz' array; arrays are {sorted(data)}")
        sem_f, ins_f = _field(list(data), _SEMANTIC), _field(list(data), _INSTANCE)
        if sem_f is None or ins_f is None:
            raise DatasetError(path, f"cloud has no labels: needs arrays semantic_id and instance_id, has {sorted(data)}")
        xyz = np.asarray(data["xyz"], np.float32)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise DatasetError(path, f"'xyz' must have shape (N, 3), got {xyz.shape}")
        rgb = _byte_colour(data["rgb"]) if "rgb" in data else None
        return xyz, rgb, np.asarray(data[sem_f]).reshape(-1), np.asarray(data[ins_f]).reshape(-1)
    raise DatasetError(path, f"unsupported cloud format (use one of {FOLDER_SUFFIXES})")


def load_labelled_cloud(path: str | Path, classes: ClassesFile) -> Scene:
    """One labelled cloud as a Scene (non-finite points dropped, ids mapped by the classes file)."""
    path = Path(path)
    xyz, rgb, sem, ins = _read_arrays(path)
    n = xyz.shape[0]
    for name, arr in (("semantic_id", sem), ("instance_id", ins), ("rgb", rgb)):
        if arr is not None and arr.shape[0] != n:
            raise DatasetError(path, f"{name} has {arr.shape[0]} entries for {n} points")
    keep = np.isfinite(xyz).all(axis=1)
    if rgb is not None:
        rgb = np.nan_to_num(rgb[keep], nan=0.0)
    xyz, sem, ins = xyz[keep], sem[keep], ins[keep]
    if xyz.shape[0] == 0:
        raise DatasetError(path, "cloud has no (finite) points")
    sem, ins = map_labels(sem, ins, classes, path)
    try:
        return Scene.from_arrays(xyz, rgb, sem, compact_ids(ins), name=path.stem).validate(classes.labels)
    except ValueError as exc:
        raise DatasetError(path, str(exc)) from None
