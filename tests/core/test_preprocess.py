"""Pre-processing: accumulation against the synthetic scene, windows, voxels, crop, cap.

Messages are plain namespaces with the PointCloud2 / Odometry attributes the decoder and the
cache read (both are duck-typed; the node's rclpy messages are covered in tests/ros)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace as NS

import numpy as np
import pytest

from sphmask_core.sensor.pointcloud2 import DecodedCloud
from sphmask_core.sensor.preprocess import (
    FrameAccumulator,
    PreparedInput,
    PreprocessConfig,
    Preprocessor,
    Skipped,
    Sweep,
    cap_points,
    crop_mask,
    voxel_downsample,
)
from sphmask_core.sensor.transforms import Transform, TransformCache

NS_PER_S = 1_000_000_000


@pytest.fixture(scope="module")
def synthetic():
    synth = pytest.importorskip("sphmask_core.data.synthetic")
    cfg = synth.SyntheticConfig(density=200.0, n_objects_range=(3, 5), room_size_range=(4.0, 5.0))
    return synth.generate_frames(0, cfg, n_frames=3)


def _header(frame_id: str, stamp_ns: int) -> NS:
    sec, nanosec = divmod(stamp_ns, NS_PER_S)
    return NS(frame_id=frame_id, stamp=NS(sec=sec, nanosec=nanosec))


def _odometry(stamp_ns: int, pose: np.ndarray) -> NS:
    """nav_msgs/Odometry look-alike: world <- camera at ``stamp_ns``."""
    t = Transform.from_matrix(pose)
    (x, y, z), (qx, qy, qz, qw) = t.translation, t.quat_xyzw
    return NS(header=_header("world", stamp_ns), child_frame_id="camera",
              pose=NS(pose=NS(position=NS(x=x, y=y, z=z),
                              orientation=NS(x=qx, y=qy, z=qz, w=qw))))


def _cloud_msg(header: NS, columns: dict[str, np.ndarray]) -> NS:
    """sensor_msgs/PointCloud2 look-alike of little-endian float32 / int32 columns."""
    codes = {np.dtype("<f4"): 7, np.dtype("<i4"): 5}  # PointField FLOAT32, INT32
    dtype = np.dtype([(name, col.dtype.newbyteorder("<")) for name, col in columns.items()])
    points = np.empty(len(next(iter(columns.values()))), dtype=dtype)
    for name, col in columns.items():
        points[name] = col
    fields = [NS(name=n, offset=dtype.fields[n][1], datatype=codes[dtype[n]], count=1)
              for n in dtype.names]
    return NS(header=header, height=1, width=len(points), fields=fields, is_bigendian=False,
              point_step=dtype.itemsize, row_step=dtype.itemsize * len(points), is_dense=True,
              data=points.tobytes())


def _frame_msg(frame, stamp_ns: int) -> NS:
    xyz = frame.xyz.astype(np.float32)
    return _cloud_msg(_header("camera", stamp_ns), {
        "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
        # float colour channels 0..1 are read as r/g/b (sphmask_core.data.colour)
        "r": ((frame.rgb[:, 0] + 1) / 2).astype(np.float32),
        "g": ((frame.rgb[:, 1] + 1) / 2).astype(np.float32),
        "b": ((frame.rgb[:, 2] + 1) / 2).astype(np.float32),
        "scene_index": frame.index.astype(np.int32),
        "instance": frame.instance.astype(np.int32)})


def _cloud(xyz: np.ndarray, stamp_ns: int = 0, frame_id: str = "s") -> DecodedCloud:
    xyz = np.asarray(xyz, dtype=np.float32)
    return DecodedCloud(xyz=xyz, rgb=None, intensity=None,
                        index=np.arange(len(xyz), dtype=np.int64), n_raw=len(xyz), height=1,
                        width=len(xyz), frame_id=frame_id, stamp_ns=stamp_ns)


# ------------------------------------------------------------------- accumulation end to end


def test_accumulating_synthetic_frames_reproduces_the_scene(synthetic) -> None:
    scene, frames = synthetic
    cache = TransformCache()
    for f in frames:
        cache.add_odometry(_odometry(int(round(f.stamp * NS_PER_S)), f.pose))
    pre = Preprocessor(PreprocessConfig(fixed_frame="world", accumulate_frames=3, input_voxel_size=0.0,
                                        max_points=0, tolerance_s=0.0), cache)
    for f in frames:
        out = pre.process_msg(_frame_msg(f, int(round(f.stamp * NS_PER_S))))
        assert isinstance(out, PreparedInput), out
    assert out.n_sweeps == 3 and out.frame_id == "world"
    idx = out.point_extras["scene_index"].astype(np.int64)
    # every scene point was seen, and each seen point lands where the scene has it
    assert set(idx.tolist()) == set(range(len(scene.xyz)))
    np.testing.assert_allclose(out.points_xyz, scene.xyz[idx], atol=2e-4)
    np.testing.assert_array_equal(out.point_extras["instance"], scene.instance[idx])
    np.testing.assert_allclose(out.points_rgb, scene.rgb[idx], atol=0.5 / 127.5 + 1e-6)
    # newest sweep first; raw indices refer to each sweep's own message
    sizes = [len(f.xyz) for f in reversed(frames)]
    np.testing.assert_array_equal(out.point_sweep, np.repeat([0, 1, 2], sizes))
    np.testing.assert_array_equal(out.point_raw_index[: sizes[0]], np.arange(sizes[0]))
    np.testing.assert_array_equal(idx[: sizes[0]], frames[-1].index)
    np.testing.assert_array_equal(out.point_to_model, np.arange(len(idx)))
    assert set(out.timings) >= {"decode", "transform", "accumulate", "crop", "voxelize", "cap"}


def test_time_window_in_the_pipeline(synthetic) -> None:
    _, frames = synthetic  # 0.1 s apart
    cache = TransformCache()
    for f in frames:
        cache.add_odometry(_odometry(int(round(f.stamp * NS_PER_S)), f.pose))
    pre = Preprocessor(PreprocessConfig(fixed_frame="world", accumulate_frames=5,
                                        accumulate_seconds=0.15, input_voxel_size=0.05), cache)
    outs = [pre.process_msg(_frame_msg(f, int(round(f.stamp * NS_PER_S)))) for f in frames]
    assert [o.n_sweeps for o in outs] == [1, 2, 2]


def test_output_in_a_target_frame_and_crop_there() -> None:
    cache = TransformCache()
    cache.set_static_from_params("base", "s", (0, 0, 1), (0, 0, 0, 1))  # sensor 1 m up
    cache.set_static_from_params("base", "out", (10, 0, 0), (0, 0, 0, 1))
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 5]], np.float32)
    cfg = PreprocessConfig(fixed_frame="base", target_frame="out", input_voxel_size=0.0,
                           crop_min=(-100, -100, -100), crop_max=(100, 100, 2.0))
    out = Preprocessor(cfg, cache).process(_cloud(pts, frame_id="s"))
    np.testing.assert_allclose(out.points_xyz, [[-10, 0, 1], [-9, 0, 1]])
    np.testing.assert_array_equal(out.point_raw_index, [0, 1])
    assert out.frame_id == "out"


def test_range_crop_is_measured_from_the_sensor() -> None:
    cache = TransformCache()
    cache.set_static_from_params("world", "s", (100, 0, 0), (0, 0, 0, 1))
    pts = np.array([[1, 0, 0], [0, 3, 0], [2, 2, 0]], np.float32)
    cfg = PreprocessConfig(fixed_frame="world", input_voxel_size=0.0, crop_max_range=2.9)
    out = Preprocessor(cfg, cache).process(_cloud(pts))
    np.testing.assert_array_equal(out.point_raw_index, [0, 2])


# ------------------------------------------------------------------- skips


def test_skip_reasons() -> None:
    pre = Preprocessor(PreprocessConfig(fixed_frame="world"), TransformCache())
    skip = pre.process(_cloud(np.ones((5, 3)), stamp_ns=7))
    assert isinstance(skip, Skipped) and skip.kind == "transform" and "world <- s" in skip.reason
    assert skip.stamp_ns == 7
    assert Preprocessor().process(_cloud(np.empty((0, 3)))).kind == "empty"
    cfg = PreprocessConfig(crop_min=(5, 5, 5), crop_max=(6, 6, 6))
    assert Preprocessor(cfg).process(_cloud(np.zeros((3, 3)))).kind == "empty"
    zeros = np.zeros(4, np.float32)
    bad = _cloud_msg(_header("s", 0), {"x": zeros, "y": zeros, "z": zeros})
    bad.point_step, bad.row_step = 100, 400
    skip = Preprocessor().process_msg(bad)
    assert skip.kind == "invalid" and "data has" in skip.reason


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="needs fixed_frame"):
        PreprocessConfig(accumulate_frames=2).validate()
    with pytest.raises(ValueError, match="below crop_max"):
        PreprocessConfig(crop_min=(0, 0, 0), crop_max=(1, 0, 1)).validate()
    with pytest.raises(ValueError, match="together"):
        PreprocessConfig(crop_min=(0, 0, 0)).validate()
    with pytest.raises(ValueError, match="input_voxel_size"):
        PreprocessConfig(input_voxel_size=-1.0).validate()


# ------------------------------------------------------------------- accumulator


def _sweep(stamp: int, n: int = 2) -> Sweep:
    return Sweep(stamp, np.full((n, 3), stamp, np.float32), np.zeros((n, 3), np.float32),
                 np.arange(n))


def test_accumulator_count_window() -> None:
    acc = FrameAccumulator(max_frames=2)
    assert acc.add(_sweep(1)) == 0 and acc.add(_sweep(2)) == 0
    assert acc.add(_sweep(3)) == 1
    assert [s.stamp_ns for s in acc.sweeps()] == [3, 2]


def test_accumulator_time_window_and_time_jumps() -> None:
    acc = FrameAccumulator(max_frames=10, window_ns=150)
    for stamp in (0, 100, 150):
        acc.add(_sweep(stamp))
    assert [s.stamp_ns for s in acc.sweeps()] == [150, 100, 0]  # 0 is exactly at the edge
    acc.add(_sweep(200))
    assert [s.stamp_ns for s in acc.sweeps()] == [200, 150, 100]
    acc.add(_sweep(200, n=5))  # same instant again: replaced, not duplicated
    assert len(acc) == 3 and acc.sweeps()[0].xyz.shape == (5, 3)
    acc.add(_sweep(50))  # time went backwards (bag loop): start over
    assert [s.stamp_ns for s in acc.sweeps()] == [50]
    acc.resize(1, 0)
    assert len(acc) == 1
    for stamp in range(60, 100):
        acc.add(_sweep(stamp))
    assert len(acc) == 1  # memory stays bounded


def test_update_config_resizes_and_resets() -> None:
    cache = TransformCache()
    cache.set_static_from_params("w", "s", (0, 0, 0), (0, 0, 0, 1))
    pre = Preprocessor(PreprocessConfig(fixed_frame="w", accumulate_frames=3, input_voxel_size=0), cache)
    for k in range(3):
        out = pre.process(_cloud(np.full((1, 3), k), stamp_ns=k))
    assert out.n_sweeps == 3
    pre.update_config(pre.with_config(accumulate_frames=2))
    assert len(pre.accumulator) == 2
    cache.set_static_from_params("w2", "s2", (0, 0, 0), (0, 0, 0, 1))
    pre.update_config(pre.with_config(fixed_frame="w2"))
    assert len(pre.accumulator) == 0


# ------------------------------------------------------------------- voxels, crop, cap


def test_voxel_downsample_hand_example() -> None:
    xyz = np.array([[0.01, 0.01, 0.01], [0.03, 0.0, 0.0], [0.015, 0.019, 0.001],
                    [-0.001, 0.0, 0.0]], np.float32)
    rgb = np.array([[1, 1, 1], [0, 0, 0], [0, -1, 1], [0.5, 0.5, 0.5]], np.float32)
    g = voxel_downsample(xyz, rgb, 0.02)
    # voxels by grid key: (-1,0,0) < (0,0,0) < (1,0,0)
    np.testing.assert_array_equal(g.inverse, [1, 2, 1, 0])
    np.testing.assert_array_equal(g.counts, [1, 2, 1])
    np.testing.assert_array_equal(g.first_index, [3, 0, 1])
    np.testing.assert_allclose(g.xyz[1], [0.0125, 0.0145, 0.0055], atol=1e-7)
    np.testing.assert_allclose(g.rgb[1], [0.5, 0.0, 1.0])
    np.testing.assert_allclose(g.xyz[g.inverse][1], xyz[1])


@pytest.mark.parametrize(("spread", "method"), [
    ((1.0, 1.0, 1.0), "dense"), ((1.0, 1.0, 1.0), "sort"),
    ((1.0, 1.0, 1e5), "auto"),  # too many cells for the dense table: sort path
    ((1e6, 1e6, 1e6), "auto"),  # too wide to pack keys in int64: row-unique fallback
])
def test_voxel_downsample_matches_brute_force(spread: tuple, method: str) -> None:
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(3000, 3)) * np.array(spread)
    xyz[:, 2] = np.round(xyz[:, 2], 1)  # collisions along z
    g = voxel_downsample(xyz, None, 0.25, method=method)
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, p in enumerate(xyz):
        groups[tuple(np.floor(p / 0.25).astype(np.int64))].append(i)
    assert len(groups) == len(g.counts) and g.rgb is None
    for members in groups.values():
        v = g.inverse[members[0]]
        assert (g.inverse[members] == v).all() and g.counts[v] == len(members)
        assert g.first_index[v] == members[0]
        np.testing.assert_allclose(g.xyz[v], xyz[members].mean(0), rtol=1e-5, atol=1e-5)


def test_voxel_methods_agree_with_colour() -> None:
    rng = np.random.default_rng(4)
    xyz = rng.uniform(-2, 2, size=(20000, 3)).astype(np.float32)
    rgb = rng.uniform(-1, 1, size=(20000, 3)).astype(np.float32)
    a = voxel_downsample(xyz, rgb, 0.1, method="dense")
    b = voxel_downsample(xyz, rgb, 0.1, method="sort")
    for name in ("inverse", "first_index", "counts", "xyz", "rgb"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_voxel_downsample_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="too many"):
        voxel_downsample(np.array([[0, 0, 0], [1e4, 1e4, 1e4]]), None, 0.01, method="dense")
    with pytest.raises(ValueError, match="voxel_size must be > 0"):
        voxel_downsample(np.zeros((2, 3)), None, 0.0)
    with pytest.raises(ValueError, match="shape"):
        voxel_downsample(np.zeros((2, 2)), None, 0.1)
    assert voxel_downsample(np.zeros((0, 3)), None, 0.1).xyz.shape == (0, 3)


def test_crop_mask_box_is_closed_and_range() -> None:
    xyz = np.array([[0, 0, 0], [1, 1, 1], [1.0001, 0, 0], [-1, 0, 0]], np.float32)
    np.testing.assert_array_equal(crop_mask(xyz, (-0.5, 0, 0), (1, 1, 1)),
                                  [True, True, False, False])
    np.testing.assert_array_equal(crop_mask(xyz, max_range=1.0), [True, False, False, True])


def test_cap_points() -> None:
    rng = np.random.default_rng(0)
    idx, capped = cap_points(10, 20, rng)
    assert not capped and (idx == np.arange(10)).all()
    idx, capped = cap_points(1000, 100, rng)
    assert capped and idx.shape == (100,) and (np.diff(idx) > 0).all() and idx.max() < 1000
    idx, capped = cap_points(1000, 0, rng)
    assert not capped and idx.shape == (1000,)
    a, _ = cap_points(1000, 10, np.random.default_rng(5))
    b, _ = cap_points(1000, 10, np.random.default_rng(5))
    assert (a == b).all()


def test_cap_and_voxel_maps_in_the_pipeline() -> None:
    rng = np.random.default_rng(2)
    pts = rng.uniform(0, 1, size=(5000, 3)).astype(np.float32)
    cfg = PreprocessConfig(input_voxel_size=0.1, max_points=300, seed=3)
    out = Preprocessor(cfg).process(_cloud(pts))
    n_cells = len(np.unique(np.floor(pts.astype(np.float64) / 0.1).astype(int), axis=0))
    assert out.capped and out.n_model_before_cap == n_cells and out.xyz.shape == (300, 3)
    dropped = out.point_to_model < 0
    assert 0 < dropped.sum() < len(pts)
    # every surviving point's model point is its voxel's mean: same voxel cell
    kept = ~dropped
    cell_pt = np.floor(out.points_xyz[kept].astype(np.float64) / 0.1)
    cell_model = np.floor(out.xyz[out.point_to_model[kept]].astype(np.float64) / 0.1)
    np.testing.assert_array_equal(cell_pt, cell_model)
    # each model point is the mean of the points mapped to it
    sums = np.zeros((300, 3))
    np.add.at(sums, out.point_to_model[kept], out.points_xyz[kept])
    counts = np.bincount(out.point_to_model[kept], minlength=300)[:, None]
    np.testing.assert_allclose(sums / counts, out.xyz, atol=1e-5)
    np.testing.assert_array_equal(out.rgb, 0.0)  # colourless input -> zeros (Scene contract)
