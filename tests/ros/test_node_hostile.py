"""The live node under hostile input (issue 15): a seeded fuzz run over DDS, callback exceptions,
absurd stamps and Ctrl-C mid-frame. Reuses the plumbing of node_harness.py (oracle segmenter,
probe node, graph spun by the test with deadlines)."""

from __future__ import annotations

import array
import time

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import PointCloud2, PointField

from sphmask_core.sensor.pointcloud2 import MAX_ABS_COORDINATE
from sphmask_ros.pointcloud2 import encode_cloud
from tests.ros.node_harness import Graph, OracleSegmenter, Probe, cloud_msg, make_node, scene_points

U32_MAX = 2**32 - 1


class CheckingOracle(OracleSegmenter):
    """The oracle, also recording every model input that is not finite, in range and coloured
    within [-1, 1]: whatever arrives, the model must only see clean points."""

    def __init__(self, real) -> None:
        super().__init__(real)
        self.violations: list[str] = []

    def __call__(self, xyz, rgb=None):
        if not np.isfinite(xyz).all() or np.abs(xyz).max(initial=0.0) > MAX_ABS_COORDINATE:
            self.violations.append(f"xyz out of range: max |x| {np.abs(xyz).max()}")
        if rgb is not None and not (np.isfinite(rgb).all() and np.abs(rgb).max(initial=0.0) <= 1.0):
            self.violations.append("rgb not finite in [-1, 1]")
        return super().__call__(xyz, rgb)


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def graph(context, checkpoint):
    node = make_node(context, checkpoint, "t_hostile")  # default crop.max_range
    oracle = CheckingOracle(node.runtime.pipeline.segmenter)
    node.runtime.pipeline.segmenter = oracle
    g = Graph(context, node, Probe(context, "t_hostile"))
    g.oracle = oracle
    assert g.spin_until(g.connected, 15.0), "probe and node did not discover each other"
    yield g
    g.close()


# ------------------------------------------------------------------ the hostile messages

def _base(rng: np.random.Generator, stamp: Time) -> PointCloud2:
    xyz, rgb = scene_points(int(rng.integers(5, 60)), seed=int(rng.integers(1 << 30)))
    return cloud_msg(xyz, rgb if rng.random() < 0.5 else None, stamp)


def _points(stamp: Time, xyz: np.ndarray, **cols: np.ndarray) -> PointCloud2:
    return encode_cloud(cloud_msg(xyz[:1], None, stamp).header, {"xyz": xyz, **cols})


