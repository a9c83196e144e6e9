"""Randomised synthetic rooms seen by simulated robot sensors: training data that does not let a
model memorise one generator's templates.

A room (`build_room`) is a polygonal floor plan (rectangle, L, two rooms joined by an opening;
held out: U) with walls, columns, furniture of the 10 SYNTHETIC_LABELS classes drawn from several
independent shape families per class (`shape_families.py`), clutter that is NOT an instance
(labelled as the floor or wall it stands on), wall-mounted objects and randomised colours and
lighting. A scene (`generate_scene`) is one of:

- "scan": several RGB-D frames from robot-height poses, merged in the world frame;
- "frame": one RGB-D frame; "lidar": one to three rotating-LiDAR sweeps (no colour: rgb 0);
- "negative": an empty room, a clutter-only room or a cloud of uniform noise, with no instance;
- "classic": a room of the original box generator (`synthetic.generate_scene`);
- "classic_frame": one frame of that generator's moving sensor (`synthetic.generate_frames`), in
  the sensor frame, thinned to a random 4-20 k points like the frames `sphmask-bag
  record-synthetic` writes (what the demo plays into the node).

`split="train"` uses only the training families and layout styles, `split="heldout"` only the
held-out ones, so validation on held-out rooms measures generalisation to unseen shapes and
layouts. Everything is deterministic by seed. Coordinates: metres, z up, floor at z = 0.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

from . import shape_families as sf
from .primitives import BOX, CYLINDER, Primitives, rot_z
from .scene import IGNORE_LABEL, SYNTHETIC_LABELS, Scene
from .sensors import LidarConfig, RGBDConfig, SensorPoints, camera_pose, simulate_lidar, simulate_rgbd
from .synthetic import SensorConfig, SyntheticConfig, _Footprint, _overlap, generate_frames
from .synthetic import generate_scene as generate_classic_scene

WALL, FLOOR = 0, 1
SCENE_KINDS = ("classic", "scan", "frame", "lidar", "negative", "classic_frame")
SPLITS = ("train", "heldout")
ROOM_SHAPES = {"train": ("rect", "l_shape", "two_rooms"), "heldout": ("u_shape",)}
LAYOUT_STYLES = {"train": ("perimeter", "clustered"), "heldout": ("rows",)}


@dataclass
class RandomizedConfig:
    split: str = "train"  # "train": training families and styles only; "heldout": held-out ones only
    # relative frequency of classic / scan / frame / lidar / negative / classic_frame scenes
    mix: tuple[float, ...] = (0.2, 0.35, 0.15, 0.15, 0.15, 0.0)
    n_objects_range: tuple[int, int] = (6, 14)
    room_size_range: tuple[float, float] = (4.0, 8.0)
    scan_frames_range: tuple[int, int] = (4, 7)
    scan_resolution: tuple[int, int] = (128, 96)
    frame_resolution: tuple[int, int] = (192, 144)
    max_points: int = 45000  # larger scenes are thinned uniformly
    min_instance_points: int = 30  # smaller visible remnants become unlabelled
    classic_density: float = 400.0  # surface density of "classic" scenes (the shipped model's)
    # a "classic_frame" keeps this many of its points, drawn per scene: the demo plays 6-8 k,
    # record-synthetic writes up to 20 k
    classic_frame_points_range: tuple[int, int] = (4000, 20000)
    color_noise: float = 0.03

    def validate(self) -> "RandomizedConfig":
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if len(self.mix) != len(SCENE_KINDS) or min(self.mix) < 0 or sum(self.mix) <= 0:
            raise ValueError(f"mix needs {len(SCENE_KINDS)} non-negative weights {SCENE_KINDS} with a positive sum")
        if not 0 <= self.n_objects_range[0] <= self.n_objects_range[1]:
            raise ValueError(f"n_objects_range {self.n_objects_range} must be ordered and >= 0")
        if not 3.0 <= self.room_size_range[0] <= self.room_size_range[1]:
            raise ValueError(f"room_size_range {self.room_size_range} must be ordered and >= 3 m")
        if not 1 <= self.scan_frames_range[0] <= self.scan_frames_range[1]:
            raise ValueError(f"scan_frames_range {self.scan_frames_range} must be ordered and >= 1")
        if self.max_points < 100 or self.min_instance_points < 1:
            raise ValueError("max_points must be >= 100 and min_instance_points >= 1")
        if not 100 <= self.classic_frame_points_range[0] <= self.classic_frame_points_range[1]:
            raise ValueError(f"classic_frame_points_range {self.classic_frame_points_range} must be ordered and >= 100")
        return self


# ------------------------------------------------------------------------------- floor plan


@dataclass
class FloorPlan:
    polygon: np.ndarray  # (V, 2) counter-clockwise, axis-aligned edges
    partitions: list[tuple[np.ndarray, np.ndarray]]  # interior wall segments (start (2,), end (2,))
    height: float

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """(N,) bool, even-odd rule."""
        x, y = xy[:, 0:1], xy[:, 1:2]
        a, b = self.polygon, np.roll(self.polygon, -1, axis=0)
        cross = (a[None, :, 1] > y) != (b[None, :, 1] > y)
        xint = a[None, :, 0] + (y - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / np.where(
            b[None, :, 1] == a[None, :, 1], 1e-12, b[None, :, 1] - a[None, :, 1])
        return ((cross & (x < xint)).sum(1) % 2) == 1

    def edges(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
        """Walls: start, unit direction, inward normal, length."""
        out = []
        for a, b in zip(self.polygon, np.roll(self.polygon, -1, axis=0)):
            d = b - a
            length = float(np.linalg.norm(d))
            u = d / length
            out.append((a, u, np.array([-u[1], u[0]]), length))  # CCW: inside is on the left
        return out


def _floor_plan(shape: str, rng: np.random.Generator, size_range: tuple[float, float]) -> FloorPlan:
    lx, ly = rng.uniform(*size_range, size=2)
    h = rng.uniform(2.5, 3.1)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    if shape == "rect" or shape == "two_rooms":
        poly = [(0, 0), (lx, 0), (lx, ly), (0, ly)]
        if shape == "two_rooms":
            lx = lx * 1.5
            poly = [(0, 0), (lx, 0), (lx, ly), (0, ly)]
            x = lx * rng.uniform(0.4, 0.6)
            gap = rng.uniform(0.9, 1.6)
            y0 = rng.uniform(0.3, ly - gap - 0.3)
            parts = [(np.array([x, 0.0]), np.array([x, y0])), (np.array([x, y0 + gap]), np.array([x, ly]))]
    elif shape == "l_shape":
        ax, ay = lx * rng.uniform(0.3, 0.5), ly * rng.uniform(0.3, 0.5)
        poly = [(0, 0), (lx, 0), (lx, ly - ay), (lx - ax, ly - ay), (lx - ax, ly), (0, ly)]
    elif shape == "u_shape":
        lx = max(lx, 5.0)
        x1, x2 = lx * rng.uniform(0.3, 0.4), lx * rng.uniform(0.6, 0.7)
        ny = ly * rng.uniform(0.3, 0.45)
        poly = [(0, 0), (lx, 0), (lx, ly), (x2, ly), (x2, ly - ny), (x1, ly - ny), (x1, ly), (0, ly)]
    else:
        raise ValueError(f"unknown room shape {shape!r}")
    p = np.array(poly, float)
    shift = p.max(axis=0) / 2  # centre the room on x = y = 0
    return FloorPlan(p - shift, [(a - shift, b - shift) for a, b in parts], h)


# ------------------------------------------------------------------------------------ objects


@dataclass
class _Object:
    semantic: int  # class of the instance, or FLOOR / WALL for clutter and columns
    instance: bool
    parts: list[sf.Part]
    family: str
    lo: np.ndarray = field(init=False)  # (3,) local bounds
    hi: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        c = np.array([p[1] for p in self.parts])
        ext = np.array([np.abs(p[3]) @ p[2] for p in self.parts])  # (B, 3) conservative half extents
        self.lo, self.hi = (c - ext).min(axis=0), (c + ext).max(axis=0)
        self.lo[1] = max(self.lo[1], 0.0) if self.semantic in sf.WALL_MOUNTED or self.lo[1] > -0.05 else self.lo[1]


@dataclass
class _Placed:
    obj: _Object
    pos: np.ndarray  # (3,)
    yaw: float
    fp: _Footprint


class _Placer:
    def __init__(self, plan: FloorPlan, rng: np.random.Generator, tries: int = 30) -> None:
        self.plan, self.rng, self.tries = plan, rng, tries
        self.placed: list[_Placed] = []
        self.blocked: list[_Footprint] = []
        for a, b in plan.partitions:  # interior walls block furniture
            mid, d = (a + b) / 2, b - a
            yaw = float(np.arctan2(d[1], d[0]))
            self.blocked.append(_Footprint(mid, np.array([np.linalg.norm(d) / 2, 0.06]), yaw, (0.0, 5.0)))

    def _footprint(self, obj: _Object, pos: np.ndarray, yaw: float) -> _Footprint:
        mid = (obj.lo + obj.hi) / 2
        rot = rot_z(yaw)
        return _Footprint((rot @ mid)[:2] + pos[:2], (obj.hi - obj.lo)[:2] / 2, yaw,
                          (float(obj.lo[2] + pos[2]), float(obj.hi[2] + pos[2])))

    def _fits(self, fp: _Footprint, wall_mounted: bool) -> bool:
        c = fp.corners()
        pts = np.vstack([c, (c + np.roll(c, 1, axis=0)) / 2, fp.center[None]])
        if wall_mounted:  # the back edge lies on the wall: test points pulled slightly inwards
            pts = fp.center + (pts - fp.center) * 0.9
        if not self.plan.contains(pts).all():
            return False
        others = [p.fp for p in self.placed] + self.blocked
        return not any(_overlap(fp, o) for o in others)

    def _commit(self, obj: _Object, pos: np.ndarray, yaw: float, fp: _Footprint) -> _Placed:
        placed = _Placed(obj, pos, yaw, fp)
        self.placed.append(placed)
        return placed

    def on_wall(self, obj: _Object, z: float = 0.0, gap: float = 0.0) -> _Placed | None:
        width = obj.hi[0] - obj.lo[0]
        edges = self.plan.edges()
        for _ in range(self.tries):
            start, u, n, length = edges[int(self.rng.integers(len(edges)))]
            if width > length - 0.05:
                continue
            s = self.rng.uniform(width / 2, length - width / 2)
            yaw = float(np.arctan2(-n[0], n[1]))  # local +y onto the inward normal
            xy = start + u * (s - (obj.lo[0] + obj.hi[0]) / 2) + n * gap
            pos = np.array([xy[0], xy[1], z])
            fp = self._footprint(obj, pos, yaw)
            if self._fits(fp, True):
                return self._commit(obj, pos, yaw, fp)
        return None

    def free(self, obj: _Object, center: np.ndarray | None = None, yaw: float | None = None,
             jitter: float = 0.0) -> _Placed | None:
        lo, hi = self.plan.polygon.min(axis=0), self.plan.polygon.max(axis=0)
        for _ in range(self.tries):
            y = float(self.rng.uniform(0, 2 * np.pi)) if yaw is None else yaw + self.rng.normal(0, 0.05)
            c = self.rng.uniform(lo + 0.3, hi - 0.3) if center is None else center + self.rng.normal(0, jitter, 2)
            mid = (obj.lo + obj.hi)[:2] / 2
            rot = rot_z(y)[:2, :2]
            xy = c - rot @ mid
            pos = np.array([xy[0], xy[1], 0.0])
            fp = self._footprint(obj, pos, y)
            if self._fits(fp, False):
                return self._commit(obj, pos, y, fp)
            if center is not None and jitter == 0.0:
                return None
        return None

    def facing(self, obj: _Object, target: _Placed) -> _Placed | None:
        fp = target.fp
        c, s = np.cos(fp.yaw), np.sin(fp.yaw)
        axes = (np.array([c, s]), np.array([-s, c]))
        depth = (obj.hi[1] - obj.lo[1]) / 2
        for _ in range(max(self.tries // 4, 3)):
            k = int(self.rng.integers(4))
            axis, other = axes[k % 2] * (1 if k < 2 else -1), axes[1 - k % 2]
            center = fp.center + axis * (fp.half[k % 2] + depth + self.rng.uniform(0.0, 0.1)) \
                + other * fp.half[1 - k % 2] * self.rng.uniform(-0.6, 0.6)
            yaw = float(np.arctan2(axis[0], -axis[1]) + self.rng.normal(0, 0.08))  # +y towards the target
            placed = self.free(obj, center, yaw)
            if placed is not None:
                return placed
        return None


def _make(semantic: int, split: str, rng: np.random.Generator) -> _Object:
    fams = sf.families_of(semantic, split == "heldout")
    fam = fams[int(rng.integers(len(fams)))]
    return _Object(semantic, True, fam.build(rng), fam.name)


def _clutter(builders: tuple, stuff: int, rng: np.random.Generator) -> _Object:
    b = builders[int(rng.integers(len(builders)))]
    return _Object(stuff, False, b(rng), b.__name__)


_CLASS_WEIGHTS = {sf.CABINET: 1.2, sf.BED: 0.5, sf.CHAIR: 0.6, sf.SOFA: 0.6, sf.TABLE: 0.8, sf.WINDOW: 0.9,
                  sf.BOOKSHELF: 0.8, sf.PICTURE: 1.0, sf.DESK: 0.7, sf.DOOR: 0.3}


def _draw_classes(n: int, rng: np.random.Generator) -> list[int]:
    if n == 0:
        return []
    cls = np.array(list(_CLASS_WEIGHTS))
    p = np.array(list(_CLASS_WEIGHTS.values()))
    return [sf.DOOR] + [int(c) for c in rng.choice(cls, size=n - 1, p=p / p.sum())]


def _place_wall_item(pl: _Placer, obj: _Object) -> _Placed | None:
    return pl.on_wall(obj)


def _layout_perimeter(pl: _Placer, classes: list[int], split: str, rng: np.random.Generator) -> None:
    for sem in sorted(classes, key=lambda c: (c not in sf.WALL_MOUNTED, c)):
        obj = _make(sem, split, rng)
        if sem in sf.WALL_MOUNTED or sem in (sf.BED, sf.BOOKSHELF):
            pl.on_wall(obj)
        elif sem == sf.CABINET:
            if obj.hi[2] < 0.9 and rng.random() < 0.25:  # wall-mounted cabinet
                pl.on_wall(obj, z=float(rng.uniform(1.35, 1.7)))
            else:
                pl.on_wall(obj)
        elif sem == sf.DESK:
            d = pl.on_wall(obj)
            if d is not None and rng.random() < 0.7:
                pl.facing(_make(sf.CHAIR, split, rng), d)
        elif sem == sf.TABLE:
            t = pl.free(obj)
            if t is not None:
                for _ in range(int(rng.integers(1, 5))):
                    pl.facing(_make(sf.CHAIR, split, rng), t)
        elif sem == sf.SOFA:
            (pl.free if rng.random() < 0.3 else pl.on_wall)(obj)
        else:
            pl.free(obj)


def _layout_clustered(pl: _Placer, classes: list[int], split: str, rng: np.random.Generator) -> None:
    """Groups: bed between nightstands, sofa facing a low table, pairs of desks back to back."""
    rest = []
    for sem in classes:
        if sem == sf.BED:
            bed = pl.on_wall(_make(sf.BED, split, rng))
            if bed is not None:
                for side in (-1, 1):
                    ns = _make(sf.CABINET, split, rng)
                    w = bed.obj.hi[0] - bed.obj.lo[0]
                    along = np.array([np.cos(bed.yaw), np.sin(bed.yaw)])
                    c = bed.fp.center - bed.fp.half[1] * np.array([-np.sin(bed.yaw), np.cos(bed.yaw)]) \
                        + along * side * (w / 2 + (ns.hi[0] - ns.lo[0]) / 2 + 0.05)
                    c = c + np.array([-np.sin(bed.yaw), np.cos(bed.yaw)]) * (ns.hi[1] - ns.lo[1]) / 2
                    pl.free(ns, c, bed.yaw, jitter=0.02)
        elif sem == sf.SOFA:
            sofa = pl.free(_make(sf.SOFA, split, rng))
            if sofa is not None:
                front = np.array([-np.sin(sofa.yaw), np.cos(sofa.yaw)])
                t = _make(sf.TABLE, split, rng)
                pl.free(t, sofa.fp.center + front * (sofa.fp.half[1] + 0.6), sofa.yaw, jitter=0.05)
        elif sem == sf.DESK:
            a = pl.free(_make(sf.DESK, split, rng))
            if a is not None:
                back = -np.array([-np.sin(a.yaw), np.cos(a.yaw)])
                b = _make(sf.DESK, split, rng)
                b_placed = pl.free(b, a.fp.center + back * (a.fp.half[1] + (b.hi[1] - b.lo[1]) / 2 + 0.02),
                                   a.yaw + np.pi, jitter=0.01)
                for d in (a, b_placed):
                    if d is not None:
                        pl.facing(_make(sf.CHAIR, split, rng), d)
        else:
            rest.append(sem)
    _layout_perimeter(pl, rest, split, rng)


def _layout_rows(pl: _Placer, classes: list[int], split: str, rng: np.random.Generator) -> None:
    """Held-out style: desks or tables in a grid of rows facing one way, a chair behind each,
    bookshelves as free-standing room dividers, the rest on the walls."""
    lo, hi = pl.plan.polygon.min(axis=0), pl.plan.polygon.max(axis=0)
    n_rows, n_cols = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    yaw = float(rng.choice([0.0, np.pi / 2, np.pi, -np.pi / 2]))
    kind = sf.DESK if rng.random() < 0.6 else sf.TABLE
    for i in range(n_rows):
        for j in range(n_cols):
            c = lo + (hi - lo) * np.array([(j + 0.5) / n_cols, (i + 0.5) / n_rows])
            d = pl.free(_make(kind, split, rng), c, yaw, jitter=0.1)
            if d is not None and rng.random() < 0.8:
                pl.facing(_make(sf.CHAIR, split, rng), d)
    for sem in classes[: max(len(classes) - n_rows * n_cols // 2, 1)]:
        obj = _make(sem, split, rng)
        if sem == sf.BOOKSHELF and rng.random() < 0.5:
            pl.free(obj)
        elif sem in (sf.CHAIR, sf.TABLE, sf.DESK):
            continue
        else:
            pl.on_wall(obj)


_LAYOUTS = {"perimeter": _layout_perimeter, "clustered": _layout_clustered, "rows": _layout_rows}


# ---------------------------------------------------------------------------------- the room


@dataclass
class Room:
    plan: FloorPlan
    prims: Primitives
    shape: str
    style: str
    families: list[str]  # shape family of each instance, in instance order
    n_instances: int
    light: np.ndarray  # (3,) unit direction towards the key light
    ambient: float
    tint: np.ndarray  # (3,) colour of the light


def _palette(role: str, rng: np.random.Generator) -> np.ndarray:
    if role == "metal":
        g = rng.uniform(0.25, 0.8)
        return np.clip(np.array([g, g, g * rng.uniform(0.95, 1.1)]), 0, 1)
    if role == "glass":
        return np.clip(np.array([0.55, 0.68, 0.8]) + rng.normal(0, 0.07, 3), 0, 1)
    sat = {"main": (0.0, 0.7), "accent": (0.0, 0.6), "soft": (0.0, 0.5), "vivid": (0.3, 1.0)}[role]
    hsv = (rng.random(), rng.uniform(*sat), rng.uniform(0.15, 0.95))
    return np.array(colorsys.hsv_to_rgb(*hsv))


def _object_prims(p: _Placed, instance: int, rng: np.random.Generator) -> Primitives:
    colors = {role: _palette(role, rng) for role in sf.ROLES}
    rot = rot_z(p.yaw)
    parts = p.obj.parts
    return Primitives(
        kind=np.array([q[0] for q in parts], np.int64),
        center=np.array([rot @ q[1] for q in parts]) + p.pos,
        rot=np.array([rot @ q[3] for q in parts]),
        half=np.array([q[2] for q in parts]),
        color=np.array([np.clip(colors[q[4]] + rng.normal(0, 0.03, 3), 0, 1) for q in parts]),
        semantic=np.full(len(parts), p.obj.semantic, np.int64),
        instance=np.full(len(parts), instance if p.obj.instance else IGNORE_LABEL, np.int64),
    )


def _stuff_prim(kind: int, center, half, yaw: float, color, semantic: int) -> Primitives:
    return Primitives(np.array([kind]), np.array([center], float), rot_z(yaw)[None], np.array([half], float),
                      np.array([color], float), np.array([semantic]), np.array([IGNORE_LABEL]))


def _shell(plan: FloorPlan, rng: np.random.Generator) -> list[Primitives]:
    """Floor, walls, interior partitions and columns (all stuff)."""
    wall_c = np.clip(rng.uniform(0.6, 0.95) + rng.normal(0, 0.05, 3), 0, 1)
    floor_c = _palette("main", rng)
    lo, hi = plan.polygon.min(axis=0), plan.polygon.max(axis=0)
    out = [_stuff_prim(BOX, [*(lo + hi) / 2, -0.05], [*(hi - lo) / 2 + 0.2, 0.05], 0.0, floor_c, FLOOR)]
    h = plan.height
    for start, u, n, length in plan.edges():
        mid = start + u * length / 2 - n * 0.05
        out.append(_stuff_prim(BOX, [mid[0], mid[1], h / 2], [length / 2 + 0.1, 0.05, h / 2],
                               float(np.arctan2(u[1], u[0])), wall_c, WALL))
    for a, b in plan.partitions:
        d = b - a
        mid = (a + b) / 2
        out.append(_stuff_prim(BOX, [mid[0], mid[1], h / 2], [np.linalg.norm(d) / 2, 0.05, h / 2],
                               float(np.arctan2(d[1], d[0])), wall_c, WALL))
    return out


def _columns(pl: _Placer, rng: np.random.Generator) -> list[Primitives]:
    out = []
    for _ in range(int(rng.integers(0, 3))):
        r = rng.uniform(0.12, 0.3)
        col = _Object(WALL, False, [(CYLINDER if rng.random() < 0.5 else BOX, np.array([0.0, r, pl.plan.height / 2]),
                                     np.array([r, r, pl.plan.height / 2]), np.eye(3), "main")], "column")
        p = pl.free(col) if rng.random() < 0.5 else pl.on_wall(col)
        if p is not None:
            pl.placed.remove(p)  # columns stay obstacles but are emitted as stuff below
            pl.blocked.append(p.fp)
            out.append(_object_prims(p, IGNORE_LABEL, rng))
    return out


def build_room(seed: int, split: str = "train", n_objects: tuple[int, int] = (6, 14),
               size_range: tuple[float, float] = (4.0, 8.0), furniture: bool = True, clutter: bool = True) -> Room:
    """The solids of the room of `seed`: shell, columns, furniture, clutter, and its lighting."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([int(seed), 10])
    shape = ROOM_SHAPES[split][int(rng.integers(len(ROOM_SHAPES[split])))]
    style = LAYOUT_STYLES[split][int(rng.integers(len(LAYOUT_STYLES[split])))]
    plan = _floor_plan(shape, rng, size_range)
    pl = _Placer(plan, rng)
    prims = _shell(plan, rng) + _columns(pl, rng)
    if furniture:
        _LAYOUTS[style](pl, _draw_classes(int(rng.integers(n_objects[0], n_objects[1] + 1)), rng), split, rng)
    n_inst = len(pl.placed)
    if clutter:
        for p in list(pl.placed[:n_inst]):  # things on tops of tables, desks, cabinets, shelves
            if p.obj.semantic in (sf.TABLE, sf.DESK, sf.CABINET, sf.BOOKSHELF, sf.BED) and rng.random() < 0.6:
                for _ in range(int(rng.integers(1, 4))):
                    c = _clutter(sf.SURFACE_CLUTTER, FLOOR, rng)
                    local = rng.uniform(p.obj.lo[:2] + 0.05, np.maximum(p.obj.hi[:2] - 0.05, p.obj.lo[:2] + 0.06))
                    yaw = p.yaw + rng.uniform(-np.pi, np.pi)
                    xy = p.pos[:2] + rot_z(p.yaw)[:2, :2] @ local - rot_z(yaw)[:2, :2] @ ((c.lo + c.hi)[:2] / 2)
                    pl.placed.append(_Placed(c, np.array([xy[0], xy[1], p.pos[2] + p.obj.hi[2]]), yaw, p.fp))
        for _ in range(int(rng.integers(0, 7))):
            pl.free(_clutter(sf.FLOOR_CLUTTER, FLOOR, rng))
        for _ in range(int(rng.integers(0, 4))):
            pl.on_wall(_clutter(sf.WALL_CLUTTER, WALL, rng))
    instances = [p for p in pl.placed if p.obj.instance]
    stuff = [p for p in pl.placed if not p.obj.instance]
    prims += [_object_prims(p, k, rng) for k, p in enumerate(instances)]
    prims += [_object_prims(p, IGNORE_LABEL, rng) for p in stuff]
    el, az = rng.uniform(0.4, 1.4), rng.uniform(0, 2 * np.pi)
    light = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    t = rng.uniform(-0.12, 0.12)
    return Room(plan, Primitives.concat(prims), shape, style, [p.obj.family for p in instances], len(instances),
                light, float(rng.uniform(0.35, 0.65)), np.array([1 + t, 1.0, 1 - t]))


