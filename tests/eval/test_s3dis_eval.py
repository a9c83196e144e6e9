"""S3DIS mPrec50 / mRec50 / mMUCov / mMWCov: hand-made cases and a loop-based reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sphmask_core.evaluation.s3dis_eval import (
    S3DISEvaluator,
    evaluate_s3dis,
    paint_predictions,
)
from sphmask_core.evaluation.scannet_eval import PredInstance

NAMES = ["chair", "table", "sofa"]


def _mask(n: int, idx) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[np.asarray(list(idx), dtype=np.int64)] = True
    return m


def reference_s3dis(gt_list, pred_list, n_cls, uncovered_as_instance=False):
    """Per-instance loops in the style of the ISBNet script (labels 1..n_cls)."""
    tps = [0] * n_cls
    fps = [0] * n_cls
    n_gt = [0] * n_cls
    cov = [[] for _ in range(n_cls)]
    wcov = [[] for _ in range(n_cls)]
    for gt, preds in zip(gt_list, pred_list):
        n = gt.shape[0]
        preds = [p for p in preds if 1 <= p.label_id <= n_cls]
        owner = np.full(n, -1)
        for k in sorted(range(len(preds)), key=lambda k: (preds[k].confidence, k)):
            owner[preds[k].mask] = k
        pred_inst = [[] for _ in range(n_cls)]
        for k in range(len(preds)):
            m = owner == k
            if m.any():
                pred_inst[preds[k].label_id - 1].append(m)
        if uncovered_as_instance and (owner < 0).any():
            pred_inst[0].append(owner < 0)
        gt_inst = [[] for _ in range(n_cls)]
        for gid in np.unique(gt):
            if gid == 0 or not 1 <= gid // 1000 <= n_cls:
                continue
            gt_inst[gid // 1000 - 1].append(gt == gid)
        for c in range(n_cls):
            if gt_inst[c]:
                s, ws, tot = 0.0, 0.0, 0
                for g in gt_inst[c]:
                    best = 0.0
                    for p in pred_inst[c]:
                        best = max(best, (g & p).sum() / (g | p).sum())
                    s += best
                    ws += best * g.sum()
                    tot += g.sum()
                cov[c].append(s / len(gt_inst[c]))
                wcov[c].append(ws / tot)
            n_gt[c] += len(gt_inst[c])
            for p in pred_inst[c]:
                best = -1.0
                for g in gt_inst[c]:
                    best = max(best, (g & p).sum() / (g | p).sum())
                if best >= 0.5:
                    tps[c] += 1
                else:
                    fps[c] += 1
    prec = [tps[c] / (tps[c] + fps[c]) if tps[c] + fps[c] else math.nan for c in range(n_cls)]
    rec = [min(1.0, tps[c] / n_gt[c]) if n_gt[c] else math.nan for c in range(n_cls)]
    mu = [np.mean(cov[c]) if cov[c] else math.nan for c in range(n_cls)]
    mw = [np.mean(wcov[c]) if wcov[c] else math.nan for c in range(n_cls)]
    return prec, rec, mu, mw


def _random_case(rng, n_scenes, n_cls=3):
    gt_list, pred_list = [], []
    for _ in range(n_scenes):
        n = int(rng.integers(300, 800))
        gt = np.zeros(n, dtype=np.int64)
        perm = rng.permutation(n)
        pos = 0
        insts = []
        for j in range(int(rng.integers(1, 7))):
            size = int(rng.integers(5, 120))
            lab = int(rng.integers(1, n_cls + 2))  # n_cls + 1: not evaluated
            idx = perm[pos:pos + size]
            pos += size
            gt[idx] = lab * 1000 + j + 1
            insts.append((idx, lab))
        preds = []
        for _ in range(int(rng.integers(0, 10))):
            if insts and rng.random() < 0.6:
                idx, lab = insts[int(rng.integers(len(insts)))]
                keep = idx[rng.random(idx.size) < rng.uniform(0.4, 1.0)]
                m = _mask(n, np.concatenate([keep, rng.choice(n, int(rng.integers(0, 40)), replace=False)]))
                if rng.random() < 0.2:
                    lab = int(rng.integers(1, n_cls + 1))
                lab = min(lab, n_cls)
            else:
                m = rng.random(n) < rng.uniform(0.01, 0.3)
                lab = int(rng.integers(1, n_cls + 2))
            preds.append(PredInstance(m, lab, float(np.round(rng.random(), 2))))
        gt_list.append(gt)
        pred_list.append(preds)
    return gt_list, pred_list


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("quirk", [False, True])
def test_matches_loop_reference(seed, quirk):
    rng = np.random.default_rng(100 + seed)
    gt_list, pred_list = _random_case(rng, 5)
    res = evaluate_s3dis(gt_list, pred_list, NAMES, uncovered_as_instance=quirk)
    prec, rec, mu, mw = reference_s3dis(gt_list, pred_list, 3, quirk)
    for c, name in enumerate(NAMES):
        got = res["per_class"][name]
        assert got["Prec50"] == pytest.approx(prec[c], abs=1e-9, nan_ok=True)
        assert got["Rec50"] == pytest.approx(rec[c], abs=1e-9, nan_ok=True)
        assert got["MUCov"] == pytest.approx(mu[c], abs=1e-9, nan_ok=True)
        assert got["MWCov"] == pytest.approx(mw[c], abs=1e-9, nan_ok=True)
    assert res["mPrec50"] == pytest.approx(np.nanmean(prec), abs=1e-9, nan_ok=True)
    assert res["mRec50"] == pytest.approx(np.nanmean(rec), abs=1e-9, nan_ok=True)


def _scene():
    gt = np.zeros(500, dtype=np.int64)
    gt[0:100] = 1001  # chair
    gt[100:200] = 1002  # chair
    gt[200:400] = 2001  # table
    return gt


def test_perfect_predictions():
    gt = _scene()
    preds = [
        PredInstance(_mask(500, range(0, 100)), 1, 0.9),
        PredInstance(_mask(500, range(100, 200)), 1, 0.8),
        PredInstance(_mask(500, range(200, 400)), 2, 0.7),
    ]
    res = evaluate_s3dis([gt], [preds], NAMES)
    for key in ("mPrec50", "mRec50", "mMUCov", "mMWCov"):
        assert res[key] == pytest.approx(1.0)
    assert math.isnan(res["per_class"]["sofa"]["Prec50"])


def test_hand_computed_precision_recall_coverage():
    gt = _scene()
    preds = [
        PredInstance(_mask(500, range(0, 100)), 1, 0.9),  # chair 1, IoU 1
        PredInstance(_mask(500, range(150, 200)), 1, 0.8),  # chair 2, IoU 0.5 -> TP (>=)
        PredInstance(_mask(500, range(400, 500)), 1, 0.7),  # on void: FP
        PredInstance(_mask(500, range(200, 260)), 2, 0.6),  # table, IoU 0.3: FP
    ]
    res = evaluate_s3dis([gt], [preds], NAMES)
    chair, table = res["per_class"]["chair"], res["per_class"]["table"]
    assert chair["Prec50"] == pytest.approx(2 / 3)
    assert chair["Rec50"] == pytest.approx(1.0)
    assert chair["MUCov"] == pytest.approx((1.0 + 0.5) / 2)
    assert chair["MWCov"] == pytest.approx((1.0 * 100 + 0.5 * 100) / 200)
    assert table["Prec50"] == 0.0 and table["Rec50"] == 0.0
    assert table["MUCov"] == pytest.approx(0.3)
    assert res["mPrec50"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_painting_keeps_highest_confidence():
    gt = _scene()
    # The low-confidence chair mask is completely covered by a higher-confidence table mask:
    # it vanishes, so the chair GT is missed and the table prediction (no overlap with the
    # table GT) is an FP for the table class.
    preds = [
        PredInstance(_mask(500, range(0, 100)), 1, 0.2),
        PredInstance(_mask(500, range(0, 100)), 2, 0.9),
    ]
    res = evaluate_s3dis([gt], [preds], NAMES)
    assert math.isnan(res["per_class"]["chair"]["Prec50"])  # no chair prediction survived
    assert res["per_class"]["chair"]["Rec50"] == 0.0
    assert res["per_class"]["table"]["Prec50"] == 0.0
    owner = paint_predictions(preds, 500)
    assert (owner[:100] == 1).all() and (owner[100:] == -1).all()


def test_uncovered_points_quirk_adds_a_first_class_prediction():
    gt = _scene()
    preds = [PredInstance(_mask(500, range(0, 100)), 1, 0.9)]
    plain = evaluate_s3dis([gt], [preds], NAMES)
    quirk = evaluate_s3dis([gt], [preds], NAMES, uncovered_as_instance=True)
    assert plain["per_class"]["chair"]["Prec50"] == 1.0
    assert quirk["per_class"]["chair"]["Prec50"] == pytest.approx(0.5)  # 400 uncovered pts: FP


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        evaluate_s3dis([_scene()], [[PredInstance(np.ones(3, bool), 1, 0.5)]], NAMES)
    with pytest.raises(ValueError, match="equal length"):
        S3DISEvaluator(NAMES, [1, 2])
    with pytest.raises(ValueError, match="no scenes"):
        S3DISEvaluator(NAMES).result()
