"""ROS side of the pose math: geometry_msgs builders and the tf2_ros adapter.

The transforms and the cache themselves are ROS-free (``sphmask_core.sensor.transforms``); this
module adds what needs ROS packages: ``pose_msg`` / ``transform_msg`` build geometry_msgs, and
``make_transform_source`` prefers a real ``tf2_ros.Buffer`` when tf2_ros is importable and a node
is given, falling back to ``TransformCache`` otherwise (always the case on our machines).
"""

from __future__ import annotations

from typing import Any

from geometry_msgs.msg import Pose, TransformStamped
from geometry_msgs.msg import Transform as TransformMsg

from sphmask_core.sensor.transforms import (
    Transform,
    TransformCache,
    TransformLookupError,
    stamp_to_ns,
)

try:  # Optional: only present in a full ROS install.
    import tf2_ros  # type: ignore[import-not-found]

    TF2_AVAILABLE = True
except ImportError:
    tf2_ros = None
    TF2_AVAILABLE = False

__all__ = [
    "pose_msg",
    "transform_msg",
    "Tf2BufferSource",
    "TF2_AVAILABLE",
    "make_transform_source",
]


def pose_msg(transform: Transform) -> Pose:
    """geometry_msgs/Pose of ``transform`` (position = translation, orientation = rotation)."""
    msg = Pose()
    msg.position.x, msg.position.y, msg.position.z = map(float, transform.translation)
    q = transform.quat_xyzw
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = map(float, q)
    return msg


def transform_msg(transform: Transform) -> TransformMsg:
    """geometry_msgs/Transform of ``transform``."""
    msg = TransformMsg()
    msg.translation.x, msg.translation.y, msg.translation.z = map(float, transform.translation)
    q = transform.quat_xyzw
    msg.rotation.x, msg.rotation.y, msg.rotation.z, msg.rotation.w = map(float, q)
    return msg


class Tf2BufferSource:
    """``TransformSource`` over a ``tf2_ros.Buffer`` (or any object with its ``lookup_transform``).

    ``tolerance_ns`` is honoured like ``TransformCache``: if the exact stamp cannot be
    interpolated, the newest available transform is used when it is within the tolerance.
    """

    def __init__(self, buffer: Any, errors: tuple[type[BaseException], ...] | None = None) -> None:
        self.buffer = buffer
        if errors is None:
            errors = ((tf2_ros.LookupException, tf2_ros.ConnectivityException,
                       tf2_ros.ExtrapolationException) if TF2_AVAILABLE else (LookupError,))
        self.errors = errors

    def _lookup(self, target: str, source: str, stamp_ns: int | None) -> TransformStamped:
        from rclpy.duration import Duration
        from rclpy.time import Time

        when = Time() if stamp_ns is None else Time(nanoseconds=stamp_ns)
        return self.buffer.lookup_transform(target, source, when, timeout=Duration())

    def lookup_or_raise(self, target_frame: str, source_frame: str, stamp_ns: int,
                        tolerance_ns: int = 0) -> Transform:
        try:
            msg = self._lookup(target_frame, source_frame, stamp_ns)
        except self.errors as exc:
            if tolerance_ns <= 0:
                raise TransformLookupError(str(exc)) from exc
            try:
                msg = self._lookup(target_frame, source_frame, None)
            except self.errors as exc2:
                raise TransformLookupError(str(exc2)) from exc2
            got = stamp_to_ns(msg.header.stamp)
            if abs(got - stamp_ns) > tolerance_ns:
                raise TransformLookupError(
                    f"{exc}; newest transform at {got} ns is beyond tolerance {tolerance_ns} ns"
                ) from exc
        return Transform.from_msg(msg.transform)


def make_transform_source(node: Any = None, prefer_tf2: bool = True,
                          **cache_kwargs: Any) -> TransformCache | Tf2BufferSource:
    """A ``Tf2BufferSource`` fed by a ``TransformListener`` on ``node`` when tf2_ros is
    importable (and a node is given), else a ``TransformCache`` the caller fills from
    parameters, ``/tf`` messages or odometry. tf2_ros is absent on our machines: fallback.
    """
    if prefer_tf2 and TF2_AVAILABLE and node is not None:
        buffer = tf2_ros.Buffer()
        listener = tf2_ros.TransformListener(buffer, node)
        source = Tf2BufferSource(buffer)
        source.listener = listener  # keep it alive as long as the source
        return source
    return TransformCache(**cache_kwargs)
