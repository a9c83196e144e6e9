"""`sphmask-demo`: the README's main command, end to end over real DDS on loopback.

1. writes a synthetic demo bag under `demo_output/` (once; reused when present),
2. starts the sphmask node in a child process (`python -m sphmask_ros.node`, shipped model unless
   `--checkpoint`), with `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST` and a ROS_DOMAIN_ID of its own,
3. waits until the node is ready (its latched ~/class_map arrives), then plays the bag's
   /points into it (`sphmask-bag play`),
4. records what the node publishes (instances, markers, labelled cloud, processing time) into
   `demo_output/demo_run/output_bag`,
5. prints a summary (frames, instances per frame, AP50 against the bag's ground truth,
   end-to-end latency p50/p95, dropped frames), writes `summary.json` and a PNG of one
   segmented scene.
Every process it starts is stopped on the way out (SIGINT, then SIGTERM, then SIGKILL, each with
a timeout), also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["main", "DemoConfig", "run_demo", "stop_process"]

PROG = "sphmask-demo"
NODE_NAME = "sphmask"
OUT_TOPICS = {
    "instances": "/sphmask/instances",
    "markers": "/sphmask/markers",
    "labelled_cloud": "/sphmask/labelled_cloud",
    "processing_time": "/sphmask/processing_time",
}


class DemoError(Exception):
    """The demo cannot go on (one line for the user)."""


@dataclass
class DemoConfig:
    out: Path = Path("demo_output")
    frames: int = 12
    points_per_frame: int = 8000
    record_rate: float = 2.0  # Hz of the synthetic recording
    play_rate: float = 1.0  # playback speed multiple
    seed: int = 0
    checkpoint: str = ""  # "" = the shipped model
    params: Path | None = None  # default config/sphmask.yaml
    startup_timeout: float = 240.0  # s for the node to load and warm up
    drain_timeout: float = 60.0  # s to wait for the last frames after playback
    min_region_size: int = 100


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def stop_process(proc: subprocess.Popen, timeouts: Sequence[float] = (15.0, 5.0, 5.0)) -> int | None:
    """Stop a child we started: SIGINT (clean ROS shutdown), then SIGTERM, then SIGKILL."""
    for sig, wait in zip((signal.SIGINT, signal.SIGTERM, signal.SIGKILL), timeouts):
        if proc.poll() is not None:
            break
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def _domain_env() -> tuple[dict[str, str], Any]:
    """Loopback-only discovery and a domain id of this run's own (kept if the caller set one).

    Returns the environment and the domain claim to hold while the demo runs (None when the
    caller chose the id).
    """
    from sphmask_ros.ros_domain import claim_domain

    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    claim = None
    if "ROS_DOMAIN_ID" not in env:
        claim = claim_domain()
        env["ROS_DOMAIN_ID"] = str(claim.domain_id)
    return env, claim


@dataclass
class _Received:
    """What the recorder heard, per input stamp."""

    instances: dict[int, Any] = field(default_factory=dict)  # stamp -> InstanceArray
    instances_wall: dict[int, float] = field(default_factory=dict)
    clouds: dict[int, Any] = field(default_factory=dict)  # stamp -> labelled PointCloud2
    processing: dict[int, Any] = field(default_factory=dict)
    class_map: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Recorder:
    """An rclpy node subscribing to the node's outputs, writing them raw into a bag."""

    def __init__(self, context: Any, bag: Any) -> None:
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import PointCloud2
        from visualization_msgs.msg import MarkerArray

        from sphmask.msg import ClassMap, InstanceArray, ProcessingTime
        from sphmask_ros.bag.writer import make_qos

        self.rx = _Received()
        self.bag = bag
        self.node = rclpy.create_node("sphmask_demo_recorder", context=context)
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        types = {"instances": InstanceArray, "markers": MarkerArray,
                 "labelled_cloud": PointCloud2, "processing_time": ProcessingTime}
        type_names = {"instances": "sphmask/msg/InstanceArray",
                      "markers": "visualization_msgs/msg/MarkerArray",
                      "labelled_cloud": "sensor_msgs/msg/PointCloud2",
                      "processing_time": "sphmask/msg/ProcessingTime"}
        for key, topic in OUT_TOPICS.items():
            bag.add_topic(topic, type_names[key], [make_qos(True, False, 20)])

            def callback(raw: bytes, key: str = key, topic: str = topic) -> None:
                now = time.time()
                with self.rx.lock:
                    self.bag.write(topic, time.time_ns(), raw)
                    if key == "markers":
                        return
                    msg = deserialize_message(raw, types[key])
                    stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
                    if key == "instances":
                        self.rx.instances[stamp] = msg
                        self.rx.instances_wall[stamp] = now
                    elif key == "labelled_cloud":
                        self.rx.clouds[stamp] = msg
                    else:
                        self.rx.processing[stamp] = msg

            self.node.create_subscription(types[key], topic, callback, reliable, raw=True)

        def on_class_map(msg: Any) -> None:
            self.rx.class_map = msg

        self.node.create_subscription(ClassMap, "/sphmask/class_map", on_class_map, latched)


