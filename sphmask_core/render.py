"""Top-view renderings of segmented point clouds as PNG files, with numpy and zlib only.

No plotting library is a dependency of the project, so this module carries what a picture of a
segmentation needs: a z-buffered point splatter, box outlines, a legend of colour swatches with
labels drawn in a built-in 5x7 bitmap font, and a minimal PNG encoder (8-bit RGB/RGBA/grey,
filter 0, one zlib stream).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# ----------------------------------------------------------------------------------------- PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def encode_png(image: np.ndarray, compress_level: int = 6) -> bytes:
    """uint8 image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> PNG file bytes."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"encode_png expects a uint8 image, got dtype {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in _COLOR_TYPES:
        raise ValueError(f"encode_png expects (H, W) or (H, W, 1|3|4), got shape {np.asarray(image).shape}")
    height, width, channels = img.shape
    if height == 0 or width == 0:
        raise ValueError(f"encode_png cannot write an empty image of shape {img.shape}")
    # every scanline is prefixed by its filter type byte (0 = None)
    rows = np.concatenate(
        [np.zeros((height, 1), np.uint8), np.ascontiguousarray(img).reshape(height, width * channels)], axis=1
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image))
    return path


# ------------------------------------------------------------------------------------ bitmap font

GLYPH_W, GLYPH_H = 5, 7
_GLYPH_ROWS = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "####. ....# ....# .###. ....# ....# ####.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    " ": "..... ..... ..... ..... ..... ..... .....",
    "-": "..... ..... ..... .###. ..... ..... .....",
    "_": "..... ..... ..... ..... ..... ..... #####",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    "/": "....# ....# ...#. ..#.. .#... #.... #....",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    "%": "##..# ##..# ...#. ..#.. .#... #..## #..##",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    ",": "..... ..... ..... ..... .##.. ..#.. .#...",
    "=": "..... ..... ##### ..... ##### ..... .....",
    "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
}


def _build_font() -> dict[str, np.ndarray]:
    font = {}
    for char, spec in _GLYPH_ROWS.items():
        rows = spec.split(" ")
        assert len(rows) == GLYPH_H and all(len(r) == GLYPH_W for r in rows), char
        font[char] = np.array([[c == "#" for c in row] for row in rows], dtype=bool)  # (7, 5)
    return font


FONT = _build_font()


