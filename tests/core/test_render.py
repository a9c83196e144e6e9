"""The matplotlib renderer, checked by reading its PNG back with pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sphmask_core.render import Labelling, match_gt_to_pred, palette, render_scene

NAMES = ["chair", "table", "sofa"]


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 4 x 3 m floor and four 0.6 m cubes of points (instances 0..3)."""
    rng = np.random.default_rng(0)
    parts, labels = [np.c_[rng.uniform(0, 4, 3000), rng.uniform(0, 3, 3000), np.zeros(3000)]], [np.full(3000, -1)]
    for k, (cx, cy) in enumerate([(1.0, 1.0), (2.5, 1.0), (1.0, 2.2), (3.0, 2.3)]):
        parts.append(np.c_[rng.uniform(cx - 0.3, cx + 0.3, 600), rng.uniform(cy - 0.3, cy + 0.3, 600),
                           rng.uniform(0, 0.8, 600)])
        labels.append(np.full(600, k))
    return np.concatenate(parts), np.concatenate(labels)


def _colour_counts(png: Path) -> dict[tuple[int, int, int], int]:
    img = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(img, axis=0, return_counts=True)
    return {tuple(int(v) for v in c): int(n) for c, n in zip(colours, counts)}


def test_size_and_one_colour_per_published_instance(tmp_path: Path) -> None:
    xyz, inst = _scene()
    # instance 2 scores below the node threshold (0.4): its points must be drawn as background
    pred = Labelling(inst, [0, 1, 2, 1], scores=[0.9, 0.8, 0.3, 0.6])
    info = render_scene(tmp_path / "a.png", xyz, NAMES, pred, frame_id="map", stamp_ns=12_500_000_000)
    image = Image.open(tmp_path / "a.png")
    assert image.size == (700, 1000) == (info.width, info.height)
    counts = _colour_counts(tmp_path / "a.png")
    table = palette(10)
    present = [k for k, c in enumerate(table) if counts.get(tuple(int(v) for v in c), 0) > 200]
    assert present == [0, 1, 2]  # three published instances, three colours (by score order)
    np.testing.assert_array_equal(info.colors["prediction"], table[:3])


def test_top_view_axes_are_metric(tmp_path: Path) -> None:
    xyz, inst = _scene()
    info = render_scene(tmp_path / "a.png", xyz, NAMES, Labelling(inst, [0, 1, 2, 1], scores=[0.9] * 4),
                        size_px=(700, 1000))
    img = np.asarray(Image.open(tmp_path / "a.png").convert("RGB")).astype(int)
    x0, y0, x1, y1 = info.axes_px["prediction"]
    xmin, xmax, ymin, ymax = info.top_limits["prediction"]
    assert xmin < 0.0 and xmax > 4.0 and ymin < 0.0 and ymax > 3.0  # the whole floor is in view
    # equal aspect: metres per pixel agree on both axes
    assert (xmax - xmin) / (x1 - x0) == pytest.approx((ymax - ymin) / (y1 - y0), rel=0.02)
    # the centre of cube 1 (x 2.5, y 1.0; highest score order 1) lands on its colour
    col = round(x0 + (2.5 - xmin) / (xmax - xmin) * (x1 - x0))
    row = round(y1 - (1.0 - ymin) / (ymax - ymin) * (y1 - y0))
    patch = img[row - 4:row + 5, col - 4:col + 5].reshape(-1, 3)
    assert (np.abs(patch - palette(2)[1]).sum(axis=1) == 0).sum() >= 20
    # the axes frame: a dark spine along the left edge
    assert (img[round(y0) + 5:round(y1) - 5, round(x0)].sum(axis=1) < 200).mean() > 0.9


def test_ground_truth_beside_takes_matched_colours(tmp_path: Path) -> None:
    xyz, inst = _scene()
    pred = Labelling(np.where(inst == 3, -1, inst), [0, 1, 2, 2], scores=[0.9, 0.8, 0.7, 0.6])
    # GT ids sort as 1001, 2002, 3003, 3004: GT index k is cube k
    gt_ids = np.where(inst >= 0, (np.array([0, 1, 2, 2])[inst] + 1) * 1000 + inst + 1, 0)
    gt = Labelling.from_gt_ids(gt_ids)
    assert len(gt) == 4
    info = render_scene(tmp_path / "b.png", xyz, NAMES, pred, gt)
    assert Image.open(tmp_path / "b.png").size == (1400, 1000)
    # GT 0..2 are found (same colours), GT 3 is missed: a colour no prediction has
    np.testing.assert_array_equal(info.colors["ground truth"][:3], info.colors["prediction"][:3])
    assert not (info.colors["ground truth"][3] == info.colors["prediction"]).all(axis=1).any()
    assert match_gt_to_pred(pred, gt).tolist() == [0, 1, 2, -1]


def test_labels_do_not_overlap(tmp_path: Path) -> None:
    # ten small objects 0.1 m apart: labels at their corners would overlap
    rng = np.random.default_rng(1)
    xyz = np.concatenate([np.c_[rng.uniform(0.1 * k, 0.1 * k + 0.05, 50), rng.uniform(0, 0.05, 50),
                                rng.uniform(0, 1, 50)] for k in range(10)] + [rng.uniform(-1, 2, (500, 3))])
    inst = np.concatenate([np.full(50, k) for k in range(10)] + [np.full(500, -1)])
    info = render_scene(tmp_path / "c.png", xyz, NAMES, Labelling(inst, np.arange(10) % 3, scores=np.full(10, 0.9)))
    boxes = info.label_boxes["prediction"]
    shown = boxes[np.isfinite(boxes).all(axis=1)]
    assert len(shown) >= 8
    for i in range(len(shown)):
        for j in range(i + 1, len(shown)):
            a, b = shown[i], shown[j]
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="instance 3"):
        Labelling(np.array([3, -1]), np.array([0]))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        render_scene("x.png", np.zeros((2, 2)), ["x"], Labelling(np.array([0, 0]), np.array([0])))
    with pytest.raises(ValueError, match="class ids"):
        render_scene("x.png", np.zeros((2, 3)), ["x"], Labelling(np.array([0, 0]), np.array([4])))
