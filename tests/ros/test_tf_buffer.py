"""Our tf2 buffer (tf2_ros is absent here): /tf and /tf_static messages in, lookups out."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from geometry_msgs.msg import TransformStamped  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from sphmask_core.sensor.transforms import TransformLookupError  # noqa: E402
from sphmask_ros.tf_buffer import TfBuffer  # noqa: E402


def lookup(source, *args):
    """The transform, or None where lookup_or_raise refuses."""
    try:
        return source.lookup_or_raise(*args)
    except TransformLookupError:
        return None


S = 1_000_000_000


def _tf(parent: str, child: str, stamp_ns: int, xyz, yaw_deg: float = 0.0) -> TransformStamped:
    t = TransformStamped()
    t.header.frame_id, t.child_frame_id = parent, child
    t.header.stamp.sec, t.header.stamp.nanosec = divmod(stamp_ns, S)
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = map(float, xyz)
    q = Rotation.from_euler("z", yaw_deg, degrees=True).as_quat()
    t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w = q
    return t


def _buffer() -> TfBuffer:
    buf = TfBuffer()
    # map -> base_link moves 2 m along x and turns 90 deg in one second; base_link -> lidar fixed
    buf.add_message(TFMessage(transforms=[_tf("base_link", "lidar", 0, (0.0, 0.0, 1.0))]), static=True)
    buf.add_message(TFMessage(transforms=[_tf("map", "base_link", 10 * S, (0.0, 0.0, 0.0), 0.0)]),
                    static=False)
    buf.add_message(TFMessage(transforms=[_tf("map", "base_link", 11 * S, (2.0, 0.0, 0.0), 90.0)]),
                    static=False)
    return buf


def test_interpolates_dynamic_and_composes_static():
    buf = _buffer()
    t = buf.lookup_or_raise("map", "lidar", 10 * S + S // 2)
    # half way: x = 1, yaw 45 deg; the lidar sits 1 m above base_link (a z offset, yaw-invariant)
    np.testing.assert_allclose(t.translation, [1.0, 0.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(t.rotation.as_euler("xyz", degrees=True), [0.0, 0.0, 45.0], atol=1e-9)
    p = t.apply(np.array([[1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(p, [[1.0 + np.sqrt(0.5), np.sqrt(0.5), 1.0]], atol=1e-9)
    # the static edge holds at any stamp, the dynamic one only inside its samples
    assert buf.lookup_or_raise("base_link", "lidar", 999 * S).translation[2] == 1.0
    inv = buf.lookup_or_raise("lidar", "map", 11 * S)
    assert inv.compose(buf.lookup_or_raise("map", "lidar", 11 * S)).is_close(
        type(inv).identity(), atol=1e-9)


def test_extrapolation_refused_with_the_reason():
    buf = _buffer()
    with pytest.raises(TransformLookupError, match="extrapolation into the future.*'map' -> 'base_link'"):
        buf.lookup_or_raise("map", "lidar", 12 * S)
    with pytest.raises(TransformLookupError, match="extrapolation into the past"):
        buf.lookup_or_raise("map", "lidar", 9 * S)
    # within the tolerance the end sample is used as is
    t = buf.lookup_or_raise("map", "lidar", 11 * S + 100, tolerance_ns=1000)
    np.testing.assert_allclose(t.translation, [2.0, 0.0, 1.0], atol=1e-9)
    with pytest.raises(TransformLookupError, match="unknown"):
        buf.lookup_or_raise("map", "camera", 10 * S)
    with pytest.raises(TransformLookupError):
        buf.lookup_or_raise("map", "lidar", 12 * S)


def test_bad_transforms_counted_not_raised():
    buf = _buffer()
    bad = _tf("map", "base_link", 10 * S + 1, (0.0, 0.0, 0.0))
    bad.transform.rotation.w = 0.0
    bad.transform.rotation.z = 0.0  # zero quaternion
    loop = _tf("lidar", "map", 10 * S, (0.0, 0.0, 0.0))  # would close a cycle
    static_on_dynamic = _tf("map", "base_link", 0, (0.0, 0.0, 0.0))
    assert buf.add_message(TFMessage(transforms=[bad, loop]), static=False) == 2
    assert buf.add_message(TFMessage(transforms=[static_on_dynamic]), static=True) == 1
    assert buf.rejected == 3
    np.testing.assert_allclose(buf.lookup_or_raise("map", "lidar", 11 * S).translation, [2.0, 0.0, 1.0])


def test_time_jumping_back_resets_dynamic_samples():
    buf = _buffer()
    # a bag starting over: stamps 100 s older than anything seen
    buf.add_message(TFMessage(transforms=[_tf("map", "base_link", S // 10, (5.0, 0.0, 0.0))]),
                    static=False)
    assert buf.resets == 1
    assert lookup(buf, "map", "lidar", 10 * S) is None  # the old samples are gone
    np.testing.assert_allclose(buf.lookup_or_raise("map", "lidar", S // 10).translation, [5.0, 0.0, 1.0])
    assert buf.lookup_or_raise("base_link", "lidar", 0).translation[2] == 1.0  # static kept


def test_real_tf2_is_preferred_when_importable(monkeypatch):
    """Where tf2_ros imports, its Buffer and TransformListener serve the node, not ours."""
    import types

    import sphmask_ros.tf_buffer as tf_buffer
    import sphmask_ros.transforms as transforms

    made = []
    fake = types.SimpleNamespace(
        Buffer=lambda: "buffer",
        TransformListener=lambda buffer, node: made.append((buffer, node)) or "listener",
        LookupException=LookupError, ConnectivityException=LookupError,
        ExtrapolationException=LookupError)
    monkeypatch.setattr(transforms, "tf2_ros", fake)
    monkeypatch.setattr(transforms, "TF2_AVAILABLE", True)
    monkeypatch.setattr(tf_buffer, "TF2_AVAILABLE", True)
    node = object()
    source = tf_buffer.make_tf_source(node)
    assert isinstance(source, transforms.Tf2BufferSource) and source.buffer == "buffer"
    assert made == [("buffer", node)] and source.listener == "listener"
    monkeypatch.setattr(tf_buffer, "TF2_AVAILABLE", False)
    assert isinstance(tf_buffer.make_tf_source(None), TfBuffer)
