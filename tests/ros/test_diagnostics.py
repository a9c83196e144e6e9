"""Diagnostics levels and values (no ROS graph)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header

from sphmask_ros.diagnostics import RuntimeStats, diagnostic_array, status_level


def test_diagnostics_levels_and_values():
    stats = RuntimeStats()
    snap = stats.snapshot(dropped=0)
    assert status_level(snap, 100.0, 200.0)[0] == DiagnosticStatus.OK
    stats.count("received", 3)
    stats.record_frame({"inference": 40.0, "decode": 1.5}, total_ms=45.0, latency_ms=150.0)
    snap = stats.snapshot(dropped=2)
    level, message = status_level(snap, 100.0, 200.0)
    assert level == DiagnosticStatus.WARN and "150" in message
    assert status_level(snap, 100.0, 120.0)[0] == DiagnosticStatus.ERROR
    assert status_level(snap, 300.0, 400.0)[0] == DiagnosticStatus.OK
    stats.record_error("CUDA out of memory")
    snap = stats.snapshot(dropped=2)
    level, message = status_level(snap, 300.0, 400.0)
    assert level == DiagnosticStatus.ERROR and "out of memory" in message
    arr = diagnostic_array(Header(frame_id=""), "sphmask", snap, "cpu", "small", 300.0, 400.0)
    (status,) = arr.status
    values = {kv.key: kv.value for kv in status.values}
    assert status.name == "sphmask: processing" and status.hardware_id == "cpu"
    assert values["dropped_frames"] == "2" and values["frames_received"] == "3"
    assert values["frames_processed"] == "1" and values["frames_model_errors"] == "1"
    assert values["stage_inference_ms"] == "40.00" and values["model"] == "small"
