"""Instances -> InstanceArray / MarkerArray / labelled cloud, from hand-made Instances."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from sphmask_core.inference.instances import Instances, point_instance_from_masks
from sphmask_ros import conversions as C

NAMES = ["chair", "table", "sofa"]


def _instances() -> Instances:
    masks = [np.array([0, 1, 2, 5], dtype=np.int64), np.array([3, 4], dtype=np.int64)]
    scores = np.array([0.9, 0.6], dtype=np.float32)
    n_theta, n_phi = 2, 4
    return Instances(
        point_instance=point_instance_from_masks(masks, scores, 8),
        masks=masks,
        class_ids=np.array([0, 2], dtype=np.int64),
        class_names=list(NAMES),
        scores=scores,
        class_probs=np.array([0.95, 0.7], dtype=np.float32),
        iou_scores=np.array([0.85, 0.51], dtype=np.float32),
        centers=np.array([[1.0, 2.0, 0.5], [-1.0, 0.0, 0.25]], dtype=np.float32),
        rays=np.stack([np.full(8, 0.5), np.arange(8) * 0.1 + 0.1]).astype(np.float32),
        n_theta=n_theta,
        n_phi=n_phi,
        boxes=np.array([[0.5, 1.5, 0.0, 1.5, 2.5, 1.0], [-1.5, -0.5, 0.0, -0.5, 0.5, 0.5]],
                       dtype=np.float32),
    )


def _header() -> Header:
    return Header(stamp=Time(sec=12, nanosec=345), frame_id="lidar")


def test_instance_array_fields():
    inst = _instances()
    msg = C.instances_to_msg(inst, _header(), 8, "small_synthetic")
    assert msg.header.frame_id == "lidar" and msg.header.stamp.sec == 12
    assert msg.header.stamp.nanosec == 345
    assert (msg.cloud_width, msg.cloud_height) == (8, 1)
    assert (msg.n_theta, msg.n_phi) == (2, 4)
    assert list(msg.class_names) == NAMES and msg.model_name == "small_synthetic"
    assert len(msg.instances) == 2
    a, b = msg.instances
    assert (a.id, b.id) == (0, 1)
    assert (a.class_id, a.class_name) == (0, "chair")
    assert (b.class_id, b.class_name) == (2, "sofa")
    assert a.score == pytest.approx(0.9) and b.class_probability == pytest.approx(0.7)
    assert b.iou_score == pytest.approx(0.51)
    assert list(a.point_indices) == [0, 1, 2, 5] and a.num_points == 4
    assert list(b.point_indices) == [3, 4] and b.num_points == 2
    # box centre/size from min/max corners: [0.5,1.5,0]-[1.5,2.5,1] -> centre (1,2,0.5), size 1,1,1
    p, s = a.bbox_center.position, a.bbox_size
    assert (p.x, p.y, p.z) == pytest.approx((1.0, 2.0, 0.5))
    assert (s.x, s.y, s.z) == pytest.approx((1.0, 1.0, 1.0))
    assert a.bbox_center.orientation.w == 1.0
    q, s = b.bbox_center.position, b.bbox_size
    assert (q.x, q.y, q.z) == pytest.approx((-1.0, 0.0, 0.25))
    assert (s.x, s.y, s.z) == pytest.approx((1.0, 1.0, 0.5))
    assert (b.sphere_center.x, b.sphere_center.z) == pytest.approx((-1.0, 0.25))
    assert list(b.ray_lengths) == pytest.approx(list(np.arange(8) * 0.1 + 0.1))


def test_instance_array_size_mismatch_rejected():
    with pytest.raises(ValueError, match="cloud_size"):
        C.instances_to_msg(_instances(), _header(), 9, "m")


def test_empty_instances_message_and_markers():
    empty = Instances.empty(0, NAMES)
    msg = C.instances_to_msg(empty, _header(), 0, "m")
    assert len(msg.instances) == 0 and msg.cloud_width == 0
    markers = C.instances_to_markers(empty, _header()).markers
    assert len(markers) == 1
    assert markers[0].action == Marker.DELETEALL and markers[0].header.frame_id == "lidar"


def test_markers_layout():
    inst = _instances()
    markers = C.instances_to_markers(inst, _header()).markers
    assert markers[0].action == Marker.DELETEALL
    assert markers[0].header.frame_id == "lidar"
    rest = markers[1:]
    assert [(m.ns, m.id) for m in rest] == [
        ("bbox", 0), ("sphere", 0), ("label", 0), ("bbox", 1), ("sphere", 1), ("label", 1)]
    assert all(m.header.stamp.sec == 12 and m.header.frame_id == "lidar" for m in rest)
    bbox = rest[0]
    assert bbox.type == Marker.LINE_LIST and len(bbox.points) == 24
    # every box edge is axis-aligned with the length of the box side along that axis
    pts = np.array([[p.x, p.y, p.z] for p in bbox.points]).reshape(12, 2, 3)
    diff = np.abs(pts[:, 1] - pts[:, 0])
    assert np.all((diff > 1e-9).sum(axis=1) == 1)
    assert sorted(diff.max(axis=1)) == pytest.approx([1.0] * 12)
    # corner set = all 8 min/max combinations
    corners = {tuple(np.round(p, 6)) for p in pts.reshape(-1, 3)}
    assert len(corners) == 8
    label = rest[2]
    assert label.type == Marker.TEXT_VIEW_FACING and label.text == "chair 0.90"
    assert rest[5].text == "sofa 0.60"
    assert label.pose.position.z > 1.0


def test_sphere_outline_geometry():
    inst = _instances()
    sphere = C.instances_to_markers(inst, _header()).markers[2]
    assert sphere.ns == "sphere" and sphere.type == Marker.LINE_LIST
    n_theta, n_phi = 2, 4
    n_segments = n_theta * n_phi + (n_theta - 1) * n_phi
    assert len(sphere.points) == 2 * n_segments
    pts = np.array([[p.x, p.y, p.z] for p in sphere.points])
    # instance 0 has every ray 0.5: all end points on the sphere of radius 0.5 about its centre
    assert np.linalg.norm(pts - [1.0, 2.0, 0.5], axis=1) == pytest.approx(np.full(len(pts), 0.5), abs=1e-5)
    # sector mid directions: polar bins 45/135 deg -> end point z = 0.5 +- 0.5 cos 45
    assert sorted(set(np.round(pts[:, 2], 5))) == pytest.approx(
        [0.5 - 0.5 * np.cos(np.pi / 4), 0.5 + 0.5 * np.cos(np.pi / 4)], abs=1e-5)


def test_colors_stable_and_distinct():
    inst = _instances()
    first = C.instances_to_markers(inst, _header()).markers
    second = C.instances_to_markers(inst, _header()).markers
    for a, b in zip(first[1:], second[1:]):
        assert (a.color.r, a.color.g, a.color.b, a.color.a) == (b.color.r, b.color.g, b.color.b, b.color.a)
    c0 = (first[1].color.r, first[1].color.g, first[1].color.b)
    c1 = (first[4].color.r, first[4].color.g, first[4].color.b)
    assert c0 != c1
    assert c0 == pytest.approx(tuple(C.PALETTE[0]))
    np.testing.assert_array_equal(C.instance_colors(np.array([0, 20, 41])), C.PALETTE[[0, 0, 1]])


def test_box_segments_vectorised_matches_manual():
    box = np.array([[0.0, 0.0, 0.0, 1.0, 2.0, 3.0]])
    seg = C.box_segments(box)[0].reshape(12, 2, 3)
    lengths = sorted(np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1))
    assert lengths == pytest.approx([1.0] * 4 + [2.0] * 4 + [3.0] * 4)


def test_class_map_msg():
    msg = C.class_map_msg(NAMES, _header(), 0.2)
    assert list(msg.class_ids) == [0, 1, 2] and list(msg.class_names) == NAMES
    assert msg.threshold == pytest.approx(0.2) and msg.header.frame_id == "lidar"


def test_labelled_cloud_round_trip():
    from sphmask_core.sensor.pointcloud2 import decode_cloud

    inst = _instances()
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-2, 2, (8, 3)).astype(np.float32)
    rgb = np.linspace(-1, 1, 24, dtype=np.float32).reshape(8, 3)
    cloud = C.labelled_cloud(inst, _header(), xyz, rgb)
    assert cloud.header.frame_id == "lidar" and cloud.header.stamp.sec == 12
    assert cloud.width * cloud.height == 8
    dec = decode_cloud(cloud)
    np.testing.assert_allclose(dec.xyz, xyz)
    np.testing.assert_allclose(dec.rgb, rgb, atol=1 / 127.5)
    # points 0,1,2,5 -> instance 0 (chair, id 0), 3,4 -> instance 1 (sofa, id 2), 6,7 none
    assert dec.extras["instance_id"].tolist() == [0, 0, 0, 1, 1, 0, -1, -1]
    assert dec.extras["class_id"].tolist() == [0, 0, 0, 2, 2, 0, -1, -1]
    np.testing.assert_allclose(dec.extras["score"], [0.9, 0.9, 0.9, 0.6, 0.6, 0.9, 0, 0], rtol=1e-6)
    # colour-free input: no rgb field at all
    bare = decode_cloud(C.labelled_cloud(inst, _header(), xyz, None))
    assert bare.rgb is None and bare.extras["instance_id"].tolist()[6:] == [-1, -1]
    with pytest.raises(ValueError, match="xyz"):
        C.labelled_cloud(inst, _header(), xyz[:5], None)
