"""`record-synthetic`: a rosbag2 of a sensor moving through a synthetic room, with ground truth.

Topics (all stamped with the frame's time; bag log time = header stamp):
  /points      sensor_msgs/PointCloud2 in frame "sensor": x y z rgb instance_id semantic_id
               (int32 ground truth per point, -1 = none; semantic ids of `SYNTHETIC_LABELS`)
  /odom        nav_msgs/Odometry, "map" -> "base_link" (the robot body pose)
  /tf_static   tf2_msgs/TFMessage, "base_link" -> "sensor" (the fixed extrinsic `EXTRINSIC_*`)
  /tf          (with `tf=True`, `--tf`) tf2_msgs/TFMessage, "map" -> "base_link", the /odom poses
The label names, label shift and extrinsic are also stored in the bag's metadata custom_data.
Everything is a function of the seed (the synthetic generator is seeded, the per-frame point cap
draws from a seeded generator), so the same command writes the same messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sphmask_core.data.classes import BAG_NAMES_KEY, BAG_SHIFT_KEY
from sphmask_core.data.scene import SYNTHETIC_LABELS
from sphmask_core.data.synthetic import Frame, SensorConfig, SyntheticConfig, generate_frames
from sphmask_core.sensor.transforms import Transform
from sphmask_ros.bag.writer import BagWriter, make_qos, prepare_output
from sphmask_ros.transforms import pose_msg

__all__ = [
    "RecordConfig",
    "RecordResult",
    "EXTRINSIC_XYZ",
    "EXTRINSIC_QUAT",
    "MAP_FRAME",
    "BASE_FRAME",
    "SENSOR_FRAME",
    "START_NS",
    "synthetic_frames",
    "frame_stamp_ns",
    "frame_to_cloud",
    "frame_to_odometry",
    "record_synthetic",
]

MAP_FRAME, BASE_FRAME, SENSOR_FRAME = "map", "base_link", "sensor"
# base_link -> sensor: 1.2 m up, 0.2 m forward, pitched down like the synthetic sensor (20 deg).
EXTRINSIC_XYZ = (0.2, 0.0, 1.2)
EXTRINSIC_QUAT = tuple(float(v) for v in (0.0, np.sin(np.deg2rad(20.0) / 2), 0.0,
                                          np.cos(np.deg2rad(20.0) / 2)))
START_NS = 1_700_000_000 * 1_000_000_000  # a fixed wall-clock-like start, for determinism
_GT_NONE = -1


@dataclass(frozen=True)
class RecordConfig:
    seed: int = 0
    frames: int = 30
    rate: float = 10.0  # Hz
    storage: str = "mcap"
    points_per_frame: int = 20000  # cap per frame (a seeded random subset); frames may have fewer
    tf: bool = False  # also write the body poses as /tf (what a robot's bag carries)

    def validate(self) -> "RecordConfig":
        if self.frames < 1:
            raise ValueError(f"--frames must be >= 1, got {self.frames}")
        if not (np.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"--rate must be > 0 Hz, got {self.rate}")
        if self.points_per_frame < 100:
            raise ValueError(f"--points-per-frame must be >= 100, got {self.points_per_frame}")
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"--storage must be mcap or sqlite3, got '{self.storage}'")
        return self


@dataclass
class RecordResult:
    path: Path
    frames: int
    points: list[int]  # per frame
    counts: dict[str, int]  # messages per topic


def synthetic_frames(cfg: RecordConfig) -> list[Frame]:
    """The frames `record_synthetic` writes (same seed -> same frames), each capped to
    `points_per_frame` points (a sorted seeded subset, so point order stays the generator's)."""
    cfg.validate()
    # The generator's default density gives ~20k points per frame; denser when more are asked.
    density = 1000.0 * max(1.0, cfg.points_per_frame / 15000.0)
    sensor = SensorConfig(frame_dt=1.0 / cfg.rate, start_stamp=0.0)
    _, frames = generate_frames(cfg.seed, SyntheticConfig(density=density), cfg.frames, sensor)
    rng = np.random.default_rng([cfg.seed, 7])
    out = []
    for f in frames:
        n = f.xyz.shape[0]
        if n > cfg.points_per_frame:
            keep = np.sort(rng.choice(n, size=cfg.points_per_frame, replace=False))
            f = Frame(xyz=f.xyz[keep], rgb=f.rgb[keep], semantic=f.semantic[keep],
                      instance=f.instance[keep], index=f.index[keep], pose=f.pose, stamp=f.stamp)
        out.append(f)
    return out


def frame_stamp_ns(frame: Frame) -> int:
    return START_NS + int(round(frame.stamp * 1e9))


def _header(stamp: int, frame_id: str) -> Any:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    sec, nsec = divmod(int(stamp), 1_000_000_000)
    return Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=frame_id)


