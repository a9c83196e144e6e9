"""ScanNet benchmark AP: hand-made cases, invariances and a loop-based reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sphmask_core.evaluation.scannet_eval import (
    IOU_THRESHOLDS,
    PredInstance,
    ScanNetEvaluator,
    average_precision,
    evaluate_scannet,
    gt_ids_from_labels,
    pred_instances_from_masks,
)

NAMES = ["chair", "table", "sofa"]
IDS = [5, 7, 6]


def _mask(n: int, idx) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[np.asarray(idx)] = True
    return m


def _two_chairs_scene() -> np.ndarray:
    """400 points: chair#1 on 0..99, chair#2 on 100..199, table#1 on 200..299, void 300..399."""
    gt = np.zeros(400, dtype=np.int64)
    gt[:100] = 5001
    gt[100:200] = 5002
    gt[200:300] = 7001
    return gt


# ------------------------------------------------------------------------------------------
# Loop-based reference: a literal, per-instance re-statement of the official script's logic
# ------------------------------------------------------------------------------------------


def reference_ap(gt_list, pred_list, class_names, valid_ids, min_size):
    scenes = []
    for s, (gt, preds) in enumerate(zip(gt_list, pred_list)):
        gts = {c: [] for c in class_names}
        for gid in np.unique(gt):
            if gid == 0:
                continue
            lab = int(gid) // 1000
            if lab in valid_ids:
                name = class_names[valid_ids.index(lab)]
                gts[name].append({"id": int(gid), "count": int((gt == gid).sum()), "preds": []})
        void = ~np.isin(gt // 1000, valid_ids)
        prs = {c: [] for c in class_names}
        for k, p in enumerate(preds):
            if p.label_id not in valid_ids:
                continue
            cnt = int(p.mask.sum())
            if cnt < min_size:
                continue
            name = class_names[valid_ids.index(p.label_id)]
            pi = {"key": (s, k), "count": cnt, "conf": p.confidence,
                  "void": int((void & p.mask).sum()), "gts": []}
            for g in gts[name]:
                inter = int(((gt == g["id"]) & p.mask).sum())
                if inter > 0:
                    g["preds"].append((pi, inter))
                    pi["gts"].append((g, inter))
            prs[name].append(pi)
        scenes.append((gts, prs))

    table = np.zeros((len(class_names), len(IOU_THRESHOLDS)))
    for ti, th in enumerate(IOU_THRESHOLDS):
        visited = set()
        for ci, name in enumerate(class_names):
            y_true, y_score = [], []
            hard_fn = 0
            has_gt = has_pred = False
            for gts, prs in scenes:
                evald = [g for g in gts[name] if g["id"] >= 1000 and g["count"] >= min_size]
                has_gt |= bool(evald)
                has_pred |= bool(prs[name])
                for g in evald:
                    got = None
                    for pi, inter in g["preds"]:
                        if pi["key"] in visited:
                            continue
                        iou = inter / (g["count"] + pi["count"] - inter)
                        if iou > th:
                            if got is None:
                                got = pi["conf"]
                                visited.add(pi["key"])
                            else:
                                y_true.append(0)
                                y_score.append(min(got, pi["conf"]))
                                got = max(got, pi["conf"])
                    if got is None:
                        hard_fn += 1
                    else:
                        y_true.append(1)
                        y_score.append(got)
                for pi in prs[name]:
                    if any(inter / (g["count"] + pi["count"] - inter) > th for g, inter in pi["gts"]):
                        continue
                    ign = pi["void"]
                    for g, inter in pi["gts"]:
                        if g["id"] < 1000:
                            ign += inter
                        if g["count"] < min_size:
                            ign += inter
                    if ign / pi["count"] <= th:
                        y_true.append(0)
                        y_score.append(pi["conf"])
            if not has_gt:
                table[ci, ti] = np.nan
                continue
            if not has_pred or not y_score:
                table[ci, ti] = 0.0
                continue
            # precision/recall at each distinct score threshold, by direct counting
            ys, yt = np.array(y_score), np.array(y_true)
            uniq = sorted(set(y_score))
            prec, rec = [], []
            for u in uniq:
                sel = ys >= u
                tp = int(yt[sel].sum())
                fp = int(sel.sum()) - tp
                fn = int(yt[~sel].sum()) + hard_fn
                prec.append(tp / (tp + fp))
                rec.append(tp / (tp + fn))
            prec.append(1.0)
            rec.append(0.0)
            ap = 0.0
            for i in range(len(prec)):
                left = rec[i - 1] if i > 0 else rec[0]
                right = rec[i + 1] if i + 1 < len(rec) else 0.0
                ap += prec[i] * 0.5 * (left - right)
            table[ci, ti] = ap
    return table


def _random_case(rng: np.random.Generator, n_scenes: int, with_group: bool):
    valid = [0, 5, 7] if with_group else [5, 7, 6]
    names = ["grp", "chair", "table"] if with_group else NAMES
    gt_list, pred_list = [], []
    for _ in range(n_scenes):
        n = int(rng.integers(600, 1500))
        gt = np.zeros(n, dtype=np.int64)
        perm = rng.permutation(n)
        pos = 0
        insts = []
        for j in range(int(rng.integers(2, 9))):
            size = int(rng.integers(5, 200))
            lab = int(rng.choice(valid + [1]))  # 1 = stuff label, never evaluated
            gid = lab * 1000 + j + 1
            idx = perm[pos:pos + size]
            pos += size
            gt[idx] = gid
            insts.append((idx, lab))
        preds = []
        for _ in range(int(rng.integers(0, 14))):
            kind = rng.integers(0, 5)
            if kind == 0 and insts:  # noisy copy of a GT
                idx, lab = insts[int(rng.integers(len(insts)))]
                keep = idx[rng.random(idx.size) < rng.uniform(0.5, 1.0)]
                extra = rng.choice(n, int(rng.integers(0, 60)), replace=False)
                m = _mask(n, np.concatenate([keep, extra]).astype(np.int64))
            elif kind == 1 and len(insts) >= 2:  # union of two GTs (conflicts at IoU 0.25)
                a, b = rng.choice(len(insts), 2, replace=False)
                lab = insts[a][1]
                m = _mask(n, np.concatenate([insts[a][0], insts[b][0]]))
            elif kind == 2:  # random blob, possibly on void
                m = rng.random(n) < rng.uniform(0.01, 0.2)
                lab = int(rng.choice(valid))
            elif kind == 3:  # only void points
                void_idx = np.flatnonzero(gt == 0)
                m = _mask(n, void_idx[: int(rng.integers(0, void_idx.size + 1))])
                lab = int(rng.choice(valid))
            else:  # any label, including unevaluated ones
                m = rng.random(n) < 0.05
                lab = int(rng.choice(valid + [1, 40]))
            if lab == 1 and kind < 2:
                lab = int(rng.choice(valid))
            conf = float(np.round(rng.random(), 1 if rng.random() < 0.3 else 6))
            preds.append(PredInstance(mask=m, label_id=lab, confidence=conf))
            if rng.random() < 0.15:  # exact duplicate with another score
                preds.append(PredInstance(mask=m.copy(), label_id=lab, confidence=float(rng.random())))
        gt_list.append(gt)
        pred_list.append(preds)
    return gt_list, pred_list, names, valid


@pytest.mark.parametrize("seed", range(8))
def test_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    gt_list, pred_list, names, valid = _random_case(rng, 6, with_group=(seed % 4 == 3))
    ref = reference_ap(gt_list, pred_list, names, valid, 20)
    ev = ScanNetEvaluator(names, valid, min_region_size=20)
    for g, p in zip(gt_list, pred_list):
        ev.add_scene(g, p)
    got = ev.ap_table()
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0, equal_nan=True)
    res = ev.result()
    main = ref[:, ~np.isclose(IOU_THRESHOLDS, 0.25)]
    if np.any(~np.isnan(main)):
        assert res["AP"] == pytest.approx(float(np.nanmean(main)), abs=1e-6)


