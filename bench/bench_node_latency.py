"""End-to-end latency of the sphmask node's processing, per stage, without DDS.

    python bench/bench_node_latency.py                       # shipped model, auto device
    python bench/bench_node_latency.py --sizes 100000 --repeats 3 --device cpu
    python bench/bench_node_latency.py --checkpoint run/best.pt

For clouds of 100k / 300k / 1M points (a synthetic room, resampled to the size) it times what the
node does for one PointCloud2: decode (callback), the pipeline stages (transform, accumulate,
crop, voxelize, cap, inference, postprocess) and the output messages (InstanceArray, markers,
labelled cloud encode), with the node's default parameters (config/sphmask.yaml). Prints the
median over --repeats runs after one warm-up run per size. Each size runs twice, interleaved run
by run: "ref" with the model's original all-query path, "new" with the default fast path; the
last column is ref / new end to end. Without the shipped checkpoint (and
no --checkpoint) a randomly initialised small model is used and the table says so: its
inference time is not representative (it finds no objects).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from std_msgs.msg import Header

from sphmask_ros import conversions
from sphmask_core.sensor.node_params import NodeParams
from sphmask_ros.pipeline import Pipeline, decode_frame
from sphmask_ros.pointcloud2 import encode_cloud


def synthetic_cloud(n_points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic room resampled (with 5 mm jitter) to exactly `n_points` points."""
    from sphmask_core.data.synthetic import SyntheticConfig, generate_scene

    scene = generate_scene(seed, SyntheticConfig(target_points_range=(200_000, 200_000)))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, scene.xyz.shape[0], n_points)
    xyz = scene.xyz[idx] + rng.normal(0.0, 0.005, (n_points, 3)).astype(np.float32)
    return xyz.astype(np.float32), scene.rgb[idx]


def random_checkpoint(folder: Path) -> Path:
    import torch

    from sphmask_core.checkpoint import save_checkpoint
    from sphmask_core.config import load_model_config
    from sphmask_core.data.scene import SYNTHETIC_LABELS
    from sphmask_core.model.spherical_mask import SphericalMask

    torch.manual_seed(0)
    cfg = load_model_config("small")
    path = folder / "random_small.pt"
    save_checkpoint(path, SphericalMask(cfg), cfg, cfg.class_names, SYNTHETIC_LABELS)
    return path


def run_once(pipeline: Pipeline, xyz: np.ndarray, rgb: np.ndarray, stamp_s: int) -> tuple[dict, int]:
    """Stage timings (ms) of one cloud through decode, pipeline and message building."""
    header = Header(frame_id="sensor")
    header.stamp.sec = stamp_s
    msg = encode_cloud(header, {"xyz": xyz, "rgb": rgb})
    t_start = time.perf_counter()
    frame = decode_frame(msg, "points", 0)
    result = pipeline.process(frame)
    stages = dict(result.stages_s)
    inst = result.instances
    t0 = time.perf_counter()
    conversions.instances_to_msg(inst, result.header, inst.n_points, pipeline.model_name)
    conversions.instances_to_markers(inst, result.header)
    stages["messages"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    conversions.labelled_cloud(inst, result.header, result.xyz, result.rgb)
    stages["encode"] = time.perf_counter() - t0
    stages["end_to_end"] = time.perf_counter() - t_start
    return {k: v * 1e3 for k, v in stages.items()}, len(inst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint", default="")
    args = parser.parse_args(argv)

    note = ""
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if not checkpoint:
            from sphmask_core.pretrained import default_checkpoint_path

            try:
                default_checkpoint_path()
            except FileNotFoundError:
                checkpoint = str(random_checkpoint(Path(tmp)))
                note = " (shipped model absent: RANDOM small model, inference not representative)"
        params = NodeParams(checkpoint=checkpoint, device=args.device)
        t0 = time.perf_counter()
        pipeline = Pipeline.from_params(params)
        load_s = time.perf_counter() - t0
        print(f"model {pipeline.model_name}{note} on {pipeline.device}: load + warm-up "
              f"{load_s:.1f} s (warm-up {pipeline.warmup_s:.2f} s); input_voxel_size {params.input_voxel_size} m, "
              f"max_points {params.max_points}")
        rows = []
        seg = pipeline.segmenter
        for n in args.sizes:
            xyz, rgb = synthetic_cloud(n)
            runs: dict[str, list] = {"ref": [], "new": []}
            for r in range(args.repeats + 1):  # run 0 = warm-up at this size
                for path in runs:
                    seg.reference = path == "ref"
                    out = run_once(pipeline, xyz, rgb, 2 * r + (path == "new"))
                    if r:
                        runs[path].append(out)
            seg.reference = False
            for path, path_runs in runs.items():
                keys = list(path_runs[0][0])
                med = {k: statistics.median(x[0].get(k, 0.0) for x in path_runs) for k in keys}
                rows.append((n, path, med, path_runs[-1][1]))
        keys = [k for k in rows[0][2] if k != "end_to_end"] + ["end_to_end"]
        print("median ms per stage over", args.repeats, "runs")
        print(f"{'points':>9} {'path':<4} {'inst':>4} " + " ".join(f"{k[:10]:>10}" for k in keys) + "  ref/new")
        ref_total = {}
        for n, path, med, k_inst in rows:
            tail = ""
            if path == "ref":
                ref_total[n] = med["end_to_end"]
            else:
                tail = f"  {ref_total[n] / max(med['end_to_end'], 1e-9):.2f}x"
            print(f"{n:>9} {path:<4} {k_inst:>4} " + " ".join(f"{med.get(k, 0.0):>10.1f}" for k in keys) + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