def glyph(char: str) -> np.ndarray:
    """(7, 5) bool bitmap of a character; lower case is drawn as upper case, unknown as '?'."""
    return FONT.get(char.upper(), FONT["?"])


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of `text` drawn by draw_text (1 column of spacing per glyph)."""
    return (len(text) * (GLYPH_W + 1) * scale, GLYPH_H * scale)


def draw_text(image: np.ndarray, x: int, y: int, text: str, color: Sequence[int], scale: int = 1) -> None:
    """Draw `text` with its top-left corner at (x, y), clipped to the image, in place."""
    if not text:
        return
    bitmap = np.concatenate(
        [np.pad(glyph(c), ((0, 0), (0, 1))) for c in text], axis=1
    )  # (7, 6 * len)
    if scale > 1:
        bitmap = np.repeat(np.repeat(bitmap, scale, axis=0), scale, axis=1)
    h, w = bitmap.shape
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + h, image.shape[0]), min(x + w, image.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    sub = bitmap[y0 - y : y1 - y, x0 - x : x1 - x]
    region = image[y0:y1, x0:x1]
    region[sub] = np.asarray(color, dtype=np.uint8)


# ------------------------------------------------------------------------------------ colours

def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct saturated colours (golden-ratio hue steps; never grey)."""
    if n <= 0:
        return np.zeros((0, 3), np.uint8)
    k = np.arange(n)
    hue = (k * 0.618033988749895) % 1.0
    sat = np.where(k % 2 == 0, 0.85, 0.65)
    val = np.where((k // 2) % 2 == 0, 0.95, 0.80)
    return hsv_to_rgb(hue, sat, val)


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (all in [0, 1]) -> (n, 3) uint8 RGB."""
    h, s, v = (np.asarray(a, dtype=np.float64) for a in (h, s, v))
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [np.stack(c, axis=-1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    )  # (6, n, 3)
    rgb = table[i, np.arange(len(i))]
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------ rendering

BACKGROUND = (255, 255, 255)
TEXT_COLOR = (20, 20, 20)


def _map_transform(xy: np.ndarray, height: int, width: int, margin: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale (pixels per metre) and the xy origin that fit the cloud into the map area, y up."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    extent = np.maximum(hi - lo, 1e-6)
    scale = float(min((width - 2 * margin - 1) / extent[0], (height - 2 * margin - 1) / extent[1]))
    # centre the cloud inside the map area
    used = extent * scale
    pad = np.array([(width - used[0]) / 2.0, (height - used[1]) / 2.0])
    return scale, lo, pad


def world_to_pixel(
    xy: np.ndarray, scale: float, origin: np.ndarray, pad: np.ndarray, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) metres -> (row, col) int arrays; rows grow downwards, so y is flipped."""
    col = np.floor((xy[:, 0] - origin[0]) * scale + pad[0]).astype(np.int64)
    row = np.floor(height - 1 - ((xy[:, 1] - origin[1]) * scale + pad[1])).astype(np.int64)
    return row, col


def splat(
    image: np.ndarray, rows: np.ndarray, cols: np.ndarray, depth: np.ndarray, colors: np.ndarray, size: int = 1
) -> None:
    """Draw points as size x size squares; where several land on a pixel the highest depth wins."""
    h, w = image.shape[:2]
    offs = np.arange(size) - size // 2
    dr, dc = np.meshgrid(offs, offs, indexing="ij")
    r = (rows[:, None] + dr.reshape(1, -1)).reshape(-1)  # (N * size^2,)
    c = (cols[:, None] + dc.reshape(1, -1)).reshape(-1)
    z = np.repeat(depth, size * size)
    idx = np.repeat(np.arange(len(rows)), size * size)
    keep = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    pix = r[keep] * w + c[keep]
    z, idx = z[keep], idx[keep]
    if len(pix) == 0:
        return
    order = np.lexsort((z, pix))  # by pixel, then by depth ascending
    pix, idx = pix[order], idx[order]
    last = np.ones(len(pix), dtype=bool)
    last[:-1] = pix[1:] != pix[:-1]  # the last of each pixel group has the largest depth
    winners = pix[last]
    # index rows/cols rather than a reshaped view: `image` may be a non-contiguous slice
    image[winners // w, winners % w] = colors[idx[last]]


def draw_rect(image: np.ndarray, r0: int, c0: int, r1: int, c1: int, color: Sequence[int]) -> None:
    """1-pixel outline of the rectangle with corners (r0, c0) and (r1, c1), inclusive, clipped."""
    h, w = image.shape[:2]
    r0, r1 = sorted((r0, r1))
    c0, c1 = sorted((c0, c1))
    col = np.asarray(color, np.uint8)
    cc0, cc1 = max(c0, 0), min(c1, w - 1)
    rr0, rr1 = max(r0, 0), min(r1, h - 1)
    for r in (r0, r1):
        if 0 <= r < h and cc0 <= cc1:
            image[r, cc0 : cc1 + 1] = col
    for c in (c0, c1):
        if 0 <= c < w and rr0 <= rr1:
            image[rr0 : rr1 + 1, c] = col


def fill_rect(image: np.ndarray, r0: int, c0: int, r1: int, c1: int, color: Sequence[int]) -> None:
    h, w = image.shape[:2]
    image[max(r0, 0) : min(r1 + 1, h), max(c0, 0) : min(c1 + 1, w)] = np.asarray(color, np.uint8)


def render_top_view(
    xyz: np.ndarray,
    point_instance: np.ndarray,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    scores: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    height: int = 512,
    map_width: int = 512,
    legend_width: int = 200,
    point_size: int = 2,
    margin: int = 8,
    title: str = "",
) -> np.ndarray:
    """Top view (looking down -z) of a cloud coloured by instance, with boxes and a legend.

    xyz (N, 3) metres; point_instance (N,) int, -1 = none (drawn grey, shaded by height);
    class_ids (K,) indices into class_names; scores (K,) or None; boxes (K, 6) min xyz, max xyz
    or None. Returns an (height, map_width + legend_width, 3) uint8 image. Instance k is drawn
    in palette(K)[k].
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"render_top_view expects xyz of shape (N, 3), got {xyz.shape}")
    point_instance = np.asarray(point_instance, dtype=np.int64).reshape(-1)
    if len(point_instance) != len(xyz):
        raise ValueError(f"point_instance has {len(point_instance)} entries for {len(xyz)} points")
    class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    n_inst = len(class_ids)
    if point_instance.size and point_instance.max(initial=-1) >= n_inst:
        raise ValueError(f"point_instance refers to instance {point_instance.max()} but only {n_inst} exist")
    if n_inst and (class_ids.min() < 0 or class_ids.max() >= len(class_names)):
        raise ValueError(f"class_ids must index class_names (0..{len(class_names) - 1}), got {class_ids}")
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
        if len(boxes) != n_inst:
            raise ValueError(f"boxes has {len(boxes)} rows for {n_inst} instances")
    if height < 4 * margin or map_width < 4 * margin:
        raise ValueError(f"image {height}x{map_width} is too small for margin {margin}")

    image = np.empty((height, map_width + legend_width, 3), np.uint8)
    image[:] = BACKGROUND
    colors = palette(n_inst)  # (K, 3)
    if len(xyz):
        scale, origin, pad = _map_transform(xyz[:, :2], height, map_width, margin)
        rows, cols = world_to_pixel(xyz[:, :2], scale, origin, pad, height)
        z = xyz[:, 2]
        zn = (z - z.min()) / max(float(np.ptp(z)), 1e-6)
        grey = np.round(200 - 80 * zn).astype(np.uint8)
        point_colors = np.repeat(grey[:, None], 3, axis=1)  # (N, 3)
        has = point_instance >= 0
        point_colors[has] = colors[point_instance[has]]
        # instance points are drawn above the background at equal height
        depth = z + np.where(has, 1e3, 0.0)
        splat(image[:, :map_width], rows, cols, depth, point_colors, size=point_size)
        if boxes is not None:
            for k in range(n_inst):
                corners = np.array([[boxes[k, 0], boxes[k, 1]], [boxes[k, 3], boxes[k, 4]]])
                br, bc = world_to_pixel(corners, scale, origin, pad, height)
                draw_rect(image[:, :map_width], int(br[0]), int(bc[0]), int(br[1]), int(bc[1]), colors[k])
    image[:, map_width : map_width + 1] = (160, 160, 160)
    _draw_legend(image, map_width + 1, class_ids, class_names, scores, colors, title)
    return image


def _draw_legend(
    image: np.ndarray,
    x0: int,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    scores: np.ndarray | None,
    colors: np.ndarray,
    title: str,
) -> None:
    height = image.shape[0]
    row_h, sw = GLYPH_H + 5, GLYPH_H + 2
    y = 6
    header = title or f"{len(class_ids)} INSTANCES"
    draw_text(image, x0 + 6, y, header, TEXT_COLOR)
    y += row_h + 2
    max_rows = max((height - y - row_h) // row_h, 0)
    shown = len(class_ids) if len(class_ids) <= max_rows else max(max_rows - 1, 0)
    for k in range(shown):
        fill_rect(image, y, x0 + 6, y + sw - 1, x0 + 6 + sw - 1, colors[k])
        label = str(class_names[class_ids[k]])
        if scores is not None:
            label += f" {float(scores[k]):.2f}"
        draw_text(image, x0 + 6 + sw + 4, y + 1, label, TEXT_COLOR)
        y += row_h
    if shown < len(class_ids):
        draw_text(image, x0 + 6, y + 1, f"+{len(class_ids) - shown} MORE", TEXT_COLOR)


def render_instances(xyz: np.ndarray, instances: Any, **kwargs: Any) -> np.ndarray:
    """render_top_view for an `Instances` result (point_instance, class_ids, class_names, ...)."""
    return render_top_view(
        xyz,
        instances.point_instance,
        instances.class_ids,
        instances.class_names,
        scores=getattr(instances, "scores", None),
        boxes=getattr(instances, "boxes", None),
        **kwargs,
    )
