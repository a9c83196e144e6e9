"""Seeded generator of ScanNet-like rooms (and of partial sensor frames of them).

A room is a floor, four walls and furniture of the 10 SYNTHETIC_LABELS instance classes. Every
object is a union of yaw-rotated boxes (table = top + legs, bookshelf = frame + shelves, ...);
points are sampled on box SURFACES, then kept only if a virtual sensor sees them: a point is
visible from a viewpoint when the segment to it crosses no box (exact ray/box slab tests, culled
by bounding cones so the cost stays close to linear in the point count).

Everything random comes from `np.random.Generator`s derived from the seed, in separate streams:
the layout (room, objects, scan viewpoints) does not depend on the point density, and
`generate_frames(seed, ...)` shows the same room as `generate_scene(seed, ...)`.

Coordinates: metres, z up, floor at z = 0, room centred on x = y = 0.
Sensor frame (frames): x forward, y left, z up (REP 103).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from .scene import IGNORE_LABEL, SYNTHETIC_LABELS, Scene

WALL, FLOOR = 0, 1
CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF, PICTURE, DESK = range(2, 12)


# --------------------------------------------------------------------------------------------
# configuration and public result types


@dataclass
class SyntheticConfig:
    room_size_range: tuple[float, float] = (4.0, 8.0)  # side lengths (m), x and y drawn apart
    wall_height_range: tuple[float, float] = (2.5, 3.0)
    n_objects_range: tuple[int, int] = (6, 14)  # furniture pieces asked for (some may not fit)
    density: float = 1000.0  # surface points per m^2 sampled before visibility
    # When set, the density is chosen so that the scene has a point count drawn from this range.
    target_points_range: tuple[int, int] | None = None
    noise_sigma: float = 0.005  # sensor noise (m), isotropic Gaussian
    color_noise: float = 0.03  # per-point colour noise, on the 0..1 scale
    occlusion: bool = True
    n_viewpoints: int = 4  # scan positions used by generate_scene
    viewpoint_height_range: tuple[float, float] = (1.3, 1.8)
    # Scan positions and the sensor path keep this far from walls (tall furniture is at most
    # 0.6 m deep and stands against walls, so sensors never start inside an object).
    viewpoint_wall_margin: float = 0.8
    min_instance_points: int = 30  # smaller visible remnants of objects are dropped

    def validate(self) -> "SyntheticConfig":
        lo, hi = self.room_size_range
        if not 2 * self.viewpoint_wall_margin + 0.5 <= lo <= hi:
            raise ValueError(
                f"room_size_range {self.room_size_range} must be ordered and at least "
                f"2 * viewpoint_wall_margin + 0.5 = {2 * self.viewpoint_wall_margin + 0.5} m"
            )
        if not 2.1 <= self.wall_height_range[0] <= self.wall_height_range[1]:
            raise ValueError(f"wall_height_range {self.wall_height_range} must be ordered and >= 2.1 m")
        if not 0 <= self.n_objects_range[0] <= self.n_objects_range[1]:
            raise ValueError(f"n_objects_range {self.n_objects_range} must be ordered and >= 0")
        if not self.density > 0:
            raise ValueError(f"density must be > 0, got {self.density}")
        if self.target_points_range is not None:
            tlo, thi = self.target_points_range
            if not 100 <= tlo <= thi:
                raise ValueError(f"target_points_range {self.target_points_range} must be ordered and >= 100")
        if self.noise_sigma < 0 or self.color_noise < 0:
            raise ValueError("noise_sigma and color_noise must be >= 0")
        if self.n_viewpoints < 1:
            raise ValueError(f"n_viewpoints must be >= 1, got {self.n_viewpoints}")
        vlo, vhi = self.viewpoint_height_range
        if not 1.1 <= vlo <= vhi < self.wall_height_range[0]:
            raise ValueError(
                f"viewpoint_height_range {self.viewpoint_height_range} must be ordered, above the "
                "furniture (>= 1.1 m) and below the walls' top"
            )
        if self.min_instance_points < 1:
            raise ValueError("min_instance_points must be >= 1")
        return self


@dataclass
class SensorConfig:
    """Sensor of `generate_frames`: field of view, range, and the path it moves along."""

    fov_h_deg: float = 100.0
    fov_v_deg: float = 75.0
    min_range: float = 0.2
    max_range: float = 7.0
    pitch_down_deg: float = 20.0
    height_range: tuple[float, float] = (1.3, 1.7)
    frame_dt: float = 0.1  # seconds between frames
    start_stamp: float = 0.0
    loops: float = 1.0  # how many times the elliptic path is travelled over all frames

    def validate(self) -> "SensorConfig":
        if not (0 < self.fov_h_deg <= 360 and 0 < self.fov_v_deg < 180):
            raise ValueError(f"fov must be in (0, 360] x (0, 180) degrees, got {self.fov_h_deg}, {self.fov_v_deg}")
        if not 0 <= self.min_range < self.max_range:
            raise ValueError(f"need 0 <= min_range < max_range, got {self.min_range}, {self.max_range}")
        if not self.frame_dt > 0:
            raise ValueError(f"frame_dt must be > 0, got {self.frame_dt}")
        if not 1.1 <= self.height_range[0] <= self.height_range[1]:
            raise ValueError(f"sensor height_range {self.height_range} must be ordered and >= 1.1 m")
        if not self.loops > 0:
            raise ValueError(f"loops must be > 0, got {self.loops}")
        return self


@dataclass
class PlacedObject:
    """One furniture instance: yaw-rotated boxes in world coordinates."""

    semantic: int
    centers: np.ndarray  # (B, 3) box centres, world
    halves: np.ndarray  # (B, 3) half extents in the box frame
    yaw: float  # rotation about z shared by all boxes of the object
    colors: np.ndarray  # (B, 3) base colour of each box, 0..1

    @property
    def name(self) -> str:
        return SYNTHETIC_LABELS.semantic_names[self.semantic]


@dataclass
class RoomLayout:
    size: np.ndarray  # (3,) room extent x, y and wall height; room spans [-size/2, size/2] in x, y
    objects: list[PlacedObject]
    viewpoints: np.ndarray  # (V, 3) scan positions of generate_scene
    wall_color: np.ndarray  # (3,)
    floor_color: np.ndarray  # (3,)


@dataclass
class Frame:
    """Points seen from one sensor pose, in the SENSOR frame, with labels and scene indices."""

    xyz: np.ndarray  # (M, 3) float32, sensor frame
    rgb: np.ndarray  # (M, 3) float32 in [-1, 1]
    semantic: np.ndarray  # (M,) int64
    instance: np.ndarray  # (M,) int64
    index: np.ndarray  # (M,) int64, row of each point in the full Scene
    pose: np.ndarray  # (4, 4) float64, world <- sensor
    stamp: float  # seconds

    @property
    def position(self) -> np.ndarray:
        return self.pose[:3, 3].copy()

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        return Rotation.from_matrix(self.pose[:3, :3]).as_quat()

    def world_xyz(self) -> np.ndarray:
        """(M, 3) float64 points mapped back into the world (scene) frame."""
        return self.xyz.astype(np.float64) @ self.pose[:3, :3].T + self.pose[:3, 3]


# --------------------------------------------------------------------------------------------
# ray casting against yaw-rotated boxes


@dataclass
class BoxSet:
    """Yaw-rotated boxes, grouped (e.g. per object) so rays are culled group by group first."""

    centers: np.ndarray  # (B, 3)
    halves: np.ndarray  # (B, 3)
    cos: np.ndarray  # (B,) cos(yaw)
    sin: np.ndarray  # (B,) sin(yaw)
    group: np.ndarray | None = None  # (B,) int64, non-decreasing; None = one group per box

    def __post_init__(self) -> None:
        n = self.centers.shape[0]
        self.group = np.arange(n) if self.group is None else np.asarray(self.group, np.int64)
        if self.group.shape != (n,) or (np.diff(self.group) < 0).any():
            raise ValueError("BoxSet.group must be a non-decreasing (B,) array")

    @classmethod
    def from_objects(cls, objects: list[PlacedObject]) -> "BoxSet":
        if not objects:
            z = np.zeros((0, 3))
            return cls(z, z.copy(), np.zeros(0), np.zeros(0))
        centers = np.concatenate([o.centers for o in objects])
        halves = np.concatenate([o.halves for o in objects])
        yaws = np.concatenate([np.full(len(o.centers), o.yaw) for o in objects])
        group = np.concatenate([np.full(len(o.centers), k) for k, o in enumerate(objects)])
        return cls(centers, halves, np.cos(yaws), np.sin(yaws), group)

    def __len__(self) -> int:
        return int(self.centers.shape[0])

    def group_spheres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Bounding sphere of each group (centres (G, 3), radii (G,)) and its box range
        (first box (G,), box count (G,))."""
        _, first, count = np.unique(self.group, return_index=True, return_counts=True)
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        local = signs[None] * self.halves[:, None]  # (B, 8, 3) box corners, box frame
        corners = np.empty_like(local)
        corners[..., 0] = self.cos[:, None] * local[..., 0] - self.sin[:, None] * local[..., 1]
        corners[..., 1] = self.sin[:, None] * local[..., 0] + self.cos[:, None] * local[..., 1]
        corners[..., 2] = local[..., 2]
        corners += self.centers[:, None]
        lo = np.minimum.reduceat(corners.min(axis=1), first)  # (G, 3)
        hi = np.maximum.reduceat(corners.max(axis=1), first)
        center = (lo + hi) / 2
        radius = np.linalg.norm(hi - lo, axis=1) / 2
        return center, radius, first, count