def test_reference_case_exercises_order_dependent_matching():
    """Guard: the random cases do contain predictions above 0.25 IoU with two GTs."""
    rng = np.random.default_rng(1)
    found = False
    for _ in range(3):
        gt_list, pred_list, names, valid = _random_case(rng, 6, with_group=False)
        for gt, preds in zip(gt_list, pred_list):
            for p in preds:
                ious = []
                for gid in np.unique(gt[p.mask]):
                    if gid // 1000 == p.label_id:
                        g = gt == gid
                        inter = (g & p.mask).sum()
                        ious.append(inter / (g | p.mask).sum())
                found |= sum(i > 0.25 for i in ious) >= 2
    assert found


# ------------------------------------------------------------------------------------------
# Hand-made cases with known AP
# ------------------------------------------------------------------------------------------


def test_perfect_predictions_give_one():
    gt = _two_chairs_scene()
    preds = [
        PredInstance(_mask(400, range(0, 100)), 5, 0.9),
        PredInstance(_mask(400, range(100, 200)), 5, 0.8),
        PredInstance(_mask(400, range(200, 300)), 7, 0.7),
    ]
    res = evaluate_scannet([gt], [preds], NAMES, IDS)
    assert res["AP"] == pytest.approx(1.0)
    assert res["AP50"] == pytest.approx(1.0)
    assert res["AP25"] == pytest.approx(1.0)
    assert res["per_class"]["chair"] == pytest.approx({"AP": 1.0, "AP50": 1.0, "AP25": 1.0})
    assert math.isnan(res["per_class"]["sofa"]["AP"])  # no GT, no prediction


