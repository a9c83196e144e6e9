"""The sphmask node over loopback DDS: results, robustness, parameters, QoS, diagnostics, poses."""

from __future__ import annotations

import array

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import Odometry
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2, PointField
from sphmask.msg import InstanceArray
from visualization_msgs.msg import Marker

from sphmask_core.sensor.pointcloud2 import decode_cloud
from tests.ros.node_harness import TEST_MAX_POINTS, Graph, OracleSegmenter, Probe, cloud_msg, make_node, scene_points


@pytest.fixture(scope="module")
def graph(context, checkpoint):
    node = make_node(context, checkpoint, "t_main")
    oracle = OracleSegmenter(node.runtime.pipeline.segmenter)
    node.runtime.pipeline.segmenter = oracle
    g = Graph(context, node, Probe(context, "t_main"))
    g.oracle = oracle
    assert g.spin_until(g.connected, 15.0), "probe and node did not discover each other"
    yield g
    g.close()


def test_class_map_latched_with_checkpoint_names(graph, checkpoint):
    assert graph.spin_until(lambda: graph.probe.got["class_map"], 10.0)
    cmap = graph.probe.got["class_map"][-1]
    real_names = graph.oracle.class_names
    assert list(cmap.class_names) == list(real_names) and len(real_names) == 10
    assert list(cmap.class_ids) == list(range(10))
    assert cmap.threshold == pytest.approx(0.1)


def test_cloud_in_results_out_with_input_stamp_and_frame(graph):
    xyz, rgb = scene_points()
    # NaN rows are dropped by decoding: indices then refer to the finite points only
    xyz_nan = np.concatenate([xyz[:5], np.full((3, 3), np.nan, np.float32), xyz[5:]])
    rgb_nan = np.concatenate([rgb[:5], np.zeros((3, 3), np.float32), rgb[5:]])
    stamp = graph.probe.stamp()
    msg = cloud_msg(xyz_nan, rgb_nan, stamp, frame="lidar_front")
    inst = graph.send(msg)
    assert inst.header.stamp == stamp and inst.header.frame_id == "lidar_front"
    assert inst.cloud_width * inst.cloud_height == xyz.shape[0]
    assert [i.class_name for i in inst.instances] == graph.oracle.class_names[:2]
    a, b = inst.instances
    assert a.score == pytest.approx(0.9) and b.score == pytest.approx(0.3)
    assert a.num_points == 600 and b.num_points == 600
    ia = np.array(a.point_indices)
    assert np.all(xyz[ia, 0] > 0.9) and np.array_equal(ia, np.arange(600))
    assert inst.model_name == "random_small"
    assert (a.bbox_size.x, a.bbox_size.z) == pytest.approx((0.6, 0.6), abs=0.02)

    assert graph.spin_until(lambda: any(c.header.stamp == stamp for c in graph.probe.got["cloud"]))
    cloud = [c for c in graph.probe.got["cloud"] if c.header.stamp == stamp][-1]
    assert cloud.header.frame_id == "lidar_front"
    dec = decode_cloud(cloud)
    np.testing.assert_allclose(dec.xyz, xyz, atol=1e-6)
    np.testing.assert_allclose(dec.rgb, rgb, atol=1 / 127.5)
    ids = dec.extras["instance_id"]
    assert np.array_equal(np.flatnonzero(ids == 0), ia)
    assert np.all(ids[1200:] == -1)  # the floor belongs to no instance

    assert graph.spin_until(lambda: any(m.markers[0].header.stamp == stamp
                                        for m in graph.probe.got["markers"]))
    markers = [m for m in graph.probe.got["markers"] if m.markers[0].header.stamp == stamp][-1]
    assert markers.markers[0].action == Marker.DELETEALL
    assert markers.markers[0].header.frame_id == "lidar_front"
    assert [m.ns for m in markers.markers[1:]] == ["bbox", "sphere", "label"] * 2
    timing = graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()), key="timing")
    assert {"decode", "inference", "publish"} <= set(timing.stage_names)
    assert timing.latency_ms > 0 and timing.total_ms > 0


