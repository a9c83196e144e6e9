"""Sim-time replay through TF: a bag of a moving sensor (/tf, /tf_static, /points) played with
/clock into a live node (pose_source tf, use_sim_time, accumulation) gives the same instances as
`sphmask-bag eval` of that bag with poses from /odom."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from bag_segmenters import OracleSegmenter

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from sphmask.msg import InstanceArray  # noqa: E402
from sphmask_core.sensor.bag_reader import BagReader  # noqa: E402
from sphmask_ros.bag.evaluate import OUTPUT_TOPICS, EvalConfig, evaluate_bag  # noqa: E402
from sphmask_ros.bag.messages import to_rclpy  # noqa: E402
from sphmask_ros.bag.play import PlayConfig, play_bag  # noqa: E402
from sphmask_ros.bag.record import (  # noqa: E402
    EXTRINSIC_QUAT,
    EXTRINSIC_XYZ,
    RecordConfig,
    frame_stamp_ns,
    record_synthetic,
    synthetic_frames,
)

CFG = RecordConfig(seed=5, frames=3, rate=10.0, points_per_frame=500, tf=True)
COMMON = {"input_voxel_size": 0.0, "device": "cpu", "score_threshold": 0.1, "fixed_frame": "map",
          "accumulate.frames": 2, "max_points": 1000}


def _stamp(h) -> int:
    return h.stamp.sec * 10**9 + h.stamp.nanosec


def _oracle(frames) -> OracleSegmenter:
    world = np.concatenate([f.world_xyz() for f in frames]).astype(np.float32)
    return OracleSegmenter(world, np.concatenate([f.semantic for f in frames]),
                           np.concatenate([f.instance for f in frames]))


def _odometry_params(path: Path) -> Path:
    lines = ["/**:", "  ros__parameters:"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in COMMON.items() if "." not in k]
    lines += ["    pose_source: odometry", "    odometry_topic: /odom",
              "    accumulate:", "      frames: 2",
              "    static_transform:", f"      xyz: {list(EXTRINSIC_XYZ)}",
              f"      quaternion: {list(EXTRINSIC_QUAT)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _summary(msg: InstanceArray) -> tuple:
    return (msg.header.frame_id, msg.cloud_width * msg.cloud_height,
            [(i.class_id, i.tracking_id, list(i.point_indices)) for i in msg.instances],
            np.array([[i.bbox_center.position.x, i.bbox_center.position.y,
                       i.bbox_center.position.z, i.bbox_size.x, i.bbox_size.y, i.bbox_size.z]
                      for i in msg.instances]).reshape(-1, 6))


def test_tf_sim_time_replay_matches_offline_odometry_eval(tmp_path, random_checkpoint,
                                                          fresh_ros_domain):
    from sphmask_ros.node import SphMaskNode

    bag = record_synthetic(tmp_path / "moving", CFG).path
    frames = synthetic_frames(CFG)
    stamps = [frame_stamp_ns(f) for f in frames]
    assert np.ptp([f.pose[:3, 3] for f in frames], axis=0).max() > 0.05  # the sensor moves

    report = evaluate_bag(EvalConfig(bag=bag, params_file=_odometry_params(tmp_path / "p.yaml"),
                                     out=tmp_path / "eval", renders=0, progress=False),
                          segmenter=_oracle(frames), log=lambda s: None)
    offline = {_stamp(m.header): _summary(m) for m in map(to_rclpy, BagReader(
        report.out_dir / "output_bag").messages([OUTPUT_TOPICS["instances"][0]]))}
    assert sorted(offline) == stamps and all(len(v[2]) > 0 for v in offline.values())

    # reliable input (the player offers the recorded reliable QoS): no frame may be lost, or
    # the accumulated windows differ
    params = {**COMMON, "checkpoint": str(random_checkpoint), "qos.input_reliability": "reliable",
              "qos.input_depth": 10, "pose_source": "tf", "input_topics": ["/points"], "use_sim_time": True}
    context = rclpy.Context()
    rclpy.init(context=context)
    got: list[InstanceArray] = []
    try:
        node = SphMaskNode(namespace="replay", context=context,
                           parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        node.runtime.pipeline.segmenter = _oracle(frames)
        probe = rclpy.create_node("replay_probe", context=context)
        probe.create_subscription(InstanceArray, "/replay/sphmask/instances", got.append,
                                  QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(probe)
        result: dict = {}
        player = threading.Thread(target=lambda: result.setdefault("stats", play_bag(
            bag, PlayConfig(rate=0.5, topics=["/tf_static", "/tf", "/points"], clock_hz=50.0,
                            wait_subscribers_s=20.0, delay_s=1.0), log=lambda s: None)))
        player.start()
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and (player.is_alive() or len(got) < len(stamps)):
            executor.spin_once(timeout_sec=0.02)
        player.join(timeout=10.0)
        # the node's clock is the bag's: /clock drove it
        now = node.get_clock().now().nanoseconds
        assert node.get_clock().ros_time_is_active
        assert stamps[0] <= now <= stamps[-1] + 10**9
        counters = node.runtime.stats.snapshot(0).counters
        executor.shutdown()
        probe.destroy_node()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert result["stats"].per_topic == {"/tf_static": 1, "/tf": len(stamps), "/points": len(stamps)}
    assert counters["no_transform"] == 0
    live = {_stamp(m.header): _summary(m) for m in got}
    assert sorted(live) == stamps
    for s in stamps:
        a, b = live[s], offline[s]
        assert a[:3] == b[:3], f"frame {s}: live and offline instances differ"
        np.testing.assert_allclose(a[3], b[3], atol=1e-4)
