"""`InstanceTracker`: stable ids for instances across consecutive results.

Each result's instances are associated with the live tracks of the same class by a one-to-one
assignment (Hungarian, scipy's `linear_sum_assignment`) on this cost:

* mask overlap: IoU of the occupied voxels (edge `voxel_size`) of the instance's points and of
  the track's last points, both in the output frame (the fixed frame when the node has one, so
  a moving sensor does not break overlap); a pair with IoU >= `min_iou` costs `1 - IoU`;
* otherwise centre distance: box centres closer than `max_distance` cost `1 + d / max_distance`
  (always worse than any overlap), which keeps ids through a sparse or partly occluded view;
* anything else cannot be matched.

Matched tracks take the instance's points and centre; unmatched instances open tracks with new
ids (1, 2, ... per node; never reused); a track that goes unmatched for more than `max_age`
consecutive results is dropped, so an object that left the view gets a new id when it comes
back later than that. Everything is vectorised per result over its K instances and T tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["TrackerConfig", "InstanceTracker", "voxel_keys"]

_NO_MATCH = 1e6  # cost of a forbidden pair


@dataclass(frozen=True)
class TrackerConfig:
    voxel_size: float = 0.1  # m, grid of the overlap test
    min_iou: float = 0.1
    max_distance: float = 0.5  # m, centre distance accepted without overlap
    max_age: int = 5  # results a track survives without a match

    def validate(self) -> "TrackerConfig":
        if not self.voxel_size > 0 or not self.max_distance >= 0 or self.max_age < 0:
            raise ValueError("tracking needs voxel_size > 0, max_distance >= 0, max_age >= 0")
        if not 0.0 < self.min_iou <= 1.0:
            raise ValueError(f"tracking min_iou must be in (0, 1], got {self.min_iou}")
        return self


def voxel_keys(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """Sorted unique int64 keys of the voxels occupied by (N, 3) points -> (V,)."""
    cells = np.floor(np.asarray(xyz, np.float64) / voxel_size).astype(np.int64)  # (N, 3)
    cells += 1 << 20  # non-negative within +-100 km at 0.1 m
    keys = (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]  # (N,)
    return np.unique(keys)


@dataclass
class _Track:
    track_id: int
    class_id: int
    keys: np.ndarray  # (V,) voxel keys of the last matched points
    center: np.ndarray  # (3,)
    missed: int = 0


@dataclass
class InstanceTracker:
    """Assigns a track id to every instance of each successive result (see module doc)."""

    config: TrackerConfig = field(default_factory=TrackerConfig)
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def reset(self) -> None:
        self._tracks.clear()

    @property
    def live_ids(self) -> list[int]:
        return [t.track_id for t in self._tracks]

    def _cost(self, keys: list[np.ndarray], centers: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        cfg = self.config
        cost = np.full((len(keys), len(self._tracks)), _NO_MATCH)  # (K, T)
        if not self._tracks or not keys:
            return cost
        t_centers = np.stack([t.center for t in self._tracks])  # (T, 3)
        t_class = np.array([t.class_id for t in self._tracks])  # (T,)
        dist = np.linalg.norm(centers[:, None, :] - t_centers[None, :, :], axis=2)  # (K, T)
        same = class_ids[:, None] == t_class[None, :]  # (K, T)
        near = same & (dist < cfg.max_distance)
        cost[near] = 1.0 + dist[near] / max(cfg.max_distance, 1e-9)
        for k, kk in enumerate(keys):
            for j in np.flatnonzero(same[k]):
                tk = self._tracks[j].keys
                inter = np.intersect1d(kk, tk, assume_unique=True).size
                iou = inter / max(kk.size + tk.size - inter, 1)
                if iou >= cfg.min_iou:
                    cost[k, j] = 1.0 - iou
        return cost

    def update(self, points: list[np.ndarray], centers: np.ndarray,
               class_ids: np.ndarray) -> np.ndarray:
        """Track ids of one result's instances. points: K arrays (n_k, 3) of each instance's
        points in the output frame; centers: (K, 3); class_ids: (K,). Returns (K,) int64."""
        centers = np.asarray(centers, np.float64).reshape(-1, 3)
        class_ids = np.asarray(class_ids, np.int64).reshape(-1)
        keys = [voxel_keys(p, self.config.voxel_size) for p in points]
        cost = self._cost(keys, centers, class_ids)  # (K, T)
        ids = np.zeros(len(keys), np.int64)
        matched_tracks: set[int] = set()
        if cost.size:
            rows, cols = linear_sum_assignment(cost)
            for k, j in zip(rows.tolist(), cols.tolist()):
                if cost[k, j] >= _NO_MATCH:
                    continue
                track = self._tracks[j]
                track.keys, track.center, track.missed = keys[k], centers[k], 0
                ids[k] = track.track_id
                matched_tracks.add(j)
        survivors = []
        for j, track in enumerate(self._tracks):
            if j not in matched_tracks:
                track.missed += 1
            if track.missed <= self.config.max_age:
                survivors.append(track)
        self._tracks = survivors
        for k in np.flatnonzero(ids == 0).tolist():
            ids[k] = self._next_id
            self._tracks.append(_Track(self._next_id, int(class_ids[k]), keys[k], centers[k]))
            self._next_id += 1
        return ids