def test_colour_free_cloud(graph):
    xyz, _ = scene_points(seed=1)
    inst = graph.send(cloud_msg(xyz, None, graph.probe.stamp()))
    assert len(inst.instances) == 2
    stamp = inst.header.stamp
    assert graph.spin_until(lambda: any(c.header.stamp == stamp for c in graph.probe.got["cloud"]))
    cloud = [c for c in graph.probe.got["cloud"] if c.header.stamp == stamp][-1]
    assert "rgb" not in [f.name for f in cloud.fields]


@pytest.mark.parametrize("kind", ["empty", "all_nan"])
def test_empty_and_all_nan_clouds_give_empty_results(graph, kind):
    xyz = np.zeros((0, 3), np.float32) if kind == "empty" else np.full((50, 3), np.nan, np.float32)
    stamp = graph.probe.stamp()
    inst = graph.send(cloud_msg(xyz, None, stamp, frame="lidar"))
    assert len(inst.instances) == 0 and inst.header.frame_id == "lidar"
    assert graph.spin_until(lambda: any(m.markers and m.markers[0].header.stamp == stamp
                                        for m in graph.probe.got["markers"]))
    markers = [m for m in graph.probe.got["markers"] if m.markers[0].header.stamp == stamp][-1]
    assert len(markers.markers) == 1 and markers.markers[0].action == Marker.DELETEALL
    assert markers.markers[0].header.frame_id == "lidar"


def _malformed(kind: str, stamp) -> PointCloud2:
    xyz, _ = scene_points(50)
    msg = cloud_msg(xyz, None, stamp)
    if kind == "unknown_type":
        msg.fields = [PointField(name=f.name, offset=f.offset, datatype=42 if f.name == "y" else f.datatype,
                                 count=1) for f in msg.fields]
    elif kind == "short":
        msg.data = array.array("B", bytes(msg.data)[:-5])
    elif kind == "long":
        msg.data = array.array("B", bytes(msg.data) + b"\0" * 12)
    elif kind == "point_step":
        msg.point_step = 8
        msg.row_step = 8 * msg.width
        msg.data = array.array("B", bytes(msg.data)[: msg.row_step])
    elif kind == "no_xyz":
        msg.fields = [PointField(name="a", offset=0, datatype=PointField.FLOAT32, count=1)]
    return msg


def test_malformed_clouds_are_skipped_and_node_keeps_serving(graph):
    stats = graph.node.runtime.stats
    before = stats.snapshot(0).counters["invalid"]
    kinds = ["unknown_type", "short", "long", "point_step", "no_xyz"]
    sent = []
    for kind in kinds:
        msg = _malformed(kind, graph.probe.stamp())
        sent.append(msg.header.stamp)
        graph.probe.pub.publish(msg)
        assert graph.spin_until(lambda: stats.snapshot(0).counters["invalid"] > before + len(sent) - 1, 5.0), kind
    xyz, rgb = scene_points(seed=3)
    inst = graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()))
    assert len(inst.instances) == 2
    assert not any(m.header.stamp in sent for m in graph.probe.got["instances"])


def test_huge_cloud_is_capped_with_a_warning(graph):
    """5 M points through the node's subscription callback (DDS transport of 60 MB skipped)."""
    rng = np.random.default_rng(5)
    n = 5_000_000
    xyz = rng.uniform(-2.0, 2.0, (n, 3)).astype(np.float32)
    stamp = graph.probe.stamp()
    msg = cloud_msg(xyz, None, stamp)
    stats = graph.node.runtime.stats
    capped0 = stats.snapshot(0).counters["capped"]
    graph.node.set_parameters([Parameter("publish_labelled_cloud", value=False)])
    try:
        graph.node.runtime._make_cloud_callback("points")(msg)
        inst = graph.spin_until(lambda: any(m.header.stamp == stamp for m in graph.probe.got["instances"]), 60.0)
        assert inst
        assert stats.snapshot(0).counters["capped"] == capped0 + 1
        assert graph.oracle.sizes[-1] == TEST_MAX_POINTS
        out = [m for m in graph.probe.got["instances"] if m.header.stamp == stamp][-1]
        assert out.cloud_width == n
        # only points the model saw can belong to an instance
        assert sum(i.num_points for i in out.instances) <= TEST_MAX_POINTS
    finally:
        graph.node.set_parameters([Parameter("publish_labelled_cloud", value=True)])


