"""The `bag` dataset: labelled PointCloud2 frames of rosbag2 recordings, seen as the node sees them.

Each training sample is one *window*: a cloud of the bag's topic run through the node's own
pre-processing (`sphmask_core.sensor.preprocess.Preprocessor`, settings from a node parameter
file via `preprocess_config`, poses fed from the bag by `BagPoseFeed` / `posed_clouds`, exactly
as `sphmask-bag eval` does). With `accumulate.frames: k` in that file a window is the cloud plus
the k-1 before it, in the output frame; with 1 it is the single cloud.

Labels. The clouds must carry per-point `semantic_id` and `instance_id` fields (the classes-file
convention of `sphmask_core.data.classes`; `record-synthetic` writes them). They travel through
pre-processing with their points (`PreparedInput.point_extras`). The sample's points are the
model points the node would feed its model (the `input_voxel_size` thinning grid, the
`max_points` cap); a model point takes the (semantic, instance) pair most of its points carry
(ties: the smallest pair), so with `input_voxel_size: 0` every point keeps its own labels.
Instance ids are renumbered 0..K-1 per sample; one object must keep its id across the sweeps of
a window (ids per scene, not per sweep).

Splits. A split is a list of bags and a time range `[start_s, end_s)` in seconds from each bag's
first cloud (log time, as `sphmask-bag export --start/--end`); `end_s` None = to the end. Only the
clouds inside the range are pre-processed (the poses are read throughout), so a window never
holds a sweep from outside its split: the first windows of a range accumulate fewer sweeps, as
when the node starts.

Bags are replayed once, when the dataset is built, and the windows kept in memory (about 40
bytes per model point).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sphmask_core.data.classes import ClassesFile, classes_from_bag_metadata, map_labels
from sphmask_core.data.errors import DatasetError
from sphmask_core.data.scene import Scene, compact_ids
from sphmask_core.sensor.bag_reader import BagError, BagReader, deserialize, ros2_typestore
from sphmask_core.sensor.node_params import NodeParams, preprocess_config
from sphmask_core.sensor.poses import BagPoseFeed, posed_clouds
from sphmask_core.sensor.preprocess import PreparedInput, Preprocessor, Skipped

__all__ = ["BagSplit", "LABEL_FIELDS", "bag_classes", "majority_labels", "window_scene",
           "load_bag_windows"]

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
LABEL_FIELDS = ("semantic_id", "instance_id")


@dataclass(frozen=True)
class BagSplit:
    """The bags of one split and the time range taken from each."""

    bags: tuple[Path, ...]
    start_s: float = 0.0
    end_s: float | None = None  # None = to the end of each bag

    def validate(self) -> "BagSplit":
        if not self.bags:
            raise ValueError("a bag split needs at least one bag")
        if not (np.isfinite(self.start_s) and self.start_s >= 0.0):
            raise ValueError(f"time range start must be >= 0 s, got {self.start_s}")
        if self.end_s is not None and not self.end_s > self.start_s:
            raise ValueError(f"time range [{self.start_s}, {self.end_s}) is empty")
        return self

    def describe(self) -> str:
        end = "end" if self.end_s is None else f"{self.end_s:g} s"
        return f"[{self.start_s:g} s, {end})"


def _open(path: Path) -> BagReader:
    """The bag's reader; what damage it meets collects in its `warnings`."""
    if not path.exists():
        raise DatasetError(path, "bag not found")
    try:
        return BagReader(path)
    except BagError as exc:
        raise DatasetError(path, str(exc)) from None


def bag_classes(paths: Sequence[Path]) -> ClassesFile:
    """The classes the bags' metadata names; all bags must name the same ones."""
    found: ClassesFile | None = None
    for path in paths:
        classes = classes_from_bag_metadata(_open(path).custom_data, path)
        if classes is None:
            raise DatasetError(path, "bag metadata names no classes (sphmask.semantic_names); "
                                     "give a classes file (dataset.classes)")
        if found is not None and classes != found:
            raise DatasetError(path, f"bag names classes {list(classes.labels.semantic_names)}, "
                                     f"another bag {list(found.labels.semantic_names)}; give one "
                                     f"classes file (dataset.classes)")
        found = classes
    if found is None:
        raise ValueError("bag_classes needs at least one bag")
    return found


