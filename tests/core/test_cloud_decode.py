"""PointCloud2 decoding (sphmask_core.sensor.pointcloud2): every layout against clouds packed by
hand with ``struct`` (independent of the numpy code under test). The messages are plain
namespaces with PointCloud2's attributes: the decoder is duck-typed, and what it gets from
rosbags in training is no rclpy message (rclpy messages: tests/ros/test_pointcloud2.py)."""

from __future__ import annotations

import array
import math
import struct
from types import SimpleNamespace as NS

import numpy as np
import pytest

from sphmask_core.sensor.pointcloud2 import (
    CloudError,
    decode_cloud,
    dtype_from_fields,
    read_points,
    read_points_numpy,
)

# sensor_msgs/PointField datatype codes
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
F32, F64, U8, U16, I32, U32 = FLOAT32, FLOAT64, UINT8, UINT16, INT32, UINT32
_STRUCT = {INT8: "b", UINT8: "B", INT16: "h", UINT16: "H", INT32: "i", UINT32: "I",
           FLOAT32: "f", FLOAT64: "d"}


def PointField(name: str = "", offset: int = 0, datatype: int = 0, count: int = 0) -> NS:
    """sensor_msgs/PointField look-alike (same defaults)."""
    return NS(name=name, offset=offset, datatype=datatype, count=count)


def PointCloud2() -> NS:
    """A default-constructed sensor_msgs/PointCloud2 look-alike: no fields, no data."""
    return NS(header=NS(frame_id="", stamp=NS(sec=0, nanosec=0)), height=0, width=0, fields=[],
              is_bigendian=False, point_step=0, row_step=0, data=array.array("B"),
              is_dense=False)


def pack_cloud(
    spec: list[tuple[str, int, int, int]],
    points: list[dict[str, object]],
    point_step: int,
    height: int = 1,
    big_endian: bool = False,
    is_dense: bool = False,
    row_pad: int = 0,
) -> NS:
    """Build a PointCloud2 byte by byte with ``struct``. spec: (name, offset, datatype, count)."""
    n = len(points)
    width = n // height
    order = ">" if big_endian else "<"
    row_step = width * point_step + row_pad
    buf = bytearray(row_step * height)
    for i, values in enumerate(points):
        row, col = divmod(i, width)
        base = row * row_step + col * point_step
        for name, offset, datatype, count in spec:
            vals = values[name]
            vals = vals if isinstance(vals, (list, tuple)) else [vals]
            fmt = order + _STRUCT[datatype] * len(vals)
            struct.pack_into(fmt, buf, base + offset, *vals)
    msg = PointCloud2()
    msg.header = NS(frame_id="sensor", stamp=NS(sec=12, nanosec=345))
    msg.height, msg.width = height, width
    msg.fields = [PointField(name=nm, offset=o, datatype=d, count=c) for nm, o, d, c in spec]
    msg.is_bigendian = big_endian
    msg.point_step, msg.row_step = point_step, row_step
    msg.is_dense = is_dense
    msg.data = array.array("B", bytes(buf))
    return msg


def xyz_points(n: int, seed: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-5, 5, size=(n, 3)).astype(np.float32).tolist()
    return [{"x": p[0], "y": p[1], "z": p[2]} for p in pts]


def as_xyz(points: list[dict[str, object]]) -> np.ndarray:
    return np.array([[p["x"], p["y"], p["z"]] for p in points], dtype=np.float32)


# ------------------------------------------------------------------------------ layouts


def test_field_order_offsets_and_padding() -> None:
    # z first, a gap, then y and x; 7 trailing padding bytes.
    spec = [("z", 0, F32, 1), ("y", 8, F32, 1), ("x", 12, F32, 1)]
    pts = xyz_points(20)
    dec = decode_cloud(pack_cloud(spec, pts, point_step=23))
    np.testing.assert_array_equal(dec.xyz, as_xyz(pts))
    np.testing.assert_array_equal(dec.index, np.arange(20))
    assert dec.rgb is None and dec.intensity is None and dec.extras == {}
    assert dec.frame_id == "sensor" and dec.stamp_ns == 12 * 10**9 + 345


