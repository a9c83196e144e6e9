"""Stable tracking ids: the tracker alone, and over a bag where objects persist and one leaves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sphmask_ros.tracking import InstanceTracker, TrackerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bag"))

CUBES = np.array([[0.0, 0.0, 0.3], [2.0, 0.0, 0.3], [0.0, 2.0, 0.3]])  # (3, 3) object centres


def _cube(center, n: int, rng) -> np.ndarray:
    return (center + rng.uniform(-0.25, 0.25, (n, 3))).astype(np.float32)


def _track(tracker: InstanceTracker, objects: list[int], rng, classes=None, shift=0.0) -> list[int]:
    pts = [_cube(CUBES[o] + shift, 300, rng) for o in objects]
    centers = np.array([p.mean(0) for p in pts]).reshape(-1, 3)
    cls = np.zeros(len(objects), np.int64) if classes is None else np.asarray(classes)
    return tracker.update(pts, centers, cls).tolist()


def test_ids_follow_objects_not_order_and_expire():
    rng = np.random.default_rng(0)
    tr = InstanceTracker(TrackerConfig(max_age=1))
    a, b, c = _track(tr, [0, 1, 2], rng)
    assert len({a, b, c}) == 3
    assert _track(tr, [2, 0, 1], rng) == [c, a, b]  # new points, other order: same ids
    assert _track(tr, [1, 0], rng) == [b, a]  # object 2 missed once: still alive
    assert _track(tr, [2, 0, 1], rng) == [c, a, b]  # back within max_age: same id
    _track(tr, [0, 1], rng)
    _track(tr, [0, 1], rng)  # object 2 missed twice > max_age 1: retired
    assert c not in tr.live_ids
    new = _track(tr, [0, 1, 2], rng)
    assert new[:2] == [a, b] and new[2] not in (a, b, c)  # ids are never reused


def test_class_must_agree_and_distance_keeps_sparse_ids():
    rng = np.random.default_rng(1)
    tr = InstanceTracker(TrackerConfig(max_distance=0.5, voxel_size=0.05))
    (a,) = _track(tr, [0], rng)
    (other,) = _track(tr, [0], rng, classes=[3])  # same place, another class: a new track
    assert other != a
    # moved 0.3 m with 3 points only: no voxel overlap, centre close enough
    pts = [_cube(CUBES[0] + [0.3, 0.0, 0.0], 3, rng)]
    assert tr.update(pts, pts[0].mean(0, keepdims=True), np.array([0])).tolist() == [a]
    far = [_cube(CUBES[0] + 3.0, 300, rng)]
    assert tr.update(far, far[0].mean(0, keepdims=True), np.array([0])).tolist() not in ([a], [other])


class CubeSegmenter:
    """One instance per cube centre with points near it, returned in a different order on
    every call (ids must follow objects, not ranks)."""

    def __init__(self) -> None:
        from sphmask_core.config import load_model_config

        self.cfg = load_model_config("small")
        self.class_names = list(self.cfg.class_names)
        self.device = "cpu"
        self.calls = 0

    def __call__(self, xyz, rgb=None):
        from bag_segmenters import _instances

        self.calls += 1
        masks = [np.flatnonzero(np.abs(xyz - c).max(axis=1) < 0.4) for c in CUBES]
        masks = [m for m in masks if m.size]
        order = np.random.default_rng(self.calls).permutation(len(masks))
        masks = [masks[i] for i in order]
        k = len(masks)
        return _instances(masks, np.zeros(k, np.int64), np.linspace(0.9, 0.5, k), xyz,
                          self.class_names)


def test_tracking_ids_and_colours_over_a_bag(tmp_path):
    """Five frames: cubes 0 and 1 throughout, cube 2 leaves after frame 1 (max_age 1)."""
    pytest.importorskip("rclpy")
    from std_msgs.msg import Header

    from sphmask_ros.bag.evaluate import OUTPUT_TOPICS, EvalConfig, evaluate_bag
    from sphmask_core.sensor.bag_reader import BagReader
    from sphmask_ros.bag.messages import to_rclpy
    from sphmask_ros.bag.writer import BagWriter, make_qos
    from sphmask_ros.conversions import instance_colors
    from sphmask_ros.pointcloud2 import encode_cloud

    rng = np.random.default_rng(2)
    present = [[0, 1, 2], [0, 1, 2], [0, 1], [0, 1], [0, 1]]
    path = tmp_path / "cubes"
    with BagWriter(path, "mcap") as bag:
        bag.add_topic("/points", "sensor_msgs/msg/PointCloud2", [make_qos(True, False, 10)])
        for k, objs in enumerate(present):
            stamp = 1_000_000_000 + k * 100_000_000
            xyz = np.concatenate([_cube(CUBES[o], 200, rng) for o in objs])
            header = Header(frame_id="camera")
            header.stamp.sec, header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            bag.write_rclpy("/points", stamp, encode_cloud(header, {"xyz": xyz}))
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    device: cpu\n    input_voxel_size: 0.0\n"
                      "    score_threshold: 0.1\n    min_points: 0\n"
                      "    tracking:\n      max_age: 1\n")
    report = evaluate_bag(EvalConfig(bag=path, params_file=params, out=tmp_path / "e",
                                     renders=0, progress=False, warmup=False),
                          segmenter=CubeSegmenter(), log=lambda s: None)
    out = BagReader(report.out_dir / "output_bag")
    arrays = [to_rclpy(m) for m in out.messages([OUTPUT_TOPICS["instances"][0]])]
    markers = [to_rclpy(m) for m in out.messages([OUTPUT_TOPICS["markers"][0]])]
    assert len(arrays) == len(present)
    by_cube = []  # per frame: {cube: tracking id}
    for arr in arrays:
        ids = {}
        for inst in arr.instances:
            c = inst.bbox_center.position
            cube = int(np.argmin(np.linalg.norm(CUBES - [c.x, c.y, c.z], axis=1)))
            ids[cube] = inst.tracking_id
        by_cube.append(ids)
    assert [sorted(f) for f in by_cube] == present
    assert all(f[0] == by_cube[0][0] and f[1] == by_cube[0][1] for f in by_cube)
    assert len({by_cube[0][0], by_cube[0][1], by_cube[0][2]}) == 3 and all(by_cube[0].values())
    # marker colours are keyed by the tracking id, not the frame-local index
    for arr, mk in zip(arrays, markers):
        boxes = {m.id: m for m in mk.markers if m.ns == "bbox"}
        for inst in arr.instances:
            col = boxes[inst.id].color
            np.testing.assert_allclose([col.r, col.g, col.b],
                                       instance_colors(np.array([int(inst.tracking_id)]))[0], atol=1e-6)
    json.dumps(report.data)  # the report stays serialisable
