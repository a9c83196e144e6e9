"""Soak: the node (its own process, the shipped model) fed 300k-point clouds at 30 Hz by a
best-effort publisher in another process, with the DDS setup of ``scripts/ros_env.sh``.

Prints, about every two seconds, what the node's /diagnostics report: clouds published (the
publisher's sequence numbers as the node saw them), received by its callback, processed (results published), dropped by the newest-only hand-off (the model is
slower than the sensor), lost in transport (DDS), the published vs received rates, and the
node's resident memory. A bounded RSS and lost ~ 0 are the figures to look at; the ratio
processed / received is the model's speed against the sensor rate on this machine.

Usage: python bench/bench_node_soak.py [--points 300000] [--rate 30] [--seconds 20]
       [--no-profile]   (publisher and node without config/fastdds.xml: the "before")
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dds_delivery import ROOT, dds_env  # noqa: E402


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except FileNotFoundError:
        pass
    return float("nan")


def _drain(proc: subprocess.Popen, lines: list[str], ready: threading.Event) -> None:
    for line in proc.stdout:
        lines.append(line)
        if "listening to" in line:
            ready.set()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=300_000)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()
    env = dds_env(with_profile=not args.no_profile)
    topic = "/soak/points"
    node = subprocess.Popen(
        [sys.executable, "-m", "sphmask_ros.node", "--ros-args", "-r", "__ns:=/soak",
         "-p", f"input_topics:=['{topic}']", "-p", "device:=cpu", "-p", "diagnostics_period:=2.0"],
        env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    ready = threading.Event()
    threading.Thread(target=_drain, args=(node, lines, ready), daemon=True).start()
    pub = None
    try:
        if not ready.wait(180.0):
            print("node did not start:\n" + "".join(lines[-20:]))
            return 1
        import os

        for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
            os.environ[key] = env[key]
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        if "FASTDDS_DEFAULT_PROFILES_FILE" in env:
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"]
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray

        rclpy.init()
        me = rclpy.create_node("soak_monitor")
        reports: list[dict[str, str]] = []
        me.create_subscription(DiagnosticArray, "/diagnostics",
                               lambda m: reports.append({kv.key: kv.value for kv in m.status[0].values}), 10)
        count = int(args.rate * args.seconds)
        pub = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bench_dds_delivery.py"), "--role", "pub",
             "--topic", topic, "--points", str(args.points), "--count", str(count),
             "--rate", str(args.rate)], env=env, text=True, stdout=subprocess.PIPE)
        key = f"input[{topic}]"
        print(f"{args.points} points at {args.rate:.0f} Hz for {args.seconds:.0f} s, "
              f"profile {'off' if args.no_profile else 'on'}")
        print(f"{'t s':>5} {'published':>9} {'received':>9} {'processed':>9} {'dropped':>8} "
              f"{'lost':>6} {'pub Hz':>7} {'recv Hz':>8} {'RSS MB':>8}")
        t0, shown = time.monotonic(), 0
        deadline = t0 + args.seconds + 60.0
        while time.monotonic() < deadline:
            rclpy.spin_once(me, timeout_sec=0.1)
            if len(reports) > shown:
                shown = len(reports)
                v = reports[-1]
                print(f"{time.monotonic() - t0:5.1f} {v.get(f'{key}.published', '0'):>9} "
                      f"{v.get(f'{key}.received', '0'):>9} "
                      f"{v['frames_processed']:>9} {v['dropped_frames']:>8} "
                      f"{v.get(f'{key}.lost_in_transport', '0'):>6} "
                      f"{v.get(f'{key}.published_hz', 'n/a'):>7} "
                      f"{v.get(f'{key}.received_hz', 'n/a'):>8} {_rss_mb(node.pid):8.0f}", flush=True)
            if pub.poll() is not None and time.monotonic() - t0 > args.seconds + 6.0:
                break
        out = pub.communicate(timeout=30)[0].strip().splitlines()
        print(f"publisher: {out[-1] if out else 'no output'}")
        me.destroy_node()
        rclpy.shutdown()
    finally:
        for proc in (pub, node):
            if proc is not None and proc.poll() is None:
                proc.send_signal(2)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
