"""Query-to-ground-truth assignment (METHOD 5.2).

The released model's cost is 0.5 * (-p_cls) + 0.2 * (-conf) + 0.2 * (-GIoU): no mask term.
``MatchWeights.coarse`` optionally adds the L1 distance between predicted and target
[rays, centre] vectors (the coarse part of the paper's Eq. 14); it is 0 by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from sphmask_core.losses.box import box_giou_pairwise

INVALID_COST = 1e5


@dataclass
class MatchWeights:
    cls: float = 0.5
    conf: float = 0.2
    giou: float = 0.2
    coarse: float = 0.0


def match_cost(
    cls_logits: Tensor,
    conf: Tensor,
    pred_boxes: Tensor,
    gt_labels: Tensor,
    gt_boxes: Tensor,
    weights: MatchWeights | None = None,
    pred_rays: Tensor | None = None,
    gt_rays: Tensor | None = None,
) -> Tensor:
    """Matching cost (K, G), computed without gradient.

    cls_logits: (K, C+1) (last column = no object); conf: (K,) raw confidence (no sigmoid);
    pred_boxes: (K, 6); gt_labels: (G,) in [0, C); gt_boxes: (G, 6). pred_rays (K, R+3) and
    gt_rays (G, R+3) are needed only when ``weights.coarse`` is non-zero.
    """
    w = weights or MatchWeights()
    k, g = cls_logits.shape[0], gt_labels.shape[0]
    if conf.shape != (k,) or pred_boxes.shape != (k, 6) or gt_boxes.shape != (g, 6):
        raise ValueError(
            f"inconsistent shapes: cls_logits {tuple(cls_logits.shape)}, conf {tuple(conf.shape)}, "
            f"pred_boxes {tuple(pred_boxes.shape)}, gt_labels {tuple(gt_labels.shape)}, gt_boxes {tuple(gt_boxes.shape)}"
        )
    if g and (int(gt_labels.min()) < 0 or int(gt_labels.max()) >= cls_logits.shape[1] - 1):
        raise ValueError(f"gt_labels must lie in [0, {cls_logits.shape[1] - 1}), got {gt_labels.tolist()}")
    with torch.no_grad():
        prob = cls_logits.float().softmax(dim=-1)[:, gt_labels.long()]  # (K, G)
        cost = -w.cls * prob - w.conf * conf.float()[:, None]
        cost = cost - w.giou * box_giou_pairwise(pred_boxes.float(), gt_boxes.float())
        if w.coarse:
            if pred_rays is None or gt_rays is None:
                raise ValueError("weights.coarse != 0 needs pred_rays and gt_rays")
            cost = cost + w.coarse * torch.cdist(pred_rays.float(), gt_rays.float(), p=1) / gt_rays.shape[1]
    return cost


def hungarian_match(cost: Tensor) -> tuple[Tensor, Tensor]:
    """One-to-one minimum-cost assignment of a (K, G) cost; NaN/inf entries cost 1e5.

    Returns (query_idx, gt_idx), int64, sorted by query index; min(K, G) pairs.
    """
    if cost.ndim != 2:
        raise ValueError(f"cost must be (K, G), got {tuple(cost.shape)}")
    c = cost.detach().cpu().double().numpy()
    c = np.where(np.isfinite(c), c, INVALID_COST)
    rows, cols = linear_sum_assignment(c)
    dev = cost.device
    return torch.as_tensor(rows, dtype=torch.long, device=dev), torch.as_tensor(cols, dtype=torch.long, device=dev)


def duplicated_match(cost: Tensor, dup: int = 4) -> tuple[Tensor, Tensor]:
    """Auxiliary assignment: the GT axis tiled ``dup`` times, so every GT takes up to ``dup``
    distinct queries. Returns (query_idx, gt_idx) with gt_idx in [0, G) (labels repeat)."""
    if dup < 1:
        raise ValueError(f"dup must be >= 1, got {dup}")
    g = cost.shape[1]
    q, col = hungarian_match(cost.repeat(1, dup))  # (K, dup*G)
    return q, col % g if g else col


__all__ = ["INVALID_COST", "MatchWeights", "duplicated_match", "hungarian_match", "match_cost"]
