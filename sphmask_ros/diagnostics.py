"""Run-time statistics of the node and their `/diagnostics` form (diagnostic_updater stand-in).

`RuntimeStats` is written by the subscription callbacks (received / invalid / capped) and by the
worker thread (processed frames, timings, errors), and read by the diagnostics timer, so every
access goes through one lock. `diagnostic_array` turns a snapshot into a
`diagnostic_msgs/DiagnosticArray` with Autoware's processing-time logic: WARN when the last
end-to-end latency exceeds `latency_warn_ms`, ERROR above `latency_error_ms` or when the last
frame failed in the model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

COUNTERS = (
    "received",          # clouds that reached a callback
    "processed",         # clouds whose results were published
    "invalid",           # malformed clouds skipped (decode errors)
    "no_transform",      # clouds skipped for want of a pose
    "capped",            # clouds cut down to max_points
    "model_errors",      # frames dropped because inference raised
    "qos_incompatible",  # QoS-incompatibility events on inputs or outputs
)


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

    def count(self, name: str, n: int = 1) -> None:
        if name not in COUNTERS:
            raise KeyError(f"unknown counter '{name}' (known: {', '.join(COUNTERS)})")
        with self._lock:
            self._counters[name] += n

    def record_frame(self, stages_ms: Mapping[str, float], total_ms: float, latency_ms: float) -> None:
        """A frame was published: remember its timings."""
        with self._lock:
            self._counters["processed"] += 1
            self._stages_ms = dict(stages_ms)
            self._total_ms = float(total_ms)
            self._latency_ms = float(latency_ms)
            self._max_latency_ms = max(self._max_latency_ms, float(latency_ms))
            self._sum_latency_ms += float(latency_ms)
            self._last_failed = False

    def record_error(self, message: str) -> None:
        """Inference raised on a frame (it was dropped)."""
        with self._lock:
            self._counters["model_errors"] += 1
            self._last_error = message
            self._last_failed = True

    def snapshot(self, dropped: int) -> StatsSnapshot:
        with self._lock:
            n = self._counters["processed"]
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
) -> DiagnosticArray:
    """One DiagnosticStatus "<node_name>: processing" with counters, timings and the model."""
    level, message = status_level(snap, warn_ms, error_ms)
    values = [
        KeyValue(key="device", value=device),
        KeyValue(key="model", value=model_name),
        KeyValue(key="latency_ms", value=_fmt(snap.last_latency_ms)),
        KeyValue(key="max_latency_ms", value=_fmt(snap.max_latency_ms)),
        KeyValue(key="mean_latency_ms", value=_fmt(snap.mean_latency_ms)),
        KeyValue(key="processing_ms", value=_fmt(snap.last_total_ms)),
        KeyValue(key="dropped_frames", value=str(snap.dropped)),
    ]
    values += [KeyValue(key=f"frames_{k}", value=str(v)) for k, v in snap.counters.items()]
    values += [KeyValue(key=f"stage_{k}_ms", value=_fmt(v)) for k, v in snap.last_stages_ms.items()]
    status = DiagnosticStatus(
        level=level,
        name=f"{node_name}: processing",
        message=message,
        hardware_id=device,
        values=values,
    )
    return DiagnosticArray(header=header, status=[status])
