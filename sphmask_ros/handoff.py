"""Newest-frame-wins hand-off from subscription callbacks to one worker thread.

Callbacks must never block on inference, and a slow model must never build a queue of stale
clouds (ROS_NOTES 5: depth-10 queues process old frames). So there is exactly one slot: `put`
replaces a frame the worker has not taken yet (that frame is counted as dropped), and the worker
always takes the newest. Memory is bounded by one waiting frame plus the one in progress.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Newest-item-wins mailbox with one place per key (one key per input topic).

    `put(item, key)` replaces an item of the same key that nobody took yet (counted as dropped)
    and keeps that key's place in line, so a fast sensor cannot starve a slow one; `take`
    returns the item of the key that has waited longest. At most one item per key is held.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: OrderedDict[str, T] = OrderedDict()
        self._closed = False
        self._dropped = 0

    def put(self, item: T, key: str = "") -> bool:
        """Store `item`; returns True when it replaced an item nobody took (a dropped frame)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("LatestSlot is closed")
            replaced = key in self._items
            if replaced:
                self._dropped += 1
            self._items[key] = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """Wait for an item (up to `timeout` s); None on timeout or when closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout=timeout):
                return None
            if not self._items:
                return None
            return self._items.popitem(last=False)[1]

    def clear(self) -> int:
        """Discard every waiting item (counted as dropped); returns how many there were."""
        with self._cond:
            n = len(self._items)
            self._dropped += n
            self._items.clear()
            return n

    def close(self) -> None:
        """Wake the worker for good; later `put` raises."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def dropped(self) -> int:
        with self._cond:
            return self._dropped

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._items)


class Worker(Generic[T]):
    """A daemon thread applying `handle` to every item taken from a `LatestSlot`.

    `handle` must not raise for expected failures (it logs and counts them); an unexpected
    exception is passed to `on_error` so the thread survives and keeps serving.
    """

    def __init__(self, slot: LatestSlot[T], handle: Callable[[T], None],
                 on_error: Callable[[BaseException], None], name: str = "sphmask-worker") -> None:
        self._slot = slot
        self._handle = handle
        self._on_error = on_error
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._slot.take(timeout=0.1)
            if item is None:
                continue
            self._busy.set()
            try:
                self._handle(item)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any frame
                self._on_error(exc)
            finally:
                self._busy.clear()

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to finish its current frame and exit; True if it did within `timeout`."""
        self._stop.set()
        self._slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()
