"""Hostile PointCloud2 layouts and bad points (issue 15), without a ROS graph.

Each test pins one way a single message used to kill, stall or blind the node: a point_step
numpy cannot represent, a field count that made the decoder build one Python name per element,
single bad points that threw away whole frames, colours of other integer widths, and stamps
that poisoned the latency statistics.
"""

from __future__ import annotations

import array

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from sphmask_core.sensor.pointcloud2 import CloudError, decode_cloud, dtype_from_fields
from sphmask_ros.diagnostics import (
    RuntimeStats,
    TransportWindow,
    diagnostic_array,
    plausible_latency,
)
from sphmask_ros.pointcloud2 import encode_cloud

F32 = PointField.FLOAT32


def _xyz_fields() -> list[PointField]:
    return [PointField(name=n, offset=4 * i, datatype=F32, count=1) for i, n in enumerate("xyz")]


def _raw_cloud(fields, point_step: int, width: int, height: int = 1, data: bytes = b"",
               row_step: int | None = None) -> PointCloud2:
    msg = PointCloud2()
    msg.height, msg.width = height, width
    msg.fields = fields
    msg.point_step = point_step
    msg.row_step = point_step * width if row_step is None else row_step
    msg.data = array.array("B", data)
    return msg


# ------------------------------------------------------------------ sizes numpy cannot hold

@pytest.mark.parametrize("width", [0, 1])
def test_point_step_beyond_a_c_int_is_a_cloud_error(width):
    """point_step >= 2**31 is a legal uint32; numpy's dtype refuses it with a plain ValueError
    ("integer won't fit into a C int") that the node's callback did not expect."""
    step = 2**31
    msg = _raw_cloud(_xyz_fields(), step, width, data=b"\0" * (16 if width else 0),
                     row_step=min(2**32 - 1, step * width))
    with pytest.raises(CloudError):
        decode_cloud(msg)


def test_huge_field_count_is_one_sub_array_column():
    """A field of 20 000 elements: one (M, 20000) column, not 20 000 named ones (which took
    seconds per message, and a 3e8 count in a 150-byte message took 4 GiB)."""
    count = 20_000
    fields = _xyz_fields() + [PointField(name="blob", offset=12, datatype=PointField.UINT8,
                                         count=count)]
    step = 12 + count
    rng = np.random.default_rng(0)
    rows = np.zeros((3, step), np.uint8)
    rows[:, :12] = rng.uniform(-1, 1, (3, 3)).astype(np.float32).view(np.uint8)
    rows[:, 12:] = rng.integers(0, 256, (3, count), dtype=np.uint8)
    cloud = decode_cloud(_raw_cloud(fields, step, 3, data=rows.tobytes()))
    assert list(cloud.extras) == ["blob"]
    np.testing.assert_array_equal(cloud.extras["blob"], rows[:, 12:])
    # the 150-byte message of the issue: an empty cloud declaring 3e8 elements
    huge = [PointField(name="blob", offset=0, datatype=PointField.UINT8, count=300_000_000)]
    assert dtype_from_fields(huge, 300_000_000).names == ("blob",)
    with pytest.raises(CloudError, match="no field"):  # refused at once: it has no x, y, z
        decode_cloud(_raw_cloud(huge, 300_000_000, 0))


def test_too_many_or_overlapping_fields_are_refused():
    many = [PointField(name=f"f{i}", offset=0, datatype=PointField.UINT8, count=1)
            for i in range(2000)]
    with pytest.raises(CloudError, match="fields"):
        dtype_from_fields(many, 4)
    stacked = _xyz_fields() + [PointField(name=f"a{i}", offset=0, datatype=F32, count=1)
                               for i in range(20)]
    with pytest.raises(CloudError, match="overlap"):
        dtype_from_fields(stacked, 12)


# ------------------------------------------------------------------ bad points, not bad frames

def test_bad_points_are_dropped_and_counted_by_reason():
    xyz = np.random.default_rng(1).uniform(-2, 2, (20, 3)).astype(np.float32)
    xyz[0, 0] = np.nan
    xyz[1, 2] = np.inf
    xyz[2, 1] = 1e30
    xyz[3, 0] = -3.4e38
    cloud = decode_cloud(encode_cloud(Header(), {"xyz": xyz}))
    assert cloud.dropped == {"non_finite": 2, "out_of_range": 2}
    np.testing.assert_array_equal(cloud.index, np.arange(4, 20))
    np.testing.assert_array_equal(cloud.xyz, xyz[4:])


