"""`info`: what a bag holds (topics, types, counts, duration, ground truth), read end to end.

Reading every message (not just the metadata) is deliberate: it proves the bag readable and
reports damage the metadata cannot know about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sphmask_core.sensor.bag_reader import BagReader

__all__ = ["GT_FIELDS", "TopicSummary", "BagInfo", "bag_info", "format_info"]

GT_FIELDS = ("instance_id", "semantic_id")
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"


@dataclass
class TopicSummary:
    name: str
    msgtype: str
    count: int
    qos: str  # e.g. "reliable/volatile depth 10"
    ground_truth: bool | None = None  # PointCloud2 topics only: carries GT_FIELDS
    fields: list[str] = field(default_factory=list)  # PointCloud2 field names


@dataclass
class BagInfo:
    path: Path
    topics: list[TopicSummary]
    message_count: int
    start_ns: int
    end_ns: int
    warnings: list[str]

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9


def _qos_text(profiles: list) -> str:
    if not profiles:
        return "-"
    q = profiles[0]
    text = f"{q.reliability.name.lower()}/{q.durability.name.lower()} depth {q.depth}"
    return text + (f" (+{len(profiles) - 1} more)" if len(profiles) > 1 else "")


def _cloud_fields(data: bytes) -> list[str]:
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import PointCloud2

    return [f.name for f in deserialize_message(data, PointCloud2).fields]


def bag_info(path: str | Path) -> BagInfo:
    """Scan the whole bag; BagError when it cannot be read at all."""
    reader = BagReader(path)
    counts: dict[str, int] = {}
    first_cloud: dict[str, list[str]] = {}
    start, end = None, None
    for msg in reader.messages():
        counts[msg.topic] = counts.get(msg.topic, 0) + 1
        start = msg.log_time_ns if start is None else min(start, msg.log_time_ns)
        end = msg.log_time_ns if end is None else max(end, msg.log_time_ns)
        if msg.msgtype == POINTCLOUD2 and msg.topic not in first_cloud:
            first_cloud[msg.topic] = _cloud_fields(msg.data)
    topics = []
    for name in sorted(reader.topics):
        t = reader.topics[name]
        fields = first_cloud.get(name, [])
        gt = all(f in fields for f in GT_FIELDS) if name in first_cloud else None
        topics.append(TopicSummary(name, t.msgtype, counts.get(name, 0), _qos_text(t.qos), gt, fields))
    return BagInfo(Path(path), topics, sum(counts.values()), start or 0, end or 0,
                   list(reader.warnings))


def format_info(info: BagInfo) -> str:
    """Human-readable table of `bag_info`."""
    lines = [
        f"bag:       {info.path}",
        f"messages:  {info.message_count}",
        f"duration:  {info.duration_s:.3f} s",
        f"start:     {info.start_ns / 1e9:.3f} s",
        "topics:",
    ]
    width = max([len(t.name) for t in info.topics] + [5])
    twidth = max([len(t.msgtype) for t in info.topics] + [4])
    for t in info.topics:
        gt = ""
        if t.ground_truth is not None:
            gt = "  ground truth: " + ("yes (instance_id, semantic_id)" if t.ground_truth else "no")
        lines.append(f"  {t.name:<{width}}  {t.msgtype:<{twidth}}  {t.count:>6} msgs  {t.qos}{gt}")
    for w in info.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)