def test_prediction_on_void_is_not_a_false_positive():
    gt = _two_chairs_scene()
    perfect = [
        PredInstance(_mask(400, range(0, 100)), 5, 0.5),
        PredInstance(_mask(400, range(100, 200)), 5, 0.5),
        PredInstance(_mask(400, range(200, 300)), 7, 0.5),
    ]
    on_void = PredInstance(_mask(400, range(300, 400)), 5, 0.99)
    res = evaluate_scannet([gt], [perfect + [on_void]], NAMES, IDS)
    assert res["AP"] == pytest.approx(1.0)
    # The same mask on annotated table points (no chair overlap) is a false positive.
    on_table = PredInstance(_mask(400, range(200, 300)), 5, 0.99)
    res2 = evaluate_scannet([gt], [perfect + [on_table]], NAMES, IDS)
    # chair curve: FP@0.99 -> (p=1/3, r=1) at 0.5, artificial (1, 0): AP = 1/3
    assert res2["per_class"]["chair"]["AP"] == pytest.approx(1 / 3)


def test_prediction_on_small_gt_is_ignored():
    gt = _two_chairs_scene()
    gt[300:350] = 5003  # chair with 50 < 100 points: not evaluated, overlap ignorable
    preds = [
        PredInstance(_mask(400, range(0, 100)), 5, 0.5),
        PredInstance(_mask(400, range(100, 200)), 5, 0.5),
        PredInstance(_mask(400, range(300, 400)), 5, 0.9),  # small chair + void
    ]
    res = evaluate_scannet([gt], [preds], NAMES, IDS)
    assert res["per_class"]["chair"]["AP"] == pytest.approx(1.0)