def majority_labels(point_to_model: np.ndarray, n_model: int, semantic: np.ndarray,
                    instance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V,) semantic and instance label of each model point: the pair most of its points carry.

    point_to_model: (P,) int64 model point of each point (all >= 0); semantic, instance: (P,)
    int64. Ties go to the smallest (semantic, instance) pair; a model point no point maps to
    gets -100 (unlabelled).
    """
    pairs, pair_id = np.unique(np.stack([semantic, instance], axis=1), axis=0,
                               return_inverse=True)  # (U, 2), (P,)
    pair_id = pair_id.reshape(-1)
    n_pairs = pairs.shape[0]
    votes, counts = np.unique(point_to_model * n_pairs + pair_id, return_counts=True)  # (W,)
    voxel, pair = votes // n_pairs, votes % n_pairs
    # per voxel, the most counted pair; lexsort puts it last, smaller pairs winning ties
    order = np.lexsort((-pair, counts, voxel))
    last = np.flatnonzero(np.append(voxel[order][1:] != voxel[order][:-1], True))
    best = order[last]
    sem = np.full(n_model, -100, np.int64)
    ins = np.full(n_model, -100, np.int64)
    sem[voxel[best]] = pairs[pair[best], 0]
    ins[voxel[best]] = pairs[pair[best], 1]
    return sem, ins


def window_scene(prepared: PreparedInput, classes: ClassesFile, source: str | Path,
                 name: str) -> Scene:
    """The model points of one pre-processed window with their labels (see module doc)."""
    extras = prepared.point_extras
    sem, ins = map_labels(extras["semantic_id"], extras["instance_id"], classes, source)  # (P,)
    kept = prepared.point_to_model >= 0  # (P,) the cap may drop model points
    sem_v, ins_v = majority_labels(prepared.point_to_model[kept], prepared.xyz.shape[0],
                                   sem[kept], ins[kept])
    try:
        return Scene.from_arrays(prepared.xyz, prepared.rgb, sem_v, compact_ids(ins_v),
                                 name=name).validate(classes.labels)
    except ValueError as exc:
        raise DatasetError(source, str(exc)) from None


def _bag_windows(path: Path, split: BagSplit, topic: str, params: NodeParams,
                 classes: ClassesFile, log: Callable[[str], None]) -> list[Scene]:
    bag = _open(path)
    try:
        bag.require_topic(topic, POINTCLOUD2)
        feed = BagPoseFeed(params, bag)
    except BagError as exc:
        raise DatasetError(path, str(exc)) from None
    pre = Preprocessor(preprocess_config(params), transforms=feed.poses)
    store = ros2_typestore()
    tolerance_ns = int(round(params.tf_timeout * 1e9))
    scenes: list[Scene] = []
    no_pose: list[str] = []
    invalid = 0
    first_ns: int | None = None
    for k, msg in enumerate(posed_clouds(bag.messages([topic] + feed.topics), topic, feed,
                                         tolerance_ns)):
        first_ns = msg.log_time_ns if first_ns is None else first_ns
        t = (msg.log_time_ns - first_ns) * 1e-9
        if t < split.start_s or (split.end_s is not None and t >= split.end_s):
            continue
        result = pre.process_msg(deserialize(msg, store))
        if isinstance(result, Skipped):
            if result.kind == "transform":
                no_pose.append(f"cloud {k} at {t:.3f} s: {result.reason}")
            invalid += result.kind == "invalid"
            continue  # "empty": nothing left after the crop, as the node publishes nothing
        missing = [f for f in LABEL_FIELDS if f not in result.point_extras]
        if missing:
            raise DatasetError(path, f"clouds on '{topic}' have no {' / '.join(missing)} field "
                                     f"(fields besides x y z, colour and intensity: "
                                     f"{sorted(result.point_extras) or 'none'}); label them "
                                     f"(docs/OWN_DATA.md)")
        scenes.append(window_scene(result, classes, f"{path} cloud {k}",
                                   f"{path.stem}_{k:05d}"))
    if no_pose and not scenes:
        raise DatasetError(path, f"no cloud in {split.describe()} has a pose: {no_pose[0]}")
    if no_pose:
        log(f"warning: {path}: {len(no_pose)} cloud(s) in {split.describe()} skipped without a "
            f"pose (first: {no_pose[0]})")
    if invalid:
        log(f"warning: {path}: {invalid} undecodable cloud(s) skipped")
    if bag.warnings:  # the reader notes the damage when opening and again when reaching it
        log(f"warning: {bag.warnings[0]}; {len(scenes)} window(s) taken from the intact part")
    return scenes


def load_bag_windows(split: BagSplit, topic: str, params: NodeParams,
                     classes: ClassesFile | None = None,
                     log: Callable[[str], None] = print) -> tuple[list[Scene], ClassesFile]:
    """Every window of the split (bags in the order given) and the classes used (`classes`, else
    the bags' metadata). Raises DatasetError naming the bag: missing or unreadable bag, topic
    not in it, clouds without labels, no pose for any cloud of the range, an empty split. A
    truncated bag gives its intact part (one warning line through `log`)."""
    split.validate()
    classes = classes if classes is not None else bag_classes(split.bags)
    scenes: list[Scene] = []
    for path in split.bags:
        scenes += _bag_windows(Path(path), split, topic, params, classes, log)
    if not scenes:
        raise DatasetError(split.bags[0], f"empty split: no cloud on '{topic}' with points in "
                                          f"{split.describe()} of {len(split.bags)} bag(s)")
    return scenes, classes
