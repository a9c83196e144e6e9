"""Training-step time (forward, backward) of the model on synthetic rooms, split by stage.

    python bench/bench_train_step.py                        # shipped small model, batch 2, 20k points
    python bench/bench_train_step.py --batch 4 --points 50000 --repeats 5
    python bench/bench_train_step.py --random --config full_scannet

Each step runs twice, interleaved: "ref" = the reference path (batched torch farthest point
sampling), "new" = the default (numpy FPS on the CPU); both must give the same loss, and the
ratio ref / new is printed. Then, from the torch profiler of one extra step, the share of the
sparse convolutions (forward and backward) and of the dynamic convolution. The step is dominated
by the sparse U-Net: computing masks only for matched queries (all the losses read) changes the
dynamic convolution's part, a few percent of the step, and was therefore not kept.
Weights: the shipped checkpoint (a fine-tuning step), or --random with the foreground threshold
opened so the query stage runs. One thread unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sphmask_core.config import apply_overrides, load_model_config
from sphmask_core.data.collate import collate
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from sphmask_core.model.spherical_mask import SphericalMask

def build_model(config: str, random: bool) -> SphericalMask:
    if random:
        cfg = apply_overrides(load_model_config(config), {"test.filter_bg_thresh": 0.0})
        torch.manual_seed(0)
        return SphericalMask(cfg)
    from sphmask_core.checkpoint import build_model_from_checkpoint
    from sphmask_core.pretrained import default_checkpoint_path

    model, _, _ = build_model_from_checkpoint(default_checkpoint_path(), map_location="cpu")
    return model


def step(model: SphericalMask, batch, seed: int, reference: bool = False) -> tuple[float, float, float]:
    """(forward s, backward s, loss) of one step."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    out = model.forward_train(batch, stage="full", reference=reference)
    t1 = time.perf_counter()
    out["loss"].backward()
    return t1 - t0, time.perf_counter() - t1, float(out["loss"].detach())


def profile_shares(model: SphericalMask, batch) -> dict[str, float]:
    """Fraction of one step's self CPU time in spconv's functions, in mm and in bmm/baddbmm."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(model, batch, 0)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    sparse = sum(e.self_cpu_time_total for e in events if "SubMConv" in e.key or "SparseConv" in e.key
                 or "SparseInverseConv" in e.key or e.key.startswith("spconv"))
    bmm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::bmm", "aten::baddbmm"))
    mm = sum(e.self_cpu_time_total for e in events if e.key == "aten::mm")
    return {"sparse_conv": sparse / total, "bmm": bmm / total, "mm": mm / total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small", help="model config with --random")
    ap.add_argument("--random", action="store_true", help="random weights instead of the shipped model")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = build_model(args.config, args.random).train()
    scenes = [generate_scene(s, SyntheticConfig(target_points_range=(args.points, args.points))) for s in range(args.batch)]
    batch = collate(scenes)
    step(model, batch, 0)  # warm-up
    step(model, batch, 0, reference=True)
    runs: dict[str, list[tuple[float, float, float]]] = {"ref": [], "new": []}
    for r in range(args.repeats):
        for path in ("ref", "new"):
            runs[path].append(step(model, batch, r, reference=path == "ref"))
    print(f"model {model.cfg.name} ({'random' if args.random else 'shipped'}), batch {args.batch} x "
          f"{args.points} points, {torch.get_num_threads()} thread(s), median of {args.repeats} steps")
    totals = {}
    for path in ("ref", "new"):
        fwd = statistics.median(r[0] for r in runs[path]) * 1e3
        bwd = statistics.median(r[1] for r in runs[path]) * 1e3
        totals[path] = fwd + bwd
        print(f"{path}: forward {fwd:.1f} ms, backward {bwd:.1f} ms, step {fwd + bwd:.1f} ms, "
              f"loss {runs[path][-1][2]:.4f}")
    same = all(a[2] == b[2] for a, b in zip(runs["ref"], runs["new"]))
    print(f"ref/new {totals['ref'] / totals['new']:.2f}x" + ("" if same else "  LOSSES DIFFER"))
    shares = profile_shares(model, batch)
    print(f"self CPU share: spconv functions {shares['sparse_conv']:.0%}, aten::mm (mostly spconv's "
          f"gathered GEMMs) {shares['mm']:.0%}, bmm/baddbmm (dynamic convolution) {shares['bmm']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
