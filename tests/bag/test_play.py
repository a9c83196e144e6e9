"""play: a bag's messages reach a live subscriber over loopback DDS, all of them, in order."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import rclpy
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from sphmask_core.sensor.bag_reader import BagReader
from sphmask_ros.bag.messages import to_rclpy
from sphmask_ros.bag.play import PlayConfig, play_bag


def test_play_delivers_every_message_in_order(synthetic_bags, fresh_ros_domain):
    bag = synthetic_bags["mcap"]
    expected = {t: [] for t in ("/points", "/odom")}
    for m in BagReader(bag).messages(list(expected)):
        h = to_rclpy(m).header
        expected[m.topic].append(h.stamp.sec * 10**9 + h.stamp.nanosec)
    got: dict[str, list[int]] = {t: [] for t in expected}
    clouds: list[PointCloud2] = []
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("play_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

    def on(topic: str):
        def cb(msg) -> None:
            got[topic].append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
            if topic == "/points":
                clouds.append(msg)
        return cb

    node.create_subscription(PointCloud2, "/points", on("/points"), qos)
    node.create_subscription(Odometry, "/odom", on("/odom"), qos)
    from tf2_msgs.msg import TFMessage

    from sphmask_ros.tf_buffer import TF_STATIC_QOS

    statics: list = []
    node.create_subscription(TFMessage, "/tf_static", statics.append, TF_STATIC_QOS)
    result: dict = {}
    player = threading.Thread(target=lambda: result.setdefault("stats", play_bag(
        bag, PlayConfig(rate=4.0, wait_subscribers_s=20.0), log=lambda s: None)))
    try:
        player.start()
        deadline = time.monotonic() + 40.0
        while time.monotonic() < deadline and (player.is_alive() or not statics or any(
                len(got[t]) < len(expected[t]) for t in got)):
            executor.spin_once(timeout_sec=0.05)
        player.join(timeout=10.0)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert got == expected
    assert result["stats"].skipped_topics == []  # tf2_msgs: the real one or our stand-in
    assert result["stats"].per_topic["/tf_static"] == 1
    assert [t.child_frame_id for t in statics[0].transforms] == ["sensor"]
    first = next(BagReader(bag).messages(["/points"]))
    assert bytes(clouds[0].data) == bytes(to_rclpy(first).data)


_SLOW_SUBSCRIBER = """
import sys, time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
rclpy.init()
node = rclpy.create_node("frozen_probe")
node.create_subscription(PointCloud2, "/points", lambda m: None,
                         QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
print("up", flush=True)
end = time.monotonic() + 30.0
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
"""


def test_play_waits_for_reliable_subscribers_to_acknowledge(synthetic_bags, fresh_ros_domain):
    # A subscriber that stops answering right after the first message (SIGSTOP: a stand-in for
    # a machine too busy to run its DDS threads). The player used to destroy its publishers at
    # once, losing whatever had not been taken yet; now it waits, and says so when it gives up.
    probe = subprocess.Popen([sys.executable, "-c", _SLOW_SUBSCRIBER], stdout=subprocess.PIPE,
                             text=True)
    logs: list[str] = []
    try:
        assert probe.stdout.readline().strip() == "up"

        def freeze(msg, wall) -> None:
            if msg.topic == "/points" and probe.poll() is None:
                probe.send_signal(signal.SIGSTOP)

        stats = play_bag(synthetic_bags["mcap"],
                         PlayConfig(rate=4.0, topics=["/points"], wait_subscribers_s=20.0,
                                    wait_acked_s=1.0),
                         log=logs.append, on_publish=freeze)
    finally:
        probe.send_signal(signal.SIGCONT)
        probe.kill()
        probe.wait(timeout=10.0)
    assert stats.per_topic == {"/points": 3}
    assert any("acknowledged" in line and "/points" in line for line in logs), logs
    assert stats.wall_s >= 1.0  # the wait happened (it is bounded by wait_acked_s)
