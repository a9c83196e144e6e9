"""Farthest point sampling and ball query in plain PyTorch (METHOD 3.4 steps 1-2, METHOD 2.3).

Two layouts:
- flat: points of B scenes concatenated, (N, 3), delimited by ``offsets`` (B+1,), as in a Batch;
- dense: per-scene padded tensors (B, N_max, 3) with ``lengths`` (B,), rows >= lengths[b] are
  padding and are never sampled or returned.
"""

from __future__ import annotations

import numpy as np
import torch

from sphmask_core.ops.scatter import check_offsets

# Bound on query x point pairs held at once by ball query (about 64 MiB of float32 distances).
_BALL_QUERY_PAIRS_PER_CHUNK = 1 << 24


def to_padded(values: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat rows ``values`` (N, ...) delimited by ``offsets`` (B+1,) -> ((B, N_max, ...) zero-padded, lengths (B,))."""
    check_offsets(offsets, values.shape[0])
    offsets = offsets.to(device=values.device, dtype=torch.int64)
    lengths = offsets[1:] - offsets[:-1]  # (B,)
    b = lengths.numel()
    n_max = int(lengths.max()) if b > 0 else 0
    padded = values.new_zeros((b, n_max) + tuple(values.shape[1:]))
    batch = torch.repeat_interleave(torch.arange(b, device=values.device), lengths)  # (N,)
    local = torch.arange(values.shape[0], device=values.device) - offsets[batch]  # (N,)
    padded[batch, local] = values
    return padded, lengths


def _check_dense(xyz: torch.Tensor, lengths: torch.Tensor, name: str = "xyz") -> None:
    if xyz.dim() != 3 or xyz.shape[2] != 3:
        raise ValueError(f"{name} must have shape (B, N, 3), got {tuple(xyz.shape)}")
    if lengths.dim() != 1 or lengths.shape[0] != xyz.shape[0]:
        raise ValueError(f"lengths must have shape ({xyz.shape[0]},), got {tuple(lengths.shape)}")
    if lengths.numel() > 0 and (int(lengths.min()) < 0 or int(lengths.max()) > xyz.shape[1]):
        raise ValueError(f"lengths must lie in [0, {xyz.shape[1]}]")


def _fps_scene_numpy(planes: np.ndarray, n_steps: int) -> np.ndarray:
    """Greedy FPS of one scene, coordinate planes ``planes`` (3, n) -> (n_steps,) int64 rows.

    Same floats as the torch loop (differences, squares, then x + y + z left to right, the order
    torch's reduction over a dimension of 3 uses), so both give the same rows, ties included
    (argmax takes the first maximum in both libraries).
    """
    n = planes.shape[1]
    min_d2 = np.full(n, np.inf, dtype=planes.dtype)  # (n,) selected rows carry -1
    order = np.zeros(n_steps, dtype=np.int64)
    diff = np.empty_like(planes)  # (3, n)
    d2 = np.empty(n, dtype=planes.dtype)  # (n,)
    last = 0
    for step in range(n_steps):
        order[step] = last
        min_d2[last] = -1.0
        if step + 1 == n_steps:
            break
        np.subtract(planes, planes[:, last : last + 1], out=diff)
        np.multiply(diff, diff, out=diff)
        np.add(diff[0], diff[1], out=d2)
        d2 += diff[2]
        np.minimum(min_d2, d2, out=min_d2)
        last = int(np.argmax(min_d2))
    return order


def _fps_dense_numpy(xyz: torch.Tensor, lengths: torch.Tensor, n_sample: int) -> torch.Tensor:
    # A CPU step is a handful of passes over the scene; numpy runs each with about a tenth of
    # torch's per-call overhead and without its allocations: 3-5x faster at 2k-50k points.
    order = np.zeros((xyz.shape[0], n_sample), dtype=np.int64)  # (B, n_sample)
    for b, n in enumerate(lengths.tolist()):
        planes = np.ascontiguousarray(xyz[b, :n].detach().numpy().T)  # (3, n)
        rows = _fps_scene_numpy(planes, min(n_sample, n))
        order[b] = rows[np.arange(n_sample) % rows.size]
    return torch.from_numpy(order)


def _fps_dense_torch(xyz: torch.Tensor, lengths: torch.Tensor, n_sample: int) -> torch.Tensor:
    b, n_max, _ = xyz.shape
    device = xyz.device
    n_steps = min(n_sample, n_max)
    rows = torch.arange(b, device=device)
    valid = torch.arange(n_max, device=device)[None, :] < lengths[:, None]  # (B, N_max)
    # Padding and selected points carry -1 so argmax never picks them while any candidate remains.
    min_d2 = torch.where(valid, torch.full_like(valid, float("inf"), dtype=xyz.dtype), -1.0)  # (B, N_max)
    order = torch.zeros((b, n_sample), dtype=torch.int64, device=device)
    # Coordinate-planar layout: the per-step reduction over xyz then runs on contiguous memory
    # (about 2x faster on the CPU than reducing the last dimension of (B, N, 3)).
    planes = xyz.permute(0, 2, 1).contiguous()  # (B, 3, N_max)
    diff = torch.empty_like(planes)  # (B, 3, N_max)
    d2 = torch.empty((b, n_max), dtype=xyz.dtype, device=device)
    last = torch.zeros(b, dtype=torch.int64, device=device)
    for step in range(n_steps):
        order[:, step] = last
        min_d2[rows, last] = -1.0
        if step + 1 == n_steps:
            break
        torch.sub(planes, planes[rows, :, last][:, :, None], out=diff)
        diff.square_()
        torch.sum(diff, dim=1, out=d2)
        # keep -1 markers: min(-1, d2) = -1
        torch.minimum(min_d2, d2, out=min_d2)
        last = torch.argmax(min_d2, dim=1)
    # Scenes shorter than n_sample: the rows past their length hold garbage; replace cyclically.
    pos = torch.arange(n_sample, device=device)[None, :]  # (1, n_sample)
    src = pos % lengths.clamp(max=n_sample)[:, None]  # (B, n_sample)
    return torch.gather(order, 1, src)


def farthest_point_sample_dense(
    xyz: torch.Tensor, lengths: torch.Tensor, n_sample: int, method: str = "auto"
) -> torch.Tensor:
    """Greedy farthest point sampling per scene on padded ``xyz`` (B, N_max, 3) -> (B, n_sample) int64.

    Returned indices are local (row within the scene). The sequence starts at row 0 of each scene;
    each next point maximises the squared Euclidean distance to the already selected set (ties:
    lowest row). Already selected rows are never chosen again, so duplicated coordinates still
    give distinct rows. A scene with n < n_sample points yields its full n-point FPS order
    repeated cyclically: ``out[b, i] = out[b, i % n]``. Every prefix of the result is itself the
    FPS of that length. Scenes must be non-empty.

    ``method``: "torch" (all scenes in one loop, any device and dtype), "numpy" (float32/float64
    CPU tensors, one scene at a time) or "auto" (numpy where it applies, torch otherwise). Both
    give identical rows.
    """
    _check_dense(xyz, lengths)
    if n_sample < 1:
        raise ValueError(f"n_sample must be >= 1, got {n_sample}")
    if xyz.shape[0] > 0 and int(lengths.min()) == 0:
        raise ValueError("farthest point sampling needs at least one point in every scene")
    numpy_ok = xyz.device.type == "cpu" and xyz.dtype in (torch.float32, torch.float64)
    if method == "auto":
        method = "numpy" if numpy_ok else "torch"
    if method == "numpy" and not numpy_ok:
        raise ValueError(f"method 'numpy' needs float32 or float64 CPU tensors, got {xyz.dtype} on {xyz.device}")
    lengths = lengths.to(device=xyz.device, dtype=torch.int64)
    if method == "numpy":
        return _fps_dense_numpy(xyz, lengths, n_sample)
    if method == "torch":
        return _fps_dense_torch(xyz, lengths, n_sample)
    raise ValueError(f"method must be 'auto', 'torch' or 'numpy', got {method!r}")


def farthest_point_sample(xyz: torch.Tensor, offsets: torch.Tensor, n_sample: int) -> torch.Tensor:
    """Greedy FPS of ``n_sample`` points per scene of flat ``xyz`` (N, 3) with ``offsets`` (B+1,).

    Returns (B, n_sample) int64 GLOBAL row indices into ``xyz``. Semantics (start at each scene's
    first point, cyclic repetition for scenes with fewer than ``n_sample`` points) are those of
    :func:`farthest_point_sample_dense`.
    """
    if xyz.dim() != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must have shape (N, 3), got {tuple(xyz.shape)}")
    padded, lengths = to_padded(xyz, offsets)  # (B, N_max, 3), (B,)
    local = farthest_point_sample_dense(padded, lengths, n_sample)  # (B, n_sample)
    return local + offsets.to(device=xyz.device, dtype=torch.int64)[:-1, None]


def _first_k_within(d2: torch.Tensor, r2: float, k: int) -> torch.Tensor:
    """For squared distances (M, n): first k columns with d2 < r2, padded with the first found, -1 if none."""
    m = d2.shape[0]
    inside = d2 < r2  # (M, n)
    rank = torch.cumsum(inside, dim=1, dtype=torch.int32) - 1  # (M, n) rank among hits
    keep = inside & (rank < k)
    row, col = torch.nonzero(keep, as_tuple=True)
    out = torch.full((m, k), -1, dtype=torch.int64, device=d2.device)
    out[row, rank[row, col].long()] = col
    n_found = inside.sum(dim=1).clamp(max=k)  # (M,)
    pad = torch.arange(k, device=d2.device)[None, :] >= n_found[:, None]  # (M, k)
    return torch.where(pad, out[:, :1].expand(-1, k), out)


def _ball_query_block(query: torch.Tensor, points: torch.Tensor, radius: float, k: int) -> torch.Tensor:
    """Ball query of ``query`` (M, 3) against ``points`` (n, 3) -> (M, k) local indices (-1 = none)."""
    m, n = query.shape[0], points.shape[0]
    if n == 0:
        return torch.full((m, k), -1, dtype=torch.int64, device=query.device)
    r2 = float(radius) ** 2
    chunk = max(1, _BALL_QUERY_PAIRS_PER_CHUNK // n)
    parts = []
    for start in range(0, m, chunk):
        q = query[start : start + chunk]  # (c, 3)
        # Explicit differences (not the matmul expansion of cdist) so that d2 < r^2 is exact.
        d2 = (q[:, None, 0] - points[None, :, 0]).square_()
        d2 += (q[:, None, 1] - points[None, :, 1]).square_()
        d2 += (q[:, None, 2] - points[None, :, 2]).square_()  # (c, n)
        parts.append(_first_k_within(d2, r2, k))
    return torch.cat(parts, dim=0) if parts else torch.empty((0, k), dtype=torch.int64, device=query.device)


def _check_ball_args(radius: float, k: int) -> None:
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _pair_d2(query: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Squared distances of matching rows of ``query`` (T, 3) and ``points`` (T, 3) -> (T,).

    Same operation order as the brute-force block, so both paths compare identical floats.
    """
    d2 = (query[:, 0] - points[:, 0]).square_()
    d2 += (query[:, 1] - points[:, 1]).square_()
    d2 += (query[:, 2] - points[:, 2]).square_()
    return d2


def _ball_query_grid(
    query_xyz: torch.Tensor,
    query_batch: torch.Tensor,
    xyz: torch.Tensor,
    point_batch: torch.Tensor,
    radius: float,
    k: int,
) -> torch.Tensor:
    """Ball query through a uniform hash grid of cell size ~radius: only the 27 cells around a query
    are candidates, so the cost is proportional to the local density, not to N."""
    device = xyz.device
    m, n = query_xyz.shape[0], xyz.shape[0]
    out = torch.full((m, k), -1, dtype=torch.int64, device=device)
    if m == 0 or n == 0:
        return out
    # float64 cell coordinates with a relative margin on the cell size: two points closer than
    # radius can then never land two cells apart through rounding.
    cell = float(radius) * (1.0 + 1e-6)
    origin = torch.minimum(xyz.min(0).values, query_xyz.min(0).values).double()  # (3,)
    p_cell = torch.floor((xyz.double() - origin) / cell).long() + 1  # (N, 3), +1 so neighbours >= 0
    q_cell = torch.floor((query_xyz.double() - origin) / cell).long() + 1  # (M, 3)
    dims = torch.maximum(p_cell.max(0).values, q_cell.max(0).values) + 2  # (3,)
    n_batch = int(max(int(point_batch.max()), int(query_batch.max()))) + 1

    def cell_key(batch: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return ((batch.long() * dims[0] + c[..., 0]) * dims[1] + c[..., 1]) * dims[2] + c[..., 2]

    if float(n_batch) * float(dims.prod()) >= 2.0**62:
        raise ValueError("ball query grid too large: radius is tiny compared to the scene extent")
    p_key = cell_key(point_batch, p_cell)  # (N,)
    sorted_key, perm = torch.sort(p_key, stable=True)  # (N,), (N,)

    shifts = torch.stack(
        torch.meshgrid(*(torch.arange(-1, 2, device=device),) * 3, indexing="ij"), dim=-1
    ).reshape(27, 3)  # (27, 3)
    n_key = cell_key(query_batch[:, None], q_cell[:, None, :] + shifts[None])  # (M, 27)
    begin = torch.searchsorted(sorted_key, n_key, right=False)  # (M, 27)
    size = torch.searchsorted(sorted_key, n_key, right=True) - begin  # (M, 27)
    per_query = size.sum(1)  # (M,)

    r2 = float(radius) ** 2
    cum = torch.cumsum(per_query, 0)
    q_start = 0
    while q_start < m:
        # Largest query block whose candidate pairs fit the budget (at least one query).
        base = int(cum[q_start - 1]) if q_start > 0 else 0
        q_end = int(torch.searchsorted(cum, base + _BALL_QUERY_PAIRS_PER_CHUNK, right=True))
        q_end = min(max(q_end, q_start + 1), m)
        seg_size = size[q_start:q_end].reshape(-1)  # (c*27,)
        seg_begin = begin[q_start:q_end].reshape(-1)  # (c*27,)
        total = int(seg_size.sum())
        if total > 0:
            seg = torch.repeat_interleave(torch.arange(seg_size.numel(), device=device), seg_size)  # (T,)
            seg_first = torch.cumsum(seg_size, 0) - seg_size  # (c*27,)
            sorted_pos = seg_begin[seg] + (torch.arange(total, device=device) - seg_first[seg])  # (T,)
            cand = perm[sorted_pos]  # (T,) point rows
            qry = seg // 27 + q_start  # (T,) query rows, non-decreasing
            hit = _pair_d2(query_xyz[qry], xyz[cand]) < r2  # (T,)
            cand, qry = cand[hit], qry[hit]
            # Order hits by (query, point row) to take the first k in storage order.
            order = torch.argsort(qry * n + cand)
            cand, qry = cand[order], qry[order]
            counts = torch.bincount(qry - q_start, minlength=q_end - q_start)  # (c,)
            first = torch.cumsum(counts, 0) - counts  # (c,)
            rank = torch.arange(cand.numel(), device=device) - first[qry - q_start]  # (H,)
            keep = rank < k
            out[qry[keep], rank[keep]] = cand[keep]
        q_start = q_end
    n_found = (out >= 0).sum(1)  # (M,)
    pad = torch.arange(k, device=device)[None, :] >= n_found[:, None]  # (M, k)
    return torch.where(pad, out[:, :1].expand(-1, k), out)


def _ball_query_brute(
    query_xyz: torch.Tensor,
    query_batch: torch.Tensor,
    xyz: torch.Tensor,
    point_batch: torch.Tensor,
    radius: float,
    k: int,
) -> torch.Tensor:
    out = torch.full((query_xyz.shape[0], k), -1, dtype=torch.int64, device=query_xyz.device)
    for scene in torch.unique(query_batch).tolist():
        q_rows = torch.nonzero(query_batch == scene, as_tuple=True)[0]  # (M_b,)
        p_rows = torch.nonzero(point_batch == scene, as_tuple=True)[0]  # (N_b,) ascending
        local = _ball_query_block(query_xyz[q_rows], xyz[p_rows], radius, k)  # (M_b, k)
        out[q_rows] = torch.where(local >= 0, p_rows[local.clamp(min=0)], -1)
    return out


def ball_query(
    query_xyz: torch.Tensor,
    query_batch: torch.Tensor,
    xyz: torch.Tensor,
    point_batch: torch.Tensor,
    radius: float,
    k: int,
    method: str = "auto",
) -> torch.Tensor:
    """Ball query on flat tensors -> (M, k) int64 GLOBAL row indices into ``xyz``.

    For each query (M, 3) of scene ``query_batch`` (M,): the first k points of the same scene
    (``point_batch`` (N,)), in ascending row order (not nearest first), whose squared distance is
    < radius^2. Fewer than k hits: remaining slots repeat the first hit. No hit at all: the row is
    all -1 (cannot happen when the query is itself one of the points).

    ``method``: "grid" (hash grid, cost ~ local density), "brute" (all pairs of a scene, chunked),
    or "auto" (brute for small problems, grid otherwise). Both give identical results and bounded
    memory.
    """
    _check_ball_args(radius, k)
    if query_xyz.dim() != 2 or query_xyz.shape[1] != 3 or xyz.dim() != 2 or xyz.shape[1] != 3:
        raise ValueError(
            f"query_xyz and xyz must be (M, 3) and (N, 3), got {tuple(query_xyz.shape)}, {tuple(xyz.shape)}"
        )
    if query_batch.shape != (query_xyz.shape[0],) or point_batch.shape != (xyz.shape[0],):
        raise ValueError("query_batch / point_batch must have one entry per query / point")
    if method == "auto":
        method = "brute" if query_xyz.shape[0] * xyz.shape[0] <= (1 << 20) else "grid"
    if method == "grid":
        return _ball_query_grid(query_xyz, query_batch, xyz, point_batch, radius, k)
    if method == "brute":
        return _ball_query_brute(query_xyz, query_batch, xyz, point_batch, radius, k)
    raise ValueError(f"method must be 'auto', 'grid' or 'brute', got {method!r}")


def ball_query_dense(
    query_xyz: torch.Tensor,
    xyz: torch.Tensor,
    lengths: torch.Tensor,
    radius: float,
    k: int,
    method: str = "auto",
) -> torch.Tensor:
    """Ball query on padded tensors: queries (B, M, 3), points (B, N_max, 3) -> (B, M, k) LOCAL rows.

    Same rule as :func:`ball_query`; only the first ``lengths[b]`` points of scene b are searched.
    """
    _check_ball_args(radius, k)
    _check_dense(xyz, lengths)
    if query_xyz.dim() != 3 or query_xyz.shape[0] != xyz.shape[0] or query_xyz.shape[2] != 3:
        raise ValueError(f"query_xyz must have shape (B, M, 3), got {tuple(query_xyz.shape)}")
    b, m, _ = query_xyz.shape
    device = xyz.device
    lengths = lengths.to(device=device, dtype=torch.int64)
    valid = torch.arange(xyz.shape[1], device=device)[None, :] < lengths[:, None]  # (B, N_max)
    flat_xyz = xyz[valid]  # (N, 3) scene-major, rows ascending within a scene
    point_batch = torch.nonzero(valid, as_tuple=True)[0]  # (N,)
    scene_start = torch.cumsum(lengths, 0) - lengths  # (B,)
    query_batch = torch.arange(b, device=device).repeat_interleave(m)  # (B*M,)
    flat = ball_query(query_xyz.reshape(-1, 3), query_batch, flat_xyz, point_batch, radius, k, method)  # (B*M, k)
    local = torch.where(flat >= 0, flat - scene_start[query_batch][:, None], -1)
    return local.reshape(b, m, k)
