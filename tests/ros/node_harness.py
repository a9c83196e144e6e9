"""What the node tests share: a stand-in segmenter, a probe node, a graph spun with deadlines,
test clouds and a node factory."""

from __future__ import annotations

import time

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from sphmask.msg import ClassMap, InstanceArray, ProcessingTime
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from sphmask_core.inference.instances import Instances, point_instance_from_masks
from sphmask_ros.node import SphMaskNode
from sphmask_ros.pointcloud2 import encode_cloud

TEST_MAX_POINTS = 4000  # also the warm-up size: keeps model start-up around a second


class OracleSegmenter:
    """Stands in for the model in plumbing tests: known instances, optional delay / failure.

    Instance 0 ("cabinet", score 0.9) = points with x > 0.9, instance 1 (class 1, score 0.3) =
    points with x < -0.9; the real segmenter's cfg / names / device are kept.
    """

    def __init__(self, real) -> None:
        self.cfg, self.class_names, self.device = real.cfg, real.class_names, real.device
        self.delay = 0.0
        self.fail = 0
        self.calls = 0
        self.sizes: list[int] = []

    def __call__(self, xyz, rgb=None) -> Instances:
        self.calls += 1
        self.sizes.append(int(xyz.shape[0]))
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("CUDA out of memory (simulated)")
        masks = [np.flatnonzero(xyz[:, 0] > 0.9), np.flatnonzero(xyz[:, 0] < -0.9)]
        pairs = [(m.astype(np.int64), s) for m, s in zip(masks, (0.9, 0.3)) if m.size]
        # like the real segmenter: the test config's threshold (the node's parameter) applies
        pairs = [(m, s) for m, s in pairs if s >= self.cfg.test.score_threshold]
        masks = [m for m, _ in pairs]
        k = len(masks)
        scores = np.array([s for _, s in pairs], dtype=np.float32)
        heads = self.cfg.heads
        boxes = np.array([np.r_[xyz[m].min(0), xyz[m].max(0)] for m in masks],
                         dtype=np.float32).reshape(k, 6)
        return Instances(
            point_instance=point_instance_from_masks(masks, scores, xyz.shape[0]),
            masks=masks, class_ids=np.arange(k, dtype=np.int64), class_names=self.class_names,
            scores=scores, class_probs=scores.copy(), iou_scores=np.ones(k, np.float32),
            centers=np.array([xyz[m].mean(0) for m in masks], dtype=np.float32).reshape(k, 3),
            rays=np.full((k, heads.n_theta * heads.n_phi), 0.3, np.float32),
            n_theta=heads.n_theta, n_phi=heads.n_phi, boxes=boxes)


def scene_points(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two cubes (x around +1.5 and -1.5) over a floor strip |x| < 0.8; rgb in [-1, 1]."""
    rng = np.random.default_rng(seed)
    a = rng.uniform([1.2, -0.3, 0.0], [1.8, 0.3, 0.6], (n, 3))
    b = rng.uniform([-1.8, -0.3, 0.0], [-1.2, 0.3, 0.6], (n, 3))
    floor = rng.uniform([-0.8, -1.0, 0.0], [0.8, 1.0, 0.02], (n, 3))
    xyz = np.concatenate([a, b, floor]).astype(np.float32)
    rgb = rng.uniform(-1, 1, xyz.shape).astype(np.float32)
    return xyz, rgb


def cloud_msg(xyz, rgb=None, stamp=None, frame="lidar") -> PointCloud2:
    cols = {"xyz": xyz} if rgb is None else {"xyz": xyz, "rgb": rgb}
    header = Header(frame_id=frame)
    if stamp is not None:
        header.stamp = stamp
    return encode_cloud(header, cols)


class Probe:
    """A test node: publishes clouds, records everything the node under test publishes."""

    def __init__(self, context, ns: str) -> None:
        self.node = Node("probe", namespace=ns, context=context)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.got: dict[str, list] = {k: [] for k in
                                     ("instances", "markers", "cloud", "timing", "class_map", "diag")}
        subs = [(InstanceArray, "sphmask/instances", "instances", reliable),
                (MarkerArray, "sphmask/markers", "markers", reliable),
                (PointCloud2, "sphmask/labelled_cloud", "cloud", reliable),
                (ProcessingTime, "sphmask/processing_time", "timing", reliable),
                (ClassMap, "sphmask/class_map", "class_map", latched),
                (DiagnosticArray, "/diagnostics", "diag", reliable)]
        for msg_type, topic, key, qos in subs:
            self.node.create_subscription(msg_type, topic, self.got[key].append, qos)
        sensor = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.pub = self.node.create_publisher(PointCloud2, "points", sensor)
        self.odom = self.node.create_publisher(Odometry, "odom", QoSProfile(depth=50))

    def stamp(self) -> Time:
        return self.node.get_clock().now().to_msg()


class Graph:
    """Node under test + probe on one executor, spun by the test with deadlines."""

    def __init__(self, context, node, probe: Probe) -> None:
        self.node, self.probe = node, probe
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        self.executor.add_node(probe.node)

    def spin_until(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def connected(self) -> bool:
        """The probe's publisher sees the node's subscription and vice versa."""
        pubs = self.node.runtime._pubs
        return (self.probe.pub.get_subscription_count() >= 1
                and pubs["instances"].get_subscription_count() >= 1
                and pubs["labelled_cloud"].get_subscription_count() >= 1)

    def idle(self) -> bool:
        return not self.node.runtime.busy

    def send(self, msg: PointCloud2, key: str = "instances", timeout: float = 10.0):
        """Publish one cloud and wait for the output of that stamp on `key`."""
        n0 = len(self.probe.got[key])
        self.probe.pub.publish(msg)
        ok = self.spin_until(lambda: any(
            m.header.stamp == msg.header.stamp for m in self.probe.got[key][n0:]), timeout)
        assert ok, f"no {key} output for the cloud stamped {msg.header.stamp}"
        return [m for m in self.probe.got[key][n0:] if m.header.stamp == msg.header.stamp][-1]

    def close(self) -> None:
        self.executor.shutdown()
        self.probe.node.destroy_node()
        self.node.destroy_node()


def make_node(context, checkpoint, ns: str, **overrides) -> SphMaskNode:
    # the oracle segmenters' scores are spread over [0.1, 1]: publish all of them
    params = {"checkpoint": str(checkpoint), "device": "cpu", "input_voxel_size": 0.0,
              "max_points": TEST_MAX_POINTS, "diagnostics_period": 0.2, "score_threshold": 0.1}
    params.update(overrides)
    return SphMaskNode(namespace=ns, context=context,
                       parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
