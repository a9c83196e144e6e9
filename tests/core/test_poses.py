"""Replaying a bag as the node receives it (sphmask_core.sensor.poses): a cloud waits for a pose
at or after its stamp, or until the bag's time is past its stamp by the tolerance; the header
stamp is read from the raw CDR bytes. (Pose feeding from real bags: tests/bag.)"""

from __future__ import annotations

import struct

from sphmask_core.sensor.bag_reader import BagMessage, cdr_header_stamp
from sphmask_core.sensor.poses import BagPoseFeed, posed_clouds

NS = 1_000_000_000


def _msg(topic: str, stamp_ns: int, log_ns: int | None = None, big: bool = False) -> BagMessage:
    """A message whose CDR data starts with a header stamp (encapsulation, sec, nanosec)."""
    sec, nsec = divmod(stamp_ns, NS)
    head = b"\x00\x00\x00\x00" if big else b"\x00\x01\x00\x00"
    body = struct.pack(">iI" if big else "<iI", sec, nsec)
    return BagMessage(topic, "any/msg/Type", stamp_ns if log_ns is None else log_ns, head + body)


class _Feed:
    """BagPoseFeed's bookkeeping without a bag: /odom messages are poses stamped at their log
    time; every message it is given is recorded."""

    ready = BagPoseFeed.ready

    def __init__(self) -> None:
        self.needed, self.newest_ns, self.fed = True, None, []

    def feed(self, msg: BagMessage) -> None:
        self.fed.append(msg.log_time_ns)
        if msg.topic == "/odom":
            self.newest_ns = max(self.newest_ns or 0, msg.log_time_ns)


def test_header_stamp_from_cdr_in_both_byte_orders() -> None:
    assert cdr_header_stamp(_msg("/p", 12 * NS + 345)) == 12 * NS + 345
    assert cdr_header_stamp(_msg("/p", 7 * NS + 1, big=True)) == 7 * NS + 1
    assert cdr_header_stamp(BagMessage("/p", "t", 99, b"\x00\x01")) == 99  # too short: log time


def test_clouds_wait_for_their_pose_then_for_the_tolerance() -> None:
    feed = _Feed()
    order: list[tuple[str, int, list[int]]] = []
    # a cloud at 1 s arrives before the pose at 1 s; a cloud at 3 s never gets a pose after it
    messages = [_msg("/odom", 0), _msg("/points", 1 * NS), _msg("/odom", 1 * NS),
                _msg("/points", 3 * NS), _msg("/odom", 2 * NS + NS // 2), _msg("/other", 4 * NS)]
    for cloud in posed_clouds(messages, "/points", feed, tolerance_ns=NS // 2):
        order.append((cloud.topic, cloud.log_time_ns, list(feed.fed)))
    # released once the 1 s pose is in; the 3 s cloud (newest pose 2.5 s) once the bag's time
    # is past 3.5 s
    assert order == [("/points", 1 * NS, [0, NS]),
                     ("/points", 3 * NS, [0, NS, 2 * NS + NS // 2, 4 * NS])]


def test_max_clouds_and_clouds_left_at_the_end() -> None:
    feed = _Feed()
    messages = [_msg("/points", k * NS) for k in range(4)]
    got = [m.log_time_ns for m in posed_clouds(messages, "/points", feed, 0, max_clouds=3)]
    assert got == [0, NS, 2 * NS]  # no pose ever: the end of the bag releases what waits
    feed.needed = False  # pose_source static / no fixed frame: nothing waits
    assert len(list(posed_clouds(messages, "/points", feed, 0))) == 4
