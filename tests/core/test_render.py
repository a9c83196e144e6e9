"""PNG writer and top-view renderer, checked by decoding the file with zlib by hand."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from sphmask_core.render import (
    FONT,
    GLYPH_H,
    GLYPH_W,
    draw_text,
    encode_png,
    palette,
    render_top_view,
    splat,
    write_png,
)


def _decode(data: bytes) -> tuple[dict, np.ndarray]:
    """Independent minimal PNG reader: checks every chunk CRC, supports filter type 0 only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, kind
        chunks.append((kind, payload))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, ctype, comp, filt, inter = struct.unpack(">IIBBBBB", chunks[0][1])
    channels = {0: 1, 2: 3, 6: 4}[ctype]
    raw = zlib.decompress(b"".join(p for k, p in chunks if k == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * channels)
    assert (rows[:, 0] == 0).all()
    header = dict(width=w, height=h, depth=depth, color_type=ctype, interlace=inter)
    return header, rows[:, 1:].reshape(h, w, channels)


def test_png_roundtrip_rgb_and_grey(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(13, 21, 3), dtype=np.uint8)
    path = write_png(tmp_path / "a.png", img)
    header, decoded = _decode(path.read_bytes())
    assert header == dict(width=21, height=13, depth=8, color_type=2, interlace=0)
    np.testing.assert_array_equal(decoded, img)
    grey = rng.integers(0, 256, size=(5, 7), dtype=np.uint8)
    header, decoded = _decode(encode_png(grey))
    assert header["color_type"] == 0
    np.testing.assert_array_equal(decoded[:, :, 0], grey)


def test_png_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((4, 4, 2), np.uint8))


def test_known_splat_pixels(tmp_path: Path) -> None:
    # two points 1 m apart diagonally in a 64x64 map with an 8-pixel margin:
    # scale = 64 - 16 - 1 = 47 px/m, centring pad = (64 - 47) / 2 = 8.5 px.
    # (0, 0) -> col floor(8.5) = 8, row floor(63 - 8.5) = 54; (1, 1) -> col 55, row 7.
    xyz = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    img = render_top_view(
        xyz, np.array([0, -1]), np.array([0]), ["chair"], height=64, map_width=64, legend_width=0,
        point_size=1, margin=8,
    )
    header, decoded = _decode(encode_png(img))
    assert (header["width"], header["height"]) == (64, 64)
    # instance 0 colour: hue 0, saturation 0.85, value 0.95 -> (242, 36, 36)
    np.testing.assert_array_equal(palette(1)[0], [242, 36, 36])
    np.testing.assert_array_equal(decoded[54, 8], [242, 36, 36])
    np.testing.assert_array_equal(decoded[7, 55], [200, 200, 200])  # non-instance point, lowest z
    background = np.all(decoded == 255, axis=2)
    assert background.sum() == 64 * 64 - 2


def test_box_outline_and_legend() -> None:
    xyz = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.25, 0.25, 0.5], [0.75, 0.75, 0.5]])
    boxes = np.array([[0.25, 0.25, 0.5, 0.75, 0.75, 0.5]])
    img = render_top_view(
        xyz, np.array([-1, -1, 0, 0]), np.array([0]), ["table"], scores=np.array([0.9]),
        boxes=boxes, height=64, map_width=64, legend_width=100, point_size=1, margin=8,
    )
    assert img.shape == (64, 164, 3)
    color = palette(1)[0]
    # box corners: cols floor(0.25*47+8.5)=20 .. floor(0.75*47+8.5)=43,
    # rows floor(63-20.25)=42 .. floor(63-43.75)=19
    assert np.all(img[19, 20:44] == color)
    assert np.all(img[42, 20:44] == color)
    assert np.all(img[19:43, 20] == color)
    assert np.all(img[19:43, 43] == color)
    assert not np.any(np.all(img[18, :64] == color, axis=1))
    assert np.all(img[30, 25] == 255)  # inside the box, no point there
    legend = img[:, 65:]
    assert np.any(np.all(legend == color, axis=2))  # the swatch
    assert np.any(np.all(legend < 60, axis=2))  # dark text pixels


def test_splat_into_a_column_slice() -> None:
    img = np.zeros((4, 6, 3), np.uint8)
    splat(img[:, :3], np.array([2]), np.array([1]), np.array([0.0]), np.array([[9, 8, 7]], np.uint8))
    np.testing.assert_array_equal(img[2, 1], [9, 8, 7])
    assert img.sum() == 24


def test_splat_depth_order() -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    rows, cols = np.array([1, 1, 1]), np.array([2, 2, 2])
    colors = np.array([[10, 10, 10], [30, 30, 30], [20, 20, 20]], np.uint8)
    splat(img, rows, cols, np.array([0.0, 5.0, 1.0]), colors)
    np.testing.assert_array_equal(img[1, 2], [30, 30, 30])
    assert img.sum() == 90


def test_draw_text_matches_glyphs() -> None:
    img = np.zeros((10, 20, 3), np.uint8)
    draw_text(img, 1, 2, "a7", (255, 255, 255))
    on = img[:, :, 0] > 0
    np.testing.assert_array_equal(on[2 : 2 + GLYPH_H, 1 : 1 + GLYPH_W], FONT["A"])
    np.testing.assert_array_equal(on[2 : 2 + GLYPH_H, 7 : 7 + GLYPH_W], FONT["7"])
    assert on.sum() == FONT["A"].sum() + FONT["7"].sum()


def test_render_validates_input() -> None:
    with pytest.raises(ValueError, match="instance 3"):
        render_top_view(np.zeros((2, 3)), np.array([3, -1]), np.array([0]), ["x"])
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        render_top_view(np.zeros((2, 2)), np.array([0, 0]), np.array([0]), ["x"])
