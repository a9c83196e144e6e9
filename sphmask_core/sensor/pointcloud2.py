"""Vectorized decoding of ``sensor_msgs/PointCloud2`` messages into numpy, without ROS.

The decoder is duck-typed: it reads only the message attributes ``header`` (``frame_id``,
``stamp.sec``/``stamp.nanosec``), ``fields`` (each with ``name``, ``offset``, ``datatype``,
``count``), ``point_step``, ``row_step``, ``width``, ``height``, ``is_bigendian``, ``is_dense``
and ``data``. rclpy messages and the dataclasses ``rosbags`` deserialises both qualify, so the
live node (``sphmask_ros``) and training on recorded bags decode with this one function.
Encoding needs the rclpy message classes and lives in ``sphmask_ros.pointcloud2``.

Decoding never loops over points: the message buffer is viewed in place (``np.frombuffer``)
through a structured dtype built from the message's ``fields``, and only the columns the
caller needs are copied out.

Conventions (the node and the bag tools rely on them):

* ``DecodedCloud.index`` holds, for every kept (finite) point, its position in the
  *flattened raw cloud*: row-major ``row * width + col`` for organized clouds, NaN/Inf points
  keep their slots. Instance point indices published by the node therefore refer to the
  input message as received.
* Bad points are dropped by ``decode_cloud``, never whole frames, and counted by reason in
  ``DecodedCloud.dropped``: ``non_finite`` (any of x, y, z NaN or +-Inf, whatever ``is_dense``
  claims, because drivers get ``is_dense`` wrong), ``int_limit`` (an integer coordinate at its
  type's minimum or maximum: a "no return" sentinel or an overflow), ``out_of_range`` (a
  coordinate beyond ``MAX_ABS_COORDINATE`` metres, where float32 cannot resolve centimetres
  and voxel keys overflow). Points whose colour is not finite keep their place
  with "no colour" (0, the colour-free value), counted in ``DecodedCloud.colour_cleared``. ``read_points`` /
  ``read_points_numpy`` keep sensor_msgs_py's semantics instead (NaN filter only when
  ``skip_nans`` and not ``is_dense``).
* Buffer size: ``data`` must be exactly ``row_step * height`` bytes with
  ``row_step >= width * point_step`` (rows may carry trailing padding, as the message
  definition allows). Shorter *and* longer buffers are rejected with ``CloudError`` (the
  Autoware ``isValid`` rule): a length mismatch means the layout is not what the header says,
  and guessing would silently scramble points.
* Colours come out as float32 in [-1, 1] (``raw / 127.5 - 1``, the Scene contract). Packed
  ``rgb``/``rgba`` fields (float32 or uint32 bits, ``0xAARRGGBB``) and separate ``r``/``g``/``b``
  fields are understood; separate integer channels are read as 0..their type's maximum,
  floating channels as 0..1 (``sphmask_core.data.colour``).
* Hostile layouts cost no more than the message's size: every size is checked with Python
  integers (no overflow) against the buffer before anything is allocated, a field with
  ``count > MAX_NAMED_COUNT`` is one ``(count,)`` sub-array instead of ``count`` named
  columns, and at most ``MAX_FIELDS`` fields covering at most ``MAX_FIELD_BYTES_PER_STEP``
  times ``point_step`` bytes are accepted.
* ``PointField.count == 0`` is read as 1: it is the message default, and hand-written
  publishers often leave it unset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from numpy.lib.recfunctions import structured_to_unstructured

from sphmask_core.data.colour import structured_colour
from sphmask_core.data.pcd import UNNAMED_FIELD_PREFIX

__all__ = [
    "CloudError",
    "DecodedCloud",
    "POINTFIELD_DTYPES",
    "dtype_from_fields",
    "decode_cloud",
    "read_points",
    "read_points_numpy",
    "MAX_ABS_COORDINATE",
]


class CloudError(ValueError):
    """A PointCloud2 (or PCD file) whose layout or contents cannot be decoded."""


# PointField datatype constant (sensor_msgs/PointField INT8 = 1 .. FLOAT64 = 8; a ROS test
# checks them against the message definition) -> numpy scalar type (byte order added per message).
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.int8),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int16),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int32),
    6: np.dtype(np.uint32),
    7: np.dtype(np.float32),
    8: np.dtype(np.float64),
}

# Metres. float32 spacing reaches 6 cm at 1e6 m; no sensor measures that far.
MAX_ABS_COORDINATE = 1.0e6
# A field with more elements is one sub-array column: naming each element costs a Python
# string per element (sensor_msgs_py naming), which a 150-byte message can make 3e8 of.
MAX_NAMED_COUNT = 64
# Real drivers publish under 20 fields, which never overlap by more than an alias (rgb/rgba).
MAX_FIELDS = 1024
MAX_FIELD_BYTES_PER_STEP = 4
# numpy sizes are C ints.
_MAX_ITEMSIZE = 2**31 - 1


@dataclass
class DecodedCloud:
    """The finite points of one PointCloud2, as plain numpy arrays in native byte order.

    ``index[i]`` is the position of point ``i`` in the flattened raw cloud (row-major
    ``row * width + col``; dropped NaN/Inf points keep their slots), so ``n_raw`` may be larger
    than ``len(xyz)``. ``extras`` holds every other named field (e.g. ``instance_id``,
    ``semantic_id`` ground truth), filtered to the same points; a field with ``count > 1``
    appears as ``name_0``, ``name_1``, ...
    """

    xyz: np.ndarray  # (M, 3) float32
    rgb: np.ndarray | None  # (M, 3) float32 in [-1, 1]
    intensity: np.ndarray | None  # (M,) float32
    index: np.ndarray  # (M,) int64 into the flattened raw cloud
    n_raw: int
    height: int
    width: int
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # each (M,) native dtype
    frame_id: str = ""
    stamp_ns: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # points dropped, by reason (> 0 only)
    colour_cleared: int = 0  # kept points whose non-finite colour became "no colour"

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def _field_count(f: Any) -> int:
    return max(int(f.count), 1)


def _field_name(f: Any, i: int) -> str:
    return f.name if f.name else f"{UNNAMED_FIELD_PREFIX}_{i}"


def dtype_from_fields(
    fields: Sequence[Any], point_step: int, is_bigendian: bool = False
) -> np.dtype:
    """Structured dtype of one point: any field order and offsets, padding, ``count > 1``.

    The itemsize is ``point_step`` so padding between and after fields is skipped. A field with
    ``1 < count <= MAX_NAMED_COUNT`` becomes sub-fields ``name_0 .. name_{count-1}``
    (sensor_msgs_py naming), a larger count one sub-array field ``name`` of shape ``(count,)``;
    an unnamed field becomes ``unnamed_field_<i>``. Raises ``CloudError`` for an unknown
    datatype, a duplicate name, a negative offset, a field reaching past ``point_step``, a
    ``point_step`` numpy cannot represent, more than ``MAX_FIELDS`` fields or fields covering
    more than ``MAX_FIELD_BYTES_PER_STEP * point_step`` bytes.
    """
    order = ">" if is_bigendian else "<"
    if point_step > _MAX_ITEMSIZE:
        raise CloudError(f"point_step {point_step} is larger than any cloud can be (2**31 - 1)")
    if len(fields) > MAX_FIELDS:
        raise CloudError(f"cloud declares {len(fields)} fields, more than {MAX_FIELDS}")
    names: list[str] = []
    seen: set[str] = set()
    formats: list[np.dtype | tuple] = []
    offsets: list[int] = []
    covered = 0
    for i, f in enumerate(fields):
        name = _field_name(f, i)
        base = POINTFIELD_DTYPES.get(int(f.datatype))
        if base is None:
            raise CloudError(
                f"PointField '{name}' has unknown datatype {f.datatype} "
                f"(expected 1..8, INT8..FLOAT64)"
            )
        count = _field_count(f)
        end = int(f.offset) + base.itemsize * count
        if int(f.offset) < 0:
            raise CloudError(f"PointField '{name}' has negative offset {f.offset}")
        if end > point_step:
            raise CloudError(
                f"point_step {point_step} is smaller than the extent of field '{name}' "
                f"(offset {f.offset} + {count} x {base.itemsize} bytes = {end})"
            )
        covered += end - int(f.offset)
        if covered > MAX_FIELD_BYTES_PER_STEP * point_step:
            raise CloudError(
                f"fields cover {covered} bytes of a {point_step}-byte point (more than "
                f"{MAX_FIELD_BYTES_PER_STEP}x overlap)"
            )
        fmt = base.newbyteorder(order) if base.itemsize > 1 else base
        if count > MAX_NAMED_COUNT:
            sub, formats_sub = [name], [(fmt, (count,))]
        else:
            sub = [name] if count == 1 else [f"{name}_{a}" for a in range(count)]
            formats_sub = [fmt] * len(sub)
        for a, (sub_name, sub_fmt) in enumerate(zip(sub, formats_sub)):
            if sub_name in seen:
                raise CloudError(f"duplicate PointField name '{sub_name}'")
            seen.add(sub_name)
            names.append(sub_name)
            formats.append(sub_fmt)
            offsets.append(int(f.offset) + a * base.itemsize)
    if point_step <= 0 and names:
        raise CloudError(f"point_step must be positive, got {point_step}")
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": max(point_step, 0)}
    )


def _buffer(data: object) -> np.ndarray:
    """Zero-copy uint8 view of ``msg.data`` (array.array, bytes, numpy from rosbags)."""
    try:
        return np.frombuffer(data, dtype=np.uint8)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        # A plain list (hand-built message); copying is unavoidable.
        return np.asarray(data, dtype=np.uint8)


def _structured_view(msg: Any) -> np.ndarray:
    """Validate the buffer and return the (height*width,) structured points, row-major."""
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    buf = _buffer(msg.data)
    # Sizes first, in Python integers (no overflow), so that nothing the header claims can
    # make the dtype or the view bigger than the buffer that actually arrived.
    if height * width == 0:
        if buf.size:
            raise CloudError(
                f"cloud has width*height = 0 but {buf.size} data bytes; layout is inconsistent"
            )
        return np.empty(0, dtype=dtype_from_fields(msg.fields, point_step, bool(msg.is_bigendian)))
    if point_step <= 0:
        raise CloudError(f"point_step must be positive, got {point_step}")
    packed_row = width * point_step
    if row_step < packed_row:
        raise CloudError(
            f"row_step {row_step} is smaller than width*point_step = {width}*{point_step}"
        )
    expected = row_step * height
    if buf.size != expected:
        what = "shorter" if buf.size < expected else "longer"
        raise CloudError(
            f"data has {buf.size} bytes, {what} than row_step*height = {row_step}*{height} "
            f"= {expected} (width {width}, point_step {point_step})"
        )
    dtype = dtype_from_fields(msg.fields, point_step, bool(msg.is_bigendian))
    rows = buf.reshape(height, row_step)[:, :packed_row]
    # (H, W): rows first, the message's row-major order (sensor_msgs_py #236 swaps these).
    points = rows.view(dtype)
    return points.reshape(height * width)


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _column(points: np.ndarray, name: str, keep: np.ndarray | None) -> np.ndarray:
    col = points[name]
    if keep is not None:
        col = col[keep]
    return col.astype(col.dtype.newbyteorder("="), copy=keep is None)


def decode_cloud(msg: Any) -> DecodedCloud:
    """Decode any PointCloud2 layout into its finite points (see module doc for conventions).

    Works with rclpy messages and with rosbags' deserialized dataclasses (same attribute
    names). An empty cloud (``width * height == 0``) gives a valid empty result, also when it
    has no fields at all (a default-constructed message). Raises ``CloudError`` for a buffer
    of the wrong size, ``point_step`` too small, unknown datatypes, and missing x/y/z.
    """
    points = _structured_view(msg)
    names = set(points.dtype.names or ())
    height, width = int(msg.height), int(msg.width)
    frame_id, stamp_ns = str(msg.header.frame_id), _stamp_ns(msg.header)
    missing = [c for c in "xyz" if c not in names]
    if missing:
        if points.shape[0] == 0 and not names:
            return DecodedCloud(
                xyz=np.empty((0, 3), np.float32), rgb=None, intensity=None,
                index=np.empty(0, np.int64), n_raw=0, height=height, width=width,
                frame_id=frame_id, stamp_ns=stamp_ns,
            )
        raise CloudError(f"cloud has no field(s) {missing}; fields are {sorted(names)}")

    n_raw = points.shape[0]
    xyz = np.empty((n_raw, 3), dtype=np.float32)  # (N, 3)
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become Inf, dropped
        for c, name in enumerate("xyz"):
            xyz[:, c] = points[name]
    ok, dropped = _valid_points(points, xyz)
    if ok is None:
        keep = None
        index = np.arange(n_raw, dtype=np.int64)
    else:
        index = np.flatnonzero(ok).astype(np.int64, copy=False)
        keep = index
        xyz = np.compress(ok, xyz, axis=0)

    rgb, used = structured_colour(points, names, keep)
    colour_cleared = 0
    if rgb is not None and any(points.dtype[n].kind == "f" for n in used & {"r", "g", "b"}):
        # only separate float channels can carry NaN/Inf (packed and integer ones cannot)
        bad = ~(np.isfinite(rgb[:, 0]) & np.isfinite(rgb[:, 1]) & np.isfinite(rgb[:, 2]))  # (M,)
        colour_cleared = int(np.count_nonzero(bad))
        if colour_cleared:
            rgb[bad] = 0.0
    intensity = None
    if "intensity" in names:
        intensity = _column(points, "intensity", keep).astype(np.float32, copy=False)
        used = used | {"intensity"}
    used = used | {"x", "y", "z"}
    extras = {
        name: _column(points, name, keep)
        for name in points.dtype.names
        if name not in used and not name.startswith(UNNAMED_FIELD_PREFIX)
    }
    return DecodedCloud(
        xyz=xyz, rgb=rgb, intensity=intensity, index=index, n_raw=n_raw,
        height=height, width=width, extras=extras, frame_id=frame_id, stamp_ns=stamp_ns,
        dropped=dropped, colour_cleared=colour_cleared,
    )


def _valid_points(points: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray | None, dict[str, int]]:
    """(N,) keep-mask (None = keep all) and the number of dropped points per reason.

    A point counts under the first reason that applies: non_finite, int_limit, out_of_range.
    The common all-good cloud costs one comparison pass per column (NaN fails ``<=`` too); the
    reasons are only told apart when something is dropped. 1-D passes per column: many times
    faster than ``.all(axis=1)`` on an (N, 3) array.
    """
    ok = np.abs(xyz[:, 0]) <= MAX_ABS_COORDINATE  # (N,)
    ok &= np.abs(xyz[:, 1]) <= MAX_ABS_COORDINATE
    ok &= np.abs(xyz[:, 2]) <= MAX_ABS_COORDINATE
    sentinel = None
    for name in "xyz":
        dt = points.dtype[name]
        if dt.kind in "iu":
            info, col = np.iinfo(dt), points[name]
            hit = (col == info.min) | (col == info.max)
            sentinel = hit if sentinel is None else sentinel | hit
    if sentinel is not None:
        ok &= ~sentinel
    n = ok.shape[0]
    n_ok = int(np.count_nonzero(ok))
    if n_ok == n:
        return None, {}
    finite = np.isfinite(xyz[:, 0]) & np.isfinite(xyz[:, 1]) & np.isfinite(xyz[:, 2])
    n_finite = int(np.count_nonzero(finite))
    n_sentinel = 0 if sentinel is None else int(np.count_nonzero(sentinel & finite))
    counts = {"non_finite": n - n_finite, "int_limit": n_sentinel,
              "out_of_range": n_finite - n_sentinel - n_ok}
    return ok, {k: v for k, v in counts.items() if v}


def read_points(
    msg: Any,
    field_names: Sequence[str] | None = None,
    skip_nans: bool = False,
    uvs: Iterable[int] | np.ndarray | None = None,
    reshape_organized_cloud: bool = False,
) -> np.ndarray:
    """Structured points in native byte order, with sensor_msgs_py's ``read_points`` semantics.

    NaN points are dropped only if ``skip_nans`` and the cloud is not ``is_dense`` (checked on
    the selected fields, NaN only, not Inf). ``uvs`` picks flat indices. Unlike sensor_msgs_py
    (common_interfaces #236), ``reshape_organized_cloud`` gives shape ``(height, width)``.
    """
    points = _structured_view(msg)
    all_names = list(points.dtype.names or ())
    if field_names is not None:
        unknown = [n for n in field_names if n not in all_names]
        if unknown:
            raise CloudError(f"requested field(s) {unknown} not in cloud fields {all_names}")
        points = points[list(field_names)]
    native = np.dtype(
        {
            "names": list(points.dtype.names),
            "formats": [points.dtype[n].newbyteorder("=") for n in points.dtype.names],
            "offsets": [points.dtype.fields[n][1] for n in points.dtype.names],
            "itemsize": points.dtype.itemsize,
        }
    )
    points = points.astype(native)
    if skip_nans and not msg.is_dense:
        ok = np.ones(points.shape[0], dtype=bool)
        for name in points.dtype.names:
            ok &= ~np.isnan(points[name])
        points = points[ok]
    if uvs is not None:
        idx = uvs if isinstance(uvs, np.ndarray) else np.fromiter(uvs, dtype=np.int64)
        points = points[idx]
    if reshape_organized_cloud and int(msg.height) > 1:
        points = points.reshape(int(msg.height), int(msg.width))
    return points


def read_points_numpy(
    msg: Any,
    field_names: Sequence[str] | None = None,
    skip_nans: bool = False,
    uvs: Iterable[int] | np.ndarray | None = None,
    reshape_organized_cloud: bool = False,
) -> np.ndarray:
    """Unstructured ``(N, F)`` array of equally typed fields (sensor_msgs_py semantics).

    Raises ``CloudError`` when the selected fields do not share one datatype.
    """
    points = read_points(msg, field_names, skip_nans, uvs, reshape_organized_cloud)
    kinds = {points.dtype[n] for n in points.dtype.names}
    if len(kinds) > 1:
        raise CloudError(
            f"read_points_numpy needs fields of one datatype, got {sorted(map(str, kinds))}; "
            f"use read_points() or select fields"
        )
    return structured_to_unstructured(points)
