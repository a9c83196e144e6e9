"""Non-maximum suppression over binary instance masks (METHOD 6.4).

``matrix_nms`` is the Gaussian, label-specific Matrix NMS of SOLOv2 used by the released model
(no score threshold); ``greedy_nms`` is the class-wise hard NMS of the S3DIS configuration;
``suppress_duplicates`` is our optional hard pass after matrix NMS (``test.duplicate_iou``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def _check_inputs(masks: Tensor, labels: Tensor, scores: Tensor) -> None:
    if masks.ndim != 2:
        raise ValueError(f"masks must be (K, N), got {tuple(masks.shape)}")
    k = masks.shape[0]
    if labels.shape != (k,) or scores.shape != (k,):
        raise ValueError(
            f"labels and scores must be ({k},), got {tuple(labels.shape)} and {tuple(scores.shape)}"
        )


def mask_iou_matrix(masks: Tensor, weights: Tensor | None = None) -> Tensor:
    """Pairwise IoU (K, K) of binary masks (K, N); two empty masks have IoU 0.

    weights (N,): integer multiplicities of the columns (a column standing for that many
    elements, e.g. a unit for its voxels): the IoU of the expanded masks, without expanding them.
    Every sum is a whole number below 2^24, so float32 gives it exactly in any order: the same
    IoU as the expanded masks.
    """
    # counted in float64 on CUDA: float32 products there may run as TF32 (11-bit significands),
    # which rounds counts above 2048; whole numbers below 2^24 then convert to float32 exactly
    dtype = torch.float64 if masks.is_cuda else torch.float32
    m = masks.to(dtype)  # (K, N)
    mw = m if weights is None else m * weights.to(dtype)  # (K, N)
    inter = (mw @ m.T).to(torch.float32)  # (K, K)
    area = mw.sum(dim=1).to(torch.float32)  # (K,)
    union = area[:, None] + area[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def matrix_nms(
    masks: Tensor, labels: Tensor, scores: Tensor, sigma: float = 2.0, topk: int = 200,
    weights: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Gaussian Matrix NMS, label specific.

    Sort by score; for the j-th mask, decay_j = min over higher-scored i of
    exp(-sigma * IoU_ij^2) / exp(-sigma * comp_i^2), where IoU counts only same-label pairs and
    comp_i = max IoU of i with any higher-scored same-label mask (0 for the top mask).
    Returns ``(keep_idx, new_scores)``: indices into the inputs of the ``topk`` masks with the
    highest decayed score (all when topk < 0), best first, and their decayed scores.
    masks: (K, N) bool; labels: (K,) int; scores: (K,) float; weights (N,): see mask_iou_matrix.
    """
    _check_inputs(masks, labels, scores)
    k = masks.shape[0]
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=masks.device), scores.new_zeros(0)
    order = torch.argsort(scores, descending=True, stable=True)  # (K,)
    sorted_scores = scores[order]
    iou = mask_iou_matrix(masks[order], weights)  # (K, K)
    lab = labels[order]
    same_label = lab[:, None] == lab[None, :]
    # only pairs (i higher-scored, j lower-scored) of the same label take part
    decay_iou = torch.triu(iou * same_label, diagonal=1)  # (K, K), row i suppresses column j
    comp = decay_iou.max(dim=0).values  # (K,) max IoU of each mask with a better one
    decay_matrix = torch.exp(-sigma * decay_iou**2)
    comp_matrix = torch.exp(-sigma * comp**2)[:, None]  # (K, 1) broadcast over columns
    decay = (decay_matrix / comp_matrix).min(dim=0).values  # (K,)
    new_scores = sorted_scores * decay
    n_keep = k if topk < 0 else min(topk, k)
    top = torch.argsort(new_scores, descending=True, stable=True)[:n_keep]
    return order[top], new_scores[top]


def greedy_nms(
    masks: Tensor, labels: Tensor, scores: Tensor, iou_threshold: float = 0.2, weights: Tensor | None = None
) -> Tensor:
    """Class-wise hard NMS: keep a mask unless a kept, higher-scored mask of the same label
    overlaps it with IoU > ``iou_threshold``. Returns kept indices (into the inputs), best first.
    weights (N,): see mask_iou_matrix.
    """
    _check_inputs(masks, labels, scores)
    k = masks.shape[0]
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=masks.device)
    order = torch.argsort(scores, descending=True, stable=True)
    iou = mask_iou_matrix(masks[order], weights)  # (K, K)
    lab = labels[order]
    overlap = (iou > iou_threshold) & (lab[:, None] == lab[None, :])  # (K, K)
    alive = torch.ones(k, dtype=torch.bool, device=masks.device)
    # loop over candidates (K is at most a few hundred), not over points
    for i in range(k):
        if alive[i]:
            sup = overlap[i].clone()
            sup[: i + 1] = False
            alive &= ~sup
    return order[alive]


def suppress_duplicates(
    masks: Tensor, labels: Tensor, scores: Tensor, iou_threshold: float, weights: Tensor | None = None
) -> Tensor:
    """Indices (ascending, into the inputs) of the masks left after dropping every mask that a
    higher-scored mask of the same label overlaps with IoU > ``iou_threshold``.

    Matrix NMS only decays scores: a duplicate of a confident mask at IoU 0.5 keeps
    exp(-2 * 0.25) = 61 % of its score and is published next to the original. This hard pass runs
    on the decayed scores, so touching objects (small IoU) and objects of other classes survive.
    """
    keep = greedy_nms(masks, labels, scores, iou_threshold=iou_threshold, weights=weights)
    return torch.sort(keep).values


def max_overlap(masks: Sequence[np.ndarray]) -> float:
    """Largest IoU between any two of the given point-index masks (0 for fewer than two)."""
    masks = [np.asarray(m, dtype=np.int64).reshape(-1) for m in masks]
    if len(masks) < 2:
        return 0.0
    # only points covered by some mask matter: compress to their union before going dense
    union, inverse = np.unique(np.concatenate(masks), return_inverse=True)
    rows = np.repeat(np.arange(len(masks)), [len(m) for m in masks])
    dense = torch.zeros((len(masks), len(union)), dtype=torch.bool)  # (K, U)
    dense[torch.from_numpy(rows), torch.from_numpy(inverse.reshape(-1))] = True
    return float(mask_iou_matrix(dense).fill_diagonal_(0.0).max())


__all__ = ["greedy_nms", "mask_iou_matrix", "matrix_nms", "max_overlap", "suppress_duplicates"]
