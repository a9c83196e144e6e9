"""The node's hand-off between the subscription callbacks and the worker thread (no ROS graph)."""

from __future__ import annotations

import threading
import time

import pytest

from sphmask_ros.handoff import LatestSlot, Worker


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
