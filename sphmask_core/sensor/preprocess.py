"""Decode -> transform -> accumulate -> crop -> voxelize -> cap: the ONE implementation of the
node's pre-processing, shared by the live node, the offline bag tools and training on bags.

Frames. Each cloud is moved into ``fixed_frame`` at its own stamp (ego-motion compensation)
and stored there; the accumulated sweeps are then expressed in the output frame
(``target_frame``, default ``fixed_frame``) at the newest stamp. Empty ``fixed_frame`` means
the input cloud's own frame (no pose needed); accumulating more than one cloud then is refused,
because sweeps taken from different poses cannot be merged without one.

Output cloud. The points the node labels and publishes are *all accumulated points that survive
the crop*, in the output frame (``PreparedInput.points_*``), newest sweep first. Each carries
``point_sweep`` (0 = the current cloud, k = k clouds back) and ``point_raw_index`` (its index
in that sweep's flattened raw PointCloud2), so the node can also restrict any result to the
current input message (``point_sweep == 0`` -> ``point_raw_index``). ``point_to_model`` sends
every output point to its model point (voxel), -1 when the cap dropped that voxel, so model
predictions broadcast back to every output point with one gather.

Voxels. ``voxel_downsample`` keeps one point per occupied voxel whose xyz and rgb are the MEAN
of its points (the model voxelizes by the mean too, METHOD 2.2), and returns the inverse map.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sphmask_core.sensor.pointcloud2 import CloudError, DecodedCloud, decode_cloud
from sphmask_core.sensor.transforms import (
    Transform,
    TransformCache,
    TransformLookupError,
    TransformSource,
)

__all__ = [
    "PreprocessConfig",
    "Sweep",
    "FrameAccumulator",
    "VoxelGrid",
    "voxel_downsample",
    "crop_mask",
    "cap_points",
    "PreparedInput",
    "Skipped",
    "Preprocessor",
]

_NS = 1_000_000_000


@dataclass(frozen=True)
class PreprocessConfig:
    """Pre-processing settings (from the node parameters: ``node_params.preprocess_config``)."""

    fixed_frame: str = ""  # accumulation frame; "" = each cloud's own frame
    target_frame: str = ""  # output (and model) frame; "" = fixed_frame
    accumulate_frames: int = 1  # clouds merged, the newest included
    accumulate_seconds: float = 0.0  # drop clouds older than this before the newest; 0 = no limit
    tolerance_s: float = 0.5  # largest pose extrapolation accepted (node param tf_timeout)
    crop_min: tuple[float, float, float] | None = None  # box in the output frame; None = none
    crop_max: tuple[float, float, float] | None = None
    crop_max_range: float = 0.0  # metres from each cloud's sensor origin; 0 = no limit
    input_voxel_size: float = 0.02  # thinning grid (m), not the model's voxel; 0 = none
    max_points: int = 300_000  # cap on model points; 0 = no cap
    seed: int = 0  # of the cap's random subset

    def validate(self) -> "PreprocessConfig":
        if self.accumulate_frames < 1:
            raise ValueError(f"accumulate_frames must be >= 1, got {self.accumulate_frames}")
        if self.accumulate_frames > 1 and not self.fixed_frame:
            raise ValueError("accumulate_frames > 1 needs fixed_frame (sweeps are merged there)")
        for name in ("accumulate_seconds", "tolerance_s", "crop_max_range", "input_voxel_size"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if self.max_points < 0:
            raise ValueError(f"max_points must be >= 0, got {self.max_points}")
        if (self.crop_min is None) != (self.crop_max is None):
            raise ValueError("crop_min and crop_max must be given together")
        if self.crop_min is not None:
            lo, hi = np.asarray(self.crop_min, float), np.asarray(self.crop_max, float)
            if lo.shape != (3,) or hi.shape != (3,) or not (lo < hi).all():
                raise ValueError(f"crop_min {self.crop_min} must be below crop_max {self.crop_max}")
        return self

    @property
    def tolerance_ns(self) -> int:
        return int(round(self.tolerance_s * _NS))

    @property
    def window_ns(self) -> int:
        return int(round(self.accumulate_seconds * _NS))


# ------------------------------------------------------------------------- pure functions


@dataclass
class VoxelGrid:
    """Result of ``voxel_downsample``: V occupied voxels of N points."""

    xyz: np.ndarray  # (V, 3) float32, mean of each voxel's points
    rgb: np.ndarray | None  # (V, 3) float32, mean colour
    inverse: np.ndarray  # (N,) int64, voxel of each input point
    first_index: np.ndarray  # (V,) int64, first input point of each voxel
    counts: np.ndarray  # (V,) int64


def _voxel_keys(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """(N, 3) points -> (N,) int64 key of their voxel, equal keys = same voxel.

    Column by column: reductions along the short axis of an (N, 3) array are many times
    slower in numpy than 1-D passes.
    """
    cols = []
    for c in range(3):
        col = np.floor(xyz[:, c].astype(np.float64) / voxel_size).astype(np.int64)  # (N,)
        col -= col.min()
        cols.append(col)
    dims = [int(col.max()) + 1 for col in cols]
    if float(dims[0]) * float(dims[1]) * float(dims[2]) >= 2.0**62:
        # Too wide to pack into one int64: rank the coordinate rows instead (slower, exact).
        _, keys = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
        return keys.reshape(-1).astype(np.int64)
    keys = cols[0] * dims[1]
    keys += cols[1]
    keys *= dims[2]
    keys += cols[2]
    return keys


# Dense-table voxelization is used while the key range stays below this many cells:
# transient memory is 5 bytes per cell (160 MB at the limit), and it avoids an O(N log N) sort.
_DENSE_MAX_CELLS = 1 << 25
# ... and only while the table is not much larger than the cloud: one cell costs a few ns in
# the table scan, one point ~100+ ns in the sort (measured, 1M points, 18M cells).
_DENSE_CELLS_PER_POINT = 32


def _voxel_ids_sort(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel id per point (voxels ordered by key), first point and count per voxel, by sorting."""
    n = keys.shape[0]
    # An unstable sort is enough: the first point is recovered with a min-reduction below.
    # 32-bit keys sort faster when they fit.
    perm = np.argsort(keys.astype(np.int32) if keys.max() < 2**31 else keys)  # (N,)
    sorted_keys = keys[perm]
    new_voxel = np.empty(n, dtype=bool)
    new_voxel[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new_voxel[1:])
    starts = np.flatnonzero(new_voxel)  # (V,)
    inverse = np.empty(n, dtype=np.int64)
    inverse[perm] = np.cumsum(new_voxel) - 1
    first = np.minimum.reduceat(perm, starts).astype(np.int64, copy=False)
    counts = np.diff(np.append(starts, n))
    return inverse, first, counts


