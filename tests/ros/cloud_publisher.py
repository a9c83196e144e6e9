"""A point-cloud driver stand-in for tests: publishes best-effort clouds from its own process.

    python tests/ros/cloud_publisher.py TOPIC HEIGHT WIDTH COUNT RATE_HZ

Waits (at most 20 s) for a subscriber, prints "READY", waits for a line on stdin (the test
sends it once the subscriber has matched this publisher too: best-effort samples sent before
both sides matched are dropped by design), publishes COUNT clouds of HEIGHT x WIDTH points
(x y z rgb float32, 16 bytes a point; 480 x 640 = 4.9 MB) at RATE_HZ with sensor QoS (best
effort, depth 1), stamp sec = 1..COUNT, and prints one JSON line {"sent": n, "bytes": b}.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from sphmask_ros.pointcloud2 import encode_cloud


def main(topic: str, height: int, width: int, count: int, rate: float) -> int:
    rclpy.init()
    node = rclpy.create_node("cloud_publisher")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
    pub = node.create_publisher(PointCloud2, topic, qos)
    n = height * width
    rng = np.random.default_rng(0)
    msg = encode_cloud(Header(frame_id="camera"), {
        "xyz": rng.uniform(-3, 3, (n, 3)).astype(np.float32),
        "rgb": rng.integers(0, 256, (n, 3)).astype(np.uint8)})
    msg.height, msg.width, msg.row_step = height, width, width * msg.point_step
    deadline = time.monotonic() + 20.0
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    print("READY", flush=True)
    sys.stdin.readline()
    t0 = time.monotonic()
    for i in range(count):
        msg.header.stamp.sec = i + 1
        pub.publish(msg)
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
    print(json.dumps({"sent": count, "bytes": len(msg.data)}), flush=True)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    topic, height, width, count, rate = sys.argv[1:6]
    sys.exit(main(topic, int(height), int(width), int(count), float(rate)))
