"""The classes file: the class list of a user's own labelled data, shared by training, predict and eval.

Format (YAML):

    classes: [floor, wall, box, barrel, person]   # semantic id i = classes[i]
    stuff: [floor, wall]                           # background classes: no instances, listed first
    ignore_id: -1                                  # id meaning "unlabelled" in semantic_id / instance_id

`stuff` must name the first classes of the list (the model's `label_shift` convention: semantic
ids below it are stuff, the others are instance classes). Per point, files carry `semantic_id`
(index into `classes`, or ignore_id) and `instance_id` (any non-negative id per object, or
ignore_id); stuff points' instance ids are dropped.

A bag written by `sphmask-bag record-synthetic` carries its classes in the bag metadata
(`BAG_NAMES_KEY`, `BAG_SHIFT_KEY`, ignore id -1); `classes_from_bag_metadata` reads them, for
`sphmask-bag export` and training's `bag` dataset alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import yaml

from sphmask_core.data.errors import DatasetError
from sphmask_core.data.scene import IGNORE_LABEL, LabelSpec

_KEYS = {"classes", "stuff", "ignore_id"}
# rosbag2 metadata (custom_data) keys of a labelled bag's classes
BAG_NAMES_KEY = "sphmask.semantic_names"  # JSON list of semantic class names, id order
BAG_SHIFT_KEY = "sphmask.label_shift"  # number of leading stuff classes


@dataclass(frozen=True)
class ClassesFile:
    labels: LabelSpec
    ignore_id: int = -1

    def to_dict(self) -> dict:
        names = list(self.labels.semantic_names)
        return {"classes": names, "stuff": names[: self.labels.label_shift], "ignore_id": self.ignore_id}


def parse_classes(data: object, path: str | Path = "<classes>") -> ClassesFile:
    if not isinstance(data, dict):
        raise DatasetError(path, "classes file must be a mapping with keys 'classes', 'stuff', 'ignore_id'")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise DatasetError(path, f"unknown key '{unknown[0]}' (known: {sorted(_KEYS)})")
    names = data.get("classes")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise DatasetError(path, "'classes' must be a non-empty list of class names")
    stuff = data.get("stuff", [])
    if not isinstance(stuff, list) or not all(isinstance(n, str) for n in stuff):
        raise DatasetError(path, "'stuff' must be a list of class names")
    unknown_stuff = [n for n in stuff if n not in names]
    if unknown_stuff:
        raise DatasetError(path, f"stuff class '{unknown_stuff[0]}' is not in 'classes'")
    if list(names[: len(stuff)]) != [n for n in names if n in stuff]:
        raise DatasetError(path, f"stuff classes {stuff} must be the first entries of 'classes' (ids 0..{len(stuff) - 1})")
    ignore = data.get("ignore_id", -1)
    if isinstance(ignore, bool) or not isinstance(ignore, int):
        raise DatasetError(path, f"'ignore_id' must be an integer, got {ignore!r}")
    if 0 <= ignore < len(names):
        raise DatasetError(path, f"'ignore_id' {ignore} is a class id ({names[ignore]!r}); use -1 or an id >= {len(names)}")
    try:
        labels = LabelSpec(semantic_names=tuple(names), label_shift=len(stuff))
    except ValueError as exc:
        raise DatasetError(path, str(exc)) from None
    return ClassesFile(labels=labels, ignore_id=int(ignore))


def load_classes(path: str | Path) -> ClassesFile:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(path, "classes file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DatasetError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_classes(data, path)


def map_labels(
    semantic: np.ndarray, instance: np.ndarray, classes: ClassesFile, source: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """File ids -> Scene ids: ignore_id -> -100, stuff points and negative ids lose their instance;
    a semantic id outside the classes file is an error naming the file and the id."""
    sem = np.asarray(semantic).astype(np.int64)  # (N,)
    ins = np.asarray(instance).astype(np.int64)  # (N,)
    n_cls = classes.labels.n_semantic
    ignored = sem == classes.ignore_id
    bad = ~ignored & ((sem < 0) | (sem >= n_cls))
    if bad.any():
        raise DatasetError(
            source, f"semantic id {int(sem[bad][0])} is outside the classes file ({n_cls} classes, ignore_id {classes.ignore_id})"
        )
    sem = np.where(ignored, IGNORE_LABEL, sem)
    no_inst = (ins == classes.ignore_id) | (ins < 0) | (sem < classes.labels.label_shift)
    ins = np.where(no_inst, IGNORE_LABEL, ins)
    return sem, ins


def classes_from_bag_metadata(custom: Mapping[str, str], source: str | Path) -> ClassesFile | None:
    """The classes a bag's metadata names (ignore id -1), or None when it names none."""
    if BAG_NAMES_KEY not in custom or BAG_SHIFT_KEY not in custom:
        return None
    try:
        names = json.loads(custom[BAG_NAMES_KEY])
        shift = int(custom[BAG_SHIFT_KEY])
    except ValueError as exc:
        raise DatasetError(source, f"unreadable class metadata {BAG_NAMES_KEY}/{BAG_SHIFT_KEY} "
                                   f"({exc})") from None
    if not isinstance(names, list) or not 0 <= shift <= len(names):
        raise DatasetError(source, f"class metadata {BAG_NAMES_KEY}/{BAG_SHIFT_KEY} is not a "
                                   f"name list and a stuff count within it")
    return parse_classes({"classes": names, "stuff": names[:shift], "ignore_id": -1}, source)