def _voxel_ids_dense(keys: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same result as ``_voxel_ids_sort`` through an occupancy table over all cells."""
    n = keys.shape[0]
    occupied = np.zeros(n_cells, dtype=bool)
    occupied[keys] = True
    cell_to_voxel = np.cumsum(occupied, dtype=np.int32)  # (n_cells,) 1-based at occupied cells
    n_voxels = int(cell_to_voxel[-1])
    inverse = cell_to_voxel[keys].astype(np.int64) - 1  # (N,)
    first = np.full(n_voxels, n, dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(n, dtype=np.int64))
    counts = np.bincount(inverse, minlength=n_voxels)
    return inverse, first, counts


def voxel_downsample(
    xyz: np.ndarray, rgb: np.ndarray | None, voxel_size: float, method: str = "auto"
) -> VoxelGrid:
    """One point per occupied voxel of edge ``voxel_size`` (mean xyz and rgb) + inverse map.

    ``result.xyz[result.inverse]`` gives every input point its voxel's representative; voxels
    are ordered by grid key (deterministic). ``method``: ``sort`` (argsort of packed keys),
    ``dense`` (occupancy table; only while the grid spans <= 2**25 cells), ``auto`` picks dense
    when the grid has at most 32 cells per point. Both give identical results.
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must have shape (N, 3), got {xyz.shape}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    if rgb is not None and rgb.shape != xyz.shape:
        raise ValueError(f"rgb shape {rgb.shape} does not match xyz {xyz.shape}")
    if method not in ("auto", "sort", "dense"):
        raise ValueError(f"method must be auto, sort or dense, got {method!r}")
    n = xyz.shape[0]
    if n == 0:
        empty = np.empty(0, np.int64)
        return VoxelGrid(np.empty((0, 3), np.float32),
                         None if rgb is None else np.empty((0, 3), np.float32),
                         empty, empty, empty)
    keys = _voxel_keys(xyz, voxel_size)  # (N,)
    n_cells = int(keys.max()) + 1
    if method == "dense" and n_cells > _DENSE_MAX_CELLS:
        raise ValueError(f"grid spans {n_cells} cells, too many for method='dense'")
    dense_fits = n_cells <= min(_DENSE_MAX_CELLS, _DENSE_CELLS_PER_POINT * n)
    if method == "dense" or (method == "auto" and dense_fits):
        inverse, first, counts = _voxel_ids_dense(keys, n_cells)
    else:
        inverse, first, counts = _voxel_ids_sort(keys)
    n_voxels = counts.shape[0]

    def mean(values: np.ndarray) -> np.ndarray:
        out = np.empty((n_voxels, 3), np.float32)
        for c in range(3):
            out[:, c] = np.bincount(inverse, weights=values[:, c], minlength=n_voxels) / counts
        return out

    return VoxelGrid(
        xyz=mean(xyz),
        rgb=None if rgb is None else mean(rgb),
        inverse=inverse,
        first_index=first,
        counts=counts.astype(np.int64, copy=False),
    )


def crop_mask(
    xyz: np.ndarray,
    box_min: tuple[float, float, float] | None = None,
    box_max: tuple[float, float, float] | None = None,
    max_range: float = 0.0,
) -> np.ndarray:
    """(N,) bool: inside the closed box [box_min, box_max] and within ``max_range`` of the
    origin (0 = no range limit)."""
    keep = np.ones(xyz.shape[0], dtype=bool)
    if box_min is not None and box_max is not None:
        lo = np.asarray(box_min, dtype=xyz.dtype)
        hi = np.asarray(box_max, dtype=xyz.dtype)
        keep &= ((xyz >= lo) & (xyz <= hi)).all(axis=1)
    if max_range > 0:
        keep &= np.einsum("ij,ij->i", xyz, xyz) <= max_range * max_range
    return keep


def cap_points(n: int, n_max: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Sorted indices of a uniform random subset of ``min(n, n_max)`` of ``n`` items, and
    whether it capped (``n > n_max``); ``n_max <= 0`` disables the cap."""
    if n_max <= 0 or n <= n_max:
        return np.arange(n, dtype=np.int64), False
    return np.sort(rng.choice(n, size=n_max, replace=False)).astype(np.int64), True


# ------------------------------------------------------------------------- accumulation


@dataclass
class Sweep:
    """One cloud stored in the accumulation frame."""

    stamp_ns: int
    xyz: np.ndarray  # (M, 3) float32, fixed frame
    rgb: np.ndarray  # (M, 3) float32 (zeros when the cloud has no colour)
    raw_index: np.ndarray  # (M,) int64 into the sweep's raw cloud
    extras: dict[str, np.ndarray] = field(default_factory=dict)


class FrameAccumulator:
    """Ring buffer of sweeps: at most ``max_frames``, none older than ``window_ns`` before the
    newest (0 = no time limit). Memory is bounded by ``max_frames`` clouds.

    A sweep older than the newest stored one means time went backwards (a bag looping, a
    restarted sensor): the buffer is emptied and starts again from that sweep.
    """

    def __init__(self, max_frames: int, window_ns: int = 0) -> None:
        if max_frames < 1 or window_ns < 0:
            raise ValueError("max_frames must be >= 1 and window_ns >= 0")
        self.max_frames = max_frames
        self.window_ns = window_ns
        self._sweeps: deque[Sweep] = deque()

    def __len__(self) -> int:
        return len(self._sweeps)

    @property
    def newest_stamp(self) -> int | None:
        return self._sweeps[-1].stamp_ns if self._sweeps else None

    def clear(self) -> None:
        self._sweeps.clear()

    def resize(self, max_frames: int, window_ns: int) -> None:
        """Change the window at run time (parameter update); evicts at once."""
        if max_frames < 1 or window_ns < 0:
            raise ValueError("max_frames must be >= 1 and window_ns >= 0")
        self.max_frames, self.window_ns = max_frames, window_ns
        self._evict()

    def _evict(self) -> int:
        dropped = 0
        while len(self._sweeps) > self.max_frames:
            self._sweeps.popleft()
            dropped += 1
        if self.window_ns > 0 and self._sweeps:
            oldest_allowed = self._sweeps[-1].stamp_ns - self.window_ns
            while self._sweeps[0].stamp_ns < oldest_allowed:
                self._sweeps.popleft()
                dropped += 1
        return dropped

    def add(self, sweep: Sweep) -> int:
        """Store a sweep; returns how many sweeps were evicted."""
        dropped = 0
        newest = self.newest_stamp
        if newest is not None and sweep.stamp_ns < newest:
            dropped = len(self._sweeps)
            self._sweeps.clear()
        elif newest is not None and sweep.stamp_ns == newest:
            self._sweeps.pop()  # the same instant again: keep the latest data
            dropped = 1
        self._sweeps.append(sweep)
        return dropped + self._evict()

    def sweeps(self) -> list[Sweep]:
        """Newest first."""
        return list(reversed(self._sweeps))


# ------------------------------------------------------------------------- pipeline


@dataclass
class PreparedInput:
    """Model input plus the map back to the output cloud (see module doc)."""

    xyz: np.ndarray  # (V, 3) float32, model points, output frame
    rgb: np.ndarray  # (V, 3) float32 in [-1, 1]
    frame_id: str  # output frame
    stamp_ns: int  # stamp of the current (newest) cloud
    points_xyz: np.ndarray  # (P, 3) float32, output cloud, output frame
    points_rgb: np.ndarray  # (P, 3) float32
    point_to_model: np.ndarray  # (P,) int64 into xyz, -1 = voxel dropped by the cap
    point_sweep: np.ndarray  # (P,) int32, 0 = current cloud
    point_raw_index: np.ndarray  # (P,) int64 into that sweep's raw cloud
    point_extras: dict[str, np.ndarray]  # (P,) each; fields present in every sweep
    n_sweeps: int
    n_raw: int  # raw point count (width*height) of the current cloud
    capped: bool  # True when max_points dropped model points (the node warns)
    n_model_before_cap: int
    timings: dict[str, float]  # seconds per stage
    dropped: dict[str, int] = field(default_factory=dict)  # points dropped here, by reason


@dataclass
class Skipped:
    """Why a cloud produced no model input. ``kind``: ``invalid`` (undecodable message),
    ``empty`` (no finite points / nothing left after cropping; publish an empty result),
    ``transform`` (pose unavailable; skip and warn)."""

    kind: str
    reason: str
    stamp_ns: int
    timings: dict[str, float] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # points dropped here, by reason


class Preprocessor:
    """Stateful pipeline: one instance per input stream (it owns the accumulation buffer)."""

    def __init__(
        self,
        config: PreprocessConfig | None = None,
        transforms: TransformSource | None = None,
    ) -> None:
        self.config = (config or PreprocessConfig()).validate()
        self.transforms: TransformSource = transforms if transforms is not None else TransformCache()
        self.accumulator = FrameAccumulator(self.config.accumulate_frames, self.config.window_ns)
        self._rng = np.random.default_rng(self.config.seed)

    def update_config(self, config: PreprocessConfig) -> None:
        """Apply new settings (run-time parameter change); a new fixed frame drops the buffer."""
        config = config.validate()
        if config.fixed_frame != self.config.fixed_frame:
            self.accumulator.clear()
        self.accumulator.resize(config.accumulate_frames, config.window_ns)
        if config.seed != self.config.seed:
            self._rng = np.random.default_rng(config.seed)
        self.config = config

    def _lookup(self, target: str, source: str, stamp_ns: int) -> Transform | None:
        if target == source:
            return None  # identity: skip the multiply
        return self.transforms.lookup_or_raise(target, source, stamp_ns, self.config.tolerance_ns)

    def process_msg(self, msg: Any) -> PreparedInput | Skipped:
        """Decode a PointCloud2 (timed as ``decode``) and ``process`` it."""
        t0 = time.perf_counter()
        try:
            cloud = decode_cloud(msg)
        except CloudError as exc:
            stamp = int(msg.header.stamp.sec) * _NS + int(msg.header.stamp.nanosec)
            return Skipped("invalid", f"invalid PointCloud2: {exc}", stamp,
                           {"decode": time.perf_counter() - t0})
        decode_s = time.perf_counter() - t0
        result = self.process(cloud)
        result.timings = {"decode": decode_s, **result.timings}
        return result

    def process(
        self, cloud: DecodedCloud, stamp_ns: int | None = None, frame_id: str | None = None
    ) -> PreparedInput | Skipped:
        """Run one cloud through the pipeline. ``stamp_ns``/``frame_id`` default to the
        cloud's header values (pass them for PCD files or synthetic frames)."""
        cfg = self.config
        stamp = cloud.stamp_ns if stamp_ns is None else int(stamp_ns)
        sensor_frame = cloud.frame_id if frame_id is None else frame_id
        fixed = cfg.fixed_frame or sensor_frame
        target = cfg.target_frame or fixed
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = now - clock
            clock = now

        if len(cloud) == 0:
            return Skipped("empty", "cloud has no finite points", stamp, timings)
        xyz = cloud.xyz
        keep = crop_mask(xyz, max_range=cfg.crop_max_range) if cfg.crop_max_range > 0 else None
        # outliers kilometres away would stretch the model's voxel grid past what it can hold
        n_far = 0 if keep is None else int(keep.shape[0] - np.count_nonzero(keep))
        dropped = {"beyond_range": n_far} if n_far else {}
        try:
            t_fixed_sensor = self._lookup(fixed, sensor_frame, stamp)
        except TransformLookupError as exc:
            return Skipped("transform", f"no transform {fixed} <- {sensor_frame}: {exc}",
                           stamp, timings)
        rgb = cloud.rgb if cloud.rgb is not None else np.zeros_like(xyz)
        raw_index, extras = cloud.index, cloud.extras
        if keep is not None and not keep.all():
            xyz, rgb = np.compress(keep, xyz, axis=0), np.compress(keep, rgb, axis=0)
            raw_index = raw_index[keep]
            extras = {k: v[keep] for k, v in extras.items()}
        if t_fixed_sensor is not None:
            xyz = t_fixed_sensor.apply(xyz)
        lap("transform")

        self.accumulator.add(Sweep(stamp, xyz, rgb, raw_index, dict(extras)))
        sweeps = self.accumulator.sweeps()
        sizes = [s.xyz.shape[0] for s in sweeps]
        points_xyz = np.concatenate([s.xyz for s in sweeps]) if len(sweeps) > 1 else sweeps[0].xyz
        points_rgb = np.concatenate([s.rgb for s in sweeps]) if len(sweeps) > 1 else sweeps[0].rgb
        point_raw = (np.concatenate([s.raw_index for s in sweeps]) if len(sweeps) > 1
                     else sweeps[0].raw_index)
        point_sweep = np.repeat(np.arange(len(sweeps), dtype=np.int32), sizes)
        shared = set.intersection(*(set(s.extras) for s in sweeps))
        point_extras = {k: np.concatenate([s.extras[k] for s in sweeps]) for k in sorted(shared)}
        lap("accumulate")

        try:
            t_target_fixed = self._lookup(target, fixed, stamp)
        except TransformLookupError as exc:
            return Skipped("transform", f"no transform {target} <- {fixed}: {exc}",
                           stamp, timings)
        if t_target_fixed is not None:
            points_xyz = t_target_fixed.apply(points_xyz)
        timings["transform"] += time.perf_counter() - clock
        clock = time.perf_counter()

        if cfg.crop_min is not None:
            inside = crop_mask(points_xyz, cfg.crop_min, cfg.crop_max)
            if not inside.all():
                points_xyz = np.compress(inside, points_xyz, axis=0)
                points_rgb = np.compress(inside, points_rgb, axis=0)
                point_raw, point_sweep = point_raw[inside], point_sweep[inside]
                point_extras = {k: v[inside] for k, v in point_extras.items()}
        lap("crop")
        if points_xyz.shape[0] == 0:
            return Skipped("empty", "no points left inside the crop box", stamp, timings,
                           dropped)

        if cfg.input_voxel_size > 0:
            grid = voxel_downsample(points_xyz, points_rgb, cfg.input_voxel_size)
            model_xyz, model_rgb, to_model = grid.xyz, grid.rgb, grid.inverse
        else:
            model_xyz, model_rgb = points_xyz, points_rgb
            to_model = np.arange(points_xyz.shape[0], dtype=np.int64)
        lap("voxelize")

        n_model = model_xyz.shape[0]
        kept, capped = cap_points(n_model, cfg.max_points, self._rng)
        if capped:
            remap = np.full(n_model, -1, dtype=np.int64)  # (V,) old model index -> new
            remap[kept] = np.arange(kept.shape[0], dtype=np.int64)
            model_xyz = np.take(model_xyz, kept, axis=0)
            model_rgb = np.take(model_rgb, kept, axis=0)
            to_model = remap[to_model]
        lap("cap")
        timings["total"] = sum(timings.values())
        return PreparedInput(
            xyz=np.ascontiguousarray(model_xyz, dtype=np.float32),
            rgb=np.ascontiguousarray(model_rgb, dtype=np.float32),
            frame_id=target,
            stamp_ns=stamp,
            points_xyz=points_xyz.astype(np.float32, copy=False),
            points_rgb=points_rgb.astype(np.float32, copy=False),
            point_to_model=to_model,
            point_sweep=point_sweep,
            point_raw_index=point_raw,
            point_extras=point_extras,
            n_sweeps=len(sweeps),
            n_raw=cloud.n_raw,
            capped=capped,
            n_model_before_cap=n_model,
            timings=timings,
            dropped=dropped,
        )

    def with_config(self, **changes: Any) -> PreprocessConfig:
        """A copy of the current config with some fields changed (for ``update_config``)."""
        return replace(self.config, **changes)
