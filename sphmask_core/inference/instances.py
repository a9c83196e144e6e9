"""`Instances`: the public result of instance segmentation (numpy arrays on the CPU).

One object per input cloud. Every per-instance array has K rows, in descending score order when
produced by the `Segmenter`. `point_instance` is the point-wise view of `masks`: a point covered
by several masks belongs to the one with the highest score; -1 marks points of no instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def point_instance_from_masks(masks: list[np.ndarray], scores: np.ndarray, n_points: int) -> np.ndarray:
    """Point-wise instance index (-1 = none); overlapping points go to the highest-scored mask.

    Masks are painted in ascending score order so the best one is written last; ties keep the
    lower index (painted last because of the stable sort on reversed order).
    """
    point_instance = np.full(n_points, -1, dtype=np.int64)  # (N,)
    if len(masks) == 0:
        return point_instance
    scores = np.asarray(scores, dtype=np.float64)
    # stable descending sort then reversed -> ascending, with equal scores the lower index last
    order = np.argsort(-scores, kind="stable")[::-1]
    for k in order:
        point_instance[masks[k]] = k
    return point_instance


def _check_rows(name: str, arr: np.ndarray, k: int, tail: tuple[int, ...], dtype: type) -> None:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"Instances.{name} must be a numpy array, got {type(arr).__name__}")
    if arr.shape != (k, *tail):
        raise ValueError(f"Instances.{name} has shape {arr.shape}, expected {(k, *tail)}")
    if arr.dtype != dtype:
        raise ValueError(f"Instances.{name} has dtype {arr.dtype}, expected {np.dtype(dtype)}")


@dataclass
class Instances:
    """Instance segmentation of one point cloud of N points with K instances.

    Attributes:
        point_instance: (N,) int64, index into the instance arrays, -1 = no instance.
        masks: K arrays of point indices (int64, sorted ascending), one per instance.
        class_ids: (K,) int64, index into `class_names` (instance classes only).
        class_names: names of the instance classes (the model's label set).
        scores: (K,) float32, final scores after matrix NMS.
        class_probs: (K,) float32, softmax probability of the predicted class.
        iou_scores: (K,) float32, predicted mask IoU clamped to [0, 1].
        centers: (K, 3) float32, spherical centres (metres).
        rays: (K, n_theta * n_phi) float32, ray lengths (metres), polar-major:
            index = polar_bin * n_phi + azimuth_bin.
        n_theta: number of polar bins.
        n_phi: number of azimuth bins.
        boxes: (K, 6) float32, axis-aligned box of each mask's points: min xyz, max xyz.
        timings: seconds per pipeline stage (voxelize, backbone, aggregators, heads,
            migration_assembly, nms, total).
    """

    point_instance: np.ndarray
    masks: list[np.ndarray]
    class_ids: np.ndarray
    class_names: list[str]
    scores: np.ndarray
    class_probs: np.ndarray
    iou_scores: np.ndarray
    centers: np.ndarray
    rays: np.ndarray
    n_theta: int
    n_phi: int
    boxes: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.masks)
        if not isinstance(self.point_instance, np.ndarray) or self.point_instance.ndim != 1:
            raise ValueError("Instances.point_instance must be a 1-D numpy array")
        if self.point_instance.dtype != np.int64:
            raise ValueError(f"Instances.point_instance has dtype {self.point_instance.dtype}, expected int64")
        n = self.point_instance.shape[0]
        for i, m in enumerate(self.masks):
            if not isinstance(m, np.ndarray) or m.ndim != 1 or m.dtype != np.int64:
                raise ValueError(f"Instances.masks[{i}] must be a 1-D int64 numpy array")
            if m.size and (m[0] < 0 or m[-1] >= n):
                raise ValueError(f"Instances.masks[{i}] has point indices outside [0, {n})")
        _check_rows("class_ids", self.class_ids, k, (), np.int64)
        _check_rows("scores", self.scores, k, (), np.float32)
        _check_rows("class_probs", self.class_probs, k, (), np.float32)
        _check_rows("iou_scores", self.iou_scores, k, (), np.float32)
        _check_rows("centers", self.centers, k, (3,), np.float32)
        _check_rows("rays", self.rays, k, (self.n_theta * self.n_phi,), np.float32)
        _check_rows("boxes", self.boxes, k, (6,), np.float32)
        if k and (self.class_ids.min() < 0 or self.class_ids.max() >= len(self.class_names)):
            raise ValueError(f"Instances.class_ids must index class_names (0..{len(self.class_names) - 1})")

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def n_points(self) -> int:
        return int(self.point_instance.shape[0])

    @property
    def labels(self) -> list[str]:
        """Class name of each instance."""
        return [self.class_names[c] for c in self.class_ids.tolist()]

    @classmethod
    def empty(
        cls,
        n_points: int,
        class_names: list[str],
        n_theta: int = 5,
        n_phi: int = 5,
        timings: dict[str, float] | None = None,
    ) -> "Instances":
        """A result with no instances for a cloud of `n_points` points."""
        if n_points < 0:
            raise ValueError(f"n_points must be >= 0, got {n_points}")
        return cls(
            point_instance=np.full(n_points, -1, dtype=np.int64),
            masks=[],
            class_ids=np.zeros(0, dtype=np.int64),
            class_names=list(class_names),
            scores=np.zeros(0, dtype=np.float32),
            class_probs=np.zeros(0, dtype=np.float32),
            iou_scores=np.zeros(0, dtype=np.float32),
            centers=np.zeros((0, 3), dtype=np.float32),
            rays=np.zeros((0, n_theta * n_phi), dtype=np.float32),
            n_theta=n_theta,
            n_phi=n_phi,
            boxes=np.zeros((0, 6), dtype=np.float32),
            timings=dict(timings or {}),
        )
