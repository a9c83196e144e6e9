"""list[Scene] -> Batch: the model input (see docs/ARCHITECTURE.md "Batch")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from sphmask_core.data.scene import IGNORE_LABEL, Scene


@dataclass
class Batch:
    """Points of B scenes concatenated; scene b owns rows ``offsets[b]:offsets[b+1]``.

    xyz:         (N, 3) float32, metres (also the xyz input feature)
    grid_xyz:    (N, 3) float32, positions used for voxel coordinates (xyz unless elastic distortion)
    rgb:         (N, 3) float32 in [-1, 1]
    offsets:     (B+1,) int64
    semantic:    (N,) int64, -100 = unlabelled
    instance:    (N,) int64, unique across the batch (scene b uses a contiguous id range), -100 = none
    superpoint:  (N,) int64 unique across the batch, 0..S-1 contiguous, or None
    scene_names: list[str] (B)
    """

    xyz: torch.Tensor
    grid_xyz: torch.Tensor
    rgb: torch.Tensor
    offsets: torch.Tensor
    semantic: torch.Tensor
    instance: torch.Tensor
    superpoint: torch.Tensor | None
    scene_names: list[str]

    @property
    def batch_size(self) -> int:
        return int(self.offsets.numel() - 1)

    @property
    def n_points(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def device(self) -> torch.device:
        return self.xyz.device

    @property
    def batch_ids(self) -> torch.Tensor:
        """Scene index of every point, (N,) int64."""
        counts = self.offsets[1:] - self.offsets[:-1]  # (B,)
        return torch.repeat_interleave(torch.arange(self.batch_size, device=self.offsets.device), counts)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """A copy with every tensor on ``device``."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            moved[f.name] = value.to(device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value
        return Batch(**moved)


def _compact_nonnegative(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber ids >= 0 to 0..K-1 in order of value (others become -100); returns (ids, K)."""
    out = np.full(ids.shape, IGNORE_LABEL, dtype=np.int64)
    valid = ids >= 0
    if not valid.any():
        return out, 0
    uniq, inverse = np.unique(ids[valid], return_inverse=True)
    out[valid] = inverse
    return out, int(uniq.size)


def collate(scenes: Sequence[Scene], grid_xyz: Sequence[np.ndarray] | None = None) -> Batch:
    """Concatenate ``scenes`` into a :class:`Batch`.

    Instance and superpoint ids are renumbered per scene to 0..K_b-1 (a no-op for valid scenes)
    and offset by the counts of the previous scenes, so they are unique across the batch.
    ``superpoint`` is None if any scene has none. ``grid_xyz`` (one (N_b, 3) array per scene) is
    given when elastic distortion moved the voxel grid positions; otherwise it equals xyz.
    """
    if len(scenes) == 0:
        raise ValueError("collate needs at least one scene")
    if grid_xyz is not None and len(grid_xyz) != len(scenes):
        raise ValueError(f"grid_xyz has {len(grid_xyz)} entries for {len(scenes)} scenes")
    for scene in scenes:
        if not isinstance(scene, Scene):
            raise ValueError(f"collate expects Scene objects, got {type(scene).__name__}")
        scene.validate()

    sizes = [s.n_points for s in scenes]
    offsets = np.zeros(len(scenes) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(sizes)

    instances, next_instance = [], 0
    for scene in scenes:
        ids, k = _compact_nonnegative(scene.instance)
        instances.append(np.where(ids >= 0, ids + next_instance, IGNORE_LABEL))
        next_instance += k

    superpoint = None
    if all(s.superpoint is not None for s in scenes):
        parts, next_sp = [], 0
        for scene in scenes:
            ids, k = _compact_nonnegative(scene.superpoint)
            parts.append(ids + next_sp)
            next_sp += k
        superpoint = torch.from_numpy(np.concatenate(parts))

    xyz = np.concatenate([s.xyz for s in scenes]).astype(np.float32, copy=False)  # (N, 3)
    if grid_xyz is None:
        grid = xyz.copy()
    else:
        for scene, g in zip(scenes, grid_xyz):
            if np.shape(g) != (scene.n_points, 3):
                raise ValueError(f"grid_xyz for scene '{scene.name}' must have shape ({scene.n_points}, 3), got {np.shape(g)}")
        grid = np.concatenate([np.asarray(g, dtype=np.float32) for g in grid_xyz])
        if not np.isfinite(grid).all():
            raise ValueError("grid_xyz contains NaN or inf")

    return Batch(
        xyz=torch.from_numpy(np.ascontiguousarray(xyz)),
        grid_xyz=torch.from_numpy(np.ascontiguousarray(grid)),
        rgb=torch.from_numpy(np.concatenate([s.rgb for s in scenes]).astype(np.float32, copy=False)),
        offsets=torch.from_numpy(offsets),
        semantic=torch.from_numpy(np.concatenate([s.semantic for s in scenes]).astype(np.int64, copy=False)),
        instance=torch.from_numpy(np.concatenate(instances)),
        superpoint=superpoint,
        scene_names=[s.name for s in scenes],
    )