def _to_box_frame(v: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate world vectors (..., 3) by -yaw (per row) into the box frame."""
    out = np.empty_like(v)
    out[..., 0] = cos * v[..., 0] + sin * v[..., 1]
    out[..., 1] = -sin * v[..., 0] + cos * v[..., 1]
    out[..., 2] = v[..., 2]
    return out


def _segment_hits(
    origin_local: np.ndarray, dir_local: np.ndarray, halves: np.ndarray, seg_len: np.ndarray, eps: float
) -> np.ndarray:
    """Slab test of segments origin + t * dir, t in [0, 1], against centred boxes (rows paired).

    A hit must enter the box before the end point by more than `eps` metres, so a point lying on
    a face that looks towards the origin is not hidden by its own box.
    """
    d = np.where(np.abs(dir_local) < 1e-12, 1e-12, dir_local)  # (P, 3)
    t1 = (-halves - origin_local) / d
    t2 = (halves - origin_local) / d
    t_in = np.minimum(t1, t2).max(axis=1)  # (P,)
    t_out = np.maximum(t1, t2).min(axis=1)
    tol = eps / seg_len
    return (t_in <= t_out) & (t_in < 1.0 - tol) & (t_out > tol)


def _cone(
    centers: np.ndarray, radii: np.ndarray, origin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounding cones of spheres seen from origin: unit axes (S, 3), cos of the half angle (S,)
    (-2 when the origin is inside: every direction), and the near distance (S,)."""
    w = centers - origin
    dist = np.linalg.norm(w, axis=1)
    inside = dist <= radii
    safe = np.where(inside, 1.0, dist)
    cos_thr = np.where(inside, -2.0, np.sqrt(np.clip(1.0 - (radii / safe) ** 2, 0.0, 1.0)))
    near = np.where(inside, 0.0, dist - radii)
    return w / safe[:, None], cos_thr - 1e-4, near  # the slack absorbs float32 rounding


def occluded_from(
    points: np.ndarray, origin: np.ndarray, boxes: BoxSet, eps: float = 2e-3, chunk: int = 65536
) -> np.ndarray:
    """(M,) bool: the segment origin -> point crosses a box (the point is hidden from origin).

    Culling keeps the cost near linear: a (point, group) pair survives when the point lies in the
    cone of the group's bounding sphere beyond its near side; the same test on each box of a
    surviving group selects the pairs that get the exact slab test.
    """
    points = np.asarray(points, np.float64)
    origin = np.asarray(origin, np.float64)
    occluded = np.zeros(points.shape[0], bool)
    if len(boxes) == 0 or points.shape[0] == 0:
        return occluded
    g_center, g_radius, g_first, g_count = boxes.group_spheres()
    g_axis, g_cos, g_near = _cone(g_center, g_radius, origin)  # (G, 3), (G,), (G,)
    b_axis, b_cos, b_near = _cone(boxes.centers, np.linalg.norm(boxes.halves, axis=1), origin)
    g_axis32 = g_axis.astype(np.float32)
    origin_local = _to_box_frame((origin - boxes.centers)[None], boxes.cos[None], boxes.sin[None])[0]  # (B, 3)
    for start in range(0, points.shape[0], chunk):
        seg = points[start : start + chunk] - origin  # (C, 3)
        seg_len = np.maximum(np.linalg.norm(seg, axis=1), 1e-9)  # (C,)
        unit = seg / seg_len[:, None]
        cand = (unit.astype(np.float32) @ g_axis32.T >= g_cos[None, :]) & (seg_len[:, None] >= g_near[None, :])  # (C, G)
        pi, gi = np.nonzero(cand)
        if pi.size == 0:
            continue
        # expand each (point, group) pair to the group's boxes
        reps = g_count[gi]
        pi = np.repeat(pi, reps)
        offsets = np.arange(pi.size) - np.repeat(np.cumsum(reps) - reps, reps)
        bi = np.repeat(g_first[gi], reps) + offsets  # (P,)
        in_cone = (np.einsum("ij,ij->i", unit[pi], b_axis[bi]) >= b_cos[bi]) & (seg_len[pi] >= b_near[bi])
        pi, bi = pi[in_cone], bi[in_cone]
        dir_local = _to_box_frame(seg[pi], boxes.cos[bi], boxes.sin[bi])  # (P, 3)
        hit = _segment_hits(origin_local[bi], dir_local, boxes.halves[bi], seg_len[pi], eps)
        occluded[start + pi[hit]] = True
    return occluded


# --------------------------------------------------------------------------------------------
# furniture builders: boxes in the object's local frame (back plane y = 0, front towards +y,
# floor z = 0); each box = (centre, half extents, colour role)

_Part = tuple[tuple[float, float, float], tuple[float, float, float], str]

_WOODS = np.array([[0.55, 0.38, 0.22], [0.85, 0.78, 0.65], [0.30, 0.30, 0.32], [0.93, 0.93, 0.90], [0.42, 0.28, 0.17]])
_FABRICS = np.array([[0.45, 0.45, 0.50], [0.35, 0.25, 0.20], [0.60, 0.55, 0.45], [0.20, 0.30, 0.45], [0.70, 0.20, 0.18]])
_LINENS = np.array([[0.92, 0.92, 0.90], [0.60, 0.70, 0.85], [0.85, 0.70, 0.60], [0.75, 0.80, 0.70]])
_CHAIRS = np.array([[0.20, 0.20, 0.22], [0.60, 0.45, 0.30], [0.75, 0.20, 0.15], [0.30, 0.40, 0.60]])


def _box(cx: float, cy: float, cz: float, sx: float, sy: float, sz: float, role: str = "main") -> _Part:
    """Box from its centre and full sizes."""
    return (cx, cy, cz), (sx / 2, sy / 2, sz / 2), role


def _legs(w: float, d: float, h: float, t: float, inset: float, role: str = "accent") -> list[_Part]:
    xs = (-w / 2 + inset + t / 2, w / 2 - inset - t / 2)
    ys = (inset + t / 2, d - inset - t / 2)
    return [_box(x, y, h / 2, t, t, h, role) for x in xs for y in ys]


def _build_cabinet(rng: np.random.Generator) -> list[_Part]:
    tall = rng.random() < 0.35
    w, d = rng.uniform(0.4, 1.2), rng.uniform(0.35, 0.6)
    h = rng.uniform(1.5, 2.0) if tall else rng.uniform(0.5, 1.0)
    plinth = 0.08
    parts = [_box(0, d / 2 - 0.02, plinth / 2, w - 0.04, d - 0.04, plinth, "accent"),
             _box(0, d / 2, plinth + (h - plinth) / 2, w, d, h - plinth)]
    if rng.random() < 0.6:  # handles make the front face non-flat
        parts.append(_box(w / 4, d + 0.01, plinth + 0.7 * (h - plinth), 0.12, 0.02, 0.03, "accent"))
    return parts


def _build_bed(rng: np.random.Generator) -> list[_Part]:
    w, length = rng.uniform(0.9, 1.8), rng.uniform(1.9, 2.2)
    base_h, mat_h = rng.uniform(0.22, 0.35), rng.uniform(0.15, 0.25)
    head_t, head_h = 0.06, rng.uniform(0.85, 1.2)
    parts = [
        _box(0, head_t / 2, head_h / 2, w + 0.04, head_t, head_h, "main"),
        _box(0, head_t + length / 2, base_h / 2, w, length, base_h, "main"),
        _box(0, head_t + length / 2, base_h + mat_h / 2, w - 0.04, length - 0.04, mat_h, "soft"),
    ]
    n_pillows = 1 if w < 1.3 else 2
    pw = (w - 0.2) / n_pillows
    for i in range(n_pillows):
        x = -w / 2 + 0.1 + pw * (i + 0.5)
        parts.append(_box(x, head_t + 0.3, base_h + mat_h + 0.06, pw - 0.06, 0.4, 0.12, "soft"))
    return parts


def _build_chair(rng: np.random.Generator) -> list[_Part]:
    w, d = rng.uniform(0.4, 0.52), rng.uniform(0.4, 0.5)
    seat_h, seat_t = rng.uniform(0.42, 0.48), 0.05
    back_t, back_h = 0.04, rng.uniform(0.35, 0.5)
    parts = _legs(w, d, seat_h - seat_t, rng.uniform(0.025, 0.04), 0.02)
    parts.append(_box(0, d / 2, seat_h - seat_t / 2, w, d, seat_t, "main"))
    parts.append(_box(0, back_t / 2, seat_h + back_h / 2, w, back_t, back_h, "main"))
    return parts


def _build_sofa(rng: np.random.Generator) -> list[_Part]:
    w, d = rng.uniform(1.4, 2.4), rng.uniform(0.8, 1.0)
    seat_h, back_h, arm_h = rng.uniform(0.4, 0.46), rng.uniform(0.75, 0.9), rng.uniform(0.55, 0.65)
    back_t, arm_w = rng.uniform(0.15, 0.22), rng.uniform(0.12, 0.2)
    inner = w - 2 * arm_w
    return [
        _box(0, back_t / 2, back_h / 2, w, back_t, back_h),
        _box(0, back_t + (d - back_t) / 2, seat_h / 2, inner, d - back_t, seat_h),
        _box(-w / 2 + arm_w / 2, d / 2, arm_h / 2, arm_w, d, arm_h),
        _box(w / 2 - arm_w / 2, d / 2, arm_h / 2, arm_w, d, arm_h),
    ]


def _build_table(rng: np.random.Generator) -> list[_Part]:
    w, d = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0)
    h, t = rng.uniform(0.72, 0.78), 0.04
    parts = _legs(w, d, h - t, rng.uniform(0.04, 0.07), rng.uniform(0.03, 0.1))
    parts.append(_box(0, d / 2, h - t / 2, w, d, t))
    return parts