def _kind(kind: str, rng: np.random.Generator, stamp: Time) -> PointCloud2:
    """One malformed message of the kinds the issue lists (and the older ones)."""
    xyz, _ = scene_points(20, seed=int(rng.integers(1 << 30)))
    msg = cloud_msg(xyz, None, stamp)
    if kind == "point_step_2**31":
        msg.point_step, msg.row_step = 2**31, U32_MAX
    elif kind == "point_step_2**31_empty":
        msg.width, msg.point_step, msg.row_step = 0, 2**31 + 5, 0
        msg.data = array.array("B")
    elif kind == "count_3e8_empty":
        msg.width, msg.point_step, msg.row_step = 0, 300_000_012, 0
        msg.fields = list(msg.fields) + [PointField(name="blob", offset=12,
                                                    datatype=PointField.UINT8, count=300_000_000)]
        msg.data = array.array("B")
    elif kind == "count_60k":
        count = 60_000
        msg = _raw(xyz[:2], stamp, extra=PointField(name="blob", offset=12,
                                                    datatype=PointField.UINT8, count=count))
    elif kind == "fields_2000":
        msg.fields = list(msg.fields) + [PointField(name=f"f{i}", offset=0,
                                                    datatype=PointField.UINT8, count=1)
                                         for i in range(2000)]
    elif kind == "unknown_type":
        msg.fields = [PointField(name=f.name, offset=f.offset, datatype=42, count=1)
                      for f in msg.fields]
    elif kind == "short":
        msg.data = array.array("B", bytes(msg.data)[:-5])
    elif kind == "long":
        msg.data = array.array("B", bytes(msg.data) + b"\0" * 12)
    elif kind == "row_step_small":
        msg.row_step = msg.point_step * msg.width - 1
    elif kind == "field_past_step":
        msg.fields = list(msg.fields) + [PointField(name="i", offset=msg.point_step - 2,
                                                    datatype=PointField.FLOAT32, count=1)]
    elif kind == "no_xyz":
        msg.fields = [PointField(name="a", offset=0, datatype=PointField.FLOAT32, count=1)]
    elif kind == "duplicate":
        msg.fields = list(msg.fields) + [msg.fields[0]]
    elif kind == "width_huge":
        msg.width, msg.height = U32_MAX, U32_MAX
    elif kind == "coords_1e30":
        xyz[rng.integers(0, len(xyz), 3), 0] = 1e30
        msg = cloud_msg(xyz, None, stamp)
    elif kind == "coords_3.4e38":
        xyz[:3] = 3.4e38
        msg = cloud_msg(xyz, None, stamp)
    elif kind == "coords_nan_inf":
        xyz[::2, 1] = np.nan
        xyz[1::4, 2] = -np.inf
        msg = cloud_msg(xyz, None, stamp)
    elif kind == "outlier_5km":
        xyz[0] = [5000.0, 0.0, 0.0]
        msg = cloud_msg(xyz, None, stamp)
    elif kind == "int32_limits":
        xi = (xyz * 100).astype(np.int32)
        xi[0, 0], xi[1, 0] = 2**31 - 1, -(2**31)
        msg = encode_cloud(msg.header, {"x": xi[:, 0], "y": xi[:, 1], "z": xi[:, 2]})
    elif kind == "float64_coords":
        msg = encode_cloud(msg.header, {"x": xyz[:, 0].astype(np.float64) * 1e300,
                                        "y": xyz[:, 1].astype(np.float64),
                                        "z": xyz[:, 2].astype(np.float64)})
    elif kind == "uint16_colour":
        c = np.full(len(xyz), 65535, np.uint16)
        msg = _points(stamp, xyz, r=c, g=c, b=c)
    elif kind == "nan_colour":
        c = rng.random(len(xyz)).astype(np.float32)
        c[::3] = np.nan
        c[1::5] = np.inf
        msg = _points(stamp, xyz, r=c, g=c, b=c)
    elif kind == "all_bad":
        msg = cloud_msg(np.full((10, 3), np.nan, np.float32), None, stamp)
    elif kind == "big_endian_flag":
        msg.is_bigendian = True
    elif kind == "organized_mismatch":
        msg.height, msg.width = 7, 3
    elif kind == "stamp_zero":
        msg.header.stamp = Time(sec=0, nanosec=0)
    elif kind == "stamp_negative":
        msg.header.stamp = Time(sec=-(2**31), nanosec=999_999_999)
    elif kind == "stamp_future":
        msg.header.stamp = Time(sec=2**31 - 1, nanosec=0)
    else:
        raise ValueError(kind)
    return msg


def _raw(xyz: np.ndarray, stamp: Time, extra: PointField) -> PointCloud2:
    step = 12 + extra.count
    rows = np.zeros((len(xyz), step), np.uint8)
    rows[:, :12] = xyz.astype(np.float32).view(np.uint8).reshape(len(xyz), 12)
    msg = cloud_msg(xyz, None, stamp)
    msg.fields = list(msg.fields) + [extra]
    msg.point_step, msg.row_step, msg.width = step, step * len(xyz), len(xyz)
    msg.data = array.array("B", rows.tobytes())
    return msg


