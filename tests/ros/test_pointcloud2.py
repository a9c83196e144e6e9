"""PointCloud2 on the ROS side: encoding (sphmask_ros.pointcloud2) round trips, PCD files as
messages against the real PCL frame, and decoding of rclpy messages as the node receives them
(every decoded layout: tests/core/test_cloud_decode.py)."""

from __future__ import annotations

import array
import math
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from sphmask_core.data.colour import unpack_rgb
from sphmask_core.data.pcd import pcd_points, read_pcd
from sphmask_core.sensor.pointcloud2 import (
    POINTFIELD_DTYPES,
    CloudError,
    decode_cloud,
    read_points,
    read_points_numpy,
)
from sphmask_ros.pointcloud2 import encode_cloud, labelled_cloud, pack_rgb, pcd_to_pointcloud2
from tests.core.test_cloud_decode import pack_cloud as pack_plain_cloud
from tests.core.test_cloud_decode import xyz_points

F32, F64, U8, U16, I32, U32 = (PointField.FLOAT32, PointField.FLOAT64, PointField.UINT8,
                               PointField.UINT16, PointField.INT32, PointField.UINT32)
HERE = Path(__file__).resolve().parent
LOCAL_PCD = HERE.parent / "data" / "pcl_grabber" / "frame_20121214T142255.814212.pcd"
SHARED_PCD_DIR = Path("/work/shared/data/pcl_grabber_frames")


def pack_cloud(*args, **kwargs) -> PointCloud2:
    """The core tests' byte-by-byte cloud (same arguments) as a real sensor_msgs/PointCloud2."""
    plain = pack_plain_cloud(*args, **kwargs)
    msg = PointCloud2()
    msg.header = Header(frame_id=plain.header.frame_id)
    msg.header.stamp.sec, msg.header.stamp.nanosec = plain.header.stamp.sec, plain.header.stamp.nanosec
    msg.height, msg.width = plain.height, plain.width
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in plain.fields]
    msg.is_bigendian = plain.is_bigendian
    msg.point_step, msg.row_step = plain.point_step, plain.row_step
    msg.is_dense = plain.is_dense
    msg.data = plain.data
    return msg


def as_xyz(points: list[dict[str, object]]) -> np.ndarray:
    return np.array([[p["x"], p["y"], p["z"]] for p in points], dtype=np.float32)


XYZ16 = [("x", 0, F32, 1), ("y", 4, F32, 1), ("z", 8, F32, 1)]


# ------------------------------------------------------------------------------ rclpy messages


def test_rclpy_messages_decode() -> None:
    # z first, a gap, then y and x; 7 trailing padding bytes; the header as the node gets it
    spec = [("z", 0, F32, 1), ("y", 8, F32, 1), ("x", 12, F32, 1), ("instance_id", 16, I32, 1)]
    pts = [dict(p, instance_id=i) for i, p in enumerate(xyz_points(20))]
    dec = decode_cloud(pack_cloud(spec, pts, point_step=23))
    np.testing.assert_array_equal(dec.xyz, as_xyz(pts))
    np.testing.assert_array_equal(dec.extras["instance_id"], np.arange(20))
    assert dec.frame_id == "sensor" and dec.stamp_ns == 12 * 10**9 + 345


def test_default_rclpy_message_is_an_empty_cloud() -> None:
    dec = decode_cloud(PointCloud2())  # no fields, no data
    assert len(dec) == 0 and dec.xyz.shape == (0, 3)
    bad = PointCloud2()
    bad.data = array.array("B", b"\0" * 4)
    with pytest.raises(CloudError):
        decode_cloud(bad)


# ------------------------------------------------------------------------------ read_points


def test_read_points_numpy_matches_sensor_msgs_py_if_available() -> None:
    smp = pytest.importorskip("sensor_msgs_py.point_cloud2")
    pts = xyz_points(10)
    pts[3]["y"] = math.nan
    for dense in (False, True):
        for big in (False, True):
            msg = pack_cloud(XYZ16, pts, point_step=16, big_endian=big, is_dense=dense)
            ours = read_points_numpy(msg, ["x", "y", "z"], skip_nans=True)
            theirs = smp.read_points_numpy(msg, ["x", "y", "z"], skip_nans=True)
            np.testing.assert_array_equal(ours, theirs)


# ------------------------------------------------------------------------------ encode


def test_encode_decode_round_trip() -> None:
    rng = np.random.default_rng(3)
    n = 1000
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(n, 3)).astype(np.uint8)
    inst = rng.integers(-1, 50, size=n)  # int64, narrowed to int32
    score = rng.random(n).astype(np.float32)
    msg = labelled_cloud(Header(frame_id="map"), xyz, rgb, inst, inst % 5, score)
    assert isinstance(msg.data, array.array) and msg.is_dense is False
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb", "instance_id", "class_id",
                                            "score"]
    assert msg.point_step == 28 and len(msg.data) == 28 * n
    dec = decode_cloud(msg)
    np.testing.assert_array_equal(dec.xyz, xyz)
    np.testing.assert_array_equal(np.rint((dec.rgb + 1) * 127.5).astype(np.uint8), rgb)
    np.testing.assert_array_equal(dec.extras["instance_id"], inst)
    np.testing.assert_array_equal(dec.extras["class_id"], inst % 5)
    np.testing.assert_array_equal(dec.extras["score"], score)
    # The packed rgb float must never be NaN (alpha bits are 0), or NaN-checking readers drop it.
    assert not np.isnan(read_points(msg, ["rgb"])["rgb"]).any()


