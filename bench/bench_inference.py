"""Inference latency per stage and peak memory of the Segmenter on synthetic rooms.

    python bench/bench_inference.py                       # small + full, 20k..200k points, cpu (+cuda)
    python bench/bench_inference.py --configs small --sizes 20000 50000 --repeats 3
    python bench/bench_inference.py --checkpoint runs/x/best.pt --devices cuda

Without a checkpoint the weights are random; the foreground threshold is then opened (every
voxel is "object", no size filter) so the query stage and NMS run at their worst case. Times
are medians over `--repeats` runs after one warm-up run. Peak memory: CUDA = max allocated by
torch during the run; CPU = growth of the process's peak resident set (0 once an earlier,
larger run set the peak, hence sizes run in ascending order).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import numpy as np
import torch

from sphmask_core.config import apply_overrides, load_model_config
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from sphmask_core.inference.segmenter import Segmenter
from sphmask_core.model.spherical_mask import SphericalMask

STAGES = ("voxelize", "backbone", "aggregators", "heads", "migration_assembly", "nms", "total")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def build_segmenter(config: str, checkpoint: str | None, device: str) -> Segmenter:
    if checkpoint:
        return Segmenter.from_checkpoint(checkpoint, device=device)
    cfg = apply_overrides(
        load_model_config(config), {"test.filter_bg_thresh": 0.0, "test.npoint_thresh": 0, "test.min_points": 1}
    )
    torch.manual_seed(0)
    return Segmenter(SphericalMask(cfg), cfg, device=device)


def bench_one(seg: Segmenter, xyz: np.ndarray, rgb: np.ndarray, repeats: int) -> dict[str, float]:
    seg(xyz, rgb)  # warm-up: allocator, spconv kernels
    dev = seg.device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    rss0 = _rss_mib()
    runs = []
    n_inst = 0
    for _ in range(repeats):
        inst = seg(xyz, rgb)
        runs.append(inst.timings)
        n_inst = len(inst)
    row = {k: statistics.median(r.get(k, 0.0) for r in runs) * 1000.0 for k in STAGES}
    if dev.type == "cuda":
        row["peak_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        row["peak_mib"] = max(_rss_mib() - rss0, 0.0)
    row["instances"] = float(n_inst)
    return row


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

    header = f"{'config':<13} {'device':<6} {'points':>7} " + " ".join(f"{s[:10]:>10}" for s in STAGES)
    header += f" {'peak MiB':>9} {'inst':>5}"
    print("times in ms (median of %d runs)" % args.repeats)
    print(header)
    print("-" * len(header))
    for config in args.configs:
        for device in devices:
            seg = build_segmenter(config, args.checkpoint, device)
            for n in sorted(args.sizes):
                sc = scenes[n]
                row = bench_one(seg, sc.xyz, sc.rgb, args.repeats)
                cells = " ".join(f"{row[s]:>10.1f}" for s in STAGES)
                print(f"{config:<13} {device:<6} {n:>7} {cells} {row['peak_mib']:>9.0f} {int(row['instances']):>5}", flush=True)
            del seg
            if device == "cuda":
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