def test_model_exception_drops_frame_and_node_recovers(graph):
    stats = graph.node.runtime.stats
    errors0 = stats.snapshot(0).counters["model_errors"]
    graph.oracle.fail = 1
    stamp = graph.probe.stamp()
    xyz, rgb = scene_points(seed=4)
    graph.probe.pub.publish(cloud_msg(xyz, rgb, stamp))
    assert graph.spin_until(lambda: stats.snapshot(0).counters["model_errors"] == errors0 + 1, 10.0)
    n_diag = len(graph.probe.got["diag"])
    # a status sent just before the failure may still be in flight: wait for the ERROR one
    assert graph.spin_until(lambda: any(d.status[0].level == DiagnosticStatus.ERROR
                                        for d in graph.probe.got["diag"][n_diag:]), 5.0)
    status = [d for d in graph.probe.got["diag"][n_diag:]
              if d.status[0].level == DiagnosticStatus.ERROR][-1].status[0]
    assert "out of memory" in status.message
    inst = graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()))
    assert len(inst.instances) == 2
    assert not any(m.header.stamp == stamp for m in graph.probe.got["instances"])


def test_burst_is_bounded_newest_processed_and_drops_counted(graph):
    runtime = graph.node.runtime
    assert graph.spin_until(graph.idle, 10.0)
    graph.oracle.delay = 0.3
    received0 = runtime.stats.snapshot(0).counters["received"]
    processed0 = runtime.stats.snapshot(0).counters["processed"]
    dropped0 = runtime.slot.dropped
    xyz, rgb = scene_points(200, seed=6)
    stamps = []
    max_pending = 0
    try:
        for _ in range(12):
            msg = cloud_msg(xyz, rgb, graph.probe.stamp())
            stamps.append(msg.header.stamp)
            graph.probe.pub.publish(msg)
            graph.spin_until(lambda: False, 0.05)
            max_pending = max(max_pending, runtime.slot.pending)
        assert graph.spin_until(lambda: any(m.header.stamp == stamps[-1]
                                            for m in graph.probe.got["instances"]), 20.0)
        assert graph.spin_until(graph.idle, 10.0)
    finally:
        graph.oracle.delay = 0.0
    snap = runtime.stats.snapshot(runtime.slot.dropped)
    received = snap.counters["received"] - received0
    processed = snap.counters["processed"] - processed0
    dropped = runtime.slot.dropped - dropped0
    assert max_pending <= 1  # one input topic: one waiting frame at most
    assert received == processed + dropped
    assert dropped >= 5 and processed <= 7
    out = [m.header.stamp for m in graph.probe.got["instances"] if m.header.stamp in stamps]
    assert out[-1] == stamps[-1] and len(out) == processed
    assert graph.spin_until(lambda: [t for t in graph.probe.got["timing"] if t.header.stamp == stamps[-1]])
    timing = [t for t in graph.probe.got["timing"] if t.header.stamp == stamps[-1]][-1]
    assert timing.dropped_frames == runtime.slot.dropped


def test_parameter_updates_apply_and_invalid_ones_are_refused(graph):
    node = graph.node
    xyz, rgb = scene_points(seed=7)
    try:
        ok = node.set_parameters([Parameter("score_threshold", value=0.5)])[0]
        assert ok.successful
        inst = graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()))
        assert [i.score for i in inst.instances] == [pytest.approx(0.9)]
        assert graph.spin_until(lambda: graph.probe.got["class_map"][-1].threshold == pytest.approx(0.5))
        bad = node.set_parameters([Parameter("score_threshold", value=1.5)])[0]
        assert not bad.successful and bad.reason
        bad = node.set_parameters([Parameter("checkpoint", value="/elsewhere.pt")])[0]
        assert not bad.successful
        bad = node.set_parameters([Parameter("latency_warn_ms", value=1e5)])[0]
        assert not bad.successful and "latency_error_ms" in bad.reason
        assert node.get_parameter("score_threshold").value == 0.5
        # a crop box that keeps only x > 0 removes the second instance
        ok = node.set_parameters([Parameter("crop.min", value=[0.0, -5.0, -5.0]),
                                  Parameter("crop.max", value=[5.0, 5.0, 5.0]),
                                  Parameter("score_threshold", value=0.0)])
        assert all(r.successful for r in ok)
        inst = graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()))
        assert len(inst.instances) == 1
        assert inst.cloud_width == int((xyz[:, 0] >= 0.0).sum())
    finally:
        node.set_parameters([Parameter("score_threshold", value=0.1),
                             Parameter("crop.min", value=[-1e4] * 3),
                             Parameter("crop.max", value=[1e4] * 3)])


