"""PCD reader: hand-packed files in every DATA format, LZF by hand-made streams, bad headers."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from sphmask_core.data.pcd import PcdError, lzf_decompress, pcd_points, read_pcd


def test_lzf_literal_and_overlapping_backref() -> None:
    # literal "abc" (ctrl 2), then a back-reference: length 9 (7 + extra byte 0), distance 3.
    stream = bytes([2]) + b"abc" + bytes([0xE0, 0, 2])
    assert lzf_decompress(stream, 12) == b"abcabcabcabc"
    # short back-reference: length 3 (ctrl top bits 1), distance 1 -> run of the last byte
    assert lzf_decompress(bytes([0]) + b"z" + bytes([0x20, 0]), 4) == b"zzzz"
    with pytest.raises(PcdError, match="corrupt LZF"):
        lzf_decompress(bytes([0x20, 5]), 3)  # reference before the start
    with pytest.raises(PcdError, match="corrupt LZF"):
        lzf_decompress(bytes([2]) + b"ab", 3)  # truncated literal


def _write_pcd(path: Path, fmt: str, xyz: np.ndarray, label: np.ndarray) -> None:
    header = (
        "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z label\nSIZE 4 4 4 4\nTYPE F F F U\n"
        f"COUNT 1 1 1 1\nWIDTH {len(xyz)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {len(xyz)}\nDATA {fmt}\n"
    )
    if fmt == "ascii":
        lines = "".join(f"{a!r} {b!r} {c!r} {int(lab)}\n"
                        for (a, b, c), lab in zip(xyz.tolist(), label))
        path.write_bytes(header.encode() + lines.encode())
    else:
        body = b"".join(struct.pack("<fffI", *p, int(lab)) for p, lab in zip(xyz.tolist(), label))
        path.write_bytes(header.encode() + body)


def test_pcd_ascii_and_binary(tmp_path: Path) -> None:
    xyz = np.array([[0.5, 1.25, -3.0], [np.nan, np.nan, np.nan], [7.0, 8.0, 9.0]], np.float32)
    label = np.array([3, 0, 4000000000], dtype=np.uint32)
    for fmt in ("ascii", "binary"):
        path = tmp_path / f"c_{fmt}.pcd"
        _write_pcd(path, fmt, xyz, label)
        pcd = read_pcd(path)
        assert pcd.data_format == fmt and (pcd.width, pcd.height) == (3, 1)
        np.testing.assert_array_equal(pcd.points["label"], label)
        points, rgb = pcd_points(pcd)
        np.testing.assert_array_equal(points, xyz[[0, 2]])
        assert rgb is None


def test_pcd_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.pcd"
    path.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4\nTYPE F F F\nWIDTH 1\nDATA ascii\n1 2 3\n")
    with pytest.raises(PcdError, match="lengths differ"):
        read_pcd(path)


def test_pcd_colour_channels_follow_the_cloud_rule(tmp_path: Path) -> None:
    # packed rgb as a float32 field (PCL's layout): 0x00FF8000 -> (255, 128, 0)
    packed = np.array([0x00FF8000], np.uint32).view(np.float32)[0]
    header = ("VERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
              "WIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA binary\n")
    path = tmp_path / "rgb.pcd"
    path.write_bytes(header.encode() + struct.pack("<ffff", 1, 2, 3, packed))
    xyz, rgb = pcd_points(read_pcd(path))
    np.testing.assert_allclose(rgb, [[255 / 127.5 - 1, 128 / 127.5 - 1, -1.0]], atol=1e-6)
    np.testing.assert_array_equal(xyz, [[1, 2, 3]])
