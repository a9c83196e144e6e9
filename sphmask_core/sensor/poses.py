"""Poses for the pre-processing: the node's pose sources, and a bag's pose messages fed to them.

`PoseSource` is what the node's `Preprocessor` looks poses up in: the static extrinsic of the
parameters, odometry composed with that extrinsic, or an external source (tf). `BagPoseFeed` does
for a recorded bag what the node's subscriptions do live: odometry on the parameters'
`odometry_topic` (pose_source odometry) or `/tf` + `/tf_static` (pose_source tf) go into a
`PoseSource`. `posed_clouds` replays a bag in log-time order and releases each cloud once a pose
at or after its stamp has been read (or the bag's time has passed its stamp by `tf_timeout`), as
the live node waits for its pose. `sphmask-bag eval` and training on bags (`dataset.name: bag`)
both go through these, so a recorded cloud gets the same pose offline as in the node.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable, Iterator

from sphmask_core.sensor.bag_reader import (
    BagError,
    BagMessage,
    BagReader,
    cdr_header_stamp,
    deserialize,
    ros2_typestore,
)
from sphmask_core.sensor.node_params import NodeParams, static_transform
from sphmask_core.sensor.transforms import (
    Transform,
    TransformCache,
    TransformLookupError,
    stamp_to_ns,
)

__all__ = ["PoseSource", "BagPoseFeed", "posed_clouds"]

ODOMETRY = "nav_msgs/msg/Odometry"


class PoseSource:
    """Thread-safe poses for the preprocessor: static parameters or odometry (+ extrinsic).

    The odometry callback writes from the executor thread while the worker reads, so every
    access to the cache takes the lock. A lookup that is not yet possible (odometry newer than
    the cloud has not arrived) is retried until the frame's deadline, then tried once more
    with the configured extrapolation tolerance.
    """

    def __init__(self, params: NodeParams, external: Any = None) -> None:
        self.params = params
        self.cache = TransformCache()
        self.external = external  # e.g. a tf2-backed source; used as is when given
        self.extrinsic = static_transform(params)
        self._lock = threading.Lock()
        self._odom_child = ""
        self.deadline = 0.0  # time.monotonic() until which lookups may wait

    def add_odometry(self, msg: Any) -> None:
        with self._lock:
            self.cache.add_odometry(msg)
            self._odom_child = msg.child_frame_id

    def prepare(self, sensor_frame: str) -> None:
        """Hang `sensor_frame` on the tree (static pose, or extrinsic under the odometry child)."""
        fixed = self.params.fixed_frame
        if self.external is not None or not fixed or sensor_frame == fixed:
            return
        with self._lock:
            if sensor_frame in self.cache.frames():
                return
            if self.params.pose_source == "static":
                self.cache.set_static(fixed, sensor_frame, self.extrinsic)
            elif self._odom_child and sensor_frame != self._odom_child:
                self.cache.set_static(self._odom_child, sensor_frame, self.extrinsic)

    def _try(self, target: str, source: str, stamp_ns: int, tol: int) -> Transform:
        if self.external is not None:
            return self.external.lookup_or_raise(target, source, stamp_ns, tol)
        with self._lock:
            return self.cache.lookup_or_raise(target, source, stamp_ns, tol)

    def lookup_or_raise(self, target_frame: str, source_frame: str, stamp_ns: int,
                        tolerance_ns: int = 0) -> Transform:
        while True:
            self.prepare(source_frame)
            try:
                return self._try(target_frame, source_frame, stamp_ns, 0)
            except TransformLookupError:
                if time.monotonic() >= self.deadline:
                    break
            time.sleep(0.005)
        return self._try(target_frame, source_frame, stamp_ns, tolerance_ns)


class BagPoseFeed:
    """Feeds a bag's pose messages (as the parameters choose) into `poses`, and says when a cloud
    may be processed.

    Raises BagError naming what is missing: the odometry topic (pose_source odometry) or both
    /tf and /tf_static (pose_source tf). With no fixed frame, or pose_source static, the bag's
    pose messages are not needed and none are read.
    """

    def __init__(self, params: NodeParams, bag: BagReader) -> None:
        self.topics: list[str] = []
        self.newest_ns: int | None = None  # newest stamp of a stamped pose read so far
        self.needed = bool(params.fixed_frame) and params.pose_source != "static"
        tf = self.needed and params.pose_source == "tf"
        # tf: the bag's /tf and /tf_static stand in for tf2, in a cache of their own
        self.poses = PoseSource(params, external=TransformCache() if tf else None)
        self._store: Any = None
        if not self.needed:
            return
        if params.pose_source == "odometry":
            odom = params.odometry_topic if params.odometry_topic.startswith("/") \
                else "/" + params.odometry_topic
            bag.require_topic(odom, ODOMETRY)
            self.topics = [odom]
        else:
            self.topics = [t for t in ("/tf", "/tf_static") if t in bag.topics]
            if not self.topics:
                raise BagError(f"pose_source 'tf' needs /tf or /tf_static in bag '{bag.path}'; "
                               f"it has neither")
        self._store = ros2_typestore()

    def feed(self, msg: BagMessage) -> None:
        """One message of `topics`."""
        if msg.msgtype == ODOMETRY:
            odom = deserialize(msg, self._store)
            self.poses.add_odometry(odom)
            stamp = stamp_to_ns(odom.header.stamp)
        else:
            tfm = deserialize(msg, self._store)
            static = msg.topic == "/tf_static"
            stamp = 0
            for t in tfm.transforms:
                self.poses.external.add_transform_stamped(t, static=static)
                if not static:
                    stamp = max(stamp, stamp_to_ns(t.header.stamp))
            if static:
                return
        self.newest_ns = stamp if self.newest_ns is None else max(self.newest_ns, stamp)

    def ready(self, cloud_stamp: int, now_ns: int, tolerance_ns: int) -> bool:
        """Whether a cloud stamped `cloud_stamp` may be processed at bag time `now_ns`."""
        if not self.needed:
            return True
        return (self.newest_ns is not None and self.newest_ns >= cloud_stamp) \
            or now_ns > cloud_stamp + tolerance_ns


def posed_clouds(messages: Iterable[BagMessage], cloud_topic: str, feed: BagPoseFeed,
                 tolerance_ns: int, max_clouds: int = 0) -> Iterator[BagMessage]:
    """The clouds on `cloud_topic` among `messages` (log-time order, the feed's topics included),
    each released once `feed` has the poses it needs; the others go to the feed. `max_clouds` > 0
    keeps only the first ones. Pose messages keep flowing into the feed while a released cloud is
    processed, as in the node, so the caller must process each cloud before asking for the next.
    """
    pending: list[BagMessage] = []
    taken = 0
    for msg in messages:
        if msg.topic != cloud_topic:
            feed.feed(msg)
        elif max_clouds <= 0 or taken < max_clouds:
            pending.append(msg)
            taken += 1
        while pending and feed.ready(cdr_header_stamp(pending[0]), msg.log_time_ns, tolerance_ns):
            yield pending.pop(0)
    yield from pending