def test_duplicate_prediction_is_one_tp_one_fp():
    gt = _two_chairs_scene()
    chair1 = _mask(400, range(0, 100))
    preds = [
        PredInstance(chair1, 5, 0.9),
        PredInstance(chair1.copy(), 5, 0.8),  # duplicate of chair 1
        PredInstance(_mask(400, range(100, 200)), 5, 0.7),
    ]
    res = evaluate_scannet([gt], [preds], NAMES, IDS)
    # Scores ascending: 0.7 TP, 0.8 FP, 0.9 TP; 2 GTs. Per distinct score s (detections >= s):
    #  s=0.7: tp 2 fp 1 -> p 2/3 r 1;  s=0.8: tp 1 fp 1 -> p 1/2 r 1/2;  s=0.9: p 1 r 1/2;
    #  artificial (p 1, r 0). Padded recall [1, 1, 1/2, 1/2, 0, 0] convolved with
    #  [-1/2, 0, 1/2] -> widths [1/4, 1/4, 1/4, 1/4]; AP = (2/3 + 1/2 + 1 + 1) / 4 = 19/24.
    assert res["per_class"]["chair"]["AP"] == pytest.approx(19 / 24)
    assert res["per_class"]["chair"]["AP50"] == pytest.approx(19 / 24)
    # The duplicate keeps the lower score even when it is listed first with the higher one.
    preds_swapped = [
        PredInstance(chair1.copy(), 5, 0.8),
        PredInstance(chair1, 5, 0.9),
        PredInstance(_mask(400, range(100, 200)), 5, 0.7),
    ]
    res2 = evaluate_scannet([gt], [preds_swapped], NAMES, IDS)
    assert res2["per_class"]["chair"]["AP"] == pytest.approx(19 / 24)
    # A single chair GT with the duplicate pair only: TP 0.9, FP 0.8.
    # s=0.8: p 1/2 r 1; s=0.9: p 1 r 1; widths [0, 1/2, 1/2] -> AP 1 (the FP ranks below).
    gt1 = gt.copy()
    gt1[100:200] = 0
    res3 = evaluate_scannet([gt1], [preds[:2]], NAMES, IDS)
    assert res3["per_class"]["chair"]["AP"] == pytest.approx(1.0)


def test_iou_equal_to_threshold_does_not_match():
    gt = np.zeros(400, dtype=np.int64)
    gt[:200] = 5001
    preds = [PredInstance(_mask(400, range(0, 100)), 5, 0.9)]  # IoU exactly 0.5
    res = evaluate_scannet([gt], [preds], NAMES, IDS)
    assert res["per_class"]["chair"]["AP50"] == 0.0
    assert res["per_class"]["chair"]["AP25"] == pytest.approx(1.0)


def test_ignored_fraction_equal_to_threshold_is_a_false_positive():
    gt = _two_chairs_scene()
    gt[100:200] = 0
    blob = _mask(400, list(range(250, 300)) + list(range(300, 350)))  # half table, half void
    preds = [PredInstance(_mask(400, range(0, 100)), 5, 0.5), PredInstance(blob, 5, 0.9)]
    res = evaluate_scannet([gt], [preds], NAMES, IDS)
    # IoU 0.5: ignored fraction 0.5 <= 0.5 -> FP above the TP:
    #   s=0.5: p 1/2 r 1; s=0.9: p 0 r 0; widths [1/2, 1/2, 0] -> AP 1/4.
    assert res["per_class"]["chair"]["AP50"] == pytest.approx(0.25)
    # IoU 0.25: 0.5 > 0.25 -> ignored.
    assert res["per_class"]["chair"]["AP25"] == pytest.approx(1.0)


def test_class_with_gt_but_no_prediction_is_zero_and_counts_in_mean():
    gt = _two_chairs_scene()
    preds = [
        PredInstance(_mask(400, range(0, 100)), 5, 0.9),
        PredInstance(_mask(400, range(100, 200)), 5, 0.8),
    ]
    res = evaluate_scannet([gt], [preds], NAMES, IDS)
    assert res["per_class"]["table"]["AP"] == 0.0
    assert math.isnan(res["per_class"]["sofa"]["AP"])
    assert res["AP"] == pytest.approx(0.5)  # mean of chair 1.0 and table 0.0, sofa excluded


