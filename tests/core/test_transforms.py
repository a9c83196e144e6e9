"""Transforms and the tf2-like cache, against hand-computed geometry.

Pose messages are plain namespaces here: the cache reads messages by attribute only, so the
node's rclpy messages and training's rosbags dataclasses are both accepted (tests/ros checks
the rclpy side and the geometry_msgs builders)."""

from __future__ import annotations

import math
from types import SimpleNamespace as NS

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sphmask_core.sensor.transforms import Transform, TransformCache, TransformLookupError


def lookup(source, *args):
    """The transform, or None where lookup_or_raise refuses."""
    try:
        return source.lookup_or_raise(*args)
    except TransformLookupError:
        return None


S45, C45 = math.sin(math.pi / 4), math.cos(math.pi / 4)
YAW90 = (0.0, 0.0, S45, C45)  # x, y, z, w: +90 deg about z


def yaw(deg: float) -> tuple[float, float, float, float]:
    h = math.radians(deg) / 2
    return (0.0, 0.0, math.sin(h), math.cos(h))


def test_quaternion_order_is_xyzw() -> None:
    t = Transform.from_xyz_quat((0, 0, 0), YAW90)
    np.testing.assert_allclose(t.apply(np.array([[1.0, 0.0, 0.0]])), [[0.0, 1.0, 0.0]],
                               atol=1e-12)
    np.testing.assert_allclose(t.quat_xyzw, YAW90, atol=1e-12)
    pose = NS(position=NS(x=0.0, y=0.0, z=0.0), orientation=NS(x=0.0, y=0.0, z=S45, w=C45))
    tf = NS(translation=NS(x=0.0, y=0.0, z=0.0), rotation=NS(x=0.0, y=0.0, z=S45, w=C45))
    assert Transform.from_msg(pose).is_close(t) and Transform.from_msg(tf).is_close(t)
    with pytest.raises(TypeError, match="Pose or Transform"):
        Transform.from_msg(NS(x=1.0))


def test_compose_inverse_apply() -> None:
    t_a_b = Transform.from_xyz_quat((1, 2, 3), YAW90)
    t_b_c = Transform.from_xyz_quat((10, 0, 0), (0, 0, 0, 1))
    # point at c-origin: in b it is (10,0,0); rotate 90 deg -> (0,10,0); shift -> (1,12,3)
    np.testing.assert_allclose((t_a_b * t_b_c).apply(np.zeros((1, 3))), [[1, 12, 3]], atol=1e-12)
    assert (t_a_b * t_a_b.inverse()).is_close(Transform.identity())
    pts = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    out = t_a_b.apply(pts)
    assert out.dtype == np.float32
    np.testing.assert_allclose(t_a_b.inverse().apply(out), pts, atol=1e-5)
    np.testing.assert_allclose(Transform.from_matrix(t_a_b.as_matrix()).as_matrix(),
                               t_a_b.as_matrix(), atol=1e-12)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="zero norm"):
        Transform.from_xyz_quat((0, 0, 0), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="quaternion"):
        Transform.from_xyz_quat((0, 0, 0), (0, 0, 1))
    with pytest.raises(ValueError, match="translation"):
        Transform(Rotation.identity(), np.array([0, np.nan, 0]))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        Transform().apply(np.zeros((3,)))


def test_interpolation_hand_computed() -> None:
    cache = TransformCache()
    cache.add_sample("odom", "base", 0, Transform.from_xyz_quat((0, 0, 0), yaw(0)))
    cache.add_sample("odom", "base", 10, Transform.from_xyz_quat((10, -4, 2), yaw(90)))
    t = lookup(cache, "odom", "base", 5)
    np.testing.assert_allclose(t.translation, [5, -2, 1])
    np.testing.assert_allclose(t.quat_xyzw, yaw(45), atol=1e-12)
    t = lookup(cache, "odom", "base", 2)  # 20 % of the way: 18 deg (slerp is uniform in angle)
    np.testing.assert_allclose(t.translation, [2, -0.8, 0.4])
    np.testing.assert_allclose(t.rotation.as_euler("xyz", degrees=True), [0, 0, 18], atol=1e-9)
    # inverse direction is the inverse transform
    assert lookup(cache, "base", "odom", 5).is_close(lookup(cache, "odom", "base", 5).inverse())
    # exact sample stamps return the samples
    np.testing.assert_allclose(lookup(cache, "odom", "base", 10).translation, [10, -4, 2])


