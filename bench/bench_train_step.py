"""Training-step time (forward + backward) of the model, fast vs reference path, on synthetic rooms.

    python bench/bench_train_step.py                        # shipped small model, batch 2, 20k points
    python bench/bench_train_step.py --batch 4 --points 50000 --repeats 5
    python bench/bench_train_step.py --random --config full_scannet

"ref" is the original training path (dynamic convolution of every query with the reference
kernels), "new" the default one (only the matched queries, which are all the losses read; the
losses and gradients agree to float rounding, tests/core/test_fast_paths.py). Both paths are
timed interleaved, step by step, in the same process; the table prints medians and ref / new.
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

PATHS = ("ref", "new")


def build_model(config: str, random: bool) -> SphericalMask:
    if random:
        cfg = apply_overrides(load_model_config(config), {"test.filter_bg_thresh": 0.0})
        torch.manual_seed(0)
        return SphericalMask(cfg)
    from sphmask_core.checkpoint import build_model_from_checkpoint
    from sphmask_core.pretrained import default_checkpoint_path

    model, _, _ = build_model_from_checkpoint(default_checkpoint_path(), map_location="cpu")
    return model


def step(model: SphericalMask, batch, reference: bool, seed: int) -> tuple[float, float]:
    """(seconds, loss) of one forward + backward."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    out = model.forward_train(batch, stage="full", reference=reference)
    out["loss"].backward()
    return time.perf_counter() - t0, float(out["loss"].detach())


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
    times: dict[str, list[float]] = {p: [] for p in PATHS}
    losses: dict[str, float] = {}
    for p in PATHS:  # warm-up
        step(model, batch, p == "ref", 0)
    for r in range(args.repeats):
        for p in PATHS:
            t, loss = step(model, batch, p == "ref", r)
            times[p].append(t)
            losses[p] = loss
    med = {p: statistics.median(times[p]) * 1e3 for p in PATHS}
    print(f"model {model.cfg.name} ({'random' if args.random else 'shipped'}), batch {args.batch} x "
          f"{args.points} points, {torch.get_num_threads()} thread(s), median of {args.repeats} steps")
    print(f"{'path':<4} {'step ms':>9} {'loss':>10}")
    for p in PATHS:
        print(f"{p:<4} {med[p]:>9.1f} {losses[p]:>10.4f}")
    print(f"ref / new: {med['ref'] / med['new']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