def test_class_with_predictions_only_is_nan_as_in_the_official_script():
    """Official rule: AP is 0 when a class has GT but nothing detected; NaN without GT at all,
    even if predictions exist (the benchmark script's ``elif has_gt`` branch)."""
    gt = _two_chairs_scene()
    preds = [
        PredInstance(_mask(400, range(0, 100)), 5, 0.9),
        PredInstance(_mask(400, range(100, 200)), 5, 0.9),
        PredInstance(_mask(400, range(200, 300)), 7, 0.9),
        PredInstance(_mask(400, range(300, 400)), 6, 0.9),  # sofa, there is no sofa
    ]
    res = evaluate_scannet([gt], [preds], NAMES, IDS)
    assert math.isnan(res["per_class"]["sofa"]["AP"])
    assert res["AP"] == pytest.approx(1.0)


def test_min_region_size_drops_small_predictions():
    gt = np.zeros(60, dtype=np.int64)
    gt[:20] = 5001
    preds = [PredInstance(_mask(60, range(0, 20)), 5, 0.5)]
    assert evaluate_scannet([gt], [preds], NAMES, IDS, min_region_size=10)["AP"] == pytest.approx(1.0)
    # With the default 100, neither GT nor prediction counts: everything NaN.
    assert math.isnan(evaluate_scannet([gt], [preds], NAMES, IDS)["AP"])


def test_average_precision_hand_computed():
    # scores 0.2 (TP), 0.6 (FP), 0.9 (TP), one missed GT:
    # >=0.2: p 2/3 r 2/3; >=0.6: p 1/2 r 1/3; >=0.9: p 1 r 1/3; (1, 0)
    # widths: [(2/3-1/3)/2, (2/3-1/3)/2, (1/3-0)/2, (1/3-0)/2] = [1/6, 1/6, 1/6, 1/6]
    ap = average_precision(np.array([0.2, 0.6, 0.9]), np.array([1, 0, 1], bool), 1)
    assert ap == pytest.approx((2 / 3 + 1 / 2 + 1 + 1) / 6)


# ------------------------------------------------------------------------------------------
# Invariances
# ------------------------------------------------------------------------------------------


def test_point_shuffle_and_prediction_order_do_not_matter():
    rng = np.random.default_rng(7)
    gt_list, pred_list, names, valid = _random_case(rng, 4, with_group=False)
    # distinct scores
    for preds in pred_list:
        for p in preds:
            p.confidence = float(rng.random())
    base = evaluate_scannet(gt_list, pred_list, names, valid, min_region_size=20)

    shuffled_gt, shuffled_preds = [], []
    for gt, preds in zip(gt_list, pred_list):
        perm = rng.permutation(gt.shape[0])
        shuffled_gt.append(gt[perm])
        reordered = [preds[i] for i in rng.permutation(len(preds))]
        shuffled_preds.append([PredInstance(p.mask[perm], p.label_id, p.confidence) for p in reordered])
    moved = evaluate_scannet(shuffled_gt, shuffled_preds, names, valid, min_region_size=20)
    # Reordering predictions can change matches only below IoU 0.5 (a prediction overlapping two
    # GTs by > 0.25 IoU): AP and AP50 are order invariant by construction.
    for key in ("AP", "AP50"):
        assert moved[key] == pytest.approx(base[key], abs=1e-12, nan_ok=True)
    # Shuffling points alone changes nothing at all.
    pts_only = [
        [PredInstance(p.mask[perm], p.label_id, p.confidence) for p in preds]
        for preds, perm in zip(pred_list, [np.arange(g.shape[0])[::-1] for g in gt_list])
    ]
    flipped = evaluate_scannet([g[::-1] for g in gt_list], pts_only, names, valid, min_region_size=20)
    assert flipped["AP25"] == pytest.approx(base["AP25"], abs=1e-12, nan_ok=True)
    for c in names:
        assert flipped["per_class"][c] == pytest.approx(base["per_class"][c], abs=1e-12, nan_ok=True)


