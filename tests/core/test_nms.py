"""Matrix NMS and greedy NMS on hand-made masks (METHOD 6.4)."""

from __future__ import annotations

import math

import pytest
import torch

from sphmask_core.inference.nms import greedy_nms, mask_iou_matrix, matrix_nms


def _mask(n, idx):
    m = torch.zeros(n, dtype=torch.bool)
    m[list(idx)] = True
    return m


def _hand_case():
    n = 20
    masks = torch.stack([
        _mask(n, range(0, 5)),    # A class 0
        _mask(n, range(0, 4)),    # B class 0, IoU(A, B) = 0.8
        _mask(n, range(0, 5)),    # C class 1, same points as A
        _mask(n, range(10, 15)),  # D class 0, disjoint
    ])
    labels = torch.tensor([0, 0, 1, 0])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    return masks, labels, scores


def test_matrix_nms_hand_computed_decay():
    masks, labels, scores = _hand_case()
    # shuffle the input order: results must refer to the original indices
    perm = torch.tensor([3, 1, 0, 2])
    keep, new = matrix_nms(masks[perm], labels[perm], scores[perm], sigma=2.0, topk=-1)
    orig = perm[keep]
    assert orig.tolist() == [0, 2, 3, 1]  # A, C (other class, untouched), D, decayed B last
    b_decay = math.exp(-2.0 * 0.8**2)
    torch.testing.assert_close(new, torch.tensor([0.9, 0.7, 0.6, 0.8 * b_decay]))
    keep3, _ = matrix_nms(masks, labels, scores, topk=3)
    assert keep3.tolist() == [0, 2, 3]


def _reference_matrix_nms(masks, labels, scores, sigma):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    iou = mask_iou_matrix(masks)
    comp = {}
    new = {}
    for pos, j in enumerate(order):
        higher = [i for i in order[:pos] if labels[i] == labels[j]]
        comp[j] = max([float(iou[i, j]) for i in higher], default=0.0)
        decay = min(
            [math.exp(-sigma * float(iou[i, j]) ** 2) / math.exp(-sigma * comp[i] ** 2) for i in order[:pos]
             if labels[i] == labels[j]] + [1.0]
        )
        new[j] = float(scores[j]) * decay
    return new


def test_matrix_nms_matches_brute_force_reference():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(12, 60, generator=g) < 0.4
    labels = torch.randint(0, 3, (12,), generator=g)
    scores = torch.rand(12, generator=g)
    keep, new = matrix_nms(masks, labels, scores, sigma=2.0, topk=-1)
    ref = _reference_matrix_nms(masks, labels, scores, 2.0)
    for k, s in zip(keep.tolist(), new.tolist()):
        assert s == pytest.approx(ref[k], rel=1e-5, abs=1e-7)
    assert sorted(keep.tolist()) == list(range(12))
    assert all(a >= b for a, b in zip(new.tolist(), new.tolist()[1:]))


def test_greedy_nms_classwise():
    masks, labels, scores = _hand_case()
    assert greedy_nms(masks, labels, scores, iou_threshold=0.2).tolist() == [0, 2, 3]
    assert greedy_nms(masks, labels, scores, iou_threshold=0.85).tolist() == [0, 1, 2, 3]
    # chain: A suppresses B; C overlaps B (not A) above the threshold but B is gone -> C kept
    n = 12
    m = torch.stack([_mask(n, range(0, 4)), _mask(n, range(1, 6)), _mask(n, range(4, 8))])
    keep = greedy_nms(m, torch.zeros(3, dtype=torch.long), torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.2)
    assert keep.tolist() == [0, 2]


def test_empty_inputs():
    keep, new = matrix_nms(torch.zeros(0, 5, dtype=torch.bool), torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert keep.numel() == 0 and new.numel() == 0


def test_weighted_columns_equal_expanded_masks():
    """Unit masks with voxel-count weights: exactly the IoUs, decays and kept rows of the voxel masks."""
    g = torch.Generator().manual_seed(3)
    k, n_units = 40, 300
    unit_masks = torch.rand(k, n_units, generator=g) < 0.2  # (K, U)
    unit_masks[5] = unit_masks[4]  # an exact duplicate
    unit_of_voxel = torch.randint(0, n_units, (5000,), generator=g)  # (V,) units of very different sizes
    unit_of_voxel[:2000] = 7
    weights = torch.bincount(unit_of_voxel, minlength=n_units)  # (U,)
    voxel_masks = unit_masks[:, unit_of_voxel]  # (K, V)
    labels = torch.randint(0, 3, (k,), generator=g)
    scores = torch.rand(k, generator=g)
    assert torch.equal(mask_iou_matrix(unit_masks, weights), mask_iou_matrix(voxel_masks))
    keep_w, s_w = matrix_nms(unit_masks, labels, scores, topk=-1, weights=weights)
    keep_v, s_v = matrix_nms(voxel_masks, labels, scores, topk=-1)
    assert torch.equal(keep_w, keep_v) and torch.equal(s_w, s_v)
    for thr in (0.05, 0.3):
        assert torch.equal(greedy_nms(unit_masks, labels, scores, thr, weights=weights),
                           greedy_nms(voxel_masks, labels, scores, thr))
    assert not torch.equal(mask_iou_matrix(unit_masks), mask_iou_matrix(voxel_masks))  # weights matter
