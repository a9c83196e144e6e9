"""The HTML report page and the precision/recall curves it plots."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sphmask_core.evaluation.scannet_eval import (
    PredInstance,
    ScanNetEvaluator,
    average_precision,
    precision_recall,
)
from sphmask_core.report import ReportData, write_report


def test_precision_recall_hand_example() -> None:
    # scores 0.9 TP, 0.8 FP, 0.7 TP and one GT never matched (3 GT in all):
    # >= 0.9: P 1, R 1/3; >= 0.8: P 1/2, R 1/3; >= 0.7: P 2/3, R 2/3 (ascending score order)
    p, r, s = precision_recall(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 1)
    np.testing.assert_allclose(s, [0.7, 0.8, 0.9])
    np.testing.assert_allclose(p, [2 / 3, 1 / 2, 1.0])
    np.testing.assert_allclose(r, [2 / 3, 1 / 3, 1 / 3])
    # the AP still integrates the same curve: steps 1/3 at P 1 ... by hand
    # recall (2/3, 1/3, 1/3, 0) -> steps (1/6, 1/6, 1/6, 1/6) with precisions (2/3, 1/2, 1, 1)
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 1) == pytest.approx(
        (2 / 3 + 1 / 2 + 1 + 1) / 6)


def test_evaluator_pr_curve_per_class() -> None:
    # one scene, class 1 with two GT instances (ids 1001, 1002); one exact prediction, and one
    # covering 60 of GT 1002's 200 points (IoU 0.3: a false positive at IoU 0.5)
    gt = np.array([1001] * 200 + [1002] * 200 + [0] * 100)
    hit = np.zeros(500, bool)
    hit[:200] = True
    wrong = np.zeros(500, bool)
    wrong[200:260] = True
    ev = ScanNetEvaluator(["chair", "table"], [1, 2], min_region_size=10)
    ev.add_scene(gt, [PredInstance(hit, 1, 0.9), PredInstance(wrong, 1, 0.5)])
    curves = ev.pr_curves(0.5)
    assert set(curves) == {"chair"}  # table: no GT, no predictions
    p, r, _ = curves["chair"]
    np.testing.assert_allclose(p, [0.5, 1.0])
    np.testing.assert_allclose(r, [0.5, 0.5])


def _png(path: Path) -> Path:
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    return path


def test_page_exists_links_every_render(tmp_path: Path) -> None:
    (tmp_path / "renders").mkdir()
    renders = [_png(tmp_path / "renders" / f"frame_{k:05d}.png") for k in range(3)]
    curves = {"chair": (np.array([0.5, 1.0]), np.array([0.5, 0.5]), np.array([0.5, 0.9]))}
    metrics = {"AP": 0.25, "AP50": 0.5, "AP25": 0.75, "per_class": {"chair": {"AP": 0.25, "AP50": 0.5, "AP25": 0.75}}}
    stages = {"model": [10.0, 20.0, 30.0, 40.0], "total": [11.0, 21.0, 31.0, 41.0]}
    page_path = write_report(tmp_path, ReportData("run <1>", metrics=metrics, pr_curves=curves, stages_ms=stages,
                                                  instances=[3, 4, 2, 5], times=[0.0, 0.5, 1.0, 1.5],
                                                  renders=renders, facts=[("model", "m")]))
    assert page_path == tmp_path / "report.html"
    page = page_path.read_text()
    assert "run &lt;1&gt;" in page  # escaped
    links = re.findall(r'href="([^"]+)"', page)
    assert links == [f"renders/frame_{k:05d}.png" for k in range(3)]
    for img in re.findall(r'<img src="([^"]+)"', page):
        assert (tmp_path / img).is_file(), img
        assert Image.open(tmp_path / img).size[0] > 0
    assert {"report_files/pr_curves.png", "report_files/latency.png", "report_files/instances.png"} <= set(
        re.findall(r'<img src="([^"]+)"', page))
    # metrics table and latency percentiles (np.percentile by hand: p50 of 10..40 = 25)
    assert "<td>0.500</td>" in page and "<td>chair</td>" in page
    row = re.search(r"<tr><td>model</td>(.*?)</tr>", page).group(1)
    assert re.findall(r"<td>([^<]*)</td>", row)[:2] == ["25.0", "37.0"]  # p50, p90


def test_page_without_ground_truth_or_frames(tmp_path: Path) -> None:
    page = write_report(tmp_path, ReportData("empty")).read_text()
    assert "No ground truth" in page and "<img" not in page
