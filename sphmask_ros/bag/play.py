"""`play`: publish a bag's messages into the live ROS graph (rclpy), like `ros2 bag play`.

Each topic gets a publisher of its recorded type with a QoS compatible with what the recorded
publishers offered (`writer.rclpy_qos`), and every message is sent as its recorded CDR bytes
(`Publisher.publish(bytes)`), so subscribers receive exactly what was recorded. Messages go out
at their recorded log times divided by `rate`; `loop` starts over at the end.

`/tf_static` is always published reliable and transient local (depth 100), as tf2's static
broadcaster does, so a node started after the player still gets the extrinsics. With
`clock_hz` > 0 the bag's time goes out on `/clock` (rosgraph_msgs/Clock) at that rate and with
every message (the recorded log time it is published at), so nodes with `use_sim_time` run on
bag time; like `ros2 bag play --clock`, the clock starts at the first message's time.

A topic whose type has no Python definition here cannot be published: named in one warning and
skipped when playing every topic, an error when asked for by name.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from sphmask_core.sensor.bag_reader import BagMessage, BagReader

from sphmask_ros.bag.messages import UnknownMessageTypeError, rclpy_message_class
from sphmask_ros.bag.writer import rclpy_qos

__all__ = ["PlayConfig", "PlayStats", "play_bag"]


@dataclass(frozen=True)
class PlayConfig:
    rate: float = 1.0  # multiple of the recorded speed
    topics: Sequence[str] | None = None  # None = every playable topic
    loop: bool = False
    wait_subscribers_s: float = 0.0  # wait up to this long for each topic to have a subscriber
    # At the end, wait up to this long for reliable subscribers to acknowledge every message:
    # destroying the publishers earlier loses what a slow (e.g. busy) subscriber has not yet
    # taken, since its DDS reader may not even have matched the writer yet.
    wait_acked_s: float = 5.0
    clock_hz: float = 0.0  # > 0: publish the bag time on /clock at this rate
    # Seconds to wait after the subscribers were found, before the first message (`ros2 bag
    # play --delay`): a publisher that sees a subscriber does not mean the subscriber has
    # matched the publisher yet, and what it publishes before that is not delivered.
    delay_s: float = 0.0
    node_name: str = "sphmask_bag_player"

    def validate(self) -> "PlayConfig":
        if not self.rate > 0:
            raise ValueError(f"--rate must be > 0, got {self.rate}")
        if self.wait_subscribers_s < 0:
            raise ValueError("--wait-subscribers must be >= 0")
        if self.wait_acked_s < 0:
            raise ValueError("--wait-acked must be >= 0")
        if self.delay_s < 0:
            raise ValueError("--delay must be >= 0")
        if not 0 <= self.clock_hz <= 1000:
            raise ValueError(f"--clock must be in [0, 1000] Hz, got {self.clock_hz}")
        return self


@dataclass
class PlayStats:
    published: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    skipped_topics: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    loops: int = 0


TF_STATIC = "/tf_static"


def _wait_until(deadline: float, stop: threading.Event | None,
                tick: Callable[[], None] | None = None, tick_s: float = 0.05) -> bool:
    """Sleep until `deadline` (monotonic), calling `tick` every `tick_s`; False when `stop`
    was set meanwhile."""
    while True:
        left = deadline - time.monotonic()
        if stop is not None and stop.is_set():
            return False
        if left <= 0:
            return True
        if tick is not None:
            tick()
        time.sleep(min(left, tick_s))


class _Clock:
    """Publishes the bag time on /clock: `bag0 + (now - wall0) * rate` between messages."""

    def __init__(self, node: Any, rate: float) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self._msg = Clock()
        # what rosbag2's player offers: reliable, a short history
        self.pub = node.create_publisher(Clock, "/clock",
                                         QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.rate = rate
        self.wall0 = 0.0
        self.bag0 = 0

    def start(self, wall0: float, bag0: int) -> None:
        self.wall0, self.bag0 = wall0, bag0

    def publish_ns(self, bag_ns: int) -> None:
        self._msg.clock.sec, self._msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self.pub.publish(self._msg)

    def tick(self) -> None:
        elapsed = max(0.0, time.monotonic() - self.wall0)
        self.publish_ns(self.bag0 + int(elapsed * self.rate * 1e9))


def _publisher_qos(topic: str, offered: Sequence[Any]) -> Any:
    if topic != TF_STATIC:
        return rclpy_qos(offered)
    from sphmask_ros.tf_buffer import TF_STATIC_QOS

    return TF_STATIC_QOS


def _wait_acked(pubs: dict[str, Any], timeout_s: float, log: Callable[[str], None]) -> None:
    """Block until every reliable subscriber acknowledged all messages (best effort: at once)."""
    from rclpy.duration import Duration

    deadline = time.monotonic() + timeout_s
    for topic, pub in pubs.items():
        left = max(0.0, deadline - time.monotonic())
        if not pub.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))):
            log(f"warning: not every subscriber of '{topic}' acknowledged the last messages "
                f"within {timeout_s:.1f} s; they may miss them")


def play_bag(path: str | Path, cfg: PlayConfig = PlayConfig(),
             log: Callable[[str], None] = print,
             on_publish: Callable[[BagMessage, float], None] | None = None,
             stop: threading.Event | None = None,
             context: Any = None) -> PlayStats:
    """Publish the bag (see module doc); returns when done, on `stop`, or raises on Ctrl-C.

    `on_publish(message, wall_time)` is called after each publish (time.time()). The player
    runs its own rclpy node in `context` (None = a fresh context of its own, shut down at the
    end), so it can share a process with other nodes.
    """
    import rclpy

    cfg.validate()
    bag = BagReader(path, warn=lambda w: log(f"warning: {w}"))
    wanted = list(cfg.topics) if cfg.topics else sorted(bag.topics)
    stats = PlayStats()
    classes: dict[str, type] = {}
    for topic in wanted:
        info = bag.require_topic(topic)
        try:
            classes[topic] = rclpy_message_class(info.msgtype)
        except UnknownMessageTypeError as exc:
            if cfg.topics:
                raise UnknownMessageTypeError(f"cannot play topic '{topic}': {exc}") from None
            log(f"warning: skipping topic '{topic}': {exc}")
            stats.skipped_topics.append(topic)
    if not classes:
        raise UnknownMessageTypeError(f"no playable topic in '{path}'")

    own = context is None
    if own:
        context = rclpy.Context()
        rclpy.init(context=context)
    node = rclpy.create_node(cfg.node_name, context=context)
    t_start = time.monotonic()
    try:
        pubs = {t: node.create_publisher(cls, t, _publisher_qos(t, bag.topics[t].qos))
                for t, cls in classes.items()}
        clock = _Clock(node, cfg.rate) if cfg.clock_hz > 0 else None
        if cfg.wait_subscribers_s > 0:
            deadline = time.monotonic() + cfg.wait_subscribers_s
            while any(p.get_subscription_count() == 0 for p in pubs.values()):
                if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                    lonely = [t for t, p in pubs.items() if p.get_subscription_count() == 0]
                    log(f"warning: no subscriber on {', '.join(lonely)} after "
                        f"{cfg.wait_subscribers_s:.1f} s; playing anyway")
                    break
                time.sleep(0.05)
        if cfg.delay_s > 0 and not _wait_until(time.monotonic() + cfg.delay_s, stop):
            return stats
        t_start = time.monotonic()
        while True:
            wall0 = time.monotonic()
            bag0: int | None = None
            for msg in bag.messages(list(pubs)):
                if bag0 is None:
                    bag0 = msg.log_time_ns
                    if clock is not None:
                        clock.start(wall0, bag0)
                if not _wait_until(wall0 + (msg.log_time_ns - bag0) / 1e9 / cfg.rate, stop,
                                   clock.tick if clock is not None else None,
                                   1.0 / cfg.clock_hz if clock is not None else 0.05):
                    return stats
                if clock is not None:
                    clock.publish_ns(msg.log_time_ns)
                pubs[msg.topic].publish(msg.data)
                stats.published += 1
                stats.per_topic[msg.topic] = stats.per_topic.get(msg.topic, 0) + 1
                if on_publish is not None:
                    on_publish(msg, time.time())
            stats.loops += 1
            if not cfg.loop or stats.published == 0 or (stop is not None and stop.is_set()):
                _wait_acked(pubs, cfg.wait_acked_s, log)
                return stats
    finally:
        stats.wall_s = time.monotonic() - t_start
        node.destroy_node()
        if own:
            rclpy.shutdown(context=context)
