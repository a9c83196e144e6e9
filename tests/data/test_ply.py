"""PLY reader/writer: hand-written files (ascii text, struct-packed binary) and round trips."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sphmask_core.data.errors import DatasetError
from sphmask_core.data.ply import read_ply, write_ply

SCANNET_HEADER = (
    "ply\nformat {fmt} 1.0\ncomment made by hand\nelement vertex 3\nproperty float x\nproperty float y\n"
    "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
    "property ushort label\nelement face {nf}\nproperty list uchar int vertex_indices\nend_header\n"
)
VERTS = [(0.5, -1.25, 2.0, 255, 0, 10, 255, 40), (1.0, 0.0, 0.0, 1, 2, 3, 255, 1), (-3.5, 7.0, 0.25, 9, 8, 7, 255, 39)]


def _check_vertices(out: dict) -> None:
    v = out["vertex"]
    assert v.dtype.names == ("x", "y", "z", "red", "green", "blue", "alpha", "label")
    assert v["x"].dtype == np.float32 and v["red"].dtype == np.uint8 and v["label"].dtype == np.uint16
    np.testing.assert_array_equal(v["x"], [0.5, 1.0, -3.5])
    np.testing.assert_array_equal(v["z"], [2.0, 0.0, 0.25])
    np.testing.assert_array_equal(v["red"], [255, 1, 9])
    np.testing.assert_array_equal(v["label"], [40, 1, 39])


def test_ascii_hand_written(tmp_path):
    body = "\n".join(" ".join(str(x) for x in row) for row in VERTS) + "\n3 0 1 2\n3 2 1 0\n"
    path = tmp_path / "a.ply"
    path.write_text(SCANNET_HEADER.format(fmt="ascii", nf=2) + body)
    out = read_ply(path)
    _check_vertices(out)
    np.testing.assert_array_equal(out["faces"], [[0, 1, 2], [2, 1, 0]])
    assert out["faces"].dtype == np.int64


@pytest.mark.parametrize("order,fmt", [("<", "binary_little_endian"), (">", "binary_big_endian")])
def test_binary_struct_packed(tmp_path, order, fmt):
    data = SCANNET_HEADER.format(fmt=fmt, nf=2).encode()
    for row in VERTS:
        data += struct.pack(order + "fffBBBBH", *row)
    data += struct.pack(order + "Biii", 3, 0, 1, 2) + struct.pack(order + "Biii", 3, 2, 1, 0)
    path = tmp_path / "b.ply"
    path.write_bytes(data)
    out = read_ply(path)
    _check_vertices(out)
    assert out["vertex"].dtype["x"].byteorder in ("=", "<" if np.little_endian else ">", "|")
    np.testing.assert_array_equal(out["faces"], [[0, 1, 2], [2, 1, 0]])


@pytest.mark.parametrize("binary,big", [(True, False), (True, True), (False, False)])
def test_round_trip(tmp_path, binary, big):
    rng = np.random.default_rng(0)
    n = 50
    verts = {
        "x": rng.normal(size=n).astype(np.float32),
        "y": rng.normal(size=n).astype(np.float32),
        "z": rng.normal(size=n),  # float64
        "red": rng.integers(0, 256, n).astype(np.uint8),
        "label": rng.integers(0, 65536, n).astype(np.uint16),
        "inst": rng.integers(-5, 5, n).astype(np.int32),
    }
    faces = rng.integers(0, n, (20, 3))
    path = tmp_path / "r.ply"
    write_ply(path, verts, faces, binary=binary, big_endian=big)
    out = read_ply(path)
    for k, v in verts.items():
        assert out["vertex"][k].dtype == v.dtype, k
        np.testing.assert_array_equal(out["vertex"][k], v)
    np.testing.assert_array_equal(out["faces"], faces)


def test_ragged_faces_are_fan_triangulated(tmp_path):
    header = "ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
    header += "element face 2\nproperty list uchar int vertex_indices\nend_header\n"
    body = "0 0 0\n1 0 0\n1 1 0\n0 1 0\n2 2 2\n4 0 1 2 3\n3 1 4 2\n"
    (tmp_path / "q.ply").write_text(header + body)
    out = read_ply(tmp_path / "q.ply")
    np.testing.assert_array_equal(out["faces"], [[0, 1, 2], [0, 2, 3], [1, 4, 2]])
    # same mesh in binary: the uniform-length fast path must detect the mismatch
    data = header.replace("ascii", "binary_little_endian").encode()
    for row in [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (2, 2, 2)]:
        data += struct.pack("<fff", *row)
    data += struct.pack("<Biiii", 4, 0, 1, 2, 3) + struct.pack("<Biii", 3, 1, 4, 2)
    (tmp_path / "qb.ply").write_bytes(data)
    np.testing.assert_array_equal(read_ply(tmp_path / "qb.ply")["faces"], [[0, 1, 2], [0, 2, 3], [1, 4, 2]])


def test_structured_array_input_and_int64_narrowing(tmp_path):
    arr = np.zeros(3, [("x", "f4"), ("y", "f4"), ("z", "f4")])
    arr["x"] = [1, 2, 3]
    write_ply(tmp_path / "s.ply", arr, binary=False)
    np.testing.assert_array_equal(read_ply(tmp_path / "s.ply")["vertex"]["x"], [1, 2, 3])
    write_ply(tmp_path / "i.ply", {"x": np.arange(3, dtype=np.int64)})
    assert read_ply(tmp_path / "i.ply")["vertex"]["x"].dtype == np.int32
    with pytest.raises(ValueError, match="32 bits"):
        write_ply(tmp_path / "big.ply", {"x": np.array([2**40])})
    with pytest.raises(ValueError, match="length"):
        write_ply(tmp_path / "bad.ply", {"x": np.zeros(3, np.float32), "y": np.zeros(2, np.float32)})


@pytest.mark.parametrize(
    "content,match",
    [
        (b"plx\n", "not a PLY"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n", "end_header"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n1\n", "unknown PLY property type"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nend_header\n\0\0\0\0", "truncated"),
        (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nend_header\n1 2\n3\n", "expected 2 values"),
        (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n2\n", "truncated"),
        (b"ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n", "no 'vertex'"),
        (
            b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nelement face 1\n"
            b"property list uchar int vertex_indices\nend_header\n0\n1\n3 0 1 2\n",
            "out of range",
        ),
    ],
)
def test_bad_files_raise_dataset_error_naming_the_file(tmp_path, content, match):
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=match) as info:
        read_ply(path)
    assert "bad.ply" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_ply(tmp_path / "nope.ply")
