"""Hungarian and duplicated matching on small cost matrices with known answers (METHOD 5.2)."""

from __future__ import annotations

import pytest
import torch

from sphmask_core.losses.matching import MatchWeights, duplicated_match, hungarian_match, match_cost


def test_hungarian_known_answer():
    cost = torch.tensor([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    q, g = hungarian_match(cost)
    assert list(zip(q.tolist(), g.tolist())) == [(0, 1), (1, 0), (2, 2)]


def test_hungarian_more_queries_and_invalid_entries():
    # 4 queries, 2 GTs; the cheapest entry for GT 0 is NaN and must be avoided
    cost = torch.tensor([[float("nan"), 3.0], [1.0, 2.0], [5.0, 0.5], [0.9, float("inf")]])
    q, g = hungarian_match(cost)
    assert dict(zip(g.tolist(), q.tolist())) == {0: 3, 1: 2}
    with pytest.raises(ValueError):
        hungarian_match(torch.zeros(3))


def test_duplicated_match_known_answer():
    gt0 = torch.tensor([0.0, 0.1, 0.2, 0.3, 5.0, 5.0])
    gt1 = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    cost = torch.stack([gt0, gt1], dim=1)  # (6, 2)
    q, g = duplicated_match(cost, dup=4)
    assert q.tolist() == [0, 1, 2, 3, 4, 5] and g.tolist() == [0, 0, 0, 0, 1, 1]
    q, g = duplicated_match(cost, dup=2)  # GT 0 can take only its two cheapest queries
    assert q.tolist() == [0, 1, 4, 5] and g.tolist() == [0, 0, 1, 1]
    q, g = duplicated_match(cost, dup=1)
    assert q.tolist() == [0, 4] and g.tolist() == [0, 1]
    # every GT gets at most `dup` queries, all distinct
    big = torch.rand(40, 3, generator=torch.Generator().manual_seed(0))
    q, g = duplicated_match(big, dup=4)
    assert len(set(q.tolist())) == len(q) == 12
    assert torch.bincount(g, minlength=3).tolist() == [4, 4, 4]


def test_match_cost_values_and_recovery():
    n_cls = 3
    logits = torch.zeros(2, n_cls + 1)
    conf = torch.tensor([0.5, -1.0])
    boxes = torch.tensor([[0.0, 0, 0, 1, 1, 1], [0.5, 0, 0, 1.5, 1, 1]])
    gt_boxes = torch.tensor([[0.0, 0, 0, 1, 1, 1]])
    cost = match_cost(logits, conf, boxes, torch.tensor([2]), gt_boxes)
    # uniform softmax 1/4; GIoU 1 for the identical box, 1/3 for the half-shifted one
    exp = torch.tensor([[-0.5 / 4 - 0.2 * 0.5 - 0.2], [-0.5 / 4 + 0.2 - 0.2 / 3]])
    torch.testing.assert_close(cost, exp)
    # perfect predictions in a shuffled order are matched back to their GT
    g = torch.Generator().manual_seed(1)
    lo = torch.rand(5, 3, generator=g) * 5
    gt_b = torch.cat([lo, lo + 0.5 + torch.rand(5, 3, generator=g)], 1)
    gt_l = torch.tensor([0, 1, 2, 1, 0])
    perm = torch.tensor([3, 0, 4, 1, 2])
    lg = torch.full((5, n_cls + 1), -5.0)
    lg[torch.arange(5), gt_l[perm]] = 5.0
    q, gi = hungarian_match(match_cost(lg, torch.ones(5), gt_b[perm], gt_l, gt_b, MatchWeights()))
    assert gi.tolist() == perm.tolist()
    with pytest.raises(ValueError, match="gt_labels"):
        match_cost(logits, conf, boxes, torch.tensor([3]), gt_boxes)
