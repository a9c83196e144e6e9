"""The ROS side of the pose math: geometry_msgs builders, rclpy pose messages in the cache,
the tf2_ros fallback and the tf2 adapter (the math itself: tests/core/test_transforms.py; test
file names are unique across the test folders, hence this one's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry

from sphmask_core.sensor.transforms import Transform, TransformCache, TransformLookupError
from sphmask_ros import transforms as tfm
from sphmask_ros.transforms import Tf2BufferSource, make_transform_source, pose_msg, transform_msg

S45, C45 = math.sin(math.pi / 4), math.cos(math.pi / 4)
YAW90 = (0.0, 0.0, S45, C45)  # x, y, z, w: +90 deg about z


def test_geometry_msgs_builders_round_trip() -> None:
    t = Transform.from_xyz_quat((1, 2, 3), YAW90)
    pose = pose_msg(t)
    assert pose.orientation.z == pytest.approx(S45) and pose.orientation.w == pytest.approx(C45)
    assert pose.orientation.x == 0.0 and pose.orientation.y == 0.0
    assert (pose.position.x, pose.position.y, pose.position.z) == (1.0, 2.0, 3.0)
    msg = transform_msg(t)
    assert (msg.rotation.z, msg.rotation.w) == pytest.approx((S45, C45))
    assert Transform.from_msg(pose).is_close(t) and Transform.from_msg(msg).is_close(t)


def test_rclpy_pose_messages_fill_the_cache() -> None:
    cache = TransformCache()
    odom = Odometry()
    odom.header.frame_id, odom.child_frame_id = "odom", "base_link"
    odom.header.stamp.sec = 1
    odom.pose.pose = pose_msg(Transform.from_xyz_quat((2, 0, 0), YAW90))
    cache.add_odometry(odom)
    ts = TransformStamped()
    ts.header.frame_id, ts.child_frame_id = "base_link", "lidar"
    ts.transform = transform_msg(Transform.from_xyz_quat((1, 0, 0), (0, 0, 0, 1)))
    cache.add_transform_stamped(ts, static=True)
    # lidar origin: base at (2,0,0) yawed 90 deg, lidar 1 m ahead of it -> (2, 1, 0)
    t = cache.lookup_or_raise("odom", "lidar", 1_000_000_000)
    np.testing.assert_allclose(t.apply(np.zeros((1, 3)))[0], [2, 1, 0], atol=1e-12)


def test_fallback_when_tf2_missing() -> None:
    source = make_transform_source(node=object(), max_samples=5)
    if tfm.TF2_AVAILABLE:
        pytest.skip("tf2_ros is installed: the fallback is not taken here")
    assert isinstance(source, TransformCache) and source.max_samples == 5
    assert isinstance(make_transform_source(prefer_tf2=False), TransformCache)


class _FakeBuffer:
    """Looks like tf2_ros.Buffer: one transform valid only at stamps in [100, 200] ns."""

    def lookup_transform(self, target, source, when, timeout=None):
        stamp = when.nanoseconds
        if stamp == 0:  # Time() = newest
            stamp = 200
        if not 100 <= stamp <= 200:
            raise LookupError(f"extrapolation at {stamp}")
        msg = TransformStamped()
        msg.header.frame_id, msg.child_frame_id = target, source
        msg.header.stamp.nanosec = stamp
        msg.transform.translation.x = float(stamp)
        msg.transform.rotation.w = 1.0
        return msg


def test_tf2_adapter_with_a_buffer_like_object() -> None:
    src = Tf2BufferSource(_FakeBuffer(), errors=(LookupError,))
    np.testing.assert_allclose(src.lookup_or_raise("a", "b", 150).translation, [150, 0, 0])
    with pytest.raises(TransformLookupError):
        src.lookup_or_raise("a", "b", 250)
    np.testing.assert_allclose(src.lookup_or_raise("a", "b", 250, tolerance_ns=60).translation,
                               [200, 0, 0])
    with pytest.raises(TransformLookupError, match="beyond tolerance"):
        src.lookup_or_raise("a", "b", 300, tolerance_ns=60)
