"""Delivery of large best-effort PointCloud2 between two processes on one host, per DDS setup.

A publisher process sends ``--count`` clouds of ``--points`` points (x y z rgb float32, 16 bytes a
point: 300k points = 4.8 MB) at ``--rate`` Hz, best effort depth 1 (a driver's sensor QoS), to a
best-effort subscriber in another process, once with the DDS environment of
``scripts/ros_env.sh`` minus our Fast DDS profile (the "before") and once with it (the "after").
Each run prints delivered / sent and the publisher's achieved rate; the ratio of the two
delivery rates is the figure of merit. A small-cloud run (20k points, 320 KB) is the reference
that arrives in every setup.

Usage: python bench/bench_dds_delivery.py [--points 300000] [--count 30] [--rate 10]
       python bench/bench_dds_delivery.py --role sub|pub ...   (one side, used by the above)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _node_and_qos(name: str, role: str):
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    rclpy.init()
    node = rclpy.create_node(name)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
    return rclpy, node, qos


def run_sub(topic: str, count: int, idle_s: float, max_s: float) -> None:
    """Count clouds until ``count`` arrived, ``idle_s`` passed without one after the first,
    or ``max_s`` in all."""
    from sensor_msgs.msg import PointCloud2

    rclpy, node, qos = _node_and_qos("dds_bench_sub", "sub")
    got: list[int] = []
    node.create_subscription(PointCloud2, topic, lambda m: got.append(int(m.header.stamp.sec)), qos)
    print("READY", flush=True)
    deadline = time.monotonic() + max_s
    last_change, seen = time.monotonic(), 0
    while time.monotonic() < deadline and len(got) < count:
        rclpy.spin_once(node, timeout_sec=0.05)
        if len(got) != seen:
            last_change, seen = time.monotonic(), len(got)
        elif got and time.monotonic() - last_change > idle_s:
            break
    print(json.dumps({"received": len(got), "unique": len(set(got))}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def run_pub(topic: str, points: int, count: int, rate: float) -> None:
    """Wait for the subscriber, then publish ``count`` clouds at ``rate`` Hz."""
    import numpy as np
    from std_msgs.msg import Header

    from sphmask_ros.pointcloud2 import encode_cloud

    rclpy, node, qos = _node_and_qos("dds_bench_pub", "pub")
    from sensor_msgs.msg import PointCloud2

    pub = node.create_publisher(PointCloud2, topic, qos)
    rng = np.random.default_rng(0)
    msg = encode_cloud(Header(frame_id="bench"), {
        "xyz": rng.uniform(-5, 5, (points, 3)).astype(np.float32),
        "rgb": rng.integers(0, 256, (points, 3)).astype(np.uint8)})
    deadline = time.monotonic() + 30.0
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)  # let the reader's locators settle (SHM ports) before the first sample
    period = 1.0 / rate
    t0 = time.monotonic()
    for i in range(count):
        msg.header.stamp.sec = i + 1
        pub.publish(msg)
        wait = t0 + (i + 1) * period - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    elapsed = time.monotonic() - t0
    print(json.dumps({"sent": count, "bytes": len(msg.data), "rate_hz": count / elapsed}),
          flush=True)
    time.sleep(1.0)  # samples still in flight in an asynchronous writer
    node.destroy_node()
    rclpy.shutdown()


def dds_env(with_profile: bool) -> dict[str, str]:
    """The environment ``scripts/ros_env.sh`` sets up (with or without our Fast DDS profile)."""
    out = subprocess.run(
        ["bash", "-c", f". '{ROOT}/scripts/ros_env.sh' >/dev/null && env -0"],
        check=True, capture_output=True, env=os.environ.copy()).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    if not with_profile:
        for key in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE",
                    "RMW_FASTRTPS_USE_QOS_FROM_XML", "FASTDDS_BUILTIN_TRANSPORTS"):
            env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def measure(with_profile: bool, points: int, count: int, rate: float, topic: str) -> dict:
    env = dds_env(with_profile)
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--topic", topic, "--count", str(count), "--rate", str(rate)]
    sub = subprocess.Popen(me + ["--role", "sub", *common], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert sub.stdout.readline().strip() == "READY"
        pub = subprocess.run(me + ["--role", "pub", *common, "--points", str(points)],
                             env=env, text=True, capture_output=True, timeout=120)
        sub_out, _ = sub.communicate(timeout=60)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    pub_res = json.loads(pub.stdout.strip().splitlines()[-1])
    sub_res = json.loads(sub_out.strip().splitlines()[-1])
    return {**pub_res, **sub_res}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", choices=("sub", "pub"))
    ap.add_argument("--topic", default="/dds_bench/points")
    ap.add_argument("--points", type=int, default=300_000)
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--idle", type=float, default=3.0)
    args = ap.parse_args()
    if args.role == "sub":
        run_sub(args.topic, args.count, args.idle, 15.0 + args.count / args.rate)
        return 0
    if args.role == "pub":
        run_pub(args.topic, args.points, args.count, args.rate)
        return 0
    rows = []
    for points in (20_000, args.points):
        for with_profile in (False, True):
            r = measure(with_profile, points, args.count, args.rate, args.topic)
            label = "sphmask profile" if with_profile else "defaults (LOCALHOST only)"
            rows.append((points, with_profile, r["received"] / r["sent"]))
            print(f"{points:>8} pts {r['bytes'] / 1e6:5.2f} MB  {label:<26} delivered "
                  f"{r['received']:>3}/{r['sent']:<3} ({100 * r['received'] / r['sent']:5.1f} %)  "
                  f"publisher {r['rate_hz']:5.1f} Hz", flush=True)
    before = next(d for p, w, d in rows if p == args.points and not w)
    after = next(d for p, w, d in rows if p == args.points and w)
    print(f"large-cloud delivery after/before: {after:.2f} / {before:.2f} "
          f"= {after / before if before else float('inf'):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
