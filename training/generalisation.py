"""Generalisation report of a checkpoint (issue 12): in-distribution vs held-out shape families,
RGB-D frames, LiDAR sweeps, and what it publishes on scenes that hold nothing.

    python -m training.generalisation [CHECKPOINT] --scenes 8 --out gen_report

Sets (seeds disjoint from every training and validation seed of the shipped configs):
  classic          rooms of the original generator (synthetic.py), seeds 200000+ (the old card's)
  classic_frame    single sensor frames of that generator, as the demo plays them, seeds 930500+
  train_families   randomised multi-view RGB-D scans, training families and layouts, seeds 300000+
  heldout_scan / heldout_frame / heldout_lidar
                   held-out families, room shapes and layout styles, seeds 910000+
  noise / empty / clutter
                   no instances: counts of published instances (score >= --score-threshold)
AP / AP50 / AP25 follow the ScanNet benchmark (all instances the model returns, min region 100
points), per class, as the class mean, and class-agnostic (every instance one class). With
--kinect DIR the .pcd frames there are segmented and drawn as small PNGs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

NODE_SCORE_THRESHOLD = 0.4  # config/sphmask.yaml score_threshold, the node's default

SETS: dict[str, tuple[str, str, int]] = {  # name -> (split, kind, first seed)
    "classic": ("train", "classic", 200000),
    "classic_frame": ("train", "classic_frame", 930500),
    "train_families": ("train", "scan", 300000),
    "heldout_scan": ("heldout", "scan", 910000),
    "heldout_frame": ("heldout", "frame", 911000),
    "heldout_lidar": ("heldout", "lidar", 912000),
}
NEGATIVE_SETS = {"noise": 920000, "empty": 921000, "clutter": 922000}


def _scenes(name: str, n: int) -> Iterable:
    from sphmask_core.data import randomized as rz

    if name in SETS:
        split, kind, first = SETS[name]
        cfg = rz.RandomizedConfig(split=split)
        return (rz.generate_scene(first + i, cfg, kind) for i in range(n))
    first = NEGATIVE_SETS[name]
    cfg = rz.RandomizedConfig(split="heldout")
    return (rz.negative_scene(first + i, cfg, name) for i in range(n))


def _evaluate(gts: list, preds: list, names: list[str]) -> dict:
    from sphmask_core.evaluation.scannet_eval import evaluate_scannet

    res = evaluate_scannet(gts, preds, names, list(range(1, len(names) + 1)))
    return {"AP": res["AP"], "AP50": res["AP50"], "AP25": res["AP25"], "per_class": res["per_class"]}


def evaluate_sets(segment: Callable, class_names: list[str], label_shift: int, n: int,
                  score_threshold: float, sets: Iterable[str]) -> dict:
    """Metrics of every set; `segment(xyz, rgb)` returns Instances with every instance kept."""
    from sphmask_core.evaluation.scannet_eval import PredInstance, gt_ids_from_labels, pred_instances_from_masks

    out: dict = {}
    for name in sets:
        t0 = time.perf_counter()
        gts, preds, gts_agn, preds_agn, published = [], [], [], [], []
        for scene in _scenes(name, n):
            inst = segment(scene.xyz, scene.rgb)
            published.append(int((inst.scores >= score_threshold).sum()))
            if name in NEGATIVE_SETS:
                continue
            p = pred_instances_from_masks(inst.masks, inst.class_ids, inst.scores, scene.n_points)
            gts.append(gt_ids_from_labels(scene.semantic, scene.instance, label_shift))
            preds.append(p)
            agn_sem = np.where(scene.semantic >= label_shift, label_shift, scene.semantic)
            gts_agn.append(gt_ids_from_labels(agn_sem, scene.instance, label_shift))
            preds_agn.append([PredInstance(q.mask, 1, q.confidence) for q in p])
        row: dict = {"scenes": n, "published_per_scene": float(np.mean(published)),
                     "published_max": int(np.max(published)), "seconds": time.perf_counter() - t0}
        if name not in NEGATIVE_SETS:
            row["class"] = _evaluate(gts, preds, class_names)
            row["agnostic"] = _evaluate(gts_agn, preds_agn, ["object"])
            row["agnostic"].pop("per_class")
        out[name] = row
        print(f"{name}: {_line(row)}", flush=True)
    return out


def _line(row: dict) -> str:
    s = f"published/scene {row['published_per_scene']:.2f} (max {row['published_max']})"
    if "class" in row:
        c, a = row["class"], row["agnostic"]
        s = (f"class AP {c['AP']:.3f} AP50 {c['AP50']:.3f} AP25 {c['AP25']:.3f} | agnostic AP {a['AP']:.3f} "
             f"AP50 {a['AP50']:.3f} AP25 {a['AP25']:.3f} | " + s)
    return s


def kinect_pictures(segmenter, folder: Path, out: Path, score_threshold: float) -> list[dict]:
    """Segment each .pcd frame (optical frame: x right, y down, z forward) and draw it (small PNG)."""
    from sphmask_core.data.pcd import pcd_points, read_pcd
    from sphmask_core.render import render_instances

    rows = []
    for path in sorted(folder.glob("*.pcd")):
        xyz, rgb = pcd_points(read_pcd(path))
        keep = np.random.default_rng(0).permutation(len(xyz))[:60000]  # a robot would downsample too
        xyz, rgb = xyz[keep], (rgb[keep] if rgb is not None else None)
        # model frame: x forward, y left, z up (the camera is held about level)
        model_xyz = np.stack([xyz[:, 2], -xyz[:, 0], -xyz[:, 1]], axis=1)
        inst = segmenter(model_xyz, rgb)
        pub = np.flatnonzero(inst.scores >= score_threshold)
        png = out / f"kinect_{path.stem}.png"
        render_instances(png, model_xyz, inst, score_threshold=score_threshold, title=path.name,
                         size_px=(560, 640), dpi=80)
        rows.append({"frame": path.name, "published": [(inst.class_names[int(inst.class_ids[i])],
                     round(float(inst.scores[i]), 3), int(len(inst.masks[i]))) for i in pub], "png": png.name})
        print(f"{path.name}: {rows[-1]['published']}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.generalisation", description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", nargs="?", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--scenes", type=int, default=8, help="scenes per set")
    ap.add_argument("--sets", default=",".join([*SETS, *NEGATIVE_SETS]), help="comma-separated set names")
    ap.add_argument("--score-threshold", type=float, default=NODE_SCORE_THRESHOLD,
                    help="published instances: final score >= this (the node's default)")
    ap.add_argument("--kinect", type=Path, default=None, help="folder of .pcd frames to draw")
    ap.add_argument("--out", type=Path, default=Path("gen_report"))
    args = ap.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    unknown = [s for s in sets if s not in SETS and s not in NEGATIVE_SETS]
    if unknown or args.scenes < 1:
        print(f"python -m training.generalisation: unknown set {unknown[0]!r}" if unknown
              else "python -m training.generalisation: --scenes must be >= 1", file=sys.stderr)
        return 2
    import torch

    from sphmask_core.checkpoint import CheckpointError
    from sphmask_core.inference.segmenter import Segmenter

    torch.set_num_threads(1)
    try:
        seg = Segmenter.from_checkpoint(args.checkpoint, device="cpu")
    except (CheckpointError, FileNotFoundError, OSError) as exc:
        print(f"python -m training.generalisation: {exc}", file=sys.stderr)
        return 1
    # AP over every instance (benchmark setting); "published" applies the node threshold itself
    seg.cfg = dataclasses.replace(seg.cfg, test=dataclasses.replace(seg.cfg.test, score_threshold=0.0))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(args.checkpoint or "shipped"), "score_threshold": args.score_threshold,
              "sets": evaluate_sets(seg, list(seg.class_names), seg.cfg.labels.label_shift, args.scenes,
                                    args.score_threshold, sets)}
    if args.kinect is not None:
        report["kinect"] = kinect_pictures(seg, args.kinect, args.out, args.score_threshold)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out / 'report.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
