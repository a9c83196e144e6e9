"""Run-time statistics of the node and their `/diagnostics` form (diagnostic_updater stand-in).

`RuntimeStats` is written by the subscription callbacks (received / invalid / capped, points
dropped by reason, clouds DDS reported lost) and by the worker thread (processed frames,
timings, errors), and read by the diagnostics timer, so every access goes through one lock.
`diagnostic_array` turns a snapshot into a `diagnostic_msgs/DiagnosticArray` with Autoware's
processing-time logic: WARN when the last end-to-end latency exceeds `latency_warn_ms`, ERROR
above `latency_error_ms` or when the last frame failed in the model; WARN as well when clouds
were lost in transport since the last report.

Per input topic it reports what was published, as DDS tells it (the publisher's sequence
numbers of the clouds received, and the samples the middleware reported lost, i.e. that never
arrived whole), beside what the node received, as totals and as rates over the last report
period (`TransportWindow`): a transport that silently drops large clouds, or a node too busy to
take them before the next one replaces them in its depth-1 input queue, shows up as a gap
between the two rates.

Latency statistics only take plausible stamps: a stamp more than `STAMP_MAX_FUTURE_S` ahead of
the node's clock (ROS time: sim time when `use_sim_time`) or more than `STAMP_MAX_AGE_S`
behind it is not a latency but a clock problem (stamp 0, a bag replayed without /clock); such
frames are counted as `stamp_invalid` and leave the latency figures alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

STAMP_MAX_FUTURE_S = 1.0  # clock offset between sensor and node hosts that is still a latency
STAMP_MAX_AGE_S = 300.0  # the newest-only hand-off cannot make a frame this late

COUNTERS = (
    "received",          # clouds that reached a callback
    "processed",         # clouds whose results were published
    "invalid",           # malformed clouds skipped (decode errors)
    "no_transform",      # clouds skipped for want of a pose
    "capped",            # clouds cut down to max_points
    "model_errors",      # frames dropped because inference raised
    "qos_incompatible",  # QoS-incompatibility events on inputs or outputs
    "stamp_invalid",     # processed clouds whose stamp gives no plausible latency
    "callback_errors",   # unexpected exceptions caught in a callback (logged, node kept going)
)


def plausible_latency(latency_ms: float) -> bool:
    """Whether now - stamp (ms) is a latency rather than a wrong stamp or clock."""
    return -STAMP_MAX_FUTURE_S * 1e3 <= latency_ms <= STAMP_MAX_AGE_S * 1e3


@dataclass
class TopicStats:
    """Cumulative per-input-topic figures (plain values)."""

    received: int = 0  # clouds that reached the callback
    lost: int = 0  # clouds DDS reported lost (never arrived whole)
    published: int = 0  # clouds the publishers sent, from their sequence numbers (>= received)
    last_seq: dict[bytes, int] = field(default_factory=dict)  # per publisher gid (at most 16)
    points_dropped: dict[str, int] = field(default_factory=dict)  # by reason
    points_colour_cleared: int = 0


@dataclass
class StatsSnapshot:
    """A consistent copy of `RuntimeStats` (plain values, safe to read without the lock)."""

    counters: dict[str, int]
    dropped: int
    last_stages_ms: dict[str, float]
    last_total_ms: float | None
    last_latency_ms: float | None
    max_latency_ms: float
    mean_latency_ms: float | None
    last_error: str = ""
    last_frame_failed: bool = False
    topics: dict[str, TopicStats] = field(default_factory=dict)
    last_mask_overlap: float | None = None  # largest IoU between two masks published together
    max_mask_overlap: float = 0.0


@dataclass
class RuntimeStats:
    """Thread-safe counters and the last frame's timings."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counters: dict[str, int] = field(default_factory=lambda: {k: 0 for k in COUNTERS})
    _stages_ms: dict[str, float] = field(default_factory=dict)
    _total_ms: float | None = None
    _latency_ms: float | None = None
    _max_latency_ms: float = 0.0
    _sum_latency_ms: float = 0.0
    _last_error: str = ""
    _last_failed: bool = False
    _topics: dict[str, TopicStats] = field(default_factory=dict)
    _n_latency: int = 0
    _mask_overlap: float | None = None
    _max_mask_overlap: float = 0.0

    def count(self, name: str, n: int = 1) -> None:
        if name not in COUNTERS:
            raise KeyError(f"unknown counter '{name}' (known: {', '.join(COUNTERS)})")
        with self._lock:
            self._counters[name] += n

    def _topic(self, topic: str) -> TopicStats:
        return self._topics.setdefault(topic, TopicStats())

    def record_received(self, topic: str, seq: int | None = None,
                        publisher: bytes | None = None) -> None:
        """A cloud reached the callback of `topic`; `seq` is its publication sequence number
        from the publisher with gid `publisher`. Gaps in one publisher's sequence count as
        published-but-not-received."""
        with self._lock:
            self._counters["received"] += 1
            stats = self._topic(topic)
            stats.received += 1
            last = stats.last_seq.get(publisher) if publisher is not None else None
            if seq is not None and last is not None and seq > last:
                stats.published += seq - last
            else:
                stats.published += 1
            if seq is not None and publisher is not None:
                stats.last_seq.pop(publisher, None)
                stats.last_seq[publisher] = seq  # newest last: the oldest publisher goes first
                while len(stats.last_seq) > 16:
                    del stats.last_seq[next(iter(stats.last_seq))]

    def record_lost(self, topic: str, total_lost: int) -> None:
        """DDS's running count of clouds lost on `topic` (message_lost event)."""
        with self._lock:
            stats = self._topic(topic)
            stats.lost = max(stats.lost, int(total_lost))

    def record_points(self, topic: str, dropped: Mapping[str, int], colour_cleared: int) -> None:
        """Points of one cloud dropped (by reason) or kept without colour."""
        if not dropped and not colour_cleared:
            return
        with self._lock:
            stats = self._topic(topic)
            for reason, n in dropped.items():
                stats.points_dropped[reason] = stats.points_dropped.get(reason, 0) + int(n)
            stats.points_colour_cleared += int(colour_cleared)

    def record_frame(self, stages_ms: Mapping[str, float], total_ms: float,
                     latency_ms: float | None, mask_overlap: float | None = None) -> None:
        """A frame was published: remember its timings. `latency_ms` None: the stamp gave no
        plausible latency (counted as stamp_invalid, latency figures unchanged). `mask_overlap`:
        the largest IoU between two of its published masks (duplicates that survived NMS)."""
        with self._lock:
            self._counters["processed"] += 1
            if mask_overlap is not None:
                self._mask_overlap = float(mask_overlap)
                self._max_mask_overlap = max(self._max_mask_overlap, float(mask_overlap))
            self._stages_ms = dict(stages_ms)
            self._total_ms = float(total_ms)
            self._last_failed = False
            if latency_ms is None:
                self._counters["stamp_invalid"] += 1
                return
            self._latency_ms = float(latency_ms)
            self._max_latency_ms = max(self._max_latency_ms, float(latency_ms))
            self._sum_latency_ms += float(latency_ms)
            self._n_latency += 1

    def record_error(self, message: str) -> None:
        """Inference raised on a frame (it was dropped)."""
        with self._lock:
            self._counters["model_errors"] += 1
            self._last_error = message
            self._last_failed = True

    def snapshot(self, dropped: int) -> StatsSnapshot:
        with self._lock:
            n = self._n_latency
            return StatsSnapshot(
                counters=dict(self._counters),
                dropped=int(dropped),
                last_stages_ms=dict(self._stages_ms),
                last_total_ms=self._total_ms,
                last_latency_ms=self._latency_ms,
                max_latency_ms=self._max_latency_ms,
                mean_latency_ms=self._sum_latency_ms / n if n else None,
                last_error=self._last_error,
                last_frame_failed=self._last_failed,
                last_mask_overlap=self._mask_overlap,
                max_mask_overlap=self._max_mask_overlap,
                topics={k: replace(v, points_dropped=dict(v.points_dropped),
                                   last_seq=dict(v.last_seq))
                        for k, v in self._topics.items()},
            )