def _build_desk(rng: np.random.Generator) -> list[_Part]:
    w, d = rng.uniform(1.0, 1.6), rng.uniform(0.5, 0.75)
    h, t, side = rng.uniform(0.72, 0.76), 0.03, 0.025
    ped_w = rng.uniform(0.35, 0.45)
    return [
        _box(0, d / 2, h - t / 2, w, d, t),
        _box(-w / 2 + side / 2, d / 2, (h - t) / 2, side, d - 0.02, h - t, "accent"),
        _box(w / 2 - ped_w / 2, d / 2, (h - t) / 2, ped_w, d - 0.02, h - t, "main"),
        _box(-w / 2 + side + (w - ped_w - side) / 2, 0.02, (h - t) * 0.6, w - ped_w - side, 0.02, (h - t) * 0.5, "accent"),
    ]


def _build_bookshelf(rng: np.random.Generator) -> list[_Part]:
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.25, 0.4), rng.uniform(1.2, 2.0)
    t, back = 0.02, 0.01
    parts = [
        _box(-w / 2 + t / 2, d / 2, h / 2, t, d, h),
        _box(w / 2 - t / 2, d / 2, h / 2, t, d, h),
        _box(0, d / 2, h - t / 2, w - 2 * t, d, t),
        _box(0, d / 2, 0.05, w - 2 * t, d, 0.1),
        _box(0, back / 2, h / 2, w - 2 * t, back, h - 0.1, "accent"),
    ]
    n_shelves = int(rng.integers(2, 5))
    for z in np.linspace(0.1, h - t, n_shelves + 2)[1:-1]:
        parts.append(_box(0, back + (d - back) / 2, z, w - 2 * t, d - back, t))
    return parts