KINDS = ("point_step_2**31", "point_step_2**31_empty", "count_3e8_empty", "count_60k",
         "fields_2000", "unknown_type", "short", "long", "row_step_small", "field_past_step",
         "no_xyz", "duplicate", "width_huge", "coords_1e30", "coords_3.4e38", "coords_nan_inf",
         "outlier_5km", "int32_limits", "float64_coords", "uint16_colour", "nan_colour",
         "all_bad", "big_endian_flag", "organized_mismatch", "stamp_zero", "stamp_negative",
         "stamp_future")


def _mutated(rng: np.random.Generator, stamp: Time) -> PointCloud2:
    """A valid cloud with one to three random header, field or data mutations."""
    msg = _base(rng, stamp)
    for _ in range(int(rng.integers(1, 4))):
        what = int(rng.integers(0, 8))
        if what == 0:
            setattr(msg, str(rng.choice(["height", "width", "point_step", "row_step"])),
                    int(rng.choice([0, 1, 2, 3, 7, 16, 2**31, U32_MAX, int(rng.integers(0, 1 << 32))])))
        elif what == 1:
            fields = list(msg.fields)
            i = int(rng.integers(0, len(fields)))
            f = fields[i]
            fields[i] = PointField(name=f.name, offset=int(rng.choice([f.offset, 0, 3, 2**31, U32_MAX])),
                                   datatype=int(rng.integers(0, 11)),
                                   count=int(rng.choice([0, 1, 2, 3, 1000, 300_000_000, U32_MAX])))
            msg.fields = fields
        elif what == 2:
            cut = int(rng.integers(0, len(msg.data) + 1))
            msg.data = array.array("B", bytes(msg.data)[:cut])
        elif what == 3:
            msg.data = array.array("B", bytes(msg.data) + bytes(int(rng.integers(1, 40))))
        elif what in (4, 5):  # random bytes: NaN, Inf and huge floats in any field
            data = np.frombuffer(bytes(msg.data), np.uint8).copy()
            idx = rng.integers(0, max(len(data), 1), max(len(data) // 8, 1))
            if len(data):
                data[idx] = rng.integers(0, 256, len(idx), dtype=np.uint8)
            msg.data = array.array("B", data.tobytes())
        elif what == 6:
            msg.is_bigendian = not msg.is_bigendian
        else:
            msg.header.stamp = Time(sec=int(rng.integers(-(2**31), 2**31)),
                                    nanosec=int(rng.integers(0, 10**9)))
    return msg


# ------------------------------------------------------------------ tests

def test_fuzz_node_survives_answers_every_valid_cloud_and_stays_bounded(graph):
    """~330 hostile messages (every kind 6 times + random mutations of valid clouds), a valid
    cloud after every 10th: the node answers each valid one, counts every message, the model
    only ever sees clean points, and memory stays put."""
    rng = np.random.default_rng(15)
    stats = graph.node.runtime.stats
    xyz, rgb = scene_points(seed=1)
    for _ in range(3):  # warm caches before the memory baseline
        graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()))
    assert graph.spin_until(graph.idle, 10.0)
    rss0 = _rss_mb()
    plan = [k for k in KINDS for _ in range(6)] + ["mutate"] * 170
    rng.shuffle(plan)
    received0 = stats.snapshot(0).counters["received"]
    answered = 0
    for i, kind in enumerate(plan):
        stamp = graph.probe.stamp()
        msg = _mutated(rng, stamp) if kind == "mutate" else _kind(kind, rng, stamp)
        n0 = stats.snapshot(0).counters["received"]
        graph.probe.pub.publish(msg)
        assert graph.spin_until(lambda: stats.snapshot(0).counters["received"] > n0, 5.0), \
            f"message {i} ({kind}) never reached the node"
        if i % 10 == 9:
            out = graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()))
            assert len(out.instances) == 2, f"after message {i} ({kind})"
            answered += 1
    assert graph.spin_until(graph.idle, 10.0)
    snap = stats.snapshot(0)
    assert snap.counters["received"] - received0 == len(plan) + answered
    assert snap.counters["callback_errors"] == 0
    assert snap.counters["model_errors"] == 0, snap.last_error
    assert graph.oracle.violations == []
    assert snap.max_latency_ms < 60_000.0
    growth = _rss_mb() - rss0
    assert growth < 150.0, f"RSS grew by {growth:.0f} MB over {len(plan)} hostile messages"
    print(f"fuzz: {len(plan)} hostile messages, {answered} valid answered, "
          f"{snap.counters['invalid']} refused, RSS +{growth:.1f} MB")


