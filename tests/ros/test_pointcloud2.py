"""PointCloud2 codec: every layout against clouds packed by hand with ``struct`` (independent
of the numpy code under test), the PCD reader against the real PCL frame, round trips."""

from __future__ import annotations

import array
import math
import struct
from pathlib import Path
from types import SimpleNamespace

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
    dtype_from_fields,
    read_points,
    read_points_numpy,
)
from sphmask_ros.pointcloud2 import encode_cloud, labelled_cloud, pack_rgb, pcd_to_pointcloud2

F32, F64, U8, U16, I32, U32 = (PointField.FLOAT32, PointField.FLOAT64, PointField.UINT8,
                               PointField.UINT16, PointField.INT32, PointField.UINT32)
_STRUCT = {PointField.INT8: "b", PointField.UINT8: "B", PointField.INT16: "h",
           PointField.UINT16: "H", PointField.INT32: "i", PointField.UINT32: "I",
           PointField.FLOAT32: "f", PointField.FLOAT64: "d"}

HERE = Path(__file__).resolve().parent
LOCAL_PCD = HERE.parent / "data" / "pcl_grabber" / "frame_20121214T142255.814212.pcd"
SHARED_PCD_DIR = Path("/work/shared/data/pcl_grabber_frames")


def pack_cloud(
    spec: list[tuple[str, int, int, int]],
    points: list[dict[str, object]],
    point_step: int,
    height: int = 1,
    big_endian: bool = False,
    is_dense: bool = False,
    row_pad: int = 0,
) -> PointCloud2:
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
    msg.header = Header(frame_id="sensor")
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
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
    duck = SimpleNamespace(header=msg.header, height=1, width=5, fields=msg.fields,
                           is_bigendian=False, point_step=16, row_step=80, is_dense=False,
                           data=np.frombuffer(bytes(msg.data), dtype=np.uint8))
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