def _build_door(rng: np.random.Generator) -> list[_Part]:
    w, h, t = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1), 0.05
    jamb, proud = 0.06, 0.03
    return [
        _box(0, 0.0, h / 2, w, t, h),  # leaf, half inside the wall
        _box(-w / 2 - jamb / 2, proud / 2 - 0.01, (h + jamb) / 2, jamb, proud + 0.02, h + jamb, "accent"),
        _box(w / 2 + jamb / 2, proud / 2 - 0.01, (h + jamb) / 2, jamb, proud + 0.02, h + jamb, "accent"),
        _box(0, proud / 2 - 0.01, h + jamb / 2, w, proud + 0.02, jamb, "accent"),
        _box(w / 2 - 0.1, t / 2 + 0.03, 1.0, 0.12, 0.06, 0.03, "accent"),  # handle
    ]


def _build_window(rng: np.random.Generator) -> list[_Part]:
    w, h = rng.uniform(0.8, 1.8), rng.uniform(1.0, 1.4)
    z0 = rng.uniform(0.8, 1.0)
    fr = 0.05
    return [
        _box(0, 0.0, z0 + h / 2, w, 0.04, h),  # pane, half inside the wall
        _box(0, 0.02, z0 + fr / 2, w + 2 * fr, 0.06, fr, "accent"),
        _box(0, 0.02, z0 + h - fr / 2, w + 2 * fr, 0.06, fr, "accent"),
        _box(-w / 2 - fr / 2, 0.02, z0 + h / 2, fr, 0.06, h, "accent"),
        _box(w / 2 + fr / 2, 0.02, z0 + h / 2, fr, 0.06, h, "accent"),
        _box(0, 0.07, z0 - 0.015, w + 2 * fr + 0.1, 0.14, 0.03, "accent"),  # sill
    ]


def _build_picture(rng: np.random.Generator) -> list[_Part]:
    w, h, t = rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.8), rng.uniform(0.02, 0.04)
    zc = rng.uniform(1.3, 1.7)
    return [_box(0, t / 2, zc, w, t, h)]


_BUILDERS: dict[int, Callable[[np.random.Generator], list[_Part]]] = {
    CABINET: _build_cabinet, BED: _build_bed, CHAIR: _build_chair, SOFA: _build_sofa,
    TABLE: _build_table, DOOR: _build_door, WINDOW: _build_window, BOOKSHELF: _build_bookshelf,
    PICTURE: _build_picture, DESK: _build_desk,
}


def _object_colors(semantic: int, roles: list[str], rng: np.random.Generator) -> np.ndarray:
    """(B, 3) base colours: one per role, perturbed per object."""
    def pick(palette: np.ndarray) -> np.ndarray:
        return np.clip(palette[rng.integers(len(palette))] + rng.normal(0, 0.05, 3), 0, 1)

    if semantic in (SOFA,):
        main = pick(_FABRICS)
    elif semantic == CHAIR:
        main = pick(_CHAIRS)
    elif semantic == WINDOW:
        main = np.clip(np.array([0.62, 0.72, 0.82]) + rng.normal(0, 0.05, 3), 0, 1)
    elif semantic == PICTURE:
        main = rng.uniform(0.1, 0.95, 3)
    else:
        main = pick(_WOODS)
    accent = np.clip(main * rng.uniform(0.5, 0.8) if rng.random() < 0.6 else pick(_WOODS), 0, 1)
    soft = pick(_LINENS)
    table = {"main": main, "accent": accent, "soft": soft}
    return np.stack([table[r] for r in roles])


# --------------------------------------------------------------------------------------------
# layout: placing objects without collisions


