"""Writing rosbag2 bags with `rosbags`, safely: refuse existing outputs, always finish the file.

`BagWriter` wraps `rosbags.rosbag2.Writer` so that the bag is *closed* (index and metadata.yaml
written) however the `with` block ends, Ctrl-C included: rosbags' own context manager aborts
on an exception, which leaves a bag without metadata. Messages are raw CDR bytes; rclpy
messages go through `rclpy.serialization.serialize_message`, the exact bytes a live publisher
sends. Message definitions and hashes come from our typestore (ROS 2 Kilted + sphmask/msg).

QoS helpers convert between `rosbags.interfaces.Qos` (what bags record as offered profiles) and
rclpy `QoSProfile` (what `play` publishes with).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

from sphmask_core.sensor.bag_reader import BagError

__all__ = [
    "STORAGES",
    "BagWriter",
    "prepare_output",
    "make_output_dir",
    "OUTPUT_MARKER",
    "make_qos",
    "rclpy_qos",
]

STORAGES = ("mcap", "sqlite3")
# Written into every output folder we create (eval, demo), so --overwrite knows it may delete it.
OUTPUT_MARKER = ".sphmask-output"


def _looks_like_bag_or_output(path: Path) -> bool:
    """Only a bag, a single storage file, an eval output folder or an empty folder may be deleted
    by --overwrite; anything else is refused rather than lost."""
    if not path.is_dir():
        return path.suffix in (".mcap", ".db3")
    return (not any(path.iterdir()) or (path / "metadata.yaml").is_file()
            or (path / OUTPUT_MARKER).is_file())


def make_output_dir(path: str | Path, overwrite: bool) -> Path:
    """A fresh output folder (see `prepare_output`), marked as ours."""
    path = prepare_output(path, overwrite)
    path.mkdir(parents=True)
    (path / OUTPUT_MARKER).write_text("created by sphmask; --overwrite may delete this folder\n")
    return path


def prepare_output(path: str | Path, overwrite: bool) -> Path:
    """Check that `path` may be (re)written: refused when it exists unless `overwrite`.

    With `overwrite`, an existing bag (or our output folder) is deleted; anything else that
    exists is still refused rather than deleted.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise BagError(f"output '{path}' already exists (pass --overwrite to replace it)")
        if not _looks_like_bag_or_output(path):
            raise BagError(f"output '{path}' exists and does not look like a bag or sphmask "
                           f"output; refusing to delete it")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def make_qos(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Any:
    """A rosbags `Qos` (the offered profile a bag records)."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    infinite = QosTime(sec=2147483647, nsec=4294967295)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=infinite,
        lifespan=infinite,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=infinite,
        avoid_ros_namespace_conventions=False,
    )


def rclpy_qos(offered: Sequence[Any], default_depth: int = 10) -> Any:
    """An rclpy QoSProfile compatible with what the recorded publishers offered.

    Like `ros2 bag play`: reliable / transient local only when every recorded publisher
    offered it (so every subscriber that matched the original publishers matches the player),
    depth the largest recorded keep-last depth (at least 1).
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rosbags.interfaces import QosDurability, QosReliability

    if not offered:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=default_depth,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    reliable = all(q.reliability == QosReliability.RELIABLE for q in offered)
    latched = all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    depth = max([int(q.depth) for q in offered] + [1])
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


class BagWriter:
    """A rosbag2 being written; use as a context manager (closed on any exit, Ctrl-C included).

    `path` must not exist (see `prepare_output`). `storage` is "mcap" or "sqlite3".
    """

    def __init__(self, path: str | Path, storage: str = "mcap", typestore: Any = None) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got '{storage}'")
        if typestore is None:
            from sphmask_ros.interfaces import make_typestore

            typestore = make_typestore()
        self.typestore = typestore
        self.path = Path(path)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        except Exception as exc:  # noqa: BLE001 - rosbags WriterError: path exists
            raise BagError(f"cannot create bag '{self.path}': {exc}") from None
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._open = False

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        self._open = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Write the index and metadata.yaml (idempotent)."""
        if self._open:
            self._open = False
            self._writer.close()

    def set_custom_data(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, value)

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Any] = ()) -> None:
        if topic in self._connections:
            raise ValueError(f"topic '{topic}' added twice")
        if msgtype not in self.typestore.types:
            raise BagError(f"message type '{msgtype}' is unknown to the bag typestore")
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self.typestore, offered_qos_profiles=list(qos))
        self.counts[topic] = 0

    def write(self, topic: str, log_time_ns: int, data: bytes) -> None:
        conn = self._connections.get(topic)
        if conn is None:
            raise ValueError(f"topic '{topic}' was not added to the bag")
        self._writer.write(conn, int(log_time_ns), data)
        self.counts[topic] += 1

    def write_rclpy(self, topic: str, log_time_ns: int, msg: Any) -> None:
        """Serialize an rclpy message exactly as a live publisher would and write it."""
        from rclpy.serialization import serialize_message

        self.write(topic, log_time_ns, serialize_message(msg))
