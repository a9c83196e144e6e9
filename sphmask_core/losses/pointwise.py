"""Point-wise (ISBNet) losses on voxels (METHOD 5.6).

Offsets are predicted per voxel p: centroid offset = instance centroid - p; corner offsets =
(instance min xyz - p, instance max xyz - p). Instance centroids and AABBs are computed here from
the voxel labels. Box terms use the voxels that carry an instance label (P of them); the
semantic term uses every voxel with a semantic label (ignore -100).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sphmask_core.losses.box import box_giou, box_iou, points_aabb

IGNORE_LABEL = -100
POINTWISE_TERMS = ("semantic", "centroid", "corner", "giou", "box_conf")


def instance_centroids_and_boxes(voxel_xyz: Tensor, voxel_instance: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-voxel targets from instance labels (any non-negative ids; < 0 = none).

    Returns (fg (V,) bool, centroid (V, 3), box (V, 6)) where centroid/box are those of the
    voxel's instance (zeros for voxels without an instance).
    """
    v = voxel_xyz.shape[0]
    fg = voxel_instance >= 0
    ids, inv = torch.unique(voxel_instance[fg].long(), return_inverse=True)
    g = int(ids.numel())
    compact = torch.full((v,), -1, dtype=torch.long, device=voxel_xyz.device)
    compact[fg] = inv
    cnt = torch.zeros(g, dtype=voxel_xyz.dtype, device=voxel_xyz.device).index_add_(
        0, inv, torch.ones_like(inv, dtype=voxel_xyz.dtype)
    )
    sums = torch.zeros(g, 3, dtype=voxel_xyz.dtype, device=voxel_xyz.device).index_add_(0, inv, voxel_xyz[fg])
    cent_g = sums / cnt.clamp(min=1)[:, None]  # (G, 3)
    box_g = points_aabb(voxel_xyz, compact, g)  # (G, 6)
    centroid = torch.zeros(v, 3, dtype=voxel_xyz.dtype, device=voxel_xyz.device)
    box = torch.zeros(v, 6, dtype=voxel_xyz.dtype, device=voxel_xyz.device)
    centroid[fg] = cent_g[inv]
    box[fg] = box_g[inv]
    return fg, centroid, box


def pointwise_losses(
    sem_logits: Tensor,
    centroid_offset: Tensor,
    corner_offset: Tensor,
    box_conf: Tensor,
    voxel_xyz: Tensor,
    voxel_semantic: Tensor,
    voxel_instance: Tensor,
    voxel_scale: float = 50.0,
    class_weights: Tensor | None = None,
) -> dict[str, Tensor]:
    """ISBNet point-wise losses, unweighted; ``"loss"`` is their plain sum.

    sem_logits: (V, S); centroid_offset: (V, 3); corner_offset: (V, 6); box_conf: (V,) raw
    predicted IoU of the voxel's box; voxel_xyz: (V, 3) metres; voxel_semantic, voxel_instance:
    (V,) labels (-100 = none). Offsets' L1 terms are sum / P * voxel_scale / 50; GIoU and the
    box-conf MSE (vs the detached IoU of the predicted voxel box) are sum / P.
    """
    v = voxel_xyz.shape[0]
    expected = {
        "sem_logits": (sem_logits.shape[:1], (v,)),
        "centroid_offset": (centroid_offset.shape, (v, 3)),
        "corner_offset": (corner_offset.shape, (v, 6)),
        "box_conf": (box_conf.shape, (v,)),
        "voxel_semantic": (voxel_semantic.shape, (v,)),
        "voxel_instance": (voxel_instance.shape, (v,)),
    }
    for name, (got, want) in expected.items():
        if tuple(got) != want:
            raise ValueError(f"{name} must have shape {want} (V = {v}), got {tuple(got)}")

    labelled = voxel_semantic != IGNORE_LABEL
    if bool(labelled.any()):
        weight = class_weights.to(sem_logits) if class_weights is not None else None
        sem = F.cross_entropy(sem_logits, voxel_semantic.long(), weight=weight, ignore_index=IGNORE_LABEL)
    else:
        sem = sem_logits.sum() * 0.0

    fg, centroid, gt_box = instance_centroids_and_boxes(voxel_xyz, voxel_instance)
    n_fg = int(fg.sum())
    zero = (centroid_offset.sum() + corner_offset.sum() + box_conf.sum()) * 0.0
    if n_fg == 0:
        out = {"semantic": sem, "centroid": zero, "corner": zero, "giou": zero, "box_conf": zero}
    else:
        scale = voxel_scale / 50.0
        xyz = voxel_xyz[fg]
        cen_target = centroid[fg] - xyz  # (P, 3)
        corner_target = gt_box[fg] - xyz.repeat(1, 2)  # (P, 6)
        pred_box = xyz.repeat(1, 2) + corner_offset[fg]  # (P, 6)
        with torch.no_grad():
            iou = box_iou(pred_box, gt_box[fg])  # (P,)
        out = {
            "semantic": sem,
            "centroid": F.l1_loss(centroid_offset[fg], cen_target, reduction="sum") / n_fg * scale,
            "corner": F.l1_loss(corner_offset[fg], corner_target, reduction="sum") / n_fg * scale,
            "giou": (1 - box_giou(pred_box, gt_box[fg])).sum() / n_fg,
            "box_conf": ((box_conf[fg] - iou) ** 2).sum() / n_fg,
        }
    out["loss"] = sum(out[t] for t in POINTWISE_TERMS)
    return out


__all__ = ["POINTWISE_TERMS", "instance_centroids_and_boxes", "pointwise_losses"]
