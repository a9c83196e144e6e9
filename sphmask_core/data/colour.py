"""Point colours of structured point records (PointCloud2 buffers, PCD files) -> [-1, 1].

One rule for every cloud source, so the node, the bag tools and `sphmask-predict` see the same
colours: packed ``rgb``/``rgba`` fields (4 bytes: float32 or uint32 bits of ``0xAARRGGBB``), or
separate ``r``/``g``/``b`` channels (integers as 0..the maximum of their type, e.g. 0..255 for
uint8 and 0..65535 for uint16; floats as 0..1, clipped). Output is float32 in
[-1, 1] (``raw / 127.5 - 1``, the Scene contract).
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLOUR_FIELDS", "unpack_rgb", "structured_colour"]

COLOUR_FIELDS = ("rgb", "rgba")


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(N,) packed ``0xAARRGGBB`` (uint32 or the same bits as float32) -> (N, 3) float32 in [-1, 1]."""
    packed = np.asarray(packed)
    if packed.dtype.itemsize != 4:
        raise ValueError(f"packed colour must be a 4-byte type, got {packed.dtype}")
    bits = packed.view(packed.dtype.str[0] + "u4").astype(np.uint32, copy=False)
    channels = np.empty((bits.shape[0], 3), dtype=np.float32)  # (N, 3)
    channels[:, 0] = (bits >> 16) & 0xFF
    channels[:, 1] = (bits >> 8) & 0xFF
    channels[:, 2] = bits & 0xFF
    channels *= 1.0 / 127.5
    channels -= 1.0
    return channels


def structured_colour(
    points: np.ndarray, names: set[str], keep: np.ndarray | None
) -> tuple[np.ndarray | None, set[str]]:
    """(colours (M, 3) of the points `keep` selects (all when None) or None, fields used)."""
    for name in COLOUR_FIELDS:
        if name in names and points.dtype[name].itemsize == 4:
            col = points[name] if keep is None else points[name][keep]
            return unpack_rgb(col), {name}
    if {"r", "g", "b"} <= names:
        rgb = np.empty((points.shape[0] if keep is None else keep.shape[0], 3), np.float32)
        for c, name in enumerate("rgb"):
            col = points[name] if keep is None else points[name][keep]
            if np.issubdtype(col.dtype, np.floating):
                unit = np.clip(col, 0.0, 1.0)  # channels in 0..1
                unit[~np.isfinite(col)] = np.nan  # not a colour; clip would make Inf one
            else:
                # any integer width: 0..its maximum (uint16 cameras), negative values clipped
                unit = np.clip(col, 0, None) / float(np.iinfo(col.dtype).max)
            rgb[:, c] = unit * 2.0 - 1.0
        return rgb, {"r", "g", "b"}
    return None, set()