def test_encode_scene_colours_and_count_fields() -> None:
    rgb = np.array([[-1.0, 0.0, 1.0], [0.5, -0.5, 0.99]], dtype=np.float32)
    msg = encode_cloud(Header(), {"xyz": np.zeros((2, 3)), "rgb": rgb,
                                  "normal": np.eye(3)[:2].astype(np.float32),
                                  "valid": np.array([True, False])})
    dec = decode_cloud(msg)
    np.testing.assert_allclose(dec.rgb, rgb, atol=0.5 / 127.5 + 1e-6)
    np.testing.assert_array_equal(dec.extras["normal_0"], [1, 0])
    np.testing.assert_array_equal(dec.extras["valid"], [1, 0])


def test_encode_rejects_bad_columns() -> None:
    with pytest.raises(ValueError, match="'b' has 3 rows, expected 2"):
        encode_cloud(Header(), {"xyz": np.zeros((2, 3)), "b": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="does not fit"):
        encode_cloud(Header(), {"xyz": np.zeros((1, 3)), "id": np.array([2**40])})
    with pytest.raises(ValueError, match="not a PointField datatype"):
        encode_cloud(Header(), {"xyz": np.zeros((1, 3)), "h": np.zeros(1, np.float16)})
    with pytest.raises(ValueError, match="instance_id must have shape"):
        labelled_cloud(Header(), np.zeros((2, 3)), None, np.zeros(3), np.zeros(2), np.zeros(2))


def test_pack_unpack_rgb_round_trip() -> None:
    rgb = np.arange(0, 256, dtype=np.uint8)[:, None].repeat(3, 1)
    rgb[:, 1] = 255 - rgb[:, 1]
    back = unpack_rgb(pack_rgb(rgb))
    np.testing.assert_array_equal(np.rint((back + 1) * 127.5), rgb)


# ------------------------------------------------------------------------------ PCD as PointCloud2


def _real_frames() -> list[Path]:
    frames = sorted(SHARED_PCD_DIR.glob("*.pcd")) if SHARED_PCD_DIR.is_dir() else []
    return frames or [LOCAL_PCD]


def test_real_pcl_frames_decode() -> None:
    for path in _real_frames():
        msg = pcd_to_pointcloud2(path, "camera", 0)
        assert (msg.height, msg.width) == (480, 640) and not msg.is_dense
        dec = decode_cloud(msg)
        assert 260_000 < len(dec) < 285_000, (path, len(dec))
        assert dec.n_raw == 307_200
        # README: "z from 0.67 to 1.73 m" (rounded to cm)
        assert 0.665 <= dec.xyz[:, 2].min() < 0.70 and 1.70 < dec.xyz[:, 2].max() <= 1.735
        assert dec.rgb is not None and dec.rgb.min() >= -1 and dec.rgb.max() <= 1
        # Row-major check on physics: in a depth camera, x grows along a row (column index)
        # and y down the image (row index). A (W, H) swap would destroy both correlations.
        rows, cols = np.divmod(dec.index, 640)
        assert np.corrcoef(cols, dec.xyz[:, 0])[0, 1] > 0.9
        assert np.corrcoef(rows, dec.xyz[:, 1])[0, 1] > 0.9


def test_local_copy_is_the_shared_frame() -> None:
    assert LOCAL_PCD.is_file(), "tests/data/pcl_grabber frame missing"
    shared = SHARED_PCD_DIR / LOCAL_PCD.name
    if shared.is_file():
        assert shared.read_bytes() == LOCAL_PCD.read_bytes()
    dec = decode_cloud(pcd_to_pointcloud2(LOCAL_PCD, "camera"))
    assert len(dec) == 271_575
    # The core's reader (sphmask-predict, training) sees the same points and colours.
    xyz, rgb = pcd_points(read_pcd(LOCAL_PCD))
    np.testing.assert_array_equal(xyz, dec.xyz)
    np.testing.assert_array_equal(rgb, dec.rgb)


def test_core_datatype_codes_are_the_pointfield_constants() -> None:
    # the core decoder spells the codes as numbers (it imports no ROS); they must be these
    assert POINTFIELD_DTYPES == {
        PointField.INT8: np.dtype(np.int8), PointField.UINT8: np.dtype(np.uint8),
        PointField.INT16: np.dtype(np.int16), PointField.UINT16: np.dtype(np.uint16),
        PointField.INT32: np.dtype(np.int32), PointField.UINT32: np.dtype(np.uint32),
        PointField.FLOAT32: np.dtype(np.float32), PointField.FLOAT64: np.dtype(np.float64),
    }
