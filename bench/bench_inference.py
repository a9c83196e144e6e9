"""Inference latency per stage and peak memory of the Segmenter on synthetic rooms, fast vs reference.

    python bench/bench_inference.py                       # small + full, 20k..200k points, cpu (+cuda)
    python bench/bench_inference.py --configs full_scannet --sizes 50000 --threads 1
    python bench/bench_inference.py --checkpoint runs/x/best.pt --devices cuda

Every row is measured twice, interleaved run by run in the same process: "ref" is the model's
original path (every query gets a mask, reference dynamic convolution and assembly), "new" the
default fast path; the last column is ref total / new total. Both must give the same instances.
Without a checkpoint the weights are random; the foreground threshold is then opened (every voxel
is "object", no size filter) so the query stage and NMS run at their worst case. With
--checkpoint the rows are labelled with the checkpoint's config name and --configs is ignored.
Times are medians over `--repeats` runs after one warm-up run of each path. Peak memory: CUDA =
max allocated by torch during the path's runs; CPU = peak of torch's tensor memory during one
extra run of the path, from the profiler's allocation timeline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sphmask_core.config import apply_overrides, load_model_config
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from sphmask_core.inference.segmenter import Segmenter
from sphmask_core.model.spherical_mask import SphericalMask

STAGES = ("voxelize", "backbone", "aggregators", "heads", "migration_assembly", "nms", "total")


def _cpu_peak_mib(fn) -> float:
    """Peak of torch's CPU tensor memory (MiB) during ``fn()`` above its level at the start.

    From the profiler's allocation timeline (every allocation and free, in order). The resident
    set cannot measure this: after the first path's runs the allocator's freed pages stay
    resident, so the second path's growth reads 0.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak / 2**20


def build_segmenter(config: str, checkpoint: str | None, device: str) -> Segmenter:
    if checkpoint:
        return Segmenter.from_checkpoint(checkpoint, device=device)
    cfg = apply_overrides(
        load_model_config(config),
        {"test.filter_bg_thresh": 0.0, "test.npoint_thresh": 0, "test.min_points": 1, "test.score_threshold": 0.0},
    )
    torch.manual_seed(0)
    return Segmenter(SphericalMask(cfg), cfg, device=device)


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks)) and all(
        np.array_equal(getattr(a, f), getattr(b, f)) for f in ("scores", "class_ids")
    )


def bench_pair(seg: Segmenter, xyz: np.ndarray, rgb: np.ndarray, repeats: int) -> dict[str, dict[str, float]]:
    """Rows "ref" and "new" (ms per stage, peak MiB, instances) from interleaved runs; "same" flag."""
    dev = seg.device
    runs: dict[str, list[dict[str, float]]] = {"ref": [], "new": []}
    peak = {"ref": 0.0, "new": 0.0}
    last = {}
    for path in ("ref", "new"):  # warm-up: allocator, spconv kernels
        seg.reference = path == "ref"
        seg(xyz, rgb)
    for _ in range(repeats):
        for path in ("ref", "new"):
            seg.reference = path == "ref"
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
                base = torch.cuda.memory_allocated(dev)
                inst = seg(xyz, rgb)
                peak[path] = max(peak[path], (torch.cuda.max_memory_allocated(dev) - base) / 2**20)
            else:
                inst = seg(xyz, rgb)
            runs[path].append(inst.timings)
            last[path] = inst
    if dev.type == "cpu":  # one extra, profiled run per path (the profiler would skew the timings)
        for path in ("ref", "new"):
            seg.reference = path == "ref"
            peak[path] = _cpu_peak_mib(lambda: seg(xyz, rgb))
    seg.reference = False
    rows = {}
    for path in ("ref", "new"):
        row = {k: statistics.median(r.get(k, 0.0) for r in runs[path]) * 1000.0 for k in STAGES}
        row["peak_mib"] = peak[path]
        row["instances"] = float(len(last[path]))
        rows[path] = row
    rows["same"] = {"value": float(_same(last["ref"], last["new"]))}
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["small", "full_scannet"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[20000, 50000, 100000, 200000])
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint", default=None, help="benchmark this checkpoint instead of random weights")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    scenes = {}
    for n in sorted(args.sizes):
        t = time.perf_counter()
        scenes[n] = generate_scene(0, SyntheticConfig(target_points_range=(n, n), room_size_range=(6.0, 8.0)))
        print(f"# scene with {scenes[n].n_points} points generated in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    width = max(13, *(len(c) for c in args.configs)) if not args.checkpoint else 30
    header = f"{'config':<{width}} {'device':<6} {'points':>7} {'path':<4} " + " ".join(f"{s[:10]:>10}" for s in STAGES)
    header += f" {'peak MiB':>9} {'inst':>5} {'ref/new':>7}"
    print("times in ms (median of %d runs, threads %d)" % (args.repeats, torch.get_num_threads()))
    print(header)
    print("-" * len(header))
    configs = [None] if args.checkpoint else args.configs
    for config in configs:
        for device in devices:
            seg = build_segmenter(config, args.checkpoint, device)
            label = f"{Path(args.checkpoint).stem}:{seg.cfg.name}" if args.checkpoint else config
            for n in sorted(args.sizes):
                sc = scenes[n]
                rows = bench_pair(seg, sc.xyz, sc.rgb, args.repeats)
                ratio = rows["ref"]["total"] / max(rows["new"]["total"], 1e-9)
                for path in ("ref", "new"):
                    row = rows[path]
                    cells = " ".join(f"{row[s]:>10.1f}" for s in STAGES)
                    tail = f" {ratio:>6.2f}x" if path == "new" else ""
                    if path == "new" and not rows["same"]["value"]:
                        tail += "  RESULTS DIFFER"
                    print(f"{label:<{width}} {device:<6} {n:>7} {path:<4} {cells} {row['peak_mib']:>9.0f} "
                          f"{int(row['instances']):>5}{tail}", flush=True)
            del seg
            if device == "cuda":
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
