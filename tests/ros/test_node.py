"""The sphmask node: hand-off, diagnostics, pipeline, and real rclpy nodes over loopback DDS."""

from __future__ import annotations

import os
import threading
import time

import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from sphmask_ros.diagnostics import RuntimeStats, diagnostic_array, status_level  # noqa: E402
from sphmask_ros.handoff import LatestSlot, Worker  # noqa: E402


# ------------------------------------------------------------------ hand-off (no ROS graph)

def test_latest_slot_newest_wins_and_counts_drops():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.dropped == 2
    assert slot.take(timeout=0.0) == 3
    assert slot.take(timeout=0.01) is None
    assert slot.put(4) is False  # the slot was emptied by take: nothing dropped
    assert slot.clear() == 1 and slot.dropped == 3
    slot.close()
    assert slot.take(timeout=1.0) is None
    with pytest.raises(RuntimeError, match="closed"):
        slot.put(5)


def test_worker_survives_errors_and_processes_newest():
    slot: LatestSlot[int] = LatestSlot()
    gate = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def handle(x: int) -> None:
        if x == 0:
            raise RuntimeError("boom")
        gate.wait(5.0)
        seen.append(x)

    worker = Worker(slot, handle, errors.append)
    worker.start()
    try:
        slot.put(0)
        deadline = time.monotonic() + 5.0
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(errors[0], RuntimeError)
        slot.put(1)  # taken, blocks on the gate
        while not worker.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        for x in range(2, 12):  # a burst while busy: only the newest survives
            slot.put(x)
        gate.set()
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [1, 11]
        assert slot.dropped == 9
    finally:
        assert worker.stop(timeout=5.0)


def test_latest_slot_one_place_per_topic_fair_order():
    slot: LatestSlot[str] = LatestSlot()
    slot.put("a1", key="a")
    slot.put("b1", key="b")
    slot.put("a2", key="a")  # replaces a1 but keeps a's place ahead of b
    assert slot.pending == 2 and slot.dropped == 1
    assert slot.take(0.0) == "a2"
    assert slot.take(0.0) == "b1"
    assert slot.take(0.0) is None


# ------------------------------------------------------------------ diagnostics (no ROS graph)

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
    assert values["latency_ms"] == "150.00"
    with pytest.raises(KeyError):
        stats.count("nonsense")
