"""Standard outputs: vision_msgs/Detection3DArray and the instance image of organized input."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection3DArray  # noqa: E402

from sphmask_core.inference.instances import Instances, point_instance_from_masks  # noqa: E402
from sphmask_ros.detections import instances_to_detections  # noqa: E402
from sphmask_ros.instance_image import NO_INSTANCE, instance_image, instance_image_msg  # noqa: E402
from sphmask_ros.pipeline import expand_instances  # noqa: E402
from sphmask_core.sensor.pointcloud2 import decode_cloud  # noqa: E402
from sphmask_core.sensor.preprocess import PreprocessConfig, Preprocessor  # noqa: E402
from sphmask_ros.pointcloud2 import encode_cloud  # noqa: E402


def _instances(masks, xyz, class_ids, scores) -> Instances:
    k = len(masks)
    boxes = np.array([np.r_[xyz[m].min(0), xyz[m].max(0)] for m in masks], np.float32).reshape(k, 6)
    scores = np.asarray(scores, np.float32)
    return Instances(point_instance=point_instance_from_masks(masks, scores, xyz.shape[0]),
                     masks=masks, class_ids=np.asarray(class_ids, np.int64),
                     class_names=["chair", "table", "lamp"], scores=scores,
                     class_probs=scores, iou_scores=scores, centers=boxes[:, :3],
                     rays=np.ones((k, 4), np.float32), n_theta=2, n_phi=2, boxes=boxes)


def test_detections_carry_boxes_classes_scores_and_ids():
    xyz = np.array([[0, 0, 0], [1, 2, 3], [5, 5, 5], [6, 7, 9]], np.float32)
    inst = _instances([np.array([0, 1]), np.array([2, 3])], xyz, [2, 0], [0.8, 0.6])
    header = Header(frame_id="map")
    header.stamp.sec, header.stamp.nanosec = 7, 11
    msg = instances_to_detections(inst, header, np.array([42, 7]))
    msg = deserialize_message(serialize_message(msg), Detection3DArray)  # wire round trip
    assert msg.header == header and len(msg.detections) == 2
    a, b = msg.detections
    assert a.header == header and a.id == "42" and b.id == "7"
    assert [r.hypothesis.class_id for r in a.results] == ["lamp"]
    assert a.results[0].hypothesis.score == pytest.approx(0.8)
    c, s = a.bbox.center.position, a.bbox.size
    assert (c.x, c.y, c.z) == (0.5, 1.0, 1.5) and (s.x, s.y, s.z) == (1.0, 2.0, 3.0)
    assert a.bbox.center.orientation.w == 1.0
    assert a.results[0].pose.pose.position == a.bbox.center.position
    assert b.results[0].hypothesis.class_id == "chair"
    assert instances_to_detections(inst, header).detections[0].id == ""


def test_instance_image_maps_masks_back_to_pixels():
    """A 4 x 5 organized cloud with NaN holes, through decode, preprocessing and the mask
    expansion: every pixel gets the id of the instance its point is in, holes get -1."""
    h, w = 4, 5
    rows, cols = np.mgrid[0:h, 0:w]
    xyz = np.stack([cols, rows, np.ones_like(cols)], -1).reshape(-1, 3).astype(np.float32)
    xyz[[3, 12]] = np.nan  # no return at (0, 3) and (2, 2)
    msg = encode_cloud(Header(frame_id="camera"), {"xyz": xyz})
    msg.height, msg.width, msg.row_step = h, w, msg.point_step * w  # organized, as a depth camera
    cloud = decode_cloud(msg)
    assert cloud.height == h and len(cloud) == h * w - 2
    pre = Preprocessor(PreprocessConfig(input_voxel_size=0.0, max_points=100000))
    prepared = pre.process(cloud, 0, "camera")
    pts = prepared.points_xyz
    masks = [np.flatnonzero(pts[:, 0] <= 1), np.flatnonzero(pts[:, 1] == 3)]  # left columns, last row
    model = _instances(masks, prepared.xyz, [0, 1], [0.9, 0.5])
    inst = expand_instances(model, prepared.point_to_model, pts)
    img = instance_image(inst.point_instance, prepared.point_sweep, prepared.point_raw_index, h, w)
    expected = np.full((h, w), NO_INSTANCE)
    expected[3, :] = 1
    expected[:, :2] = 0  # higher score wins the overlap at (3, 0), (3, 1)
    expected[0, 3] = expected[2, 2] = NO_INSTANCE
    np.testing.assert_array_equal(img, expected)
    out = instance_image_msg(img, msg.header)
    assert (out.height, out.width, out.encoding, out.step) == (h, w, "32SC1", 4 * w)
    assert out.is_bigendian == (sys.byteorder == "big") and out.header.frame_id == "camera"
    np.testing.assert_array_equal(np.frombuffer(bytes(out.data), np.int32).reshape(h, w), expected)


def test_instance_image_paints_only_the_current_sweep():
    inst = np.array([0, 1, 1, 0])
    sweep = np.array([0, 0, 1, 1], np.int32)
    raw = np.array([2, 0, 2, 1])
    np.testing.assert_array_equal(instance_image(inst, sweep, raw, 1, 3), [[1, NO_INSTANCE, 0]])
    with pytest.raises(ValueError, match="outside"):
        instance_image(inst, sweep, np.array([9, 0, 0, 0]), 1, 3)
