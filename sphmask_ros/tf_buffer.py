"""`TfBuffer`: a tf2 buffer of our own, fed by `/tf` and `/tf_static` (tf2_ros is absent here).

What the node gets from it is what tf2_ros would give: `T_target_source` at a cloud's stamp,
composed through the frame tree; static edges (`/tf_static`, transient local, valid at every
stamp) and dynamic edges (`/tf`, interpolated between the two samples around the stamp: linear
translation, Slerp rotation); a stamp outside a dynamic edge's samples is refused with the
reason ("extrapolation into the future: 'map' -> 'base_link' requested at ..."), never
extrapolated. The frame tree and interpolation are `transforms.TransformCache`; this module adds
the thread-safe wrapper, the topic subscriptions with tf2_ros's QoS, rejection of bad samples
(counted, never raised into a callback), and tf2_ros's reset on time jumping back (a bag that
loops or restarts: the old future samples would otherwise hide the new ones).

`make_tf_source(node)` returns a `transforms.Tf2BufferSource` over a real `tf2_ros.Buffer`
when tf2_ros is importable (its own listener subscribes), else a `TfBuffer` whose subscriptions
the node creates with `subscribe` when it starts.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from sphmask_core.sensor.transforms import (
    Transform,
    TransformCache,
    stamp_to_ns,
)
from sphmask_ros.transforms import TF2_AVAILABLE, Tf2BufferSource, make_transform_source

__all__ = ["TfBuffer", "TF_QOS", "TF_STATIC_QOS", "make_tf_source"]

# tf2_ros's DynamicListenerQoS and StaticListenerQoS.
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                           reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


class TfBuffer:
    """Thread-safe frame tree filled from TFMessages (see module doc).

    `cache_time_s` is tf2's buffer length: dynamic samples older than this before an edge's
    newest one are dropped; a sample older than this before the newest sample seen on any
    edge means time jumped back, and every dynamic sample is forgotten (statics stay).
    """

    def __init__(self, cache_time_s: float = 10.0, logger: Any = None) -> None:
        self.cache_time_ns = int(cache_time_s * 1e9)
        self.cache = TransformCache(max_age_ns=self.cache_time_ns)
        self.logger = logger
        self.rejected = 0  # transforms refused (bad values, conflicting parents, ...)
        self.resets = 0  # times the dynamic samples were cleared because time jumped back
        self._newest_ns: int | None = None
        self._lock = threading.Lock()

    # ---- filling
    def add_message(self, msg: Any, static: bool) -> int:
        """Add every transform of a tf2_msgs/TFMessage; returns how many were refused."""
        refused = 0
        with self._lock:
            for t in msg.transforms:
                try:
                    self._add(t, static)
                except ValueError as exc:
                    refused += 1
                    if self.logger is not None:
                        self.logger.warning(
                            f"ignoring transform '{t.header.frame_id}' -> '{t.child_frame_id}' "
                            f"from {'/tf_static' if static else '/tf'}: {exc}",
                            throttle_duration_sec=2.0)
        self.rejected += refused
        return refused

    def _add(self, t: Any, static: bool) -> None:
        if static:
            self.cache.add_transform_stamped(t, static=True)
            return
        stamp = stamp_to_ns(t.header.stamp)
        if self._newest_ns is not None and stamp < self._newest_ns - self.cache_time_ns:
            self.cache.clear_stamped()
            self._newest_ns = None
            self.resets += 1
        self.cache.add_sample(t.header.frame_id, t.child_frame_id, stamp,
                              Transform.from_msg(t.transform))
        self._newest_ns = stamp if self._newest_ns is None else max(self._newest_ns, stamp)

    def subscribe(self, node: Any,
                  guard: Callable[[str, Callable[..., None]], Callable[..., None]] | None = None
                  ) -> list[Any]:
        """Subscribe `node` to /tf and /tf_static (absolute names, as tf2_ros does); `guard`
        wraps each callback (the node's exception guard). Returns the subscriptions."""
        from tf2_msgs.msg import TFMessage

        guard = guard or (lambda what, fn: fn)
        return [
            node.create_subscription(TFMessage, "/tf", guard(
                "/tf callback", lambda m: self.add_message(m, static=False)), TF_QOS),
            node.create_subscription(TFMessage, "/tf_static", guard(
                "/tf_static callback", lambda m: self.add_message(m, static=True)), TF_STATIC_QOS),
        ]

    # ---- lookup (the TransformSource protocol)
    def lookup_or_raise(self, target_frame: str, source_frame: str, stamp_ns: int,
                        tolerance_ns: int = 0) -> Transform:
        with self._lock:
            return self.cache.lookup_or_raise(target_frame, source_frame, stamp_ns, tolerance_ns)

    def frames(self) -> set[str]:
        with self._lock:
            return self.cache.frames()


def make_tf_source(node: Any) -> Tf2BufferSource | TfBuffer:
    """tf2_ros's buffer and listener when installed, else our `TfBuffer` (see module doc)."""
    if TF2_AVAILABLE:
        return make_transform_source(node, prefer_tf2=True)
    return TfBuffer(logger=node.get_logger() if node is not None else None)