def status_level(snap: StatsSnapshot, warn_ms: float, error_ms: float) -> tuple[bytes, str]:
    """(level, message) of the processing status."""
    if snap.last_frame_failed:
        return DiagnosticStatus.ERROR, f"inference failed on the last frame: {snap.last_error}"
    if snap.last_latency_ms is None:
        return DiagnosticStatus.OK, "waiting for the first point cloud"
    lat = snap.last_latency_ms
    if lat > error_ms:
        return DiagnosticStatus.ERROR, f"latency {lat:.0f} ms above the error limit {error_ms:.0f} ms"
    if lat > warn_ms:
        return DiagnosticStatus.WARN, f"latency {lat:.0f} ms above the warning limit {warn_ms:.0f} ms"
    return DiagnosticStatus.OK, f"latency {lat:.0f} ms"


@dataclass
class TopicRates:
    """One input topic over the last report period."""

    published_hz: float  # what the publisher sent, as DDS tells it
    received_hz: float
    lost: int  # clouds DDS reported lost in transport during the period
    missed: int  # clouds published but not received (lost, or replaced while the node was busy)


class TransportWindow:
    """Rates per input topic between consecutive diagnostics reports (not thread-safe: the
    diagnostics timer is its only user)."""

    def __init__(self) -> None:
        self._last: tuple[float, dict[str, tuple[int, int, int]]] | None = None

    def update(self, now_s: float, topics: Mapping[str, TopicStats]) -> dict[str, TopicRates]:
        counts = {k: (v.received, v.lost, v.published) for k, v in topics.items()}
        last, self._last = self._last, (now_s, counts)
        if last is None or now_s <= last[0]:
            return {}
        dt = now_s - last[0]
        rates = {}
        for topic, (received, lost, published) in counts.items():
            r0, l0, p0 = last[1].get(topic, (0, 0, 0))
            d_recv, d_lost = received - r0, lost - l0
            d_pub = max(published - p0, d_recv + d_lost)
            rates[topic] = TopicRates(d_pub / dt, d_recv / dt, d_lost, d_pub - d_recv)
        return rates


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def diagnostic_array(
    header: Header,
    node_name: str,
    snap: StatsSnapshot,
    device: str,
    model_name: str,
    warn_ms: float,
    error_ms: float,
    rates: Mapping[str, TopicRates] | None = None,
) -> DiagnosticArray:
    """One DiagnosticStatus "<node_name>: processing" with counters, timings, the model and,
    per input topic, transport figures (`rates`: from `TransportWindow.update`)."""
    rates = rates or {}
    level, message = status_level(snap, warn_ms, error_ms)
    lossy = {t: r for t, r in rates.items() if r.missed > 0}
    if lossy and level == DiagnosticStatus.OK:
        level = DiagnosticStatus.WARN
        message = "; ".join(
            f"{r.missed} clouds published on '{t}' never reached the node ({r.lost} lost in "
            f"transport, {r.missed - r.lost} replaced in the input queue while the node was "
            f"busy): published {r.published_hz:.1f} Hz, received {r.received_hz:.1f} Hz"
            for t, r in lossy.items())
    values = [
        KeyValue(key="device", value=device),
        KeyValue(key="model", value=model_name),
        KeyValue(key="latency_ms", value=_fmt(snap.last_latency_ms)),
        KeyValue(key="max_latency_ms", value=_fmt(snap.max_latency_ms)),
        KeyValue(key="mean_latency_ms", value=_fmt(snap.mean_latency_ms)),
        KeyValue(key="processing_ms", value=_fmt(snap.last_total_ms)),
        KeyValue(key="published_mask_overlap_iou", value=_fmt(snap.last_mask_overlap)),
        KeyValue(key="max_published_mask_overlap_iou", value=_fmt(snap.max_mask_overlap)),
        KeyValue(key="dropped_frames", value=str(snap.dropped)),
    ]
    values += [KeyValue(key=f"frames_{k}", value=str(v)) for k, v in snap.counters.items()]
    values += [KeyValue(key=f"stage_{k}_ms", value=_fmt(v)) for k, v in snap.last_stages_ms.items()]
    for topic, t in sorted(snap.topics.items()):
        pre = f"input[{topic}]"
        values += [KeyValue(key=f"{pre}.published", value=str(t.published)),
                   KeyValue(key=f"{pre}.received", value=str(t.received)),
                   KeyValue(key=f"{pre}.lost_in_transport", value=str(t.lost))]
        if topic in rates:
            values += [KeyValue(key=f"{pre}.published_hz", value=_fmt(rates[topic].published_hz)),
                       KeyValue(key=f"{pre}.received_hz", value=_fmt(rates[topic].received_hz))]
        values += [KeyValue(key=f"{pre}.points_dropped.{reason}", value=str(n))
                   for reason, n in sorted(t.points_dropped.items())]
        if t.points_colour_cleared:
            values.append(KeyValue(key=f"{pre}.points_colour_cleared",
                                   value=str(t.points_colour_cleared)))
    status = DiagnosticStatus(
        level=level,
        name=f"{node_name}: processing",
        message=message,
        hardware_id=device,
        values=values,
    )
    return DiagnosticArray(header=header, status=[status])
