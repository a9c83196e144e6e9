"""The live node's robot-facing outputs over loopback DDS: ~/detections, ~/instance_image for an
organized cloud, and tracking ids that stay with the objects from frame to frame."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection3DArray  # noqa: E402

from tests.ros.node_harness import Graph, OracleSegmenter, Probe, cloud_msg, make_node, scene_points


def test_detections_instance_image_and_stable_ids(context, checkpoint):
    node = make_node(context, checkpoint, "t_robot")
    probe = Probe(context, "t_robot")
    got: dict[str, list] = {"det": [], "img": []}
    qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    probe.node.create_subscription(Detection3DArray, "sphmask/detections", got["det"].append, qos)
    probe.node.create_subscription(Image, "sphmask/instance_image", got["img"].append, qos)
    g = Graph(context, node, probe)
    try:
        node.runtime.pipeline.segmenter = OracleSegmenter(node.runtime.pipeline.segmenter)
        assert g.spin_until(g.connected, 15.0)
        assert g.spin_until(lambda: node.runtime._pubs["instance_image"].get_subscription_count() > 0)
        xyz, rgb = scene_points(200, seed=3)  # 600 points: cube +x, cube -x, floor
        h, w = 20, 30
        xyz[::7] = np.nan  # holes, as a depth camera has
        first = None
        for _ in range(2):
            msg = cloud_msg(xyz, rgb, probe.stamp(), frame="camera_optical")
            msg.height, msg.width, msg.row_step = h, w, msg.point_step * w  # organized
            inst = g.send(msg)
            assert g.spin_until(lambda: any(d.header.stamp == msg.header.stamp for d in got["det"]))
            assert g.spin_until(lambda: any(i.header.stamp == msg.header.stamp for i in got["img"]))
            det = [d for d in got["det"] if d.header.stamp == msg.header.stamp][-1]
            img_msg = [i for i in got["img"] if i.header.stamp == msg.header.stamp][-1]
            ids = [i.tracking_id for i in inst.instances]
            assert all(ids) and [d.id for d in det.detections] == ids
            assert [d.results[0].hypothesis.class_id for d in det.detections] == \
                [i.class_name for i in inst.instances]
            if first is None:
                first = ids
            assert ids == first  # the same objects again: the same ids
            # pixel k of the image holds the instance of input point k, -1 for holes / none
            assert (img_msg.height, img_msg.width, img_msg.encoding) == (h, w, "32SC1")
            assert img_msg.header.frame_id == "camera_optical"
            img = np.frombuffer(bytes(img_msg.data), np.int32).reshape(-1)
            expected = np.full(h * w, -1)
            finite = np.isfinite(xyz).all(axis=1)
            expected[finite & (xyz[:, 0] > 0.9)] = 0
            expected[finite & (xyz[:, 0] < -0.9)] = 1
            np.testing.assert_array_equal(img, expected)
    finally:
        g.close()