@dataclass
class _Footprint:
    """Collision volume of a placed object: oriented floor rectangle x z-interval."""

    center: np.ndarray  # (2,)
    half: np.ndarray  # (2,)
    yaw: float
    z: tuple[float, float]

    def corners(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        axes = np.array([[c, s], [-s, c]])  # rows: the rectangle's x and y axes, world
        signs = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], float)
        return self.center + (signs * self.half) @ axes


def _overlap(a: _Footprint, b: _Footprint, tol: float = 0.005) -> bool:
    """Oriented boxes overlap (separating axis test in the plane, intervals in z); contact and
    penetration below `tol` count as touching, not overlapping."""
    if min(a.z[1], b.z[1]) - max(a.z[0], b.z[0]) <= tol:
        return False
    ca, cb = a.corners(), b.corners()
    for yaw in (a.yaw, b.yaw):
        for axis in (np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])):
            pa, pb = ca @ axis, cb @ axis
            if min(pa.max(), pb.max()) - max(pa.min(), pb.min()) <= tol:
                return False
    return True


@dataclass
class _Candidate:
    semantic: int
    parts: list[_Part]
    colors: np.ndarray
    local_min: np.ndarray = field(init=False)  # (3,) local AABB, y clipped at the back plane
    local_max: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        c = np.array([p[0] for p in self.parts])
        h = np.array([p[1] for p in self.parts])
        self.local_min = (c - h).min(axis=0)
        self.local_max = (c + h).max(axis=0)
        self.local_min[1] = max(self.local_min[1], 0.0)  # parts embedded in a wall stay out of collisions

    def place(self, pos: np.ndarray, yaw: float) -> tuple[PlacedObject, _Footprint]:
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        centers_local = np.array([p[0] for p in self.parts])
        halves = np.array([p[1] for p in self.parts])
        obj = PlacedObject(self.semantic, centers_local @ rot.T + pos, halves, float(yaw), self.colors)
        mid = (self.local_min + self.local_max) / 2
        fp = _Footprint(
            center=(rot @ mid)[:2] + pos[:2],
            half=(self.local_max - self.local_min)[:2] / 2,
            yaw=float(yaw),
            z=(float(self.local_min[2]), float(self.local_max[2])),
        )
        return obj, fp

    def pos_for_center(self, center_xy: np.ndarray, yaw: float) -> np.ndarray:
        """Object origin that puts the footprint centre at `center_xy`."""
        mid = (self.local_min + self.local_max)[:2] / 2
        c, s = np.cos(yaw), np.sin(yaw)
        return np.array([center_xy[0] - (c * mid[0] - s * mid[1]), center_xy[1] - (s * mid[0] + c * mid[1]), 0.0])


