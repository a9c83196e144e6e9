"""Benchmark file formats and the sphmask-eval command line, end to end on written files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sphmask_core.evaluation.cli import main
from sphmask_core.evaluation.formats import (
    FormatError,
    list_scenes,
    read_gt_file,
    read_mask_file,
    read_prediction_file,
    write_gt_file,
    write_mask_file,
    write_prediction_file,
)
from sphmask_core.evaluation.scannet_eval import PredInstance, evaluate_scannet


def _mask(n, idx):
    m = np.zeros(n, dtype=bool)
    m[np.asarray(list(idx))] = True
    return m


def _write_benchmark(tmp_path, with_sofa_miss: bool = True):
    """Two ScanNet-id scenes (chair=5, table=7, sofa=6) and their predictions."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    g0 = np.zeros(400, np.int64)
    g0[:150], g0[150:300] = 5001, 7002
    g1 = np.zeros(300, np.int64)
    g1[:120] = 5001
    if with_sofa_miss:
        g1[120:250] = 6002
    write_gt_file(gt_dir / "scene0000_00.txt", g0)
    write_gt_file(gt_dir / "scene0001_00.txt", g1)
    p0 = [PredInstance(_mask(400, range(0, 150)), 5, 0.9), PredInstance(_mask(400, range(150, 300)), 7, 0.8)]
    p1 = [PredInstance(_mask(300, range(0, 120)), 5, 0.7)]
    write_prediction_file(pred_dir, "scene0000_00", p0)
    write_prediction_file(pred_dir, "scene0001_00", p1)
    return gt_dir, pred_dir, [g0, g1], [p0, p1]


def test_round_trip_files(tmp_path):
    gt_dir, pred_dir, gts, preds = _write_benchmark(tmp_path)
    assert list_scenes(gt_dir, pred_dir) == ["scene0000_00", "scene0001_00"]
    g = read_gt_file(gt_dir / "scene0000_00.txt")
    assert np.array_equal(g, gts[0])
    back = read_prediction_file(pred_dir / "scene0000_00.txt", 400)
    assert [(p.label_id, p.confidence) for p in back] == [(5, 0.9), (7, 0.8)]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(back, preds[0]))


def test_mask_reader_general_layout(tmp_path):
    f = tmp_path / "m.txt"
    f.write_text("0\r\n2\r\n-1\r\n0")  # CRLF, non-0/1 integers, no final newline
    assert read_mask_file(f, 4).tolist() == [False, True, True, False]
    write_mask_file(f, np.array([True, False, True]))
    assert f.read_text() == "1\n0\n1\n"
    assert read_mask_file(f, 3).tolist() == [True, False, True]


@pytest.mark.parametrize(
    "line, mask_text, match",
    [
        ("pred_mask/a.txt 5 0.5", None, r"scene\.txt:2: mask file not found"),
        ("pred_mask/a.txt 5 0.5", "1\n0\n", r"scene\.txt:2: .*mask has 2 lines but the scene has 5"),
        ("pred_mask/a.txt 5 0.5", "1\n0\nx\n1\n1\n", r"scene\.txt:2: .*a\.txt:3: expected one integer"),
        ("pred_mask/a.txt five 0.5", "1\n0\n1\n1\n1\n", r"scene\.txt:2: bad label id 'five'"),
        ("pred_mask/a.txt 5.5 0.5", "1\n0\n1\n1\n1\n", r"scene\.txt:2: bad label id '5.5'"),
        ("pred_mask/a.txt -3 0.5", "1\n0\n1\n1\n1\n", r"scene\.txt:2: bad label id '-3'"),
        ("pred_mask/a.txt 5 high", "1\n0\n1\n1\n1\n", r"scene\.txt:2: bad confidence 'high'"),
        ("pred_mask/a.txt 5", "1\n0\n1\n1\n1\n", r"scene\.txt:2: expected '<mask file>"),
        ("../outside.txt 5 0.5", "1\n0\n1\n1\n1\n", r"scene\.txt:2: mask '../outside.txt' points outside"),
        ("/abs/a.txt 5 0.5", "1\n0\n1\n1\n1\n", r"scene\.txt:2: mask path must be relative"),
        ("pred_mask/ok.txt 7 0.5", None, r"scene\.txt:2: mask 'pred_mask/ok.txt' already listed on line 1"),
    ],
)
def test_malformed_prediction_files_are_rejected(tmp_path, line, mask_text, match):
    pred = tmp_path / "pred"
    (pred / "pred_mask").mkdir(parents=True)
    (pred / "pred_mask" / "ok.txt").write_text("1\n1\n1\n1\n1\n")
    (tmp_path / "outside.txt").write_text("1\n0\n1\n1\n1\n")
    if mask_text is not None:
        (pred / "pred_mask" / "a.txt").write_text(mask_text)
    (pred / "scene.txt").write_text(f"pred_mask/ok.txt 5 0.9\n{line}\n")
    with pytest.raises(FormatError, match=match):
        read_prediction_file(pred / "scene.txt", 5)


