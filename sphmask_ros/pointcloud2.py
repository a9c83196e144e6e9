"""Encoding numpy columns into ``sensor_msgs/PointCloud2`` (and PCD files as PointCloud2).

Decoding is ROS-free and lives in ``sphmask_core.sensor.pointcloud2`` (``decode_cloud``): the
node, the bag tools and training share it. This module builds rclpy messages, so it stays here.

Encoding packs named columns into one structured array and hands its bytes to
``array.array('B').frombytes``, which is the fast path of the generated message setter
(assigning ``bytes`` to ``msg.data`` is the slow per-byte path, ROS_NOTES section 5).
"""

from __future__ import annotations

import array
import sys
from os import PathLike

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from sphmask_core.data.pcd import UNNAMED_FIELD_PREFIX, PcdCloud, read_pcd
from sphmask_core.sensor.pointcloud2 import POINTFIELD_DTYPES, CloudError

__all__ = [
    "encode_cloud",
    "labelled_cloud",
    "pack_rgb",
    "pcd_to_pointcloud2",
]

_NUMPY_TO_POINTFIELD: dict[np.dtype, int] = {v: k for k, v in POINTFIELD_DTYPES.items()}
_HOST_BIG_ENDIAN = sys.byteorder == "big"


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) colours -> (N,) float32 carrying ``0x00RRGGBB`` bits (the PCL/RViz ``rgb`` field).

    uint8 input is taken as 0..255, floating input as the Scene convention [-1, 1]. Alpha is
    left 0 on purpose: ``0xFF......`` bits read as a float32 are NaN, which trips consumers
    that NaN-check every field.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 2 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must have shape (N, 3), got {rgb.shape}")
    if rgb.dtype == np.uint8:
        channels = rgb.astype(np.uint32)
    elif np.issubdtype(rgb.dtype, np.floating):
        channels = np.clip(np.rint((rgb.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(
            np.uint32
        )
    else:
        raise ValueError(f"rgb must be uint8 (0..255) or floating ([-1, 1]), got {rgb.dtype}")
    bits = (channels[:, 0] << 16) | (channels[:, 1] << 8) | channels[:, 2]
    return bits.view(np.float32)


def _encodable(name: str, values: np.ndarray, n: int) -> np.ndarray:
    """Check one column and bring it to a PointField-representable dtype."""
    if values.shape[0] != n:
        raise ValueError(f"field '{name}' has {values.shape[0]} rows, expected {n}")
    if values.ndim not in (1, 2):
        raise ValueError(f"field '{name}' must be (N,) or (N, count), got shape {values.shape}")
    dt = values.dtype.newbyteorder("=")
    if dt in (np.dtype(np.int64), np.dtype(np.uint64)):
        # PointField has no 64-bit integers; ids are small, so a checked narrowing is safe.
        target = np.dtype(np.int32) if dt == np.int64 else np.dtype(np.uint32)
        info = np.iinfo(target)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ValueError(f"field '{name}' does not fit in {target} (PointField has no int64)")
        return values.astype(target)
    if dt == np.bool_:
        return values.astype(np.uint8)
    if dt not in _NUMPY_TO_POINTFIELD:
        raise ValueError(f"field '{name}' has dtype {values.dtype}, not a PointField datatype")
    return values


def encode_cloud(header: Header, fields: dict[str, np.ndarray]) -> PointCloud2:
    """Pack named columns into an unorganized (height 1), dense-packed PointCloud2.

    ``fields`` maps names to ``(N,)`` or ``(N, count)`` arrays, written in dict order. Two keys
    are special: ``"xyz"`` ``(N, 3)`` becomes float32 fields ``x, y, z``, and ``"rgb"`` ``(N, 3)``
    (uint8 0..255 or float [-1, 1]) becomes one packed float32 ``rgb`` field (an ``(N,)`` ``rgb``
    is written as given). int64 columns are narrowed to int32 (checked). ``is_dense`` is False
    (no NaN check is made) and the byte order is the host's.
    """
    if not fields:
        raise ValueError("encode_cloud needs at least one field")
    columns: dict[str, np.ndarray] = {}
    for name, values in fields.items():
        values = np.asarray(values)
        if name == "xyz":
            if values.ndim != 2 or values.shape[1] != 3:
                raise ValueError(f"'xyz' must have shape (N, 3), got {values.shape}")
            if values.dtype != np.float32:
                values = values.astype(np.float32)
            for c, axis in enumerate("xyz"):
                columns[axis] = values[:, c]  # strided view; copied once into the packed array
        elif name == "rgb" and values.ndim == 2:
            columns["rgb"] = pack_rgb(values)
        else:
            columns[name] = values
    n = next(iter(columns.values())).shape[0]
    pf_list: list[PointField] = []
    names, formats, offsets = [], [], []
    offset = 0
    for name, values in list(columns.items()):
        values = _encodable(name, values, n)
        columns[name] = values
        base = values.dtype.newbyteorder("=")
        count = 1 if values.ndim == 1 else values.shape[1]
        pf_list.append(
            PointField(name=name, offset=offset, datatype=_NUMPY_TO_POINTFIELD[base], count=count)
        )
        names.append(name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(offset)
        offset += base.itemsize * count
    point_step = offset
    packed = np.empty(n, dtype=np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step}
    ))
    for name in names:
        packed[name] = columns[name]
    data = array.array("B")
    data.frombytes(memoryview(packed.view(np.uint8)))

    msg = PointCloud2()
    msg.header = header
    msg.height = 1
    msg.width = n
    msg.fields = pf_list
    msg.is_bigendian = _HOST_BIG_ENDIAN
    msg.point_step = point_step
    msg.row_step = point_step * n
    msg.is_dense = False
    msg.data = data  # set last, as array('B'): the generated setter's fast path
    return msg


def labelled_cloud(
    header: Header,
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    instance_id: np.ndarray,
    class_id: np.ndarray,
    score: np.ndarray,
) -> PointCloud2:
    """The node's labelled cloud: ``x y z [rgb] instance_id class_id score``.

    ``instance_id``/``class_id`` are written as int32 (-1 = none), ``score`` as float32;
    ``rgb`` (N, 3) uint8 or [-1, 1] floats, or None to leave the field out.
    """
    xyz = np.asarray(xyz)
    n = xyz.shape[0]
    cols: dict[str, np.ndarray] = {"xyz": xyz}
    if rgb is not None:
        cols["rgb"] = np.asarray(rgb)
    for name, values, dt in (
        ("instance_id", instance_id, np.int32),
        ("class_id", class_id, np.int32),
        ("score", score, np.float32),
    ):
        values = np.asarray(values)
        if values.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {values.shape}")
        if np.issubdtype(values.dtype, np.integer) and values.size:
            info = np.iinfo(dt) if np.issubdtype(np.dtype(dt), np.integer) else None
            if info is not None and (values.min() < info.min or values.max() > info.max):
                raise ValueError(f"{name} does not fit in {np.dtype(dt)}")
        cols[name] = values.astype(dt, copy=False)
    return encode_cloud(header, cols)


# --------------------------------------------------------------------------------------------
# PCD files as messages


def pcd_to_pointcloud2(
    pcd: str | PathLike[str] | PcdCloud, frame_id: str, stamp_ns: int = 0
) -> PointCloud2:
    """A PCD file (or ``PcdCloud``) as the PointCloud2 a driver would publish: same fields,
    same organization (height x width), little-endian, ``is_dense`` only if all xyz are finite.
    """
    cloud = pcd if isinstance(pcd, PcdCloud) else read_pcd(pcd)
    dtype = cloud.points.dtype
    pf_list = []
    for name in dtype.names:
        if name.startswith(UNNAMED_FIELD_PREFIX):
            continue  # padding: its bytes stay, it needs no PointField
        fdt, offset = dtype.fields[name][0], dtype.fields[name][1]
        base = fdt.base.newbyteorder("=")
        if base not in _NUMPY_TO_POINTFIELD:
            raise CloudError(f"PCD field '{name}' of type {fdt.base} has no PointField datatype")
        count = int(np.prod(fdt.shape)) if fdt.shape else 1
        pf_list.append(PointField(name=name, offset=offset,
                                  datatype=_NUMPY_TO_POINTFIELD[base], count=count))
    header = Header()
    header.frame_id = frame_id
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    data = array.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(cloud.points).view(np.uint8)))
    has_xyz = all(c in dtype.names for c in "xyz")
    dense = bool(has_xyz and all(np.isfinite(cloud.points[c]).all() for c in "xyz"))
    msg = PointCloud2()
    msg.header = header
    msg.height = cloud.height
    msg.width = cloud.width
    msg.fields = pf_list
    msg.is_bigendian = False
    msg.point_step = dtype.itemsize
    msg.row_step = dtype.itemsize * cloud.width
    msg.is_dense = dense
    msg.data = data
    return msg