class _Placer:
    """Sequential rejection sampling of object poses in a room [0, Lx] x [0, Ly]."""

    # inward normals of walls 0..3 (y = 0, x = Lx, y = Ly, x = 0) and the yaw mapping local +y onto them
    _WALL_YAW = (0.0, np.pi / 2, np.pi, -np.pi / 2)

    def __init__(self, size: np.ndarray, rng: np.random.Generator, tries: int = 40) -> None:
        self.size, self.rng, self.tries = size, rng, tries
        self.footprints: list[_Footprint] = []
        self.objects: list[PlacedObject] = []

    def _wall_frame(self, wall: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Start point, unit direction along the wall (object +x) and wall length."""
        lx, ly = self.size[0], self.size[1]
        # `along` is the object's local +x under the wall's yaw, so local offsets keep their sign
        starts = (np.array([0.0, 0.0]), np.array([lx, 0.0]), np.array([lx, ly]), np.array([0.0, ly]))
        dirs = (np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0]), np.array([0.0, -1.0]))
        return starts[wall], dirs[wall], float(lx if wall % 2 == 0 else ly)

    def _fits(self, fps: list[_Footprint]) -> bool:
        for fp in fps:
            corners = fp.corners()
            if (corners < -1e-3).any() or (corners[:, 0] > self.size[0] + 1e-3).any() or (corners[:, 1] > self.size[1] + 1e-3).any():
                return False
            if any(_overlap(fp, other) for other in self.footprints):
                return False
        return True

    def _commit(self, obj: PlacedObject | None, fps: list[_Footprint]) -> None:
        if obj is not None:
            self.objects.append(obj)
        self.footprints.extend(fps)

    def on_wall(self, cand: _Candidate, reserve_front: float = 0.0) -> _Footprint | None:
        """Back against a random wall, at a random spot or flush with a neighbour / corner."""
        rng = self.rng
        width = cand.local_max[0] - cand.local_min[0]
        for _ in range(self.tries):
            wall = int(rng.integers(4))
            start, along, length = self._wall_frame(wall)
            if width > length - 0.02:
                continue
            mode = rng.random()
            if mode < 0.25:
                u = width / 2  # into a corner
            elif mode < 0.5 and self.footprints:
                # flush against an existing object: slide along the wall to touch its extent
                other = self.footprints[int(rng.integers(len(self.footprints)))]
                proj = (other.corners() - start) @ along
                u = proj.max() + width / 2 if rng.random() < 0.5 else proj.min() - width / 2
            else:
                u = rng.uniform(width / 2, length - width / 2)
            yaw = self._WALL_YAW[wall]
            mid_x = (cand.local_min[0] + cand.local_max[0]) / 2
            p2 = start + along * (u - mid_x)
            obj, fp = cand.place(np.array([p2[0], p2[1], 0.0]), yaw)
            fps = [fp]
            if reserve_front > 0:  # keep a door's swing area free
                normal = np.array([-np.sin(yaw), np.cos(yaw)])
                fps.append(_Footprint(fp.center + normal * (fp.half[1] + reserve_front / 2),
                                      np.array([fp.half[0], reserve_front / 2]), yaw, (0.0, 2.2)))
            if self._fits(fps):
                self._commit(obj, fps)
                return fp
        return None

    def free(self, cand: _Candidate, margin: float = 0.1) -> _Footprint | None:
        rng = self.rng
        for _ in range(self.tries):
            yaw = float(rng.uniform(0, 2 * np.pi))
            center = rng.uniform(margin, self.size[:2] - margin)
            obj, fp = cand.place(cand.pos_for_center(center, yaw), yaw)
            if self._fits([fp]):
                self._commit(obj, [fp])
                return fp
        return None

    def facing(self, cand: _Candidate, target: _Footprint, gap_range: tuple[float, float] = (0.0, 0.04)) -> bool:
        """Put `cand` (e.g. a chair) against a random side of `target`, front towards it."""
        rng = self.rng
        c, s = np.cos(target.yaw), np.sin(target.yaw)
        axes = (np.array([c, s]), np.array([-s, c]))
        depth = (cand.local_max[1] - cand.local_min[1]) / 2
        for _ in range(self.tries // 4):
            k = int(rng.integers(4))
            axis, other = axes[k % 2] * (1 if k < 2 else -1), axes[1 - k % 2]
            reach = target.half[k % 2]
            lateral = target.half[1 - k % 2] * rng.uniform(-0.6, 0.6)
            center = target.center + axis * (reach + depth + rng.uniform(*gap_range)) + other * lateral
            facing_dir = -axis  # the object's +y must point at the target
            yaw = float(np.arctan2(-facing_dir[0], facing_dir[1]) + rng.normal(0, 0.05))
            obj, fp = cand.place(cand.pos_for_center(center, yaw), yaw)
            if self._fits([fp]):
                self._commit(obj, [fp])
                return True
        return False


_CLASS_WEIGHTS = {CABINET: 1.2, BED: 0.5, CHAIR: 0.5, SOFA: 0.6, TABLE: 0.8, WINDOW: 0.8,
                  BOOKSHELF: 0.8, PICTURE: 1.0, DESK: 0.7, DOOR: 0.2}
_PLACEMENT_ORDER = (DOOR, WINDOW, BED, SOFA, DESK, BOOKSHELF, CABINET, TABLE, CHAIR, PICTURE)


def _sample_classes(n: int, rng: np.random.Generator) -> list[int]:
    """A door plus n - 1 weighted draws (at most 2 beds), in placement order."""
    if n == 0:
        return []
    classes = np.array(list(_CLASS_WEIGHTS))
    p = np.array(list(_CLASS_WEIGHTS.values()))
    drawn = [DOOR] + list(rng.choice(classes, size=n - 1, p=p / p.sum()))
    beds = [i for i, c in enumerate(drawn) if c == BED][2:]
    drawn = [c if i not in beds else CABINET for i, c in enumerate(drawn)]
    return sorted((int(c) for c in drawn), key=_PLACEMENT_ORDER.index)


def generate_layout(seed: int, cfg: SyntheticConfig | None = None) -> RoomLayout:
    """The room, its furniture and the scan viewpoints of `seed` (independent of density)."""
    cfg = (cfg or SyntheticConfig()).validate()
    rng = np.random.default_rng([int(seed), 0])
    size = np.array([*rng.uniform(*cfg.room_size_range, size=2), rng.uniform(*cfg.wall_height_range)])
    placer = _Placer(size, rng)

    def candidate(sem: int) -> _Candidate:
        parts = _BUILDERS[sem](rng)
        return _Candidate(sem, parts, _object_colors(sem, [p[2] for p in parts], rng))

    n = int(rng.integers(cfg.n_objects_range[0], cfg.n_objects_range[1] + 1))
    for sem in _sample_classes(n, rng):
        cand = candidate(sem)
        if sem == DOOR:
            placer.on_wall(cand, reserve_front=0.9)
        elif sem in (WINDOW, PICTURE, BED, BOOKSHELF, CABINET):
            placer.on_wall(cand)
        elif sem == SOFA:
            if rng.random() < 0.3:
                placer.free(cand)
            else:
                placer.on_wall(cand)
        elif sem == DESK:
            fp = placer.on_wall(cand)
            if fp is not None and rng.random() < 0.7:
                placer.facing(candidate(CHAIR), fp)
        elif sem == TABLE:
            fp = placer.free(cand, margin=0.6)
            if fp is not None:
                for _ in range(int(rng.integers(1, 5))):
                    placer.facing(candidate(CHAIR), fp)
        elif sem == CHAIR:
            placer.free(cand)
    lo = np.array([cfg.viewpoint_wall_margin] * 2)
    xy = rng.uniform(lo, size[:2] - lo, size=(cfg.n_viewpoints, 2))
    z = rng.uniform(*cfg.viewpoint_height_range, size=(cfg.n_viewpoints, 1))
    shift = np.array([size[0] / 2, size[1] / 2, 0.0])
    for obj in placer.objects:
        obj.centers = obj.centers - shift
    wall = np.clip(rng.uniform(0.78, 0.95) + rng.normal(0, 0.03, 3), 0, 1)
    floor = np.clip(_WOODS[rng.integers(len(_WOODS))] + rng.normal(0, 0.05, 3), 0, 1)
    return RoomLayout(size, placer.objects, np.hstack([xy, z]) - shift, wall, floor)


# --------------------------------------------------------------------------------------------
# surfaces and point sampling


@dataclass
class _Surfaces:
    """Rectangles to sample: point = center + a * U + b * V with a, b in [-1, 1]."""

    center: np.ndarray  # (F, 3)
    u: np.ndarray  # (F, 3) half-extent vectors
    v: np.ndarray  # (F, 3)
    area: np.ndarray  # (F,)
    color: np.ndarray  # (F, 3) shaded base colour
    semantic: np.ndarray  # (F,) int64
    instance: np.ndarray  # (F,) int64 (object index, -100 for wall/floor)


def _box_faces(centers: np.ndarray, halves: np.ndarray, yaw: float) -> tuple[np.ndarray, ...]:
    """Six faces of each box: centres, half-extent vectors U, V and outward normals, (6B, 3)."""
    c, s = np.cos(yaw), np.sin(yaw)
    axes = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # box axes in world, rows
    fc, fu, fv, fn = [], [], [], []
    for a, (b, d) in enumerate(((1, 2), (0, 2), (0, 1))):
        for sign in (1.0, -1.0):
            fc.append(centers + sign * halves[:, a : a + 1] * axes[a])
            fu.append(halves[:, b : b + 1] * axes[b])
            fv.append(halves[:, d : d + 1] * axes[d])
            fn.append(np.broadcast_to(sign * axes[a], centers.shape))
    return tuple(np.concatenate(x) for x in (fc, fu, fv, fn))


def _room_surfaces(layout: RoomLayout) -> _Surfaces:
    lx, ly, h = layout.size
    hx, hy, hz = lx / 2, ly / 2, h / 2
    # floor and the inner faces of the four walls
    center = [np.array([[0, 0, 0], [0, -hy, hz], [hx, 0, hz], [0, hy, hz], [-hx, 0, hz]], float)]
    u = [np.array([[hx, 0, 0], [hx, 0, 0], [0, hy, 0], [hx, 0, 0], [0, hy, 0]], float)]
    v = [np.array([[0, hy, 0], [0, 0, hz], [0, 0, hz], [0, 0, hz], [0, 0, hz]], float)]
    normal = [np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [1, 0, 0]], float)]
    color = [np.stack([layout.floor_color] + [layout.wall_color] * 4)]
    semantic = [np.array([FLOOR, WALL, WALL, WALL, WALL])]
    instance = [np.full(5, IGNORE_LABEL)]
    for k, obj in enumerate(layout.objects):
        fc, fu, fv, fn = _box_faces(obj.centers, obj.halves, obj.yaw)
        keep = ~((fn[:, 2] < -0.5) & (fc[:, 2] < 1e-3))  # faces resting on the floor are never seen
        center.append(fc[keep])
        u.append(fu[keep])
        v.append(fv[keep])
        normal.append(fn[keep])
        color.append(np.tile(obj.colors, (6, 1))[keep])
        semantic.append(np.full(int(keep.sum()), obj.semantic))
        instance.append(np.full(int(keep.sum()), k))
    nrm = np.concatenate(normal)
    # light from above: horizontal faces up are brightest, downward faces darkest
    shade = 0.8 + 0.15 * nrm[:, 2] + 0.05 * nrm[:, 0]
    u_all, v_all = np.concatenate(u), np.concatenate(v)
    return _Surfaces(
        center=np.concatenate(center),
        u=u_all,
        v=v_all,
        area=4 * np.linalg.norm(u_all, axis=1) * np.linalg.norm(v_all, axis=1),
        color=np.clip(np.concatenate(color) * shade[:, None], 0, 1),
        semantic=np.concatenate(semantic).astype(np.int64),
        instance=np.concatenate(instance).astype(np.int64),
    )


def _sample_surfaces(surf: _Surfaces, density: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points on the rectangles: xyz (M, 3) and the face index of each (M,)."""
    counts = rng.poisson(density * surf.area)
    face = np.repeat(np.arange(len(counts)), counts)  # (M,)
    ab = rng.uniform(-1.0, 1.0, size=(face.size, 2))
    xyz = surf.center[face] + ab[:, :1] * surf.u[face] + ab[:, 1:] * surf.v[face]
    return xyz, face


# Maps sampled points (M, 3) to per-viewer visibility (V, M); a point is kept if any viewer sees it.
_VisibilityFn = Callable[[np.ndarray], np.ndarray]


def _sample_visible(
    surf: _Surfaces, cfg: SyntheticConfig, rng: np.random.Generator, visibility: _VisibilityFn
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible surface points: xyz (M, 3), face index (M,), visibility (V, M).

    With a target count, sampling is topped up in rounds (the visible fraction of the previous
    round sets the next density) until the target is passed, then thinned uniformly to it.
    """
    total_area = float(surf.area.sum())
    if cfg.target_points_range is None:
        xyz, face = _sample_surfaces(surf, cfg.density, rng)
        vis = visibility(xyz)
        keep = vis.any(axis=0)
        return xyz[keep], face[keep], vis[:, keep]
    target = int(rng.integers(cfg.target_points_range[0], cfg.target_points_range[1] + 1))
    # small instances are dropped later: aim a little above the target so thinning has room
    goal = int(np.ceil(target * 1.05))
    xyzs, faces, viss, have, visible_frac = [], [], [], 0, 0.5
    for _ in range(8):
        density = (goal - have) / (total_area * visible_frac) * 1.1 + 1.0
        xyz, face = _sample_surfaces(surf, density, rng)
        vis = visibility(xyz)
        keep = vis.any(axis=0)
        if xyz.shape[0]:
            visible_frac = max(float(keep.mean()), 0.02)
        xyzs.append(xyz[keep])
        faces.append(face[keep])
        viss.append(vis[:, keep])
        have += int(keep.sum())
        if have >= goal:
            break
    xyz, face, vis = np.concatenate(xyzs), np.concatenate(faces), np.concatenate(viss, axis=1)
    # drop remnants that would fall below min_instance_points after thinning, then thin
    scale = min(1.0, target / max(xyz.shape[0], 1))
    inst = surf.instance[face]
    small = _small_instances(inst, cfg.min_instance_points / scale)
    xyz, face, vis = xyz[~small], face[~small], vis[:, ~small]
    if xyz.shape[0] > target:
        idx = np.sort(rng.choice(xyz.shape[0], size=target, replace=False))
        xyz, face, vis = xyz[idx], face[idx], vis[:, idx]
    return xyz, face, vis


def _small_instances(instance: np.ndarray, min_points: float) -> np.ndarray:
    """(M,) bool: points of instances (>= 0) with fewer than min_points points."""
    small = np.zeros(instance.shape, bool)
    valid = instance >= 0
    if valid.any():
        ids, inverse, counts = np.unique(instance[valid], return_inverse=True, return_counts=True)
        small[valid] = counts[inverse] < min_points
    return small


def _scan_visibility(layout: RoomLayout, boxes: BoxSet, occlusion: bool) -> _VisibilityFn:
    def visible(xyz: np.ndarray) -> np.ndarray:
        if not occlusion:
            return np.ones((1, xyz.shape[0]), bool)
        seen = np.zeros(xyz.shape[0], bool)
        for vp in layout.viewpoints:
            todo = np.nonzero(~seen)[0]  # points already seen need no further ray tests
            seen[todo] = ~occluded_from(xyz[todo], vp, boxes)
        return seen[None]

    return visible


def _finish_scene(
    xyz: np.ndarray, face: np.ndarray, surf: _Surfaces, cfg: SyntheticConfig, rng: np.random.Generator, name: str
) -> tuple[Scene, np.ndarray]:
    """Labels, colours and noise for the kept points; returns the scene and the kept mask."""
    instance = surf.instance[face]
    keep = ~_small_instances(instance, cfg.min_instance_points)
    xyz, face, instance = xyz[keep], face[keep], instance[keep]
    rgb = surf.color[face] + rng.normal(0.0, cfg.color_noise, size=(face.size, 3))
    xyz = xyz + rng.normal(0.0, cfg.noise_sigma, size=xyz.shape)
    inst_ids = np.full(instance.shape, IGNORE_LABEL, np.int64)
    valid = instance >= 0
    inst_ids[valid] = np.unique(instance[valid], return_inverse=True)[1]
    scene = Scene(
        xyz=xyz.astype(np.float32),
        rgb=(np.clip(rgb, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32),
        semantic=surf.semantic[face].astype(np.int64),
        instance=inst_ids,
        superpoint=None,
        name=name,
    )
    return scene.validate(SYNTHETIC_LABELS), keep


def generate_scene(seed: int, cfg: SyntheticConfig | None = None) -> Scene:
    """A synthetic room scanned from `cfg.n_viewpoints` positions (see module docstring)."""
    cfg = (cfg or SyntheticConfig()).validate()
    layout = generate_layout(seed, cfg)
    surf = _room_surfaces(layout)
    rng = np.random.default_rng([int(seed), 1])
    boxes = BoxSet.from_objects(layout.objects)
    xyz, face, _ = _sample_visible(surf, cfg, rng, _scan_visibility(layout, boxes, cfg.occlusion))
    scene, _ = _finish_scene(xyz, face, surf, cfg, rng, f"synthetic_{int(seed):06d}")
    return scene


# --------------------------------------------------------------------------------------------
# sensor frames


def sensor_path(layout: RoomLayout, n_frames: int, sensor: SensorConfig, rng: np.random.Generator) -> np.ndarray:
    """(n_frames, 4, 4) world <- sensor poses along an ellipse, looking ahead and down."""
    margin = 0.8
    half = layout.size[:2] / 2 - margin
    radii = half * rng.uniform(0.5, 1.0, size=2)
    phase = rng.uniform(0, 2 * np.pi)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    height = rng.uniform(*sensor.height_range)
    ang = phase + direction * 2 * np.pi * sensor.loops * np.arange(n_frames) / max(n_frames, 1)
    pos = np.stack([radii[0] * np.cos(ang), radii[1] * np.sin(ang),
                    height + 0.03 * np.sin(3 * ang)], axis=1)  # (F, 3), a little bob
    tangent = direction * np.stack([-radii[0] * np.sin(ang), radii[1] * np.cos(ang)], axis=1)
    yaw = np.arctan2(tangent[:, 1], tangent[:, 0]) + rng.normal(0, 0.1, n_frames)
    pitch = np.deg2rad(sensor.pitch_down_deg) + rng.normal(0, 0.03, n_frames)
    rot = Rotation.from_euler("ZY", np.stack([yaw, pitch], axis=1)).as_matrix()  # (F, 3, 3)
    poses = np.tile(np.eye(4), (n_frames, 1, 1))
    poses[:, :3, :3] = rot
    poses[:, :3, 3] = pos
    return poses


def _in_view(points_sensor: np.ndarray, sensor: SensorConfig) -> np.ndarray:
    """(M,) bool: inside the field of view and the range window (sensor-frame points)."""
    x, y, z = points_sensor[:, 0], points_sensor[:, 1], points_sensor[:, 2]
    rng_ = np.linalg.norm(points_sensor, axis=1)
    az = np.abs(np.arctan2(y, x))
    el = np.abs(np.arctan2(z, np.hypot(x, y)))
    return ((az <= np.deg2rad(sensor.fov_h_deg) / 2) & (el <= np.deg2rad(sensor.fov_v_deg) / 2)
            & (rng_ >= sensor.min_range) & (rng_ <= sensor.max_range))


def _frame_visibility(poses: np.ndarray, sensor: SensorConfig, boxes: BoxSet, occlusion: bool) -> _VisibilityFn:
    def visible(xyz: np.ndarray) -> np.ndarray:
        vis = np.zeros((poses.shape[0], xyz.shape[0]), bool)
        for k, pose in enumerate(poses):
            local = (xyz - pose[:3, 3]) @ pose[:3, :3]  # (M, 3) sensor frame
            idx = np.nonzero(_in_view(local, sensor))[0]
            if occlusion:
                idx = idx[~occluded_from(xyz[idx], pose[:3, 3], boxes)]
            vis[k, idx] = True
        return vis

    return visible


def generate_frames(
    seed: int, cfg: SyntheticConfig | None = None, n_frames: int = 30, sensor: SensorConfig | None = None
) -> tuple[Scene, list[Frame]]:
    """The room of `seed` seen by a sensor moving along a loop: the Scene is the union of what
    the frames see (every scene point is in at least one frame) and each Frame holds its points
    in the sensor frame, their labels, their row in the Scene, the pose and a timestamp."""
    cfg = (cfg or SyntheticConfig()).validate()
    sensor = (sensor or SensorConfig()).validate()
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    layout = generate_layout(seed, cfg)
    surf = _room_surfaces(layout)
    rng = np.random.default_rng([int(seed), 2])
    poses = sensor_path(layout, n_frames, sensor, rng)
    boxes = BoxSet.from_objects(layout.objects)
    xyz, face, vis = _sample_visible(surf, cfg, rng, _frame_visibility(poses, sensor, boxes, cfg.occlusion))
    scene, keep = _finish_scene(xyz, face, surf, cfg, rng, f"synthetic_frames_{int(seed):06d}")
    vis = vis[:, keep]
    frames = []
    for k, pose in enumerate(poses):
        idx = np.nonzero(vis[k])[0].astype(np.int64)
        local = (scene.xyz[idx].astype(np.float64) - pose[:3, 3]) @ pose[:3, :3]
        frames.append(Frame(
            xyz=local.astype(np.float32),
            rgb=scene.rgb[idx],
            semantic=scene.semantic[idx],
            instance=scene.instance[idx],
            index=idx,
            pose=pose,
            stamp=float(sensor.start_stamp + k * sensor.frame_dt),
        ))
    return scene, frames