def test_gt_reader_errors(tmp_path):
    f = tmp_path / "g.txt"
    f.write_text("5001\n5001\nabc\n")
    with pytest.raises(FormatError, match=r"g\.txt:3"):
        read_gt_file(f)
    f.write_text("5001\n-2\n")
    with pytest.raises(FormatError, match=r"g\.txt:2: GT id must be >= 0"):
        read_gt_file(f)
    with pytest.raises(FormatError, match="not found"):
        read_gt_file(tmp_path / "nope.txt")


def test_scene_sets_must_agree(tmp_path):
    gt_dir, pred_dir, _, _ = _write_benchmark(tmp_path)
    (pred_dir / "scene0001_00.txt").unlink()
    with pytest.raises(FormatError, match="no prediction file for scene 'scene0001_00'"):
        list_scenes(gt_dir, pred_dir)
    (pred_dir / "scene0001_00.txt").write_text("")
    (pred_dir / "scene0009_00.txt").write_text("")
    with pytest.raises(FormatError, match="scene0009_00.txt has no GT file"):
        list_scenes(gt_dir, pred_dir)


def test_cli_scannet_end_to_end(tmp_path, capsys):
    gt_dir, pred_dir, gts, preds = _write_benchmark(tmp_path)
    out = tmp_path / "res.json"
    rc = main(["scannet", "--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert {"AP", "AP50", "AP25", "per_class"} <= set(res)
    assert len(res["per_class"]) == 18
    # chair, table perfect; sofa missed (0); the other 15 classes have no GT (null = NaN).
    assert res["AP"] == pytest.approx(2 / 3)
    assert res["per_class"]["sofa"]["AP"] == 0.0
    assert res["per_class"]["bed"]["AP"] is None
    direct = evaluate_scannet(gts, preds)
    assert res["AP50"] == pytest.approx(direct["AP50"])
    printed = capsys.readouterr().out
    assert "chair" in printed and "mean" in printed and "0.667" in printed


def test_cli_min_region_size_and_classes(tmp_path):
    gt_dir, pred_dir, _, _ = _write_benchmark(tmp_path)
    classes = tmp_path / "cls.yaml"
    classes.write_text("class_names: [chair, sofa]\nlabel_ids: [5, 6]\n")
    out = tmp_path / "r.json"
    args = ["scannet", "--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out), "--classes", str(classes)]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert set(res["per_class"]) == {"chair", "sofa"}
    assert res["AP"] == pytest.approx(0.5)
    # With min region 130 the 120-point chair of scene 1 and its prediction drop out:
    assert main(args + ["--min-region-size", "130"]) == 0
    res = json.loads(out.read_text())
    assert res["per_class"]["chair"]["AP"] == pytest.approx(1.0)
    assert res["per_class"]["sofa"]["AP"] == 0.0


def test_cli_s3dis(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    g = np.zeros(300, np.int64)
    g[:100], g[100:200] = 8001, 9002  # chair (sem 7 -> label 8), table (label 9)
    write_gt_file(gt_dir / "Area_5_office_1.txt", g)
    write_prediction_file(pred_dir, "Area_5_office_1", [
        PredInstance(_mask(300, range(0, 100)), 8, 0.9),
        PredInstance(_mask(300, range(200, 300)), 9, 0.5),
    ])
    out = tmp_path / "s.json"
    assert main(["s3dis", "--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["mPrec50"] == pytest.approx(0.5)  # chair 1, table 0
    assert res["mRec50"] == pytest.approx(0.5)
    assert res["per_class"]["ceiling"]["Prec50"] is None


def test_cli_malformed_file_exit_2_one_line(tmp_path, capsys):
    gt_dir, pred_dir, _, _ = _write_benchmark(tmp_path)
    (pred_dir / "pred_mask" / "scene0001_00_000.txt").write_text("1\n0\n")
    rc = main(["scannet", "--gt", str(gt_dir), "--pred", str(pred_dir)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert "scene0001_00.txt:1" in err and "mask has 2 lines" in err


def test_cli_usage_and_classes_errors(tmp_path, capsys):
    assert main(["scannet", "--gt", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    bad = tmp_path / "c.yaml"
    bad.write_text("class_names: [a, b]\nlabel_ids: [1]\n")
    gt_dir, pred_dir, _, _ = _write_benchmark(tmp_path)
    assert main(["scannet", "--gt", str(gt_dir), "--pred", str(pred_dir), "--classes", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "label_ids" in err


def test_console_entry_subprocess(tmp_path):
    gt_dir, pred_dir, _, _ = _write_benchmark(tmp_path)
    (pred_dir / "scene0000_00.txt").write_text("pred_mask/missing.txt 5 0.9\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sphmask_core.evaluation.cli", "scannet", "--gt", str(gt_dir), "--pred", str(pred_dir)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "scene0000_00.txt:1: mask file not found" in proc.stderr
