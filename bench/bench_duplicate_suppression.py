"""AP with and without the hard duplicate suppression after matrix NMS (`test.duplicate_iou`).

    python bench/bench_duplicate_suppression.py                       # shipped model, seeds 200000:200020
    python bench/bench_duplicate_suppression.py --checkpoint runs/x/best.pt --seeds 200000:200050

The model runs once per scene; every (score threshold, duplicate_iou) row post-processes the same
raw predictions, so rows differ only in the suppression. Rows at score threshold 0 are the
benchmark setting, rows at the node's default threshold (0.4) what the node publishes. Columns:
class AP / AP50 / AP25 of the ScanNet evaluator, instances per scene, and the largest same-scene
mask IoU among the reported instances (mean over scenes) - the duplicates the suppression targets.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sphmask_core.evaluation.scannet_eval import (  # noqa: E402
    ScanNetEvaluator,
    gt_ids_from_labels,
    pred_instances_from_masks,
)
from sphmask_core.inference.nms import max_overlap  # noqa: E402
from sphmask_core.inference.segmenter import Segmenter, postprocess  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--seeds", default="200000:200020")
    ap.add_argument("--thresholds", default="0,0.4", help="score thresholds, comma separated")
    ap.add_argument("--ious", default="0,0.3,0.5,0.7", help="duplicate_iou values (0 = off)")
    ap.add_argument("--min-region-size", type=int, default=100)
    args = ap.parse_args()
    from training.predict import _seed_range, _synthetic_scenes, _train_dataset_config

    torch.set_num_threads(max(1, torch.get_num_threads()))
    seg = Segmenter.from_checkpoint(args.checkpoint, device="cpu")
    generator = _train_dataset_config(Path(args.checkpoint) if args.checkpoint else None).get("synthetic", {})
    rows = [(float(t), float(i)) for t in args.thresholds.split(",") for i in args.ious.split(",")]
    n_cls = len(seg.class_names)
    evals = {r: ScanNetEvaluator(seg.class_names, list(range(1, n_cls + 1)), args.min_region_size) for r in rows}
    counts: dict = {r: [] for r in rows}
    overlaps: dict = {r: [] for r in rows}
    base = seg.cfg.test
    for scene in _synthetic_scenes(_seed_range(args.seeds), generator, 0):
        with torch.inference_mode():
            batch = seg._batch(scene.xyz, scene.rgb, scene.superpoint)
            pred = seg.model.forward_test(batch, reference=seg.reference)[0]
            gt = gt_ids_from_labels(scene.semantic, scene.instance, seg.cfg.labels.label_shift)
            for thr, iou in rows:
                tcfg = replace(base, score_threshold=thr, duplicate_iou=iou)
                inst = postprocess(pred, torch.from_numpy(scene.xyz), tcfg, seg.class_names,
                                   seg.cfg.heads.n_theta, seg.cfg.heads.n_phi, superpoint=batch.superpoint)
                evals[(thr, iou)].add_scene(gt, pred_instances_from_masks(inst.masks, inst.class_ids,
                                                                          inst.scores, len(scene.xyz)))
                counts[(thr, iou)].append(len(inst.masks))
                overlaps[(thr, iou)].append(max_overlap(inst.masks))
    print(f"{len(counts[rows[0]])} synthetic scenes {args.seeds}, checkpoint {args.checkpoint or 'shipped'}")
    print(f"{'score_thr':>9} {'dup_iou':>7} {'AP':>7} {'AP50':>7} {'AP25':>7} {'inst/scene':>10} {'max IoU':>8}")
    ref = {}
    for thr, iou in rows:
        res = evals[(thr, iou)].result()
        ref.setdefault(thr, res["AP"])
        print(f"{thr:9.2f} {iou:7.2f} {res['AP']:7.4f} {res['AP50']:7.4f} {res['AP25']:7.4f} "
              f"{np.mean(counts[(thr, iou)]):10.2f} {np.mean(overlaps[(thr, iou)]):8.3f}"
              f"   AP / off = {res['AP'] / max(ref[thr], 1e-12):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
