"""Per-scene training targets for the instance losses (METHOD 4.3, 5.1).

Masks live on "units": superpoints when the scene has them, otherwise the voxels themselves.
Rays are computed on the voxels (not the units), as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sphmask_core.losses.box import points_aabb
from sphmask_core.model.spherical import ray_targets

UNIT_POSITIVE_FRACTION = 0.5


@dataclass
class SceneTargets:
    unit_xyz: Tensor  # (U, 3) mean voxel position of each unit
    masks: Tensor  # (G, U) float {0, 1}
    labels: Tensor  # (G,) int64 instance class in [0, n_instance_classes)
    boxes: Tensor  # (G, 6) AABB of the instance's voxels (min xyz, max xyz)
    ray_targets: Tensor  # (G, R + 3) per-sector max radius, then the centre

    @property
    def n_instances(self) -> int:
        return int(self.labels.shape[0])


def _instance_classes(inst: Tensor, semantic: Tensor, n_inst: int) -> Tensor:
    """Most frequent semantic id (G,) of each compacted instance (ties: smallest id)."""
    sem = semantic.long()
    sem_min = int(sem.min())
    span = int(sem.max()) - sem_min + 1
    counts = torch.zeros(n_inst * span, dtype=torch.long, device=inst.device)
    counts.index_add_(0, inst * span + (sem - sem_min), torch.ones_like(inst))
    return counts.view(n_inst, span).argmax(dim=1) + sem_min


def build_scene_targets(
    voxel_xyz: Tensor,
    voxel_instance: Tensor,
    voxel_semantic: Tensor,
    unit_of_voxel: Tensor | None,
    n_units: int,
    label_shift: int,
    n_theta: int,
    n_phi: int,
) -> SceneTargets:
    """Targets of one scene.

    voxel_xyz: (V, 3) voxel positions in metres; voxel_instance: (V,) ids (any non-negative ids,
    compacted here in increasing order; < 0 = none); voxel_semantic: (V,) semantic ids;
    unit_of_voxel: (V,) unit id in [0, n_units) or None (each voxel is its own unit, then
    n_units must equal V). An instance's class = its most frequent semantic id - label_shift;
    instances with a negative class are dropped. A unit is in an instance's mask iff at least
    half of its voxels belong to that instance.
    """
    v = voxel_xyz.shape[0]
    if voxel_xyz.shape != (v, 3):
        raise ValueError(f"voxel_xyz must be (V, 3), got {tuple(voxel_xyz.shape)}")
    if voxel_instance.shape != (v,) or voxel_semantic.shape != (v,):
        raise ValueError(
            f"voxel_instance and voxel_semantic must be ({v},), got "
            f"{tuple(voxel_instance.shape)} and {tuple(voxel_semantic.shape)}"
        )
    dev, dtype = voxel_xyz.device, voxel_xyz.dtype
    if unit_of_voxel is None:
        if n_units != v:
            raise ValueError(f"without superpoints n_units must equal the voxel count {v}, got {n_units}")
        unit = torch.arange(v, device=dev)
    else:
        if unit_of_voxel.shape != (v,):
            raise ValueError(f"unit_of_voxel must be ({v},), got {tuple(unit_of_voxel.shape)}")
        unit = unit_of_voxel.long()
        if v and (int(unit.min()) < 0 or int(unit.max()) >= n_units):
            raise ValueError(f"unit_of_voxel must lie in [0, {n_units})")

    has_inst = voxel_instance >= 0
    ids, inst_c = torch.unique(voxel_instance[has_inst].long(), return_inverse=True)
    n_all = int(ids.numel())
    inst = torch.full((v,), -1, dtype=torch.long, device=dev)
    inst[has_inst] = inst_c
    if n_all:
        labels_all = _instance_classes(inst_c, voxel_semantic[has_inst], n_all) - label_shift
    else:
        labels_all = torch.zeros(0, dtype=torch.long, device=dev)
    keep = labels_all >= 0  # (G_all,)
    # renumber kept instances 0..G-1; dropped ones become -1
    new_id = torch.cumsum(keep.long(), 0) - 1
    new_id[~keep] = -1
    if n_all:
        inst = torch.where(inst >= 0, new_id[inst.clamp(min=0)], inst)
    g = int(keep.sum())

    unit_count = torch.zeros(n_units, dtype=dtype, device=dev).index_add_(0, unit, torch.ones(v, dtype=dtype, device=dev))
    unit_xyz = torch.zeros(n_units, 3, dtype=dtype, device=dev).index_add_(0, unit, voxel_xyz)
    unit_xyz = unit_xyz / unit_count.clamp(min=1)[:, None]  # (U, 3)

    fg = inst >= 0
    overlap = torch.zeros(g * n_units, dtype=dtype, device=dev)
    overlap.index_add_(0, inst[fg] * n_units + unit[fg], torch.ones(int(fg.sum()), dtype=dtype, device=dev))
    frac = overlap.view(g, n_units) / unit_count.clamp(min=1)[None]  # (G, U)
    masks = ((frac >= UNIT_POSITIVE_FRACTION) & (unit_count[None] > 0)).to(dtype)

    return SceneTargets(
        unit_xyz=unit_xyz,
        masks=masks,
        labels=labels_all[keep].long(),
        boxes=points_aabb(voxel_xyz, inst, g),
        ray_targets=ray_targets(voxel_xyz, inst, g, n_theta, n_phi),
    )


__all__ = ["SceneTargets", "build_scene_targets"]
