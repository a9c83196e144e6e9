"""Point-wise (ISBNet-style) heads on backbone voxel features (METHOD 3.2)."""

from __future__ import annotations

import torch
from torch import nn


class PointwiseMLP(nn.Sequential):
    """Linear(D, D) - BN - ReLU - Linear(D, out); xavier init, last layer N(0, 0.01) with zero bias."""

    def __init__(self, in_channels: int, out_channels: int, bn_eps: float = 1e-4, bn_momentum: float = 0.1) -> None:
        super().__init__(
            nn.Linear(in_channels, in_channels),
            nn.BatchNorm1d(in_channels, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU(),
            nn.Linear(in_channels, out_channels),
        )
        nn.init.xavier_uniform_(self[0].weight)
        nn.init.zeros_(self[0].bias)
        nn.init.normal_(self[3].weight, mean=0.0, std=0.01)
        nn.init.zeros_(self[3].bias)


class PointwiseHeads(nn.Module):
    """Semantic logits, centroid offset, box-corner offsets and box confidence per voxel.

    forward(feats (V, D)) -> dict with
      ``semantic`` (V, n_semantic) logits, ``centroid_offset`` (V, 3) (centroid - position),
      ``corner_offset`` (V, 6) ([min xyz, max xyz] - position, twice), ``box_conf`` (V,) logit.
    """

    def __init__(self, in_channels: int, n_semantic: int, bn_eps: float = 1e-4, bn_momentum: float = 0.1) -> None:
        super().__init__()
        if in_channels < 1 or n_semantic < 1:
            raise ValueError(f"in_channels and n_semantic must be >= 1, got {in_channels}, {n_semantic}")
        self.in_channels = in_channels
        self.semantic = PointwiseMLP(in_channels, n_semantic, bn_eps, bn_momentum)
        self.centroid_offset = PointwiseMLP(in_channels, 3, bn_eps, bn_momentum)
        self.corner_offset = PointwiseMLP(in_channels, 6, bn_eps, bn_momentum)
        self.box_conf = PointwiseMLP(in_channels, 1, bn_eps, bn_momentum)

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        if feats.dim() != 2 or feats.shape[1] != self.in_channels:
            raise ValueError(f"feats must have shape (V, {self.in_channels}), got {tuple(feats.shape)}")
        return {
            "semantic": self.semantic(feats),  # (V, n_semantic)
            "centroid_offset": self.centroid_offset(feats),  # (V, 3)
            "corner_offset": self.corner_offset(feats),  # (V, 6)
            "box_conf": self.box_conf(feats).squeeze(1),  # (V,)
        }


def absolute_boxes(xyz: torch.Tensor, corner_offset: torch.Tensor) -> torch.Tensor:
    """Per-voxel axis-aligned box (V, 6) = [xyz, xyz] (V, 6) + corner offsets (V, 6): [min xyz, max xyz]."""
    if xyz.dim() != 2 or xyz.shape[1] != 3 or corner_offset.shape != (xyz.shape[0], 6):
        raise ValueError(f"need xyz (V, 3) and corner_offset (V, 6), got {tuple(xyz.shape)}, {tuple(corner_offset.shape)}")
    return xyz.repeat(1, 2) + corner_offset


def box_sizes(boxes: torch.Tensor) -> torch.Tensor:
    """Box extents (..., 3) = max - min of boxes (..., 6)."""
    if boxes.shape[-1] != 6:
        raise ValueError(f"boxes must end with 6 values, got {tuple(boxes.shape)}")
    return boxes[..., 3:] - boxes[..., :3]