def _assert_same_result(a: dict, b: dict) -> None:
    for key in ("AP", "AP50", "AP25"):
        assert a[key] == pytest.approx(b[key], abs=1e-12, nan_ok=True)
    for c in a["per_class"]:
        assert a["per_class"][c] == pytest.approx(b["per_class"][c], abs=1e-12, nan_ok=True)


def test_order_invariance_when_predictions_are_separated():
    gt = np.zeros(1000, dtype=np.int64)
    gt[:200], gt[200:400], gt[400:600] = 5001, 5002, 7001
    preds = [
        PredInstance(_mask(1000, range(0, 200)), 5, 0.3),
        PredInstance(_mask(1000, range(0, 150)), 5, 0.6),  # duplicate at IoU <= 0.75
        PredInstance(_mask(1000, range(200, 330)), 5, 0.2),  # IoU 0.65
        PredInstance(_mask(1000, range(400, 600)), 7, 0.9),
        PredInstance(_mask(1000, range(470, 720)), 7, 0.4),  # IoU 0.41, partly on void
        PredInstance(_mask(1000, range(800, 1000)), 7, 0.5),  # void only
    ]
    base = evaluate_scannet([gt], [preds], NAMES, IDS)
    assert 0.0 < base["per_class"]["chair"]["AP"] < 1.0
    for perm in ([5, 4, 3, 2, 1, 0], [2, 0, 5, 1, 3, 4]):
        _assert_same_result(evaluate_scannet([gt], [[preds[i] for i in perm]], NAMES, IDS), base)


# ------------------------------------------------------------------------------------------
# Conversions and input validation
# ------------------------------------------------------------------------------------------


def test_gt_ids_from_labels_encoding():
    sem = np.array([0, 1, 2, 2, 5, -100, 3])
    ins = np.array([-100, -100, 0, 1, 2, -100, 0])
    ids = gt_ids_from_labels(sem, ins, label_shift=2)
    assert ids.tolist() == [0, 0, 1001, 1002, 4003, 0, 2001]
    with pytest.raises(ValueError, match="instance id"):
        gt_ids_from_labels(np.array([2]), np.array([1000]), 2)
    with pytest.raises(ValueError, match="equal length"):
        gt_ids_from_labels(np.array([2, 3]), np.array([1]), 2)


def test_pred_instances_from_masks_round_trip_to_perfect_ap():
    sem = np.full(300, 1)
    ins = np.full(300, -100)
    sem[:120], ins[:120] = 2, 0  # class 0
    sem[120:250], ins[120:250] = 4, 1  # class 2
    gt = gt_ids_from_labels(sem, ins, label_shift=2)
    preds = pred_instances_from_masks(
        [np.arange(0, 120), np.arange(120, 250)], np.array([0, 2]), np.array([0.9, 0.8]), 300
    )
    assert [p.label_id for p in preds] == [1, 3]
    res = evaluate_scannet([gt], [preds], ["a", "b", "c"], [1, 2, 3])
    assert res["per_class"]["a"]["AP"] == pytest.approx(1.0)
    assert res["per_class"]["c"]["AP"] == pytest.approx(1.0)
    assert math.isnan(res["per_class"]["b"]["AP"])
    with pytest.raises(ValueError, match="indices"):
        pred_instances_from_masks([np.array([300])], np.array([0]), np.array([1.0]), 300)


def test_bad_inputs_raise():
    gt = _two_chairs_scene()
    with pytest.raises(ValueError, match="shape"):
        evaluate_scannet([gt], [[PredInstance(np.ones(5, bool), 5, 0.5)]], NAMES, IDS)
    with pytest.raises(ValueError, match="confidence"):
        evaluate_scannet([gt], [[PredInstance(np.ones(400, bool), 5, float("nan"))]], NAMES, IDS)
    with pytest.raises(ValueError, match="equal length"):
        evaluate_scannet([gt], [[]], NAMES, IDS[:2])
    with pytest.raises(ValueError, match="prediction lists"):
        evaluate_scannet([gt], [], NAMES, IDS)