def frame_to_cloud(frame: Frame, stamp: int, frame_id: str = SENSOR_FRAME) -> Any:
    """PointCloud2 of a frame: x y z rgb instance_id semantic_id (int32, -1 = none)."""
    from sphmask_ros.pointcloud2 import encode_cloud

    inst = np.where(frame.instance >= 0, frame.instance, _GT_NONE).astype(np.int32)
    sem = np.where(frame.semantic >= 0, frame.semantic, _GT_NONE).astype(np.int32)
    return encode_cloud(_header(stamp, frame_id), {
        "xyz": frame.xyz, "rgb": frame.rgb, "instance_id": inst, "semantic_id": sem})


def extrinsic() -> Transform:
    """T_base_sensor."""
    return Transform.from_xyz_quat(EXTRINSIC_XYZ, EXTRINSIC_QUAT)


def frame_to_odometry(frame: Frame, stamp: int) -> Any:
    """nav_msgs/Odometry: the body pose T_map_base = T_map_sensor * T_base_sensor^-1."""
    from nav_msgs.msg import Odometry

    t_map_base = Transform.from_matrix(frame.pose).compose(extrinsic().inverse())
    msg = Odometry()
    msg.header = _header(stamp, MAP_FRAME)
    msg.child_frame_id = BASE_FRAME
    msg.pose.pose = pose_msg(t_map_base)
    return msg


def _tf_message(store: Any, stamp: int, parent: str, child: str, transform: Transform) -> bytes:
    """One-transform tf2_msgs/TFMessage serialized with the rosbags typestore (which has
    tf2_msgs whether or not rclpy has it)."""
    t = store.types
    sec, nsec = divmod(int(stamp), 1_000_000_000)
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                     frame_id=parent)
    xyz, q = transform.translation, transform.quat_xyzw
    tf = t["geometry_msgs/msg/TransformStamped"](
        header=header, child_frame_id=child,
        transform=t["geometry_msgs/msg/Transform"](
            translation=t["geometry_msgs/msg/Vector3"](x=xyz[0], y=xyz[1], z=xyz[2]),
            rotation=t["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3])))
    return bytes(store.serialize_cdr(t["tf2_msgs/msg/TFMessage"](transforms=[tf]),
                                     "tf2_msgs/msg/TFMessage"))


def record_synthetic(out: str | Path, cfg: RecordConfig, overwrite: bool = False,
                     progress: Callable[[int], None] | None = None) -> RecordResult:
    """Write the synthetic bag (see module doc). Ctrl-C leaves a readable bag of the frames so far."""
    cfg.validate()
    path = prepare_output(out, overwrite)
    frames = synthetic_frames(cfg)
    points = []
    with BagWriter(path, cfg.storage) as bag:
        bag.set_custom_data(BAG_NAMES_KEY, json.dumps(list(SYNTHETIC_LABELS.semantic_names)))
        bag.set_custom_data(BAG_SHIFT_KEY, str(SYNTHETIC_LABELS.label_shift))
        bag.set_custom_data("sphmask.extrinsic", json.dumps(
            {"parent": BASE_FRAME, "child": SENSOR_FRAME, "xyz": list(EXTRINSIC_XYZ),
             "quaternion_xyzw": list(EXTRINSIC_QUAT)}))
        bag.set_custom_data("sphmask.seed", str(cfg.seed))
        bag.add_topic("/tf_static", "tf2_msgs/msg/TFMessage", [make_qos(True, True, 1)])
        bag.add_topic("/odom", "nav_msgs/msg/Odometry", [make_qos(True, False, 50)])
        bag.add_topic("/points", "sensor_msgs/msg/PointCloud2", [make_qos(True, False, 10)])
        if cfg.tf:
            bag.add_topic("/tf", "tf2_msgs/msg/TFMessage", [make_qos(True, False, 100)])
        first = frame_stamp_ns(frames[0])
        bag.write("/tf_static", first, _tf_message(bag.typestore, first, BASE_FRAME, SENSOR_FRAME,
                                                   extrinsic()))
        for k, frame in enumerate(frames):
            stamp = frame_stamp_ns(frame)
            odom = frame_to_odometry(frame, stamp)
            bag.write_rclpy("/odom", stamp, odom)
            if cfg.tf:
                bag.write("/tf", stamp, _tf_message(bag.typestore, stamp, MAP_FRAME, BASE_FRAME,
                                                    Transform.from_msg(odom.pose.pose)))
            bag.write_rclpy("/points", stamp, frame_to_cloud(frame, stamp))
            points.append(int(frame.xyz.shape[0]))
            if progress is not None:
                progress(k + 1)
        counts = dict(bag.counts)
    return RecordResult(path, len(frames), points, counts)
