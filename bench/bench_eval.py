"""Time the ScanNet evaluator on benchmark-sized synthetic data, against a naive loop version.

    python bench/bench_eval.py [--scenes 300] [--points 150000] [--gt 30] [--preds 100]

Scenes are built from a small pool of distinct random scenes (masks are cheap random segments of
a point permutation), so memory stays bounded; only evaluation is timed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sphmask_core.evaluation.scannet_eval import (
    IOU_THRESHOLDS,
    SCANNET_CLASS_NAMES,
    SCANNET_LABEL_IDS,
    PredInstance,
    ScanNetEvaluator,
    average_precision,
)


def make_scene(rng: np.random.Generator, n: int, n_gt: int, n_pred: int) -> tuple[np.ndarray, list[PredInstance]]:
    perm = rng.permutation(n)
    sizes = rng.integers(200, 2 * int(0.7 * n / n_gt), n_gt)
    sizes = np.minimum(sizes, int(0.9 * n) // n_gt)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    labels = rng.choice(SCANNET_LABEL_IDS, n_gt)
    gt = np.zeros(n, dtype=np.int64)
    gt[perm[int(sizes.sum()):int(sizes.sum()) + n // 10]] = 1 * 1000 + 999  # a "wall" (not evaluated)
    for j, (s, z, lab) in enumerate(zip(starts, sizes, labels)):
        gt[perm[s:s + z]] = lab * 1000 + j + 1
    preds = []
    for _ in range(n_pred):
        j = int(rng.integers(n_gt))
        shift = int(rng.integers(-sizes[j] // 2, sizes[j] // 2 + 1))
        length = int(sizes[j] * rng.uniform(0.6, 1.4))
        lo = int(np.clip(starts[j] + shift, 0, n - 1))
        mask = np.zeros(n, dtype=bool)
        mask[perm[lo:lo + length]] = True
        lab = int(labels[j]) if rng.random() < 0.8 else int(rng.choice(SCANNET_LABEL_IDS))
        preds.append(PredInstance(mask=mask, label_id=lab, confidence=float(rng.random())))
    return gt, preds


def naive_ap(gt_list, pred_list, min_size: int = 100) -> np.ndarray:
    """Per-instance loops as in the official script (boolean mask per GT x prediction pair)."""
    names, valid = list(SCANNET_CLASS_NAMES), list(SCANNET_LABEL_IDS)
    scenes = []
    for s, (gt, preds) in enumerate(zip(gt_list, pred_list)):
        gts = {c: [] for c in names}
        for gid in np.unique(gt):
            if gid and gid // 1000 in valid:
                gts[names[valid.index(gid // 1000)]].append(
                    {"id": int(gid), "count": int(np.count_nonzero(gt == gid)), "preds": []})
        void = ~np.isin(gt // 1000, valid)
        prs = {c: [] for c in names}
        for k, p in enumerate(preds):
            cnt = int(np.count_nonzero(p.mask))
            if p.label_id not in valid or cnt < min_size:
                continue
            c = names[valid.index(p.label_id)]
            pi = {"key": (s, k), "count": cnt, "conf": p.confidence,
                  "void": int(np.count_nonzero(void & p.mask)), "gts": []}
            for g in gts[c]:
                inter = int(np.count_nonzero((gt == g["id"]) & p.mask))
                if inter:
                    g["preds"].append((pi, inter))
                    pi["gts"].append((g, inter))
            prs[c].append(pi)
        scenes.append((gts, prs))
    table = np.full((len(names), len(IOU_THRESHOLDS)), np.nan)
    for ti, th in enumerate(IOU_THRESHOLDS):
        visited = set()
        for ci, c in enumerate(names):
            score, true, hard_fn, has_gt, has_pred = [], [], 0, False, False
            for gts, prs in scenes:
                ev = [g for g in gts[c] if g["id"] >= 1000 and g["count"] >= min_size]
                has_gt |= bool(ev)
                has_pred |= bool(prs[c])
                for g in ev:
                    got = None
                    for pi, inter in g["preds"]:
                        if pi["key"] in visited or inter / (g["count"] + pi["count"] - inter) <= th:
                            continue
                        if got is None:
                            got = pi["conf"]
                            visited.add(pi["key"])
                        else:
                            score.append(min(got, pi["conf"]))
                            true.append(False)
                            got = max(got, pi["conf"])
                    if got is None:
                        hard_fn += 1
                    else:
                        score.append(got)
                        true.append(True)
                for pi in prs[c]:
                    if any(i / (g["count"] + pi["count"] - i) > th for g, i in pi["gts"]):
                        continue
                    ign = pi["void"] + sum(i for g, i in pi["gts"] if g["count"] < min_size or g["id"] < 1000)
                    if ign / pi["count"] <= th:
                        score.append(pi["conf"])
                        true.append(False)
            if has_gt:
                table[ci, ti] = average_precision(np.array(score), np.array(true, bool), hard_fn) if has_pred else 0.0
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=300)
    ap.add_argument("--points", type=int, default=150_000)
    ap.add_argument("--gt", type=int, default=30)
    ap.add_argument("--preds", type=int, default=100)
    ap.add_argument("--pool", type=int, default=8, help="distinct scenes generated")
    ap.add_argument("--naive-scenes", type=int, default=6)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    pool = [make_scene(rng, args.points, args.gt, args.preds) for _ in range(args.pool)]
    print(f"generated {args.pool} distinct scenes in {time.perf_counter() - t0:.1f} s "
          f"({args.points} points, {args.gt} GT, {args.preds} predictions each)")

    ev = ScanNetEvaluator(SCANNET_CLASS_NAMES, SCANNET_LABEL_IDS)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(args.scenes):
        ev.add_scene(*pool[i % args.pool])
    t_add = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = ev.result()
    t_match = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    total = t_add + t_match
    print(f"vectorized: {args.scenes} scenes in {total:.2f} s ({args.scenes / total:.1f} scenes/s; "
          f"intersections {t_add:.2f} s, matching+AP {t_match:.2f} s; CPU time {cpu:.2f} s)  "
          f"AP {res['AP']:.4f}")

    k = args.naive_scenes
    sub_gt = [pool[i % args.pool][0] for i in range(k)]
    sub_pr = [pool[i % args.pool][1] for i in range(k)]
    t0 = time.perf_counter()
    ref = naive_ap(sub_gt, sub_pr)
    t_naive = (time.perf_counter() - t0) / k
    ev_small = ScanNetEvaluator(SCANNET_CLASS_NAMES, SCANNET_LABEL_IDS)
    t0 = time.perf_counter()
    for g, p in zip(sub_gt, sub_pr):
        ev_small.add_scene(g, p)
    fast = ev_small.ap_table()
    t_fast = (time.perf_counter() - t0) / k
    diff = float(np.nanmax(np.abs(fast - ref))) if np.any(~np.isnan(ref)) else 0.0
    same_nan = bool(np.array_equal(np.isnan(fast), np.isnan(ref)))
    print(f"naive loop: {t_naive:.3f} s/scene vs vectorized {t_fast:.3f} s/scene on {k} scenes "
          f"-> {t_naive / t_fast:.1f}x; max |AP diff| {diff:.2e}, NaN pattern equal: {same_nan}")
    print(f"naive extrapolated to {args.scenes} scenes: {t_naive * args.scenes:.0f} s")


if __name__ == "__main__":
    main()