def test_qos_incompatibility_is_reported(graph):
    """A subscriber asking for transient-local instances cannot match the volatile publisher."""
    stats = graph.node.runtime.stats
    before = stats.snapshot(0).counters["qos_incompatible"]
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sub = graph.probe.node.create_subscription(InstanceArray, "sphmask/instances", lambda m: None, qos)
    try:
        assert graph.spin_until(lambda: stats.snapshot(0).counters["qos_incompatible"] > before, 10.0)
    finally:
        graph.probe.node.destroy_subscription(sub)


def test_diagnostics_report_counters_and_latency(graph):
    xyz, rgb = scene_points(seed=8)
    graph.send(cloud_msg(xyz, rgb, graph.probe.stamp()))
    n = len(graph.probe.got["diag"])
    assert graph.spin_until(lambda: len(graph.probe.got["diag"]) > n, 5.0)
    status = graph.probe.got["diag"][-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.name == "sphmask: processing"
    assert values["device"] == "cpu" and values["model"] == "random_small"
    assert int(values["frames_processed"]) >= 1 and "stage_inference_ms" in values
    assert status.level in (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR)
    assert float(values["latency_ms"]) > 0


# ------------------------------------------------------------------ poses: odometry / no transform

def _odom(stamp_ns: int, x: float) -> Odometry:
    msg = Odometry()
    msg.header.frame_id, msg.child_frame_id = "map", "base_link"
    msg.header.stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    msg.pose.pose.position.x = x
    msg.pose.pose.orientation.w = 1.0
    return msg


def test_odometry_poses_and_missing_transform(context, checkpoint):
    node = make_node(context, checkpoint, "t_odom", fixed_frame="map", pose_source="odometry",
                     odometry_topic="odom", tf_timeout=0.2,
                     **{"static_transform.xyz": [0.0, 0.0, 1.0]})
    g = Graph(context, node, Probe(context, "t_odom"))
    try:
        node.runtime.pipeline.segmenter = OracleSegmenter(node.runtime.pipeline.segmenter)
        assert g.spin_until(g.connected, 15.0)
        assert g.spin_until(lambda: g.probe.odom.get_subscription_count() >= 1, 10.0)
        xyz, rgb = scene_points(100, seed=9)
        stamp = g.probe.stamp()
        stamp_ns = stamp.sec * 10**9 + stamp.nanosec
        g.probe.pub.publish(cloud_msg(xyz, rgb, stamp, frame="lidar"))
        stats = node.runtime.stats
        assert g.spin_until(lambda: stats.snapshot(0).counters["no_transform"] == 1, 10.0)
        assert not any(m.header.stamp == stamp for m in g.probe.got["instances"])

        # base_link at x = 10 in map, lidar 1 m above base_link
        for dt in (-100_000_000, 100_000_000):
            g.probe.odom.publish(_odom(stamp_ns + dt, 10.0))
        g.spin_until(lambda: False, 0.3)
        inst = g.send(cloud_msg(xyz, rgb, stamp, frame="lidar"))
        assert inst.header.frame_id == "map" and inst.header.stamp == stamp
        assert g.spin_until(lambda: any(c.header.stamp == stamp for c in g.probe.got["cloud"]))
        cloud = [c for c in g.probe.got["cloud"] if c.header.stamp == stamp][-1]
        np.testing.assert_allclose(decode_cloud(cloud).xyz, xyz + [10.0, 0.0, 1.0], atol=1e-4)
    finally:
        g.close()