def test_unexpected_exception_in_the_input_callback_is_counted_not_fatal(graph, monkeypatch):
    import sphmask_ros.runtime as runtime_mod

    real = runtime_mod.decode_frame
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError("simulated")
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime_mod, "decode_frame", flaky)
    stats = graph.node.runtime.stats
    errors0 = stats.snapshot(0).counters["callback_errors"]
    xyz, rgb = scene_points(seed=2)
    graph.probe.pub.publish(cloud_msg(xyz, rgb, graph.probe.stamp()))
    assert graph.spin_until(lambda: stats.snapshot(0).counters["callback_errors"] == errors0 + 1, 5.0)
    out = graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()))
    assert len(out.instances) == 2


def test_absurd_stamps_leave_latency_statistics_and_diagnostics_alone(graph):
    stats = graph.node.runtime.stats
    xyz, rgb = scene_points(seed=3)
    graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()))
    invalid0 = stats.snapshot(0).counters["stamp_invalid"]
    for stamp in (Time(sec=0), Time(sec=-100), Time(sec=2**31 - 1)):
        timing_n = len(graph.probe.got["timing"])
        graph.send(cloud_msg(xyz, rgb, stamp))
        assert graph.spin_until(lambda: any(t.header.stamp == stamp
                                            for t in graph.probe.got["timing"][timing_n:]), 5.0)
        timing = [t for t in graph.probe.got["timing"] if t.header.stamp == stamp][-1]
        assert np.isnan(timing.latency_ms)
    snap = stats.snapshot(0)
    assert snap.counters["stamp_invalid"] == invalid0 + 3
    assert snap.max_latency_ms < 60_000.0
    n = len(graph.probe.got["diag"])
    assert graph.spin_until(lambda: len(graph.probe.got["diag"]) > n, 5.0)
    status = graph.probe.got["diag"][-1].status[0]
    assert status.level != DiagnosticStatus.ERROR, status.message


def test_ctrl_c_mid_frame_logs_no_error(checkpoint):
    """Ctrl-C while the worker is inside a frame: rclpy's SIGINT handler shuts the rcl context
    down (in C, without destroying any node), spin ends, and the frame's results can no longer
    be published; they are dropped quietly, not reported as a failed frame."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = make_node(ctx, checkpoint, "t_ctrl_c")
    oracle = OracleSegmenter(node.runtime.pipeline.segmenter)
    oracle.delay = 1.0
    node.runtime.pipeline.segmenter = oracle
    g = Graph(ctx, node, Probe(ctx, "t_ctrl_c"))
    try:
        assert g.spin_until(g.connected, 15.0)
        xyz, rgb = scene_points(seed=4)
        g.probe.pub.publish(cloud_msg(xyz, rgb, g.probe.stamp()))
        assert g.spin_until(lambda: oracle.calls == 1, 10.0)
        with ctx.handle:
            ctx.handle.shutdown()  # what the SIGINT handler does
        deadline = time.monotonic() + 10.0
        while node.runtime.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not node.runtime.busy
        snap = node.runtime.stats.snapshot(0)
        assert snap.counters["model_errors"] == 0 and snap.last_error == "", snap.last_error
    finally:
        for close in (g.executor.shutdown, g.probe.node.destroy_node, node.destroy_node):
            try:
                close()
            except Exception:  # noqa: BLE001 - handles refused after shutdown
                pass
        if ctx.ok():
            rclpy.shutdown(context=ctx)