def test_float64_xyz_becomes_float32() -> None:
    spec = [("x", 0, F64, 1), ("y", 8, F64, 1), ("z", 16, F64, 1)]
    pts = [{"x": 0.1, "y": -2.25, "z": 1e3}, {"x": 1.0 / 3, "y": 2.0, "z": -7.5}]
    dec = decode_cloud(pack_cloud(spec, pts, point_step=24))
    assert dec.xyz.dtype == np.float32
    np.testing.assert_array_equal(dec.xyz, np.array([[0.1, -2.25, 1e3], [1 / 3, 2, -7.5]],
                                                    dtype=np.float32))


def test_float64_beyond_float32_range_is_dropped() -> None:
    spec = [("x", 0, F64, 1), ("y", 8, F64, 1), ("z", 16, F64, 1)]
    pts = [{"x": 1e300, "y": 0.0, "z": 0.0}, {"x": 1.0, "y": 2.0, "z": 3.0}]
    dec = decode_cloud(pack_cloud(spec, pts, point_step=24))
    np.testing.assert_array_equal(dec.index, [1])


XYZ16 = [("x", 0, F32, 1), ("y", 4, F32, 1), ("z", 8, F32, 1)]


def test_packed_rgb_float32() -> None:
    bits = 0x00FF8000  # r 255, g 128, b 0
    rgb_float = struct.unpack("<f", struct.pack("<I", bits))[0]
    pts = [{"x": 1.0, "y": 2.0, "z": 3.0, "rgb": rgb_float}]
    dec = decode_cloud(pack_cloud(XYZ16 + [("rgb", 12, F32, 1)], pts, point_step=16))
    np.testing.assert_allclose(dec.rgb, [[1.0, 128 / 127.5 - 1, -1.0]], rtol=0, atol=1e-6)
    assert "rgb" not in dec.extras


def test_packed_rgba_uint32_ignores_alpha() -> None:
    pts = [{"x": 1.0, "y": 2.0, "z": 3.0, "rgba": 0xFF0A141E},
           {"x": 1.0, "y": 2.0, "z": 3.0, "rgba": 0x00FFFFFF}]
    dec = decode_cloud(pack_cloud(XYZ16 + [("rgba", 12, U32, 1)], pts, point_step=16))
    expected = np.array([[10, 20, 30], [255, 255, 255]]) / 127.5 - 1
    np.testing.assert_allclose(dec.rgb, expected, atol=1e-6)


def test_separate_rgb_uint8_channels_and_intensity() -> None:
    spec = XYZ16 + [("intensity", 12, F32, 1), ("b", 16, U8, 1), ("g", 17, U8, 1),
                    ("r", 18, U8, 1)]
    pts = [{"x": 0.0, "y": 0.0, "z": 1.0, "intensity": 7.5, "r": 255, "g": 0, "b": 51}]
    dec = decode_cloud(pack_cloud(spec, pts, point_step=20))
    np.testing.assert_allclose(dec.rgb, [[1.0, -1.0, 51 / 127.5 - 1]], atol=1e-6)
    np.testing.assert_array_equal(dec.intensity, [7.5])
    assert dec.extras == {}


def test_extra_fields_and_count_gt_1() -> None:
    spec = XYZ16 + [("instance_id", 12, I32, 1), ("semantic_id", 16, U16, 1),
                    ("normal", 20, F32, 3)]
    pts = [{"x": 1.0, "y": 2.0, "z": 3.0, "instance_id": -1, "semantic_id": 7,
            "normal": (0.0, 0.5, 1.0)},
           {"x": 4.0, "y": 5.0, "z": 6.0, "instance_id": 42, "semantic_id": 65535,
            "normal": (1.0, 0.0, 0.0)}]
    dec = decode_cloud(pack_cloud(spec, pts, point_step=32))
    np.testing.assert_array_equal(dec.extras["instance_id"], [-1, 42])
    assert dec.extras["instance_id"].dtype == np.int32
    np.testing.assert_array_equal(dec.extras["semantic_id"], [7, 65535])
    np.testing.assert_array_equal(dec.extras["normal_1"], [0.5, 0.0])
    assert set(dec.extras) == {"instance_id", "semantic_id", "normal_0", "normal_1", "normal_2"}