def test_no_extrapolation_beyond_tolerance() -> None:
    cache = TransformCache()
    cache.add_sample("odom", "base", 1_000, Transform.from_xyz_quat((1, 0, 0), yaw(0)))
    cache.add_sample("odom", "base", 2_000, Transform.from_xyz_quat((2, 0, 0), yaw(0)))
    assert lookup(cache, "odom", "base", 2_001) is None
    with pytest.raises(TransformLookupError, match="extrapolation into the future"):
        cache.lookup_or_raise("odom", "base", 2_500, tolerance_ns=100)
    with pytest.raises(TransformLookupError, match="extrapolation into the past"):
        cache.lookup_or_raise("odom", "base", 500)
    # within tolerance: the end sample, unchanged (not extrapolated to 2.1)
    np.testing.assert_allclose(lookup(cache, "odom", "base", 2_100, 200).translation, [2, 0, 0])
    np.testing.assert_allclose(lookup(cache, "odom", "base", 900, 200).translation, [1, 0, 0])


def _stamp(stamp_ns: int) -> NS:
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return NS(sec=sec, nanosec=nanosec)


def _odom(stamp_ns: int, xyz: tuple[float, float, float], q: tuple) -> NS:
    """A nav_msgs/Odometry look-alike: the attributes the cache reads."""
    pose = NS(position=NS(x=xyz[0], y=xyz[1], z=xyz[2]),
              orientation=NS(x=q[0], y=q[1], z=q[2], w=q[3]))
    return NS(header=NS(frame_id="odom", stamp=_stamp(stamp_ns)), child_frame_id="base_link",
              pose=NS(pose=pose))


def test_chain_with_static_extrinsics_and_odometry() -> None:
    cache = TransformCache()
    cache.set_static_from_params("map", "odom", (100, 0, 0), (0, 0, 0, 1))
    cache.add_odometry(_odom(0, (0, 0, 0), yaw(0)))
    cache.add_odometry(_odom(2_000_000_000, (2, 0, 0), yaw(90)))
    ts = NS(header=NS(frame_id="base_link", stamp=_stamp(0)), child_frame_id="lidar",
            transform=NS(translation=NS(x=0.5, y=0.0, z=1.0),
                         rotation=NS(x=0.0, y=0.0, z=0.0, w=1.0)))
    cache.add_transform_stamped(ts, static=True)
    cache.set_static_from_params("base_link", "camera", (0, 1, 0), YAW90)
    # t = 1 s: base at (1,0,0) yawed 45 deg; lidar origin = base + R45 (0.5,0,1)
    t = lookup(cache, "map", "lidar", 1_000_000_000)
    expected = np.array([101 + 0.5 * C45, 0.5 * S45, 1.0])
    np.testing.assert_allclose(t.apply(np.zeros((1, 3)))[0], expected, atol=1e-12)
    # siblings under base_link: camera<-lidar is static, independent of the stamp
    t_cam_lidar = lookup(cache, "camera", "lidar", 0)
    cam = Transform.from_xyz_quat((0, 1, 0), YAW90)
    lidar = Transform.from_xyz_quat((0.5, 0, 1), (0, 0, 0, 1))
    assert t_cam_lidar.is_close(cam.inverse() * lidar)
    assert lookup(cache, "camera", "lidar", 10**12).is_close(t_cam_lidar)
    # the stamped edge bounds the map lookup
    assert lookup(cache, "map", "lidar", 3_000_000_000) is None
    assert cache.frames() == {"map", "odom", "base_link", "lidar", "camera"}


def test_unknown_and_disconnected_frames() -> None:
    cache = TransformCache()
    cache.set_static("a", "b", Transform())
    cache.set_static("c", "d", Transform())
    assert lookup(cache, "x", "x", 0).is_close(Transform())  # same frame: identity, no data
    with pytest.raises(TransformLookupError, match="unknown"):
        cache.lookup_or_raise("a", "zzz", 0)
    with pytest.raises(TransformLookupError, match="not connected"):
        cache.lookup_or_raise("b", "d", 0)


def test_tree_rules() -> None:
    cache = TransformCache()
    cache.set_static("a", "b", Transform())
    with pytest.raises(ValueError, match="already has parent"):
        cache.set_static("c", "b", Transform())
    with pytest.raises(ValueError, match="cycle"):
        cache.set_static("b", "a", Transform())
    with pytest.raises(ValueError, match="static"):
        cache.add_sample("a", "b", 0, Transform())


def test_buffer_is_bounded_and_accepts_out_of_order() -> None:
    cache = TransformCache(max_samples=3, max_age_ns=1_000)
    for stamp in (30, 10, 20, 40):  # out of order; 10 is evicted by the count limit
        cache.add_sample("odom", "base", stamp, Transform.from_xyz_quat((stamp, 0, 0), yaw(0)))
    assert lookup(cache, "odom", "base", 15) is None
    np.testing.assert_allclose(lookup(cache, "odom", "base", 25).translation, [25, 0, 0])
    cache.add_sample("odom", "base", 1_035, Transform())  # age limit drops 20 and 30
    assert lookup(cache, "odom", "base", 32) is None
    assert lookup(cache, "odom", "base", 40) is not None
    cache.clear_stamped()
    assert lookup(cache, "odom", "base", 40) is None
