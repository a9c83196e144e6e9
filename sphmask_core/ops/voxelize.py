"""Packed-key voxelization in plain PyTorch (METHOD 2.2 and 2.3: replaces ``voxelization_idx``).

Each scene is shifted so that its minimum scaled coordinate is 0, then floored to integer voxel
coordinates. A voxel is identified by the packed int64 key ``batch<<48 | x<<32 | y<<16 | z``;
``torch.unique`` on that key sorts voxels by (batch, x, y, z), so each scene's voxels are
contiguous and the order is deterministic. Devoxelization is ``voxel_values[point_to_voxel]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sphmask_core.ops.scatter import batch_ids_from_offsets, check_offsets, scatter_mean

# Each packed field holds 16 bits; larger grids would overflow into the neighbouring field.
_MAX_COORD = (1 << 16) - 1
_MAX_BATCH = (1 << 15) - 1
MIN_SPATIAL_SHAPE = 128


@dataclass
class VoxelMap:
    """Result of :func:`voxelize` for N points of B scenes into V voxels.

    coords:         (V, 4) int32 ``[batch, x, y, z]``, sorted by (batch, x, y, z)
    point_to_voxel: (N,) int64, voxel row of every point
    voxel_offsets:  (B+1,) int64, voxels of scene b are rows ``voxel_offsets[b]:voxel_offsets[b+1]``
    first_point:    (V,) int64, lowest point index in each voxel (source of voxel labels)
    counts:         (V,) int64, points per voxel
    spatial_shape:  [sx, sy, sz], per-axis max coordinate + 1, each at least 128
    """

    coords: torch.Tensor
    point_to_voxel: torch.Tensor
    voxel_offsets: torch.Tensor
    first_point: torch.Tensor
    counts: torch.Tensor
    spatial_shape: list[int]

    @property
    def n_voxels(self) -> int:
        return int(self.coords.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.voxel_offsets.numel() - 1)


def voxelize(grid_xyz: torch.Tensor, offsets: torch.Tensor, voxel_size: float) -> VoxelMap:
    """Voxelize points ``grid_xyz`` (N, 3) float of B scenes delimited by ``offsets`` (B+1,).

    Voxel coordinate = floor(xyz / voxel_size - min over the scene of xyz / voxel_size), i.e. the
    authors' "scale, shift min to 0, floor" with scale = 1 / voxel_size.
    """
    if grid_xyz.dim() != 2 or grid_xyz.shape[1] != 3:
        raise ValueError(f"grid_xyz must have shape (N, 3), got {tuple(grid_xyz.shape)}")
    if not grid_xyz.is_floating_point():
        raise ValueError(f"grid_xyz must be floating point, got {grid_xyz.dtype}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    n = grid_xyz.shape[0]
    if n == 0:
        raise ValueError("cannot voxelize an empty point cloud")
    check_offsets(offsets, n)
    if not bool(torch.isfinite(grid_xyz).all()):
        raise ValueError("grid_xyz contains NaN or infinite coordinates")
    b = offsets.numel() - 1
    if b > _MAX_BATCH:
        raise ValueError(f"at most {_MAX_BATCH} scenes per batch, got {b}")
    device = grid_xyz.device
    offsets = offsets.to(device=device, dtype=torch.int64)

    batch = batch_ids_from_offsets(offsets)  # (N,)
    # float64 keeps floor() exact for large coordinates / small voxels.
    scaled = grid_xyz.double() * (1.0 / voxel_size)  # (N, 3)
    scene_min = torch.full((b, 3), float("inf"), dtype=scaled.dtype, device=device)
    scene_min = scene_min.scatter_reduce(0, batch[:, None].expand(-1, 3), scaled, reduce="amin")  # (B, 3)
    ijk = torch.floor(scaled - scene_min[batch]).long()  # (N, 3)
    if int(ijk.max()) > _MAX_COORD:
        raise ValueError(
            f"scene extent is {int(ijk.max()) + 1} voxels along one axis; at most {_MAX_COORD + 1} "
            f"fit the packed key (voxel_size {voxel_size} too small or coordinates too large)"
        )

    key = (batch << 48) | (ijk[:, 0] << 32) | (ijk[:, 1] << 16) | ijk[:, 2]  # (N,)
    uniq, point_to_voxel = torch.unique(key, sorted=True, return_inverse=True)  # (V,), (N,)
    v = uniq.numel()
    mask16 = 0xFFFF
    coords = torch.stack(
        [uniq >> 48, (uniq >> 32) & mask16, (uniq >> 16) & mask16, uniq & mask16], dim=1
    ).to(torch.int32)  # (V, 4)

    point_index = torch.arange(n, device=device)
    first_point = torch.full((v,), n, dtype=torch.int64, device=device)
    first_point = first_point.scatter_reduce(0, point_to_voxel, point_index, reduce="amin")  # (V,)
    counts = torch.bincount(point_to_voxel, minlength=v)  # (V,)
    voxels_per_scene = torch.bincount(coords[:, 0].long(), minlength=b)  # (B,)
    voxel_offsets = torch.zeros(b + 1, dtype=torch.int64, device=device)
    voxel_offsets[1:] = torch.cumsum(voxels_per_scene, 0)

    spatial_shape = [max(int(s) + 1, MIN_SPATIAL_SHAPE) for s in coords[:, 1:].max(0).values.tolist()]
    return VoxelMap(
        coords=coords,
        point_to_voxel=point_to_voxel,
        voxel_offsets=voxel_offsets,
        first_point=first_point,
        counts=counts,
        spatial_shape=spatial_shape,
    )


def voxel_mean(features: torch.Tensor, point_to_voxel: torch.Tensor, n_voxels: int) -> torch.Tensor:
    """Mean of point ``features`` (N, C) over each voxel -> (V, C); differentiable (METHOD 2.2)."""
    if features.dim() != 2:
        raise ValueError(f"features must have shape (N, C), got {tuple(features.shape)}")
    return scatter_mean(features, point_to_voxel, n_voxels)