def test_count_zero_is_read_as_one() -> None:
    spec = [("x", 0, F32, 0), ("y", 4, F32, 0), ("z", 8, F32, 0)]
    pts = xyz_points(3)
    dec = decode_cloud(pack_cloud(spec, pts, point_step=12))
    np.testing.assert_array_equal(dec.xyz, as_xyz(pts))


def test_big_endian() -> None:
    spec = XYZ16 + [("rgb", 12, U32, 1), ("instance_id", 16, I32, 1), ("d", 20, F64, 1)]
    pts = [{"x": 1.5, "y": -2.0, "z": 3.25, "rgb": 0x00102030, "instance_id": -7, "d": 0.125},
           {"x": 9.0, "y": 8.0, "z": 7.0, "rgb": 0x00FF0000, "instance_id": 300, "d": -1e10}]
    msg = pack_cloud(spec, pts, point_step=28, big_endian=True)
    dec = decode_cloud(msg)
    np.testing.assert_array_equal(dec.xyz, [[1.5, -2.0, 3.25], [9.0, 8.0, 7.0]])
    np.testing.assert_allclose(dec.rgb[0], np.array([16, 32, 48]) / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(dec.extras["instance_id"], [-7, 300])
    np.testing.assert_array_equal(dec.extras["d"], [0.125, -1e10])
    assert dec.extras["d"].dtype.isnative
    np.testing.assert_array_equal(read_points_numpy(msg, ["x", "y", "z"]), dec.xyz)


@pytest.mark.parametrize("row_pad", [0, 5])
def test_organized_cloud_is_row_major(row_pad: int) -> None:
    height, width = 3, 4
    pts = [{"x": float(r), "y": float(c), "z": 1.0} for r in range(height) for c in range(width)]
    pts[1 * width + 2]["z"] = math.nan  # hole at row 1, col 2
    msg = pack_cloud(XYZ16, pts, point_step=16, height=height, row_pad=row_pad)
    dec = decode_cloud(msg)
    assert (dec.height, dec.width, dec.n_raw) == (3, 4, 12)
    np.testing.assert_array_equal(dec.index, [i for i in range(12) if i != 6])
    rows, cols = np.divmod(dec.index, width)
    np.testing.assert_array_equal(dec.xyz[:, 0], rows)
    np.testing.assert_array_equal(dec.xyz[:, 1], cols)
    org = read_points(msg, reshape_organized_cloud=True)
    assert org.shape == (height, width)
    np.testing.assert_array_equal(org["x"][2], [2, 2, 2, 2])
    np.testing.assert_array_equal(org["y"][:, 3], [3, 3, 3])


def test_nan_and_inf_dropped_even_when_is_dense_claims_otherwise() -> None:
    pts = xyz_points(6)
    pts[1]["x"] = math.nan
    pts[3]["z"] = math.inf
    pts[4]["y"] = -math.inf
    msg = pack_cloud(XYZ16, pts, point_step=16, is_dense=True)
    dec = decode_cloud(msg)
    np.testing.assert_array_equal(dec.index, [0, 2, 5])
    np.testing.assert_array_equal(dec.xyz, as_xyz(pts)[[0, 2, 5]])
    assert np.isfinite(dec.xyz).all()
    # read_points keeps sensor_msgs_py semantics: is_dense=True => no NaN filter; Inf never.
    assert read_points(msg, skip_nans=True).shape == (6,)
    msg.is_dense = False
    np.testing.assert_array_equal(read_points(msg, skip_nans=True)["x"],
                                  as_xyz(pts)[[0, 2, 3, 4, 5], 0])


def test_non_finite_extra_fields_do_not_drop_points() -> None:
    pts = [{"x": 1.0, "y": 2.0, "z": 3.0, "score": math.nan}]
    dec = decode_cloud(pack_cloud(XYZ16 + [("score", 12, F32, 1)], pts, point_step=16))
    assert len(dec) == 1 and math.isnan(dec.extras["score"][0])


# ------------------------------------------------------------------------------ validation


def test_unknown_datatype_names_the_field() -> None:
    msg = pack_cloud(XYZ16, xyz_points(2), point_step=16)
    msg.fields = list(msg.fields) + [PointField(name="weird", offset=12, datatype=9, count=1)]
    with pytest.raises(CloudError, match="'weird'.*unknown datatype 9"):
        decode_cloud(msg)


def test_short_and_long_data_rejected() -> None:
    msg = pack_cloud(XYZ16, xyz_points(4), point_step=16)
    short = pack_cloud(XYZ16, xyz_points(4), point_step=16)
    short.data = array.array("B", bytes(msg.data)[:-1])
    with pytest.raises(CloudError, match="shorter"):
        decode_cloud(short)
    long = pack_cloud(XYZ16, xyz_points(4), point_step=16)
    long.data = array.array("B", bytes(msg.data) + b"\0" * 16)
    with pytest.raises(CloudError, match="longer"):
        decode_cloud(long)


def test_point_step_smaller_than_fields() -> None:
    msg = pack_cloud(XYZ16, xyz_points(2), point_step=16)
    msg.point_step, msg.row_step = 10, 20
    msg.data = array.array("B", bytes(20))
    with pytest.raises(CloudError, match="point_step 10 is smaller than the extent of field 'z'"):
        decode_cloud(msg)


def test_row_step_smaller_than_width_rejected() -> None:
    msg = pack_cloud(XYZ16, xyz_points(2), point_step=16)
    msg.row_step = 16
    with pytest.raises(CloudError, match="row_step 16"):
        decode_cloud(msg)


def test_missing_z_rejected() -> None:
    msg = pack_cloud([("x", 0, F32, 1), ("y", 4, F32, 1)], [{"x": 1.0, "y": 1.0}], 8)
    with pytest.raises(CloudError, match="no field.*'z'"):
        decode_cloud(msg)


def test_duplicate_field_rejected() -> None:
    with pytest.raises(CloudError, match="duplicate"):
        dtype_from_fields([PointField(name="x", offset=0, datatype=F32, count=1),
                           PointField(name="x", offset=4, datatype=F32, count=1)], 8)


def test_empty_clouds_are_valid() -> None:
    dec = decode_cloud(PointCloud2())  # default message: no fields, no data
    assert len(dec) == 0 and dec.xyz.shape == (0, 3) and dec.index.shape == (0,)
    msg = pack_cloud(XYZ16, [], point_step=16)
    dec = decode_cloud(msg)
    assert dec.xyz.shape == (0, 3) and dec.n_raw == 0
    bad = PointCloud2()
    bad.data = array.array("B", b"\0" * 4)
    with pytest.raises(CloudError):
        decode_cloud(bad)


def test_all_nan_cloud_gives_empty_result() -> None:
    pts = [{"x": math.nan, "y": 0.0, "z": 0.0}] * 5
    dec = decode_cloud(pack_cloud(XYZ16, pts, point_step=16))
    assert len(dec) == 0 and dec.n_raw == 5


def test_rosbags_style_numpy_data_is_accepted() -> None:
    msg = pack_cloud(XYZ16, xyz_points(5), point_step=16)
    duck = NS(**vars(msg))
    duck.data = np.frombuffer(bytes(msg.data), dtype=np.uint8)  # rosbags gives numpy buffers
    np.testing.assert_array_equal(decode_cloud(duck).xyz, decode_cloud(msg).xyz)


# ------------------------------------------------------------------------------ read_points


def test_read_points_fields_uvs_and_mixed_types() -> None:
    spec = XYZ16 + [("instance_id", 12, I32, 1)]
    pts = [dict(p, instance_id=i) for i, p in enumerate(xyz_points(6))]
    msg = pack_cloud(spec, pts, point_step=16)
    got = read_points_numpy(msg, ["z", "x"], uvs=[4, 1])
    expected = as_xyz(pts)[[4, 1]][:, [2, 0]]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(read_points(msg, ["instance_id"])["instance_id"], np.arange(6))
    with pytest.raises(CloudError, match="one datatype"):
        read_points_numpy(msg)
    with pytest.raises(CloudError, match="not in cloud fields"):
        read_points(msg, ["nope"])