# -------------------------------------------------------------------------------- sensing


def _free_positions(room: Room, n: int, heights: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """(n, 3) sensor positions inside the room and outside every solid's bounding sphere."""
    lo, hi = room.plan.polygon.min(axis=0), room.plan.polygon.max(axis=0)
    p = room.prims
    solid = p.semantic != FLOOR
    out = []
    for _ in range(50 * n):
        xy = rng.uniform(lo + 0.4, hi - 0.4)
        if not room.plan.contains(xy[None])[0]:
            continue
        pos = np.array([xy[0], xy[1], rng.uniform(*heights)])
        # keep clear of walls and furniture (bounding spheres are conservative)
        rel = np.einsum("pji,pj->pi", p.rot[solid], pos - p.center[solid]) / p.half[solid]
        inside_box = (np.abs(rel) <= 1.0 + 0.3 / np.maximum(p.half[solid], 0.05)).all(axis=1)
        if not inside_box.any():
            out.append(pos)
            if len(out) == n:
                break
    while len(out) < n:  # fall back to the room centre region at the top of the range
        out.append(np.array([*(lo + hi) / 2, heights[1]]))
    return np.array(out)


def _shade(room: Room, pts: SensorPoints, gain: float, rng: np.random.Generator, noise: float) -> np.ndarray:
    """(M, 3) colours 0..1: base colour x (ambient + diffuse key light) x light tint x exposure."""
    base = room.prims.color[np.maximum(pts.prim, 0)]
    diffuse = np.clip(pts.normal @ room.light, 0.0, 1.0)
    shade = room.ambient + (1 - room.ambient) * diffuse
    rgb = base * shade[:, None] * room.tint * gain
    rgb = np.where(pts.prim[:, None] < 0, rng.uniform(0, 1, (len(rgb), 3)), rgb)  # flying pixels: mixed colours
    return np.clip(rgb + rng.normal(0, noise, rgb.shape), 0, 1)


def _to_scene(room: Room, pts: list[SensorPoints], rgbs: list[np.ndarray], cfg: RandomizedConfig,
              rng: np.random.Generator, name: str) -> Scene:
    xyz = np.concatenate([p.xyz for p in pts]) if pts else np.zeros((0, 3))
    prim = np.concatenate([p.prim for p in pts]) if pts else np.zeros(0, np.int64)
    rgb = np.concatenate(rgbs) if rgbs else np.zeros((0, 3))
    if xyz.shape[0] > cfg.max_points:
        idx = np.sort(rng.choice(xyz.shape[0], cfg.max_points, replace=False))
        xyz, prim, rgb = xyz[idx], prim[idx], rgb[idx]
    valid = prim >= 0
    semantic = np.where(valid, room.prims.semantic[np.maximum(prim, 0)], IGNORE_LABEL)
    instance = np.where(valid, room.prims.instance[np.maximum(prim, 0)], IGNORE_LABEL)
    return _labelled_scene(xyz, rgb, semantic, instance, cfg.min_instance_points, name)


def _labelled_scene(xyz: np.ndarray, rgb01: np.ndarray, semantic: np.ndarray, instance: np.ndarray,
                    min_points: int, name: str) -> Scene:
    inst = np.full(instance.shape, IGNORE_LABEL, np.int64)
    valid = instance >= 0
    if valid.any():
        ids, inverse, counts = np.unique(instance[valid], return_inverse=True, return_counts=True)
        small = counts[inverse] < min_points
        vi = np.nonzero(valid)[0]
        semantic = semantic.copy()
        semantic[vi[small]] = IGNORE_LABEL  # remnants too small to segment carry no label
        kept = ~small
        inst[vi[kept]] = np.unique(inverse[kept], return_inverse=True)[1]
    return Scene(xyz=xyz.astype(np.float32), rgb=(np.clip(rgb01, 0, 1) * 2 - 1).astype(np.float32),
                 semantic=semantic.astype(np.int64), instance=inst, superpoint=None, name=name).validate(SYNTHETIC_LABELS)


def _rgbd_cfg(res: tuple[int, int], rng: np.random.Generator) -> RGBDConfig:
    return RGBDConfig(width=res[0], height=res[1], fov_h_deg=float(rng.uniform(58, 90)),
                      max_range=float(rng.uniform(4.0, 8.0)), noise_a=float(rng.uniform(0.001, 0.004)),
                      noise_b=float(rng.uniform(0.001, 0.005)), blob_holes=float(rng.uniform(0.0, 0.12)),
                      flying_prob=float(rng.uniform(0.2, 0.8))).validate()


def rgbd_views(room: Room, n: int, res: tuple[int, int], rng: np.random.Generator,
               noise: float = 0.03) -> tuple[list[SensorPoints], list[np.ndarray], list[np.ndarray]]:
    """n RGB-D frames from robot-height poses (0.4-1.6 m, pitched 0-35 degrees down)."""
    pos = _free_positions(room, n, (0.4, 1.6), rng)
    pts, rgbs, poses = [], [], []
    for p in pos:
        pose = camera_pose(p, float(rng.uniform(-np.pi, np.pi)), float(np.deg2rad(rng.uniform(0, 35))),
                           float(rng.normal(0, 0.03)))
        sp = simulate_rgbd(pose, room.prims, _rgbd_cfg(res, rng), rng)
        pts.append(sp)
        rgbs.append(_shade(room, sp, float(rng.uniform(0.7, 1.3)), rng, noise))
        poses.append(pose)
    return pts, rgbs, poses


def lidar_sweeps(room: Room, n: int, rng: np.random.Generator) -> tuple[list[SensorPoints], list[np.ndarray]]:
    pos = _free_positions(room, n, (0.3, 1.2), rng)
    n_beams = int(rng.choice([16, 32]))
    lo = float(rng.uniform(-30, -15))
    cfg = LidarConfig(n_beams=n_beams, elevation_deg=(lo, float(rng.uniform(10, 20))),
                      azimuth_steps=int(rng.choice([720, 1024, 1440])), range_sigma=float(rng.uniform(0.005, 0.03)),
                      dropout=float(rng.uniform(0.0, 0.15))).validate()
    pts = []
    for p in pos:
        pose = camera_pose(p, float(rng.uniform(-np.pi, np.pi)), float(rng.normal(0, 0.02)), float(rng.normal(0, 0.02)))
        pts.append(simulate_lidar(pose, room.prims, cfg, rng))
    return pts, [np.full((len(s.xyz), 3), 0.5) for s in pts]  # rgb 0 on the [-1, 1] scale: no colour


def noise_scene(seed: int, n_points: int | None = None) -> Scene:
    """Uniform random points with random colours in a random box: nothing to segment."""
    rng = np.random.default_rng([int(seed), 13])
    n = int(rng.integers(5000, 50000)) if n_points is None else int(n_points)
    ext = rng.uniform(1.0, 8.0, 3)
    xyz = rng.uniform(0, 1, (n, 3)) * ext - np.array([ext[0] / 2, ext[1] / 2, 0.0])
    rgb = rng.uniform(0, 1, (n, 3)) if rng.random() < 0.8 else np.full((n, 3), 0.5)
    return _labelled_scene(xyz, rgb, np.full(n, WALL), np.full(n, IGNORE_LABEL), 1, f"noise_{int(seed):06d}")


def scene_kind(seed: int, cfg: RandomizedConfig) -> str:
    rng = np.random.default_rng([int(seed), 11])
    p = np.asarray(cfg.mix, float)
    return SCENE_KINDS[int(rng.choice(len(SCENE_KINDS), p=p / p.sum()))]


def generate_scene(seed: int, cfg: RandomizedConfig | None = None, kind: str | None = None) -> Scene:
    """The randomised scene of `seed`; its kind comes from `cfg.mix` unless `kind` is given."""
    cfg = (cfg or RandomizedConfig()).validate()
    kind = scene_kind(seed, cfg) if kind is None else kind
    if kind not in SCENE_KINDS:
        raise ValueError(f"kind must be one of {SCENE_KINDS}, got {kind!r}")
    rng = np.random.default_rng([int(seed), 12])
    name = f"randomized_{cfg.split}_{kind}_{int(seed):06d}"
    if kind == "classic":
        scene = generate_classic_scene(seed, SyntheticConfig(density=cfg.classic_density))
        scene.name = name
        return scene
    if kind == "classic_frame":
        return classic_frame_scene(seed, cfg, rng, name)
    if kind == "negative":
        return negative_scene(seed, cfg, NEGATIVE_VARIANTS[int(rng.integers(3))], rng)
    room = build_room(seed, cfg.split, cfg.n_objects_range, cfg.room_size_range)
    return _sense(room, kind, cfg, rng, name)


NEGATIVE_VARIANTS = ("empty", "clutter", "noise")


def classic_frame_scene(seed: int, cfg: RandomizedConfig, rng: np.random.Generator, name: str) -> Scene:
    """One frame, at a random step of its path, of the original generator's moving sensor: points
    in the sensor frame, at the density `record-synthetic` uses, capped to a sorted random subset."""
    n_frames = 6  # visibility is computed per frame: a short path is as varied and 5x cheaper
    _, frames = generate_frames(seed, SyntheticConfig(density=1000.0), n_frames, SensorConfig())
    f = frames[int(rng.integers(n_frames))]
    lo, hi = cfg.classic_frame_points_range
    cap = int(rng.integers(lo, hi + 1))
    keep = np.arange(f.xyz.shape[0])
    if keep.size > cap:
        keep = np.sort(rng.choice(keep.size, size=cap, replace=False))
    rgb01 = (f.rgb[keep].astype(np.float64) + 1.0) / 2.0
    return _labelled_scene(f.xyz[keep], rgb01, f.semantic[keep].copy(), f.instance[keep],
                           cfg.min_instance_points, name)


def negative_scene(seed: int, cfg: RandomizedConfig | None = None, variant: str = "empty",
                   rng: np.random.Generator | None = None) -> Scene:
    """A scene without instances: an empty room (shell, columns), a room of clutter only, or noise;
    rooms are scanned like "scan" scenes."""
    cfg = (cfg or RandomizedConfig()).validate()
    if variant not in NEGATIVE_VARIANTS:
        raise ValueError(f"variant must be one of {NEGATIVE_VARIANTS}, got {variant!r}")
    rng = np.random.default_rng([int(seed), 12]) if rng is None else rng
    name = f"randomized_{cfg.split}_negative_{int(seed):06d}"
    if variant == "noise":
        scene = noise_scene(seed)
        scene.name = name
        return scene
    room = build_room(seed, cfg.split, cfg.n_objects_range, cfg.room_size_range, furniture=False,
                      clutter=variant == "clutter")
    return _sense(room, "scan", cfg, rng, name)


def _sense(room: Room, kind: str, cfg: RandomizedConfig, rng: np.random.Generator, name: str) -> Scene:
    if kind == "scan":
        n = int(rng.integers(cfg.scan_frames_range[0], cfg.scan_frames_range[1] + 1))
        pts, rgbs, _ = rgbd_views(room, n, cfg.scan_resolution, rng, cfg.color_noise)
    elif kind == "frame":
        pts, rgbs, _ = rgbd_views(room, 1, cfg.frame_resolution, rng, cfg.color_noise)
    else:
        pts, rgbs = lidar_sweeps(room, int(rng.integers(1, 4)), rng)
    return _to_scene(room, pts, rgbs, cfg, rng, name)
