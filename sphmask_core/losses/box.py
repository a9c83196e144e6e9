"""Axis-aligned 3D box IoU and generalized IoU; boxes are (..., 6) = (min xyz, max xyz).

Boxes with max < min on an axis are treated as having zero extent there, so a predicted box that
is inverted still yields a finite (and differentiable) GIoU.
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-6


def _check(boxes: Tensor, name: str) -> None:
    if boxes.shape[-1] != 6:
        raise ValueError(f"{name} must have a last axis of 6 (min xyz, max xyz), got {tuple(boxes.shape)}")


def box_volume(boxes: Tensor) -> Tensor:
    """Volume (...) of boxes (..., 6); inverted axes count as zero extent."""
    _check(boxes, "boxes")
    return (boxes[..., 3:] - boxes[..., :3]).clamp(min=0).prod(dim=-1)


def _iou_giou(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """IoU and GIoU of broadcast-compatible boxes a, b (..., 6)."""
    inter_ext = (torch.minimum(a[..., 3:], b[..., 3:]) - torch.maximum(a[..., :3], b[..., :3])).clamp(min=0)
    inter = inter_ext.prod(dim=-1)
    union = box_volume(a) + box_volume(b) - inter
    iou = inter / (union + _EPS)
    hull_ext = (torch.maximum(a[..., 3:], b[..., 3:]) - torch.minimum(a[..., :3], b[..., :3])).clamp(min=0)
    hull = hull_ext.prod(dim=-1)
    giou = iou - (hull - union) / (hull + _EPS)
    return iou, giou


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise IoU of paired boxes a, b (N, 6) -> (N,)."""
    _check(a, "a")
    _check(b, "b")
    return _iou_giou(a, b)[0]


def box_giou(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise generalized IoU of paired boxes a, b (N, 6) -> (N,), in [-1, 1]."""
    _check(a, "a")
    _check(b, "b")
    return _iou_giou(a, b)[1]


def box_iou_pairwise(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every box in a (N, 6) with every box in b (M, 6) -> (N, M)."""
    _check(a, "a")
    _check(b, "b")
    return _iou_giou(a[:, None, :], b[None, :, :])[0]


def box_giou_pairwise(a: Tensor, b: Tensor) -> Tensor:
    """Generalized IoU of every box in a (N, 6) with every box in b (M, 6) -> (N, M)."""
    _check(a, "a")
    _check(b, "b")
    return _iou_giou(a[:, None, :], b[None, :, :])[1]


def points_aabb(xyz: Tensor, group: Tensor, n_groups: int) -> Tensor:
    """AABB (n_groups, 6) of the points of each group id in [0, n_groups); others ignored.

    A group without points gets an all-zero box.
    """
    valid = (group >= 0) & (group < n_groups)
    pts, grp = xyz[valid], group[valid].long()
    lo = torch.full((n_groups, 3), float("inf"), dtype=xyz.dtype, device=xyz.device)
    hi = torch.full((n_groups, 3), float("-inf"), dtype=xyz.dtype, device=xyz.device)
    idx = grp[:, None].expand(-1, 3)
    lo = lo.scatter_reduce(0, idx, pts, reduce="amin", include_self=True)
    hi = hi.scatter_reduce(0, idx, pts, reduce="amax", include_self=True)
    boxes = torch.cat([lo, hi], dim=1)
    return torch.where(torch.isfinite(boxes), boxes, torch.zeros_like(boxes))


__all__ = [
    "box_giou",
    "box_giou_pairwise",
    "box_iou",
    "box_iou_pairwise",
    "box_volume",
    "points_aabb",
]
