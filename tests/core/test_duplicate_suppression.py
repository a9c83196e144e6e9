"""Hard duplicate suppression after matrix NMS, and the overlap figure of published masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sphmask_core.config import TestConfig
from sphmask_core.inference.nms import matrix_nms, max_overlap, suppress_duplicates


def _box_mask(grid: np.ndarray, lo: tuple, hi: tuple) -> np.ndarray:
    return np.all((grid >= lo) & (grid < hi), axis=1)


def _scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 20x10 grid of points: object A (x 0..9), its duplicate (x 1..9, same class, IoU 0.9),
    and object B (x 9..19) sharing the one boundary column x = 9 with A (IoU 10/200)."""
    grid = np.stack(np.meshgrid(np.arange(20), np.arange(10), indexing="ij"), -1).reshape(-1, 2)
    a = _box_mask(grid, (0, 0), (10, 10))
    dup = _box_mask(grid, (1, 0), (10, 10))
    b = _box_mask(grid, (9, 0), (20, 10))
    masks = torch.from_numpy(np.stack([a, dup, b]))
    return masks, torch.tensor([3, 3, 3]), torch.tensor([0.9, 0.7, 0.8])


def test_matrix_nms_leaves_the_duplicate_above_a_node_threshold() -> None:
    # the failure this pass exists for: decay exp(-2 * 0.9^2) = 0.198 -> 0.7 * 0.198 = 0.139;
    # at IoU 0.5 (exp(-0.5) = 0.61) a 0.7 duplicate keeps 0.42 > the node's 0.4
    masks, labels, scores = _scene()
    keep, new = matrix_nms(masks, labels, scores)
    assert new[keep.tolist().index(1)] == pytest.approx(0.7 * np.exp(-2 * 0.81), rel=1e-5)


def test_removes_constructed_duplicate_keeps_touching_objects() -> None:
    masks, labels, scores = _scene()
    keep = suppress_duplicates(masks, labels, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def test_keeps_overlap_below_threshold_and_other_classes() -> None:
    masks, labels, scores = _scene()
    assert suppress_duplicates(masks, labels, scores, iou_threshold=0.95).tolist() == [0, 1, 2]
    # the same overlap between different classes is not a duplicate
    assert suppress_duplicates(masks, torch.tensor([3, 4, 3]), scores, 0.5).tolist() == [0, 1, 2]
    # the lower-scored of the pair goes, whichever comes first in the input
    assert suppress_duplicates(masks, labels, torch.tensor([0.5, 0.7, 0.8]), 0.5).tolist() == [1, 2]


def test_max_overlap_hand_computed() -> None:
    assert max_overlap([]) == 0.0
    assert max_overlap([np.array([1, 2])]) == 0.0
    # {0..3} vs {2..5}: 2 shared of 6 -> 1/3; {10, 11} touches nothing
    assert max_overlap([np.arange(4), np.arange(2, 6), np.array([10, 11])]) == pytest.approx(1 / 3)
    assert max_overlap([np.arange(4), np.array([10, 11])]) == 0.0


def test_config_switch_validated() -> None:
    assert TestConfig().duplicate_iou == 0.0  # off: the released model's post-processing
    with pytest.raises(ValueError, match="duplicate_iou"):
        TestConfig(duplicate_iou=1.5)


def test_segmenter_applies_the_switch(monkeypatch) -> None:
    from sphmask_core.config import apply_overrides
    from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
    from sphmask_core.inference import segmenter as segmenter_module
    from sphmask_core.inference.segmenter import Segmenter

    # the shipped model with every instance kept: matrix NMS leaves same-class duplicates
    base = Segmenter.from_checkpoint(None, device="cpu")
    model, cfg = base.model, apply_overrides(base.cfg, {"test.score_threshold": 0.0})
    scene = generate_scene(7, SyntheticConfig(target_points_range=(5000, 5000), n_objects_range=(3, 4)))
    calls = []
    real = segmenter_module.suppress_duplicates
    monkeypatch.setattr(segmenter_module, "suppress_duplicates",
                        lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    plain = Segmenter(model, cfg, device="cpu")(scene.xyz, scene.rgb)
    assert calls == []  # off by default
    on = Segmenter(model, apply_overrides(cfg, {"test.duplicate_iou": 0.5}), device="cpu")(scene.xyz, scene.rgb)
    assert calls == [0.5]
    assert 0 < len(on) < len(plain)
    assert set(on.scores.tolist()) <= set(plain.scores.tolist())  # only removals, scores untouched
