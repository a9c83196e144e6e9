"""Robust rosbag2 reading (mcap and sqlite3) on top of `rosbags`, without ROS.

`BagReader(path)` lists topics (`topics`: type, count, offered QoS) and yields `BagMessage`s (raw
CDR bytes, bag log time) in time order. It first asks `rosbags.rosbag2.Reader`; when that cannot
open the bag (a truncated mcap has no footer or summary; a cut sqlite3 file has missing pages) it
falls back to scanning the storage files record by record and reads every message up to the
damage. Damage met while iterating ends the iteration too. Either way a one-line description of
what was lost is appended to `warnings` (and passed to the optional `warn` callback), so a
recording cut short by a crash or a full disk still gives its intact part.

Messages stay raw CDR. `deserialize` turns one into a `rosbags` dataclass (same attribute names
as the rclpy message, enough for `decode_cloud` and `TransformCache`), which is how training reads
bags without ROS; `sphmask_ros.bag.messages.to_rclpy` gives the rclpy message the live node would
receive. `rosbags` is imported inside the functions that use it, so importing this module pulls
in no bag library.
"""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import yaml

__all__ = [
    "BagError",
    "TopicNotFoundError",
    "BagMessage",
    "TopicInfo",
    "BagReader",
    "ros2_typestore",
    "deserialize",
    "cdr_header_stamp",
]

_MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x03, 0x04, 0x05, 0x06


class BagError(Exception):
    """A bag that cannot be used as asked (one readable sentence)."""


class TopicNotFoundError(BagError):
    """A topic asked for is not in the bag."""


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str  # e.g. "sensor_msgs/msg/PointCloud2"
    log_time_ns: int  # when the recorder received it
    data: bytes  # CDR


@dataclass
class TopicInfo:
    name: str
    msgtype: str
    count: int
    qos: list[Any] = field(default_factory=list)  # rosbags.interfaces.Qos, one per publisher


