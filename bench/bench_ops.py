"""Timings of the plain-PyTorch ops: voxelize, FPS 2048, ball query 2048 x 32 (r 0.2 m).

Points are sampled on the surfaces of a synthetic 8 x 6 x 3 m room with a few boxes, so local
densities resemble a scanned scene. Usage: python bench/bench_ops.py [--device cuda] [--sizes ...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from sphmask_core.ops.sampling import ball_query, farthest_point_sample
from sphmask_core.ops.voxelize import voxel_mean, voxelize


def room_surface_points(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 3) points on the floor, walls and the faces of 6 boxes of a room."""
    g = torch.Generator().manual_seed(seed)
    size = torch.tensor([8.0, 6.0, 3.0])
    lo = torch.rand(6, 3, generator=g) * torch.tensor([6.0, 4.0, 0.0])
    boxes = torch.stack([lo, lo + 0.4 + torch.rand(6, 3, generator=g) * torch.tensor([1.2, 1.2, 1.0])], 1)  # (6, 2, 3)
    # Every point: pick a box (0 = the room itself) and one of its 6 faces.
    all_boxes = torch.cat([torch.stack([torch.zeros(3), size])[None], boxes])  # (7, 2, 3)
    which = torch.randint(0, 7, (n,), generator=g)
    face = torch.randint(0, 6, (n,), generator=g)
    lo_b, hi_b = all_boxes[which, 0], all_boxes[which, 1]  # (n, 3)
    p = lo_b + torch.rand(n, 3, generator=g) * (hi_b - lo_b)
    axis, side = face % 3, face // 3
    rows = torch.arange(n)
    p[rows, axis] = torch.where(side == 0, lo_b[rows, axis], hi_b[rows, axis])
    return p


def timed(fn: Callable[[], object], device: torch.device, repeat: int = 3) -> float:
    """Best wall time in milliseconds over ``repeat`` runs after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 50_000, 100_000, 200_000])
    parser.add_argument("--n-sample", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0,
        help="torch intra-op threads (0 = torch default); 1 is far faster on an oversubscribed CPU",
    )
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'points':>8} {'voxels':>8} {'voxelize ms':>12} {'FPS ms':>8} {'ballq grid ms':>14} {'ballq brute ms':>15}")
    for n in args.sizes:
        xyz = room_surface_points(n).to(device)
        offsets = torch.tensor([0, n], device=device)
        feats = torch.randn(n, 6, device=device)

        def vox() -> None:
            vm = voxelize(xyz, offsets, 0.02)
            voxel_mean(feats, vm.point_to_voxel, vm.n_voxels)

        n_vox = voxelize(xyz, offsets, 0.02).n_voxels
        t_vox = timed(vox, device, args.repeat)
        t_fps = timed(lambda: farthest_point_sample(xyz, offsets, args.n_sample), device, args.repeat)
        idx = farthest_point_sample(xyz, offsets, args.n_sample).reshape(-1)
        q, qb = xyz[idx], torch.zeros(idx.numel(), dtype=torch.int64, device=device)
        pb = torch.zeros(n, dtype=torch.int64, device=device)
        t_grid = timed(lambda: ball_query(q, qb, xyz, pb, 0.2, 32, method="grid"), device, args.repeat)
        t_brute = timed(lambda: ball_query(q, qb, xyz, pb, 0.2, 32, method="brute"), device, 1)
        print(f"{n:>8} {n_vox:>8} {t_vox:>12.1f} {t_fps:>8.1f} {t_grid:>14.1f} {t_brute:>15.1f}")


if __name__ == "__main__":
    main()