def test_integer_coordinates_at_their_type_limits_are_dropped():
    xi = np.arange(30, dtype=np.int32).reshape(10, 3)
    xi[0, 0], xi[1, 1] = np.iinfo(np.int32).max, np.iinfo(np.int32).min
    small = np.arange(10, dtype=np.int16)
    small[2] = np.iinfo(np.int16).max
    cloud = decode_cloud(encode_cloud(Header(), {"x": xi[:, 0], "y": xi[:, 1], "z": small}))
    assert cloud.dropped == {"int_limit": 3}
    np.testing.assert_array_equal(cloud.index, np.arange(3, 10))
    np.testing.assert_array_equal(cloud.xyz[:, 0], xi[3:, 0].astype(np.float32))


def test_colours_of_any_integer_width_are_normalised_by_their_range():
    xyz = np.zeros((4, 3), np.float32)
    for dt in (np.uint8, np.uint16, np.uint32):
        top = np.iinfo(dt).max
        channel = np.array([0, top, top // 2 + 1, top], dtype=dt)
        cloud = decode_cloud(encode_cloud(Header(), {"xyz": xyz, "r": channel, "g": channel,
                                                     "b": channel}))
        expected = channel.astype(np.float64) / top * 2.0 - 1.0
        np.testing.assert_allclose(cloud.rgb[:, 0], expected, atol=1e-6)
        assert cloud.colour_cleared == 0
    # uint8 keeps the Scene contract exactly: raw / 127.5 - 1
    u8 = np.array([0, 51, 200, 255], np.uint8)
    cloud = decode_cloud(encode_cloud(Header(), {"xyz": xyz, "r": u8, "g": u8, "b": u8}))
    np.testing.assert_allclose(cloud.rgb[:, 1], u8 / 127.5 - 1.0, atol=1e-6)


def test_non_finite_colours_become_no_colour_for_those_points_only():
    xyz = np.zeros((5, 3), np.float32)
    r = np.array([0.0, np.nan, 1.0, np.inf, 0.5], np.float32)
    g = np.array([1.0, 0.5, -np.inf, 0.25, 2.0], np.float32)  # 2.0: beyond 0..1, clipped
    cloud = decode_cloud(encode_cloud(Header(), {"xyz": xyz, "r": r, "g": g, "b": g}))
    assert cloud.colour_cleared == 3 and len(cloud) == 5
    np.testing.assert_array_equal(cloud.rgb[[1, 2, 3]], 0.0)
    np.testing.assert_allclose(cloud.rgb[0], [-1.0, 1.0, 1.0])
    np.testing.assert_allclose(cloud.rgb[4], [0.0, 1.0, 1.0])
    assert np.isfinite(cloud.rgb).all() and (np.abs(cloud.rgb) <= 1.0).all()


# ------------------------------------------------------------------ stamps and transport figures

def test_latency_statistics_ignore_implausible_stamps():
    assert plausible_latency(35.0) and plausible_latency(-500.0)
    assert not plausible_latency(1.7e12) and not plausible_latency(-5e3)
    stats = RuntimeStats()
    stats.record_frame({"inference": 10.0}, 12.0, 40.0)
    stats.record_frame({"inference": 10.0}, 12.0, None)  # a stamp of sec 0, say
    snap = stats.snapshot(0)
    assert snap.counters["processed"] == 2 and snap.counters["stamp_invalid"] == 1
    assert snap.max_latency_ms == 40.0 and snap.mean_latency_ms == 40.0
    assert snap.last_latency_ms == 40.0


def test_transport_loss_is_reported_per_topic_and_warns():
    stats = RuntimeStats()
    window = TransportWindow()
    assert window.update(0.0, stats.snapshot(0).topics) == {}
    for _ in range(4):
        stats.record_received("/cam/points")
    stats.record_lost("/cam/points", 6)
    stats.record_points("/cam/points", {"non_finite": 7}, colour_cleared=2)
    snap = stats.snapshot(0)
    rates = window.update(2.0, snap.topics)
    assert rates["/cam/points"].published_hz == pytest.approx(5.0)
    assert rates["/cam/points"].received_hz == pytest.approx(2.0)
    assert rates["/cam/points"].lost == 6
    assert rates["/cam/points"].missed == 6
    arr = diagnostic_array(Header(), "sphmask", snap, "cpu", "m", 100.0, 200.0, rates)
    (status,) = arr.status
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.WARN and "lost in transport" in status.message
    assert values["input[/cam/points].received"] == "4"
    assert values["input[/cam/points].lost_in_transport"] == "6"
    assert values["input[/cam/points].published_hz"] == "5.00"
    assert values["input[/cam/points].points_dropped.non_finite"] == "7"
    assert values["input[/cam/points].points_colour_cleared"] == "2"
    # nothing lost in the next period: back to OK
    stats.record_received("/cam/points")
    rates = window.update(3.0, stats.snapshot(0).topics)
    assert rates["/cam/points"].lost == 0 and rates["/cam/points"].missed == 0
    arr = diagnostic_array(Header(), "sphmask", stats.snapshot(0), "cpu", "m", 100.0, 200.0, rates)
    assert arr.status[0].level == DiagnosticStatus.OK


# ------------------------------------------------------------------ the real pipeline and model

def test_single_bad_points_no_longer_cost_the_frame(checkpoint):
    """Each of these used to raise in the voxel grid or the model and drop the whole frame:
    1e30 and 3.4e38 coordinates (int64 overflow in the voxel keys), an int32 x at +-2**31, one
    outlier 5 km away (beyond the model's grid), uint16 colours at 65535 and NaN/Inf colours."""
    from sphmask_core.sensor.node_params import NodeParams
    from sphmask_ros.pipeline import Pipeline, decode_frame

    params = NodeParams(checkpoint=str(checkpoint), device="cpu", max_points=3000)
    assert 0 < params.crop_max_range < 1000  # the default crop is what saves the 5 km case
    pipeline = Pipeline.from_params(params)
    rng = np.random.default_rng(3)
    xyz = rng.uniform(-2, 2, (1500, 3)).astype(np.float32)

    def with_rows(values, rows=slice(0, 3)):
        out = xyz.copy()
        out[rows] = values
        return encode_cloud(Header(frame_id="s"), {"xyz": out})

    u16 = np.full(len(xyz), 65535, np.uint16)
    bad_rgb = rng.random(len(xyz)).astype(np.float32)
    bad_rgb[:5], bad_rgb[5:8] = np.nan, np.inf
    xi = (xyz * 10).astype(np.int32)  # decimetres of a 4 m box, as metres: within range
    xi[0, 0], xi[1, 0] = 2**31 - 1, -(2**31)
    cases = {
        "1e30": (with_rows(1e30), {"out_of_range": 3}),
        "3.4e38": (with_rows(3.4e38), {"out_of_range": 3}),
        "5km": (with_rows([5000.0, 0.0, 0.0], slice(0, 1)), {"beyond_range": 1}),
        "int32": (encode_cloud(Header(frame_id="s"), {"x": xi[:, 0], "y": xi[:, 1],
                                                       "z": xi[:, 2]}), {"int_limit": 2}),
        "uint16_rgb": (encode_cloud(Header(frame_id="s"), {"xyz": xyz, "r": u16, "g": u16,
                                                            "b": u16}), {}),
        "nan_rgb": (encode_cloud(Header(frame_id="s"), {"xyz": xyz, "r": bad_rgb, "g": bad_rgb,
                                                         "b": bad_rgb}), {}),
    }
    for name, (msg, expected_drops) in cases.items():
        frame = decode_frame(msg, "/t", 0)
        result = pipeline.process(frame)  # raised before
        assert {**frame.cloud.dropped, **result.points_dropped} == expected_drops, name
        assert result.empty_reason == "" and result.n_model_points > 0, name
    pipeline.release()


def test_publication_sequence_gaps_count_as_published_not_received():
    """Clouds replaced in the depth-1 input queue before the node took them never raise DDS's
    message_lost; the publisher's sequence numbers still show them."""
    stats = RuntimeStats()
    window = TransportWindow()
    window.update(0.0, {})
    for seq in (1, 2, 10, 11):
        stats.record_received("/lidar", seq, b"gid-a")
    for seq, gid in ((1, b"a"), (7, b"b"), (2, b"a"), (9, b"b")):  # two interleaved publishers
        stats.record_received("/two", seq, gid)
    stats.record_received("/none", None, None)  # no message info (direct call): counted once
    topics = stats.snapshot(0).topics
    assert (topics["/lidar"].published, topics["/lidar"].received) == (11, 4)
    assert (topics["/two"].published, topics["/two"].received) == (5, 4)  # b skipped 8
    assert (topics["/none"].published, topics["/none"].received) == (1, 1)
    rates = window.update(1.0, topics)
    assert rates["/lidar"].missed == 7 and rates["/lidar"].lost == 0
    assert rates["/lidar"].published_hz == pytest.approx(11.0)
    arr = diagnostic_array(Header(), "sphmask", stats.snapshot(0), "cpu", "m", 100.0, 200.0, rates)
    assert arr.status[0].level == DiagnosticStatus.WARN
    assert "7 clouds published on '/lidar' never reached the node" in arr.status[0].message