def _wait_ready(proc: subprocess.Popen, rx: _Received, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while rx.class_map is None:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise DemoError(f"the node exited with status {proc.returncode}: "
                            + (" | ".join(tail) or "no output"))
        if time.monotonic() > deadline:
            raise DemoError(f"the node was not ready after {timeout:.0f} s (see {log_path})")
        time.sleep(0.1)


def _ground_truth(bag_path: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """stamp -> (semantic_id, instance_id) of each input cloud's finite points, in order."""
    from sphmask_core.sensor.bag_reader import BagReader
    from sphmask_ros.bag.messages import to_rclpy
    from sphmask_core.sensor.pointcloud2 import decode_cloud

    out = {}
    for msg in BagReader(bag_path).messages(["/points"]):
        cloud = decode_cloud(to_rclpy(msg))
        if "instance_id" in cloud.extras and "semantic_id" in cloud.extras:
            out[cloud.stamp_ns] = (cloud.extras["semantic_id"], cloud.extras["instance_id"])
    return out


def _ap50(rx: _Received, gt: dict, labels: Any, min_region_size: int) -> float | None:
    """AP50 of the node's instances against the bag's ground truth, over the segmented frames.

    Valid because the demo runs the node with one cloud per inference, no crop and the input
    frame: its labelled cloud (which point_indices index) is then the input's finite points in
    input order. Frames whose sizes disagree are left out.
    """
    from sphmask_core.evaluation.scannet_eval import PredInstance, ScanNetEvaluator
    from sphmask_ros.bag.evaluate import gt_ids_for_model

    ev = None
    for stamp, msg in sorted(rx.instances.items()):
        if stamp not in gt:
            continue
        semantic, instance = gt[stamp]
        if msg.cloud_width * msg.cloud_height != semantic.shape[0]:
            continue
        names = list(msg.class_names)
        if ev is None:
            ev = ScanNetEvaluator(names, list(range(1, len(names) + 1)), min_region_size)
        ids = gt_ids_for_model(semantic, instance, labels, names)
        preds = []
        for inst in msg.instances:
            mask = np.zeros(semantic.shape[0], dtype=bool)
            mask[np.asarray(inst.point_indices, dtype=np.int64)] = True
            preds.append(PredInstance(mask, int(inst.class_id) + 1, float(inst.score)))
        ev.add_scene(ids, preds)
    if ev is None or ev.num_scenes == 0:
        return None
    value = ev.result()["AP50"]
    return None if not np.isfinite(value) else float(value)


def _render_best(rx: _Received, path: Path, gt: dict, labels: Any) -> Path | None:
    """PNG of the segmented frame with the most instances: what the node published (labelled
    cloud, boxes, labels), the bag's ground truth beside it when the sizes agree (see _ap50)."""
    from sphmask_core.render import Labelling, render_scene

    from sphmask_ros.bag.evaluate import gt_ids_for_model
    from sphmask_core.sensor.pointcloud2 import decode_cloud

    candidates = [s for s in rx.instances if s in rx.clouds]
    if not candidates:
        return None
    stamp = max(candidates, key=lambda s: (len(rx.instances[s].instances), -s))
    msg, cloud = rx.instances[stamp], decode_cloud(rx.clouds[stamp])
    n = len(msg.instances)
    boxes = np.zeros((n, 6))
    for k, inst in enumerate(msg.instances):
        c, s = inst.bbox_center.position, inst.bbox_size
        boxes[k] = [c.x - s.x / 2, c.y - s.y / 2, c.z - s.z / 2, c.x + s.x / 2, c.y + s.y / 2, c.z + s.z / 2]
    pred = Labelling(cloud.extras["instance_id"].astype(np.int64),
                     np.array([i.class_id for i in msg.instances], dtype=np.int64),
                     scores=np.array([i.score for i in msg.instances], dtype=np.float64), boxes=boxes)
    truth = None
    if stamp in gt and gt[stamp][0].shape[0] == cloud.xyz.shape[0]:
        truth = Labelling.from_gt_ids(gt_ids_for_model(*gt[stamp], labels, list(msg.class_names)))
    # the node already applied its score threshold: draw everything it published
    render_scene(path, cloud.xyz, list(msg.class_names), pred, truth, score_threshold=0.0,
                 frame_id=msg.header.frame_id, stamp_ns=stamp, title="sphmask demo")
    return path


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def run_demo(cfg: DemoConfig, log: Any = print) -> dict:
    """Run the demo (see module doc); returns the summary dict (also written as summary.json)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from sphmask_ros.bag.evaluate import GroundTruthLabels
    from sphmask_ros.bag.play import PlayConfig, play_bag
    from sphmask_core.sensor.bag_reader import BagReader
    from sphmask_ros.bag.record import RecordConfig, record_synthetic
    from sphmask_ros.bag.writer import BagWriter, make_output_dir

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    bag_path = out / f"demo_bag_seed{cfg.seed}_f{cfg.frames}_p{cfg.points_per_frame}_r{cfg.record_rate:g}"
    if not (bag_path / "metadata.yaml").is_file():
        log(f"writing the demo bag {bag_path} ({cfg.frames} frames) ...")
        record_synthetic(bag_path, RecordConfig(seed=cfg.seed, frames=cfg.frames, rate=cfg.record_rate,
                                                points_per_frame=cfg.points_per_frame), overwrite=True)
    run_dir = make_output_dir(out / "demo_run", overwrite=True)
    params = cfg.params or _repo_root() / "config" / "sphmask.yaml"
    env, domain_claim = _domain_env()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = env["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    cmd = [sys.executable, "-m", "sphmask_ros.node", "--ros-args", "-r", f"__node:={NODE_NAME}"]
    if params.is_file():
        cmd += ["--params-file", str(params)]
    cmd += ["-p", "input_topics:=['/points']"]
    if cfg.checkpoint:
        cmd += ["-p", f"checkpoint:={cfg.checkpoint}"]
    log_path = run_dir / "node.log"
    summary: dict[str, Any] = {}
    publish_wall: dict[int, float] = {}
    context = rclpy.Context()
    rclpy.init(context=context)
    proc: subprocess.Popen | None = None
    executor = None
    spin_thread = None
    try:
        with BagWriter(run_dir / "output_bag", "mcap") as bag, open(log_path, "wb") as node_log:
            recorder = _Recorder(context, bag)
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(recorder.node)
            spin_thread = threading.Thread(target=executor.spin, daemon=True)
            spin_thread.start()
            log(f"starting the node (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, log {log_path}) ...")
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, stdout=node_log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            summary["node_pid"] = proc.pid
            _wait_ready(proc, recorder.rx, cfg.startup_timeout, log_path)
            summary["node_startup_s"] = time.monotonic() - t0
            log(f"node ready after {summary['node_startup_s']:.1f} s; playing /points ...")

            def on_publish(msg: Any, wall: float) -> None:
                from sphmask_core.sensor.bag_reader import cdr_header_stamp

                publish_wall[cdr_header_stamp(msg)] = wall

            stats = play_bag(bag_path, PlayConfig(rate=cfg.play_rate, topics=["/points"],
                                                  wait_subscribers_s=20.0),
                             log=log, on_publish=on_publish, context=context)
            # Drain: the node finishes the frame it is on; stop when all are in or it goes quiet.
            deadline = time.monotonic() + cfg.drain_timeout
            last_count, last_change = -1, time.monotonic()
            while time.monotonic() < deadline:
                with recorder.rx.lock:
                    count = len(recorder.rx.instances)
                if count >= stats.per_topic.get("/points", 0):
                    break
                if count != last_count:
                    last_count, last_change = count, time.monotonic()
                elif time.monotonic() - last_change > 15.0:
                    break
                if proc.poll() is not None:
                    raise DemoError(f"the node exited with status {proc.returncode} (see {log_path})")
                time.sleep(0.1)
            time.sleep(0.5)  # the labelled cloud follows its InstanceArray
    finally:
        if proc is not None:
            summary["node_exit"] = stop_process(proc)
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)
        if spin_thread is not None:
            spin_thread.join(timeout=5.0)
        rclpy.shutdown(context=context)
        if domain_claim is not None:
            domain_claim.release()

    rx = recorder.rx
    played = len(publish_wall)
    per_frame = [len(m.instances) for _, m in sorted(rx.instances.items())]
    latencies = [(rx.instances_wall[s] - publish_wall[s]) * 1e3 for s in rx.instances if s in publish_wall]
    node_ms = [float(p.total_ms) for p in rx.processing.values()]
    gt = _ground_truth(bag_path)
    labels = GroundTruthLabels.from_custom_data(BagReader(bag_path).custom_data)
    picture = _render_best(rx, run_dir / "demo_scene.png", gt, labels)
    summary.update({
        "bag": str(bag_path),
        "output_bag": str(run_dir / "output_bag"),
        "frames_played": played,
        "frames_segmented": len(rx.instances),
        "frames_dropped": max(played - len(rx.instances), 0),
        "instances_per_frame": {"mean": float(np.mean(per_frame)) if per_frame else None,
                                "min": min(per_frame) if per_frame else None,
                                "max": max(per_frame) if per_frame else None},
        "ap50": _ap50(rx, gt, labels, cfg.min_region_size),
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
        "node_processing_ms": {"p50": _percentile(node_ms, 50), "p95": _percentile(node_ms, 95)},
        "picture": str(picture) if picture else None,
    })
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(s: dict) -> str:
    def num(v: Any, fmt: str = "{:.1f}") -> str:
        return "n/a" if v is None else fmt.format(v)

    ipf = s["instances_per_frame"]
    lines = [
        "sphmask demo summary",
        f"  frames:              {s['frames_played']} played, {s['frames_segmented']} segmented, "
        f"{s['frames_dropped']} dropped",
        f"  instances per frame: mean {num(ipf['mean'])} (min {num(ipf['min'], '{}')}, "
        f"max {num(ipf['max'], '{}')})",
        f"  AP50 vs ground truth: {num(s['ap50'], '{:.3f}')}",
        f"  latency end to end:  p50 {num(s['latency_ms']['p50'])} ms, p95 {num(s['latency_ms']['p95'])} ms",
        f"  node processing:     p50 {num(s['node_processing_ms']['p50'])} ms, "
        f"p95 {num(s['node_processing_ms']['p95'])} ms",
        f"  output bag:          {s['output_bag']}",
        f"  picture:             {s['picture'] or 'none (no segmented frame)'}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sphmask-demo`: 0 on success, 1 with one error line, 130 on Ctrl-C."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=DemoConfig.frames)
    p.add_argument("--points-per-frame", type=int, default=DemoConfig.points_per_frame)
    p.add_argument("--rate", type=float, default=DemoConfig.play_rate, help="playback speed multiple")
    p.add_argument("--seed", type=int, default=DemoConfig.seed)
    p.add_argument("--checkpoint", default="", help="default: the shipped model")
    p.add_argument("--params", type=Path, default=None, help="default: config/sphmask.yaml")
    p.add_argument("--out", type=Path, default=DemoConfig.out)
    p.add_argument("--min-region-size", type=int, default=DemoConfig.min_region_size)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.frames < 1 or args.rate <= 0:
        print(f"{PROG}: error: --frames must be >= 1 and --rate > 0", file=sys.stderr)
        return 2
    cfg = DemoConfig(out=args.out, frames=args.frames, points_per_frame=args.points_per_frame,
                     play_rate=args.rate, seed=args.seed, checkpoint=args.checkpoint,
                     params=args.params, min_region_size=args.min_region_size)
    try:
        summary = run_demo(cfg)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user; details are in node.log
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
