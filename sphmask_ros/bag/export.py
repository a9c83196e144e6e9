"""`export`: a labelled bag's clouds as a `folder` training dataset (one .npz per frame).

Training can read labelled bags directly (`dataset.name: bag`, which also accumulates windows
with the node's pre-processing); this command is the other way: it turns the frames of a bag
whose PointCloud2s carry `instance_id` / `semantic_id` fields
(`record-synthetic` writes them; label your own the same way) into the folder format of
sphmask_core/data/folder.py, decoding each cloud with the node's own `decode_cloud`, and writes
`classes.yaml` from the bag's `sphmask.semantic_names` / `sphmask.label_shift` metadata when it
has them (else pass your own classes file to training). `--start` / `--end` (seconds from the
bag's first cloud) select a time range, so one bag can give a training and a validation split.
Frames are exported in the sensor frame, one scan each, as the node sees them without
accumulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from sphmask_core.data.classes import classes_from_bag_metadata
from sphmask_core.sensor.bag_reader import BagReader
from sphmask_core.sensor.pointcloud2 import CloudError, decode_cloud
from sphmask_ros.bag.messages import to_rclpy

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"


@dataclass
class ExportStats:
    written: int = 0
    skipped_unlabelled: int = 0
    skipped_empty: int = 0
    skipped_invalid: int = 0


def export_frames(bag_path: Path, out_dir: Path, topic: str = "/points", start_s: float = 0.0,
                  end_s: float = float("inf"), overwrite: bool = False,
                  log: Callable[[str], None] = print) -> ExportStats:
    if not end_s > start_s >= 0.0:
        raise ValueError(f"--start/--end must satisfy 0 <= start < end, got {start_s}, {end_s}")
    bag = BagReader(bag_path, warn=lambda w: log(f"warning: {w}"))
    bag.require_topic(topic, POINTCLOUD2)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"output folder {out_dir} already exists; choose another or add --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = classes_from_bag_metadata(bag.custom_data, bag_path)
    if classes is not None:
        (out_dir / "classes.yaml").write_text(yaml.safe_dump(classes.to_dict(), sort_keys=False))
    stats = ExportStats()
    first_ns: int | None = None
    for k, msg in enumerate(bag.messages([topic])):
        first_ns = msg.log_time_ns if first_ns is None else first_ns
        t = (msg.log_time_ns - first_ns) * 1e-9
        if not start_s <= t < end_s:
            continue
        try:
            cloud = decode_cloud(to_rclpy(msg))
        except CloudError as exc:
            stats.skipped_invalid += 1
            log(f"frame {k}: invalid cloud ({exc}), skipped")
            continue
        if "instance_id" not in cloud.extras or "semantic_id" not in cloud.extras:
            stats.skipped_unlabelled += 1
            continue
        if len(cloud.xyz) == 0:
            stats.skipped_empty += 1
            continue
        rgb = np.zeros_like(cloud.xyz) if cloud.rgb is None else (cloud.rgb + 1.0) * 127.5  # (M, 3) 0..255
        np.savez(out_dir / f"frame_{k:05d}.npz", xyz=cloud.xyz, rgb=rgb,
                 semantic_id=cloud.extras["semantic_id"].astype(np.int64),
                 instance_id=cloud.extras["instance_id"].astype(np.int64))
        stats.written += 1
    if stats.written == 0:
        raise ValueError(f"no labelled frames on {topic} in [{start_s}, {end_s}) s "
                         f"({stats.skipped_unlabelled} without instance_id/semantic_id fields)")
    return stats