def ros2_typestore() -> Any:
    """The rosbags typestore of the ROS 2 distribution our bags are written for (Kilted)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def deserialize(message: BagMessage, store: Any) -> Any:
    """The rosbags dataclass of a bag message (`store` from `ros2_typestore`)."""
    if message.msgtype not in store.fielddefs:
        raise BagError(f"message type '{message.msgtype}' on '{message.topic}' is unknown to the "
                       f"typestore")
    return store.deserialize_cdr(message.data, message.msgtype)


def cdr_header_stamp(message: BagMessage) -> int:
    """Header stamp (ns) of a raw message that starts with a std_msgs/Header, without decoding
    the rest: the CDR data leads with the 4-byte encapsulation, then stamp sec (int32) and
    nanosec (uint32). Too short a message gives its log time."""
    raw = message.data
    if len(raw) < 12:
        return message.log_time_ns
    order = "little" if raw[1] == 1 else "big"
    sec = int.from_bytes(raw[4:8], order, signed=True)
    nsec = int.from_bytes(raw[8:12], order, signed=False)
    return sec * 1_000_000_000 + nsec


# ----------------------------------------------------------------------------------- mcap scan


class _Damage(Exception):
    """The storage file ends or breaks here."""


def _read_exact(bio: Any, n: int) -> bytes:
    data = bio.read(n)
    if len(data) != n:
        raise _Damage(f"file ends inside a record ({len(data)} of {n} bytes)")
    return data


def _string(bio: BytesIO) -> str:
    (n,) = struct.unpack("<I", _read_exact(bio, 4))
    return _read_exact(bio, n).decode("utf-8")


def _string_map(raw: bytes) -> dict[str, str]:
    bio = BytesIO(raw)
    out = {}
    while bio.tell() < len(raw):
        key = _string(bio)
        out[key] = _string(bio)
    return out


@dataclass
class _McapState:
    schemas: dict[int, str] = field(default_factory=dict)  # id -> type name
    channels: dict[int, tuple[str, str, list]] = field(default_factory=dict)  # topic, type, qos


def _mcap_records(path: Path, state: _McapState, warn: Callable[[str], None]) -> Iterator[tuple[int, int, bytes]]:
    """Yield (channel id, log time, data) of every message record until the end or the damage.

    Schema and channel records (top level or inside chunks) update `state` as they pass.
    """
    from rosbags.rosbag2.metadata import parse_qos
    from rosbags.rosbag2.storage_mcap import decompress

    def records(bio: Any, end: int | None) -> Iterator[tuple[int, bytes]]:
        while end is None or bio.tell() < end:
            op = bio.read(1)
            if not op:
                return
            (length,) = struct.unpack("<Q", _read_exact(bio, 8))
            if end is not None and bio.tell() + length > end:
                raise _Damage("record runs past its chunk")
            yield op[0], _read_exact(bio, length)

    def handle(op: int, body: bytes) -> Iterator[tuple[int, int, bytes]]:
        rec = BytesIO(body)
        if op == _OP_SCHEMA:
            (sid,) = struct.unpack("<H", _read_exact(rec, 2))
            state.schemas[sid] = _string(rec)
        elif op == _OP_CHANNEL:
            cid, sid = struct.unpack("<HH", _read_exact(rec, 4))
            topic = _string(rec)
            _string(rec)  # message encoding (cdr)
            (n,) = struct.unpack("<I", _read_exact(rec, 4))
            meta = _string_map(_read_exact(rec, n))
            qos = parse_qos(meta["offered_qos_profiles"]) if meta.get("offered_qos_profiles") else []
            state.channels[cid] = (topic, state.schemas.get(sid, ""), qos)
        elif op == _OP_MESSAGE:
            cid, _seq, log_time, _pub = struct.unpack("<HIQQ", _read_exact(rec, 22))
            yield cid, log_time, body[22:]
        elif op == _OP_CHUNK:
            _t0, _t1, size, crc = struct.unpack("<QQQI", _read_exact(rec, 28))
            compression = _string(rec)
            (n,) = struct.unpack("<Q", _read_exact(rec, 8))
            try:
                raw = decompress(_read_exact(rec, n), compression, size, crc)
            except Exception as exc:  # noqa: BLE001 - any decoder failure is damage
                raise _Damage(f"unreadable chunk: {exc}") from None
            inner = BytesIO(raw)
            for sub_op, sub_body in records(inner, len(raw)):
                yield from handle(sub_op, sub_body)

    with path.open("rb") as bio:
        if bio.read(8) != _MCAP_MAGIC:
            raise BagError(f"{path} is not an mcap file (bad magic)")
        count = 0
        try:
            for op, body in records(bio, None):
                for item in handle(op, body):
                    count += 1
                    yield item
        except (_Damage, struct.error, UnicodeDecodeError, KeyError, ValueError) as exc:
            warn(f"{path.name}: damaged data after {count} messages ({exc}); read up to the damage")


# ----------------------------------------------------------------------------------- reader


class BagReader:
    """Topics and time-ordered raw messages of a rosbag2 directory (or a single .mcap/.db3 file).

    Raises BagError when nothing can be read (no such path, no storage file, not a bag).
    """

    def __init__(self, path: str | Path, warn: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.warnings: list[str] = []
        self._warn_cb = warn
        if not self.path.exists():
            raise BagError(f"bag '{self.path}' does not exist")
        self.custom_data: dict[str, str] = {}
        self.topics: dict[str, TopicInfo] = {}
        self._files: list[Path] = []
        self._use_rosbags = self._open_rosbags()
        if not self._use_rosbags:
            self._open_raw()

    # ------------------------------------------------------------------ opening
    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        if self._warn_cb is not None:
            self._warn_cb(text)

    def _open_rosbags(self) -> bool:
        from rosbags.rosbag2 import Reader

        try:
            with Reader(self.path) as reader:
                for name, info in reader.topics.items():
                    qos = [q for c in info.connections for q in getattr(c.ext, "offered_qos_profiles", [])]
                    self.topics[name] = TopicInfo(name, info.msgtype or "", info.msgcount, qos)
                self.custom_data = dict(getattr(reader.storage.metadata, "custom", None) or {})
        except Exception as exc:  # noqa: BLE001 - any failure sends us to the raw scan
            self._open_error = f"{type(exc).__name__}: {exc}"
            self.topics.clear()
            return False
        return True

    def _storage_files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        meta = self.path / "metadata.yaml"
        files: list[Path] = []
        if meta.is_file():
            try:
                info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
                files = [self.path / p for p in info.get("relative_file_paths", [])]
                self.custom_data = dict(info.get("custom_data") or {})
            except Exception:  # noqa: BLE001 - unreadable metadata: fall back to globbing
                files = []
        files = [f for f in files if f.is_file()]
        if not files:
            files = sorted(list(self.path.glob("*.mcap")) + list(self.path.glob("*.db3")))
        return files

    def _open_raw(self) -> None:
        self._files = self._storage_files()
        if not self._files:
            raise BagError(f"'{self.path}' is not a rosbag2 bag (no .mcap or .db3 storage file; "
                           f"{self._open_error})")
        counts: dict[str, int] = {}
        before = len(self.warnings)
        for msg in self._raw_messages(None, quiet=True):
            counts[msg.topic] = counts.get(msg.topic, 0) + 1
        for info in self.topics.values():
            info.count = counts.get(info.name, 0)
        if not self.topics:
            raise BagError(f"'{self.path}' has no readable topics ({self._open_error})")
        del self.warnings[before:]
        self._warn(f"bag '{self.path}' is damaged ({self._open_error}); "
                   f"reading the {sum(counts.values())} intact messages")

    # ------------------------------------------------------------------ raw reading
    def _raw_messages(self, topics: set[str] | None, quiet: bool = False) -> Iterator[BagMessage]:
        warn = (lambda _t: None) if quiet else self._warn
        for path in self._files:
            if path.suffix == ".db3":
                yield from self._sqlite_messages(path, topics, warn)
            else:
                state = _McapState()
                for cid, log_time, data in _mcap_records(path, state, warn):
                    channel = state.channels.get(cid)
                    if channel is None:
                        continue
                    topic, msgtype, qos = channel
                    if topic not in self.topics:
                        self.topics[topic] = TopicInfo(topic, msgtype, 0, qos)
                    if topics is None or topic in topics:
                        yield BagMessage(topic, msgtype, log_time, data)

    def _sqlite_messages(self, path: Path, topics: set[str] | None,
                         warn: Callable[[str], None]) -> Iterator[BagMessage]:
        from rosbags.rosbag2.metadata import parse_qos

        count = 0
        try:
            db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
            # A cut file is shorter than its header says; SQLite refuses it as corrupt unless
            # the schema is "writable" (read-only here: immutable=1), then reads what is there.
            db.execute("PRAGMA writable_schema=ON")
        except sqlite3.Error as exc:
            raise BagError(f"cannot open {path}: {exc}") from None
        try:
            rows = db.execute("SELECT * FROM topics").fetchall()
            cols = [d[0] for d in db.execute("SELECT * FROM topics LIMIT 0").description]
            by_id: dict[int, tuple[str, str]] = {}
            for row in rows:
                rec = dict(zip(cols, row))
                qos_text = rec.get("offered_qos_profiles") or ""
                try:
                    qos = parse_qos(qos_text) if qos_text else []
                except Exception:  # noqa: BLE001 - QoS text is advisory
                    qos = []
                by_id[rec["id"]] = (rec["name"], rec["type"])
                self.topics.setdefault(rec["name"], TopicInfo(rec["name"], rec["type"], 0, qos))
            # rowid order walks the table b-tree front to back, so a cut file yields its head
            cursor = db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY rowid")
            for topic_id, log_time, data in cursor:
                topic, msgtype = by_id.get(topic_id, ("", ""))
                if topic and (topics is None or topic in topics):
                    count += 1
                    yield BagMessage(topic, msgtype, int(log_time), bytes(data))
        except sqlite3.DatabaseError as exc:
            warn(f"{path.name}: damaged data after {count} messages ({exc}); read up to the damage")
        finally:
            db.close()

    # ------------------------------------------------------------------ public
    def require_topic(self, topic: str, msgtype: str | None = None) -> TopicInfo:
        """The topic's info; TopicNotFoundError / BagError (wrong type) naming it otherwise."""
        info = self.topics.get(topic)
        if info is None:
            have = ", ".join(sorted(self.topics)) or "none"
            raise TopicNotFoundError(f"topic '{topic}' is not in bag '{self.path}' (topics: {have})")
        if msgtype is not None and info.msgtype != msgtype:
            raise BagError(f"topic '{topic}' has type '{info.msgtype}', expected '{msgtype}'")
        return info

    def messages(self, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
        """Raw messages of `topics` (None = all), in log-time order, up to any damage."""
        wanted = None if topics is None else set(topics)
        if wanted is not None:
            for topic in wanted:
                self.require_topic(topic)
        if not self._use_rosbags:
            yield from self._raw_messages(wanted)
            return
        from rosbags.rosbag2 import Reader

        count = 0
        try:
            with Reader(self.path) as reader:
                conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
                for conn, log_time, data in reader.messages(connections=conns):
                    count += 1
                    yield BagMessage(conn.topic, conn.msgtype, int(log_time), bytes(data))
        except GeneratorExit:
            raise
        except Exception as exc:  # noqa: BLE001 - damage found while reading
            self._warn(f"bag '{self.path}': damaged data after {count} messages "
                       f"({type(exc).__name__}: {exc}); read up to the damage")

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())
