"""Independent shape families of the 10 furniture classes (and of non-instance clutter).

Each family is one builder function that draws its own proportions from the generator and returns
the object's solids in the object frame (back plane y = 0, front towards +y, centred on x = 0,
floor z = 0; wall-mounted objects: the wall plane is y = 0). Families of a class share no code
but the three solid constructors `_b`, `_c`, `_e`: the held-out families (`heldout=True`) are a
true generalisation test, never a variant of a training family (tests check the code paths).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .primitives import BOX, CYLINDER, ELLIPSOID, rot_x, rot_y, rot_z

CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF, PICTURE, DESK = range(2, 12)

# kind, centre (3,), half extents (3,), rotation object <- part (3, 3), colour role
Part = tuple[int, np.ndarray, np.ndarray, np.ndarray, str]
ROLES = ("main", "accent", "soft", "metal", "glass", "vivid")


def _b(c: tuple, size: tuple, role: str = "main", rot: np.ndarray | None = None) -> Part:
    """Box from its centre and full sizes."""
    return BOX, np.asarray(c, float), np.asarray(size, float) / 2, np.eye(3) if rot is None else rot, role


def _c(c: tuple, rx: float, ry: float, h: float, role: str = "main", rot: np.ndarray | None = None) -> Part:
    """Elliptic cylinder (radii rx, ry, length h) along the part's z axis."""
    return CYLINDER, np.asarray(c, float), np.array([rx, ry, h / 2]), np.eye(3) if rot is None else rot, role


def _e(c: tuple, rx: float, ry: float, rz: float, role: str = "soft", rot: np.ndarray | None = None) -> Part:
    return ELLIPSOID, np.asarray(c, float), np.array([rx, ry, rz]), np.eye(3) if rot is None else rot, role


U = np.random.Generator


# ------------------------------------------------------------------------------------ cabinet


def cabinet_plinth_box(r: U) -> list[Part]:
    w, d = r.uniform(0.4, 1.2), r.uniform(0.35, 0.6)
    h = r.uniform(1.4, 2.0) if r.random() < 0.35 else r.uniform(0.5, 1.0)
    parts = [_b((0, d / 2 - 0.02, 0.04), (w - 0.04, d - 0.04, 0.08), "accent"),
             _b((0, d / 2, 0.08 + (h - 0.08) / 2), (w, d, h - 0.08))]
    n_doors = int(r.integers(1, 3))
    for i in range(n_doors):
        x = -w / 2 + w * (i + 0.5) / n_doors + (w / n_doors / 4) * (1 if i % 2 == 0 else -1)
        parts.append(_b((x, d + 0.01, 0.08 + 0.7 * (h - 0.08)), (0.02, 0.02, 0.12), "metal"))
    return parts


def cabinet_legged_sideboard(r: U) -> list[Part]:
    w, d, body = r.uniform(0.9, 1.8), r.uniform(0.4, 0.5), r.uniform(0.45, 0.7)
    leg = r.uniform(0.12, 0.25)
    parts = [_b((0, d / 2, leg + body / 2), (w, d, body))]
    for x in (-w / 2 + 0.06, w / 2 - 0.06):
        for y in (0.06, d - 0.06):
            parts.append(_c((x, y, leg / 2), 0.018, 0.018, leg, "accent"))
    n_drawers = int(r.integers(2, 5))
    for i in range(n_drawers):  # drawer fronts stand a little proud
        x = -w / 2 + w * (i + 0.5) / n_drawers
        parts.append(_b((x, d + 0.008, leg + body / 2), (w / n_drawers - 0.02, 0.016, body - 0.04), "accent"))
    return parts


def cabinet_nightstand(r: U) -> list[Part]:
    w, d, h = r.uniform(0.35, 0.55), r.uniform(0.3, 0.45), r.uniform(0.45, 0.65)
    over = r.uniform(0.01, 0.04)
    return [_b((0, d / 2, (h - 0.03) / 2), (w, d, h - 0.03)),
            _b((0, d / 2 + over / 2, h - 0.015), (w + 2 * over, d + over, 0.03), "accent"),
            _b((0, d + 0.012, h * 0.7), (0.1, 0.025, 0.02), "metal")]


def cabinet_round_pedestal(r: U) -> list[Part]:  # held out: a drum cabinet with a lid and plinth ring
    rad, h = r.uniform(0.22, 0.4), r.uniform(0.5, 1.1)
    return [_c((0, rad, 0.03), rad * 0.9, rad * 0.9, 0.06, "accent"),
            _c((0, rad, 0.06 + (h - 0.06) / 2), rad, rad * r.uniform(0.7, 1.0), h - 0.06),
            _c((0, rad, h + 0.015), rad * 1.05, rad * 1.05, 0.03, "accent")]


# ---------------------------------------------------------------------------------------- bed


def bed_box(r: U) -> list[Part]:
    w, length = r.uniform(0.9, 1.8), r.uniform(1.9, 2.2)
    base, mat, head = r.uniform(0.22, 0.35), r.uniform(0.15, 0.25), r.uniform(0.85, 1.2)
    parts = [_b((0, 0.03, head / 2), (w + 0.04, 0.06, head)),
             _b((0, 0.06 + length / 2, base / 2), (w, length, base)),
             _b((0, 0.06 + length / 2, base + mat / 2), (w - 0.04, length - 0.04, mat), "soft")]
    n = 1 if w < 1.3 else 2
    for i in range(n):
        pw = (w - 0.2) / n
        parts.append(_b((-w / 2 + 0.1 + pw * (i + 0.5), 0.36, base + mat + 0.06), (pw - 0.06, 0.4, 0.12), "soft"))
    return parts


def bed_legged_frame(r: U) -> list[Part]:
    w, length = r.uniform(0.9, 1.9), r.uniform(1.95, 2.15)
    rail_z, mat = r.uniform(0.25, 0.4), r.uniform(0.18, 0.28)
    head, foot = r.uniform(0.9, 1.3), r.uniform(0.0, 0.55)
    parts = [_b((0, 0.04, head / 2), (w + 0.08, 0.05, head), "accent"),
             _b((0, length / 2 + 0.05, rail_z), (w, length, 0.05)),
             _b((0, length / 2 + 0.05, rail_z + 0.025 + mat / 2), (w - 0.02, length - 0.06, mat), "soft")]
    if foot > 0.3:
        parts.append(_b((0, length + 0.08, foot / 2), (w + 0.08, 0.05, foot), "accent"))
    for x in (-w / 2 + 0.04, w / 2 - 0.04):
        for y in (0.1, length):
            parts.append(_b((x, y, rail_z / 2), (0.06, 0.06, rail_z), "accent"))
    for x in np.linspace(-w / 2 + 0.3, w / 2 - 0.3, 1 if w < 1.3 else 2):
        parts.append(_e((x, 0.35, rail_z + mat + 0.07), 0.28, 0.17, 0.07))
    return parts


def bed_platform_slanted(r: U) -> list[Part]:
    w, length = r.uniform(1.2, 2.0), r.uniform(1.95, 2.2)
    plat, mat = r.uniform(0.12, 0.2), r.uniform(0.2, 0.3)
    tilt = np.deg2rad(r.uniform(8, 20))
    head = r.uniform(0.7, 1.0)
    return [_b((0, length / 2 + 0.1, plat / 2), (w + 0.3, length + 0.2, plat)),
            _b((0, length / 2 + 0.12, plat + mat / 2), (w, length - 0.05, mat), "soft"),
            _b((0, 0.08 + np.sin(tilt) * head / 2, plat + head / 2), (w + 0.1, 0.08, head), "soft", rot_x(-tilt)),
            _b((0, length * 0.75, plat + mat + 0.02), (w + 0.02, length * 0.45, 0.04), "vivid")]


def bed_bolster_daybed(r: U) -> list[Part]:  # held out: rolled bolsters, rounded mattress, back rest
    w, length = r.uniform(0.8, 1.0), r.uniform(1.9, 2.1)
    z0, mat = r.uniform(0.2, 0.3), r.uniform(0.15, 0.22)
    parts = [_c((0, length / 2, z0 / 2), length / 2, w / 2, z0, "accent", rot_z(np.pi / 2)),
             _c((0, length / 2, z0 + mat / 2), length / 2 - 0.02, w / 2 - 0.02, mat, "soft")]
    for y in (0.12, length - 0.12):  # bolsters across the ends
        parts.append(_c((0, y, z0 + mat + 0.1), 0.1, 0.1, w - 0.05, "soft", rot_y(np.pi / 2)))
    parts.append(_c((0, 0.05, z0 + mat + 0.3), 0.1, 0.1, w + 0.1, "accent", rot_y(np.pi / 2)))
    return parts


# -------------------------------------------------------------------------------------- chair


def chair_four_leg(r: U) -> list[Part]:
    w, d = r.uniform(0.4, 0.52), r.uniform(0.4, 0.5)
    seat, back = r.uniform(0.42, 0.48), r.uniform(0.35, 0.5)
    t = r.uniform(0.025, 0.04)
    parts = [_b((x, y, (seat - 0.05) / 2), (t, t, seat - 0.05), "accent")
             for x in (-w / 2 + t, w / 2 - t) for y in (t, d - t)]
    parts += [_b((0, d / 2, seat - 0.025), (w, d, 0.05)), _b((0, 0.02, seat + back / 2), (w, 0.04, back))]
    return parts


def chair_office_swivel(r: U) -> list[Part]:
    w, d = r.uniform(0.45, 0.55), r.uniform(0.42, 0.5)
    seat, back = r.uniform(0.44, 0.52), r.uniform(0.4, 0.6)
    tilt = np.deg2rad(r.uniform(5, 15))
    cy = d / 2 + 0.03
    parts = [_c((0, cy, (seat - 0.08) / 2 + 0.06), 0.025, 0.025, seat - 0.14, "metal"),
             _b((0, cy, seat - 0.04), (w, d, 0.07), "soft"),
             _b((0, 0.03, seat + 0.08 + back / 2), (w * 0.9, 0.06, back), "soft", rot_x(-tilt))]
    for k in range(5):
        a = k * 2 * np.pi / 5 + r.uniform(-0.1, 0.1)
        parts.append(_b((0.17 * np.sin(a), cy + 0.17 * np.cos(a), 0.05), (0.04, 0.34, 0.03), "metal", rot_z(-a)))
    if r.random() < 0.6:
        for x in (-w / 2 - 0.02, w / 2 + 0.02):
            parts.append(_b((x, cy, seat + 0.18), (0.05, d * 0.6, 0.03), "metal"))
    return parts


def chair_round_stool_back(r: U) -> list[Part]:
    rad, seat = r.uniform(0.19, 0.25), r.uniform(0.44, 0.5)
    splay = np.deg2rad(r.uniform(4, 12))
    cy = rad + 0.04
    parts = [_c((0, cy, seat - 0.02), rad, rad, 0.04)]
    for k in range(4):
        a = np.pi / 4 + k * np.pi / 2
        dx, dy = np.cos(a), np.sin(a)
        axis_rot = rot_z(a) @ rot_y(splay)  # leg leans outwards along its diagonal
        parts.append(_c((0.75 * rad * dx, cy + 0.75 * rad * dy, (seat - 0.04) / 2), 0.015, 0.015, seat - 0.02,
                        "accent", axis_rot))
    back = r.uniform(0.3, 0.45)
    parts.append(_b((0, 0.03, seat + back / 2), (2 * rad * 0.9, 0.025, back), "main", rot_x(-np.deg2rad(10))))
    return parts


def chair_cantilever_sled(r: U) -> list[Part]:  # held out: tube sled base, shell seat and back
    w, d, seat = r.uniform(0.44, 0.52), r.uniform(0.45, 0.52), r.uniform(0.42, 0.47)
    parts = []
    for x in (-w / 2, w / 2):
        parts.append(_c((x, d / 2, 0.012), 0.012, 0.012, d, "metal", rot_x(np.pi / 2)))
        parts.append(_c((x, d - 0.01, seat / 2), 0.012, 0.012, seat, "metal"))
    parts.append(_e((0, d / 2, seat), w / 2, d / 2, 0.03, "vivid"))
    parts.append(_e((0, 0.04, seat + 0.25), w / 2, 0.03, 0.22, "vivid", rot_x(-np.deg2rad(12))))
    return parts


# --------------------------------------------------------------------------------------- sofa


def sofa_box(r: U) -> list[Part]:
    w, d = r.uniform(1.4, 2.4), r.uniform(0.8, 1.0)
    seat, back, arm = r.uniform(0.4, 0.46), r.uniform(0.75, 0.9), r.uniform(0.55, 0.65)
    bt, aw = r.uniform(0.15, 0.22), r.uniform(0.12, 0.2)
    return [_b((0, bt / 2, back / 2), (w, bt, back)),
            _b((0, bt + (d - bt) / 2, seat / 2), (w - 2 * aw, d - bt, seat)),
            _b((-w / 2 + aw / 2, d / 2, arm / 2), (aw, d, arm)),
            _b((w / 2 - aw / 2, d / 2, arm / 2), (aw, d, arm))]


def sofa_cushioned(r: U) -> list[Part]:
    w, d = r.uniform(1.6, 2.6), r.uniform(0.85, 1.05)
    base, aw = r.uniform(0.25, 0.32), r.uniform(0.1, 0.18)
    n = int(r.integers(2, 4))
    inner = w - 2 * aw
    parts = [_b((0, d / 2, base / 2), (w, d, base), "accent"),
             _b((0, 0.08, base + 0.25), (w, 0.16, 0.5), "accent")]
    for x in (-w / 2 + aw / 2, w / 2 - aw / 2):
        parts.append(_b((x, d / 2, base + 0.15), (aw, d, 0.3), "accent"))
    for i in range(n):
        x = -inner / 2 + inner * (i + 0.5) / n
        parts.append(_b((x, 0.16 + (d - 0.16) / 2, base + 0.07), (inner / n - 0.01, d - 0.18, 0.14)))
        parts.append(_b((x, 0.26, base + 0.36), (inner / n - 0.02, 0.16, 0.42), "main", rot_x(-np.deg2rad(12))))
    return parts


def sofa_corner_sectional(r: U) -> list[Part]:
    w, d, ext = r.uniform(1.8, 2.6), r.uniform(0.85, 1.0), r.uniform(1.3, 1.8)
    seat, back, bt = r.uniform(0.38, 0.45), r.uniform(0.7, 0.85), r.uniform(0.15, 0.2)
    side = 1 if r.random() < 0.5 else -1
    x_ext = side * (w / 2 - d / 2)
    return [_b((0, bt / 2, back / 2), (w, bt, back)),
            _b((0, bt + (d - bt) / 2, seat / 2), (w, d - bt, seat)),
            _b((x_ext, d + (ext - d) / 2, seat / 2), (d, ext - d, seat), "soft"),  # the chaise
            _b((-side * (w / 2 - 0.08), d / 2, 0.3), (0.16, d, 0.6))]


def sofa_rolled_arm(r: U) -> list[Part]:  # held out: rolled cylinder arms, ellipsoid cushions, legs
    w, d = r.uniform(1.5, 2.3), r.uniform(0.8, 0.95)
    leg, seat = r.uniform(0.08, 0.15), r.uniform(0.2, 0.28)
    arm_r = r.uniform(0.1, 0.15)
    parts = [_c((x, d / 2, leg + seat + arm_r * 0.6), arm_r, arm_r, d, "main", rot_x(np.pi / 2))
             for x in (-w / 2 + arm_r, w / 2 - arm_r)]
    parts.append(_e((0, d / 2, leg + seat / 2), w / 2, d / 2, seat / 2, "main"))
    parts.append(_e((0, 0.12, leg + seat + 0.25), w / 2 - 0.05, 0.12, 0.3, "main"))
    n = int(r.integers(2, 4))
    for i in range(n):
        x = -(w - 2 * arm_r) / 2 + (w - 2 * arm_r) * (i + 0.5) / n
        parts.append(_e((x, d / 2 + 0.08, leg + seat + 0.04), (w - 2 * arm_r) / n / 2, d / 2 - 0.1, 0.07))
    for x in (-w / 2 + 0.1, w / 2 - 0.1):
        for y in (0.1, d - 0.1):
            parts.append(_c((x, y, leg / 2), 0.025, 0.025, leg, "accent"))
    return parts


# -------------------------------------------------------------------------------------- table


def table_four_leg(r: U) -> list[Part]:
    w, d, h = r.uniform(0.8, 1.8), r.uniform(0.6, 1.0), r.uniform(0.72, 0.78)
    t, inset = r.uniform(0.04, 0.07), r.uniform(0.03, 0.1)
    parts = [_b((x, y, (h - 0.04) / 2), (t, t, h - 0.04), "accent")
             for x in (-w / 2 + inset + t / 2, w / 2 - inset - t / 2) for y in (inset + t / 2, d - inset - t / 2)]
    parts.append(_b((0, d / 2, h - 0.02), (w, d, 0.04)))
    return parts


def table_round_pedestal(r: U) -> list[Part]:
    rad, h = r.uniform(0.4, 0.65), r.uniform(0.72, 0.77)
    return [_c((0, rad, h - 0.02), rad, rad, 0.04),
            _c((0, rad, (h - 0.04) / 2), 0.05, 0.05, h - 0.04, "accent"),
            _c((0, rad, 0.02), rad * 0.55, rad * 0.55, 0.04, "accent")]


def table_trestle(r: U) -> list[Part]:
    w, d, h = r.uniform(1.2, 2.2), r.uniform(0.7, 1.0), r.uniform(0.72, 0.78)
    parts = [_b((0, d / 2, h - 0.025), (w, d, 0.05))]
    for x in (-w / 2 + 0.2, w / 2 - 0.2):
        parts.append(_b((x, d / 2, (h - 0.05) / 2), (0.06, d * 0.8, h - 0.05), "accent"))
    parts.append(_b((0, d / 2, 0.25), (w - 0.4, 0.05, 0.08), "accent"))
    return parts


def table_oval_tripod(r: U) -> list[Part]:  # held out: oval top on three splayed round legs
    rx, ry, h = r.uniform(0.5, 0.9), r.uniform(0.35, 0.55), r.uniform(0.7, 0.76)
    splay = np.deg2rad(r.uniform(8, 15))
    parts = [_c((0, ry, h - 0.015), rx, ry, 0.03)]
    for k in range(3):
        a = np.pi / 2 + k * 2 * np.pi / 3
        parts.append(_c((0.5 * rx * np.cos(a) * 0.8, ry + 0.5 * ry * np.sin(a) * 0.8, (h - 0.03) / 2), 0.02, 0.02,
                        h - 0.03, "accent", rot_z(a) @ rot_y(splay)))
    return parts


# --------------------------------------------------------------------------------------- door
# doors and windows sit in the wall plane y = 0, half inside it


def door_panel_jamb(r: U) -> list[Part]:
    w, h = r.uniform(0.8, 0.95), r.uniform(2.0, 2.1)
    return [_b((0, 0, h / 2), (w, 0.05, h)),
            _b((-w / 2 - 0.03, 0.005, h / 2 + 0.03), (0.06, 0.05, h + 0.06), "accent"),
            _b((w / 2 + 0.03, 0.005, h / 2 + 0.03), (0.06, 0.05, h + 0.06), "accent"),
            _b((0, 0.005, h + 0.03), (w, 0.05, 0.06), "accent"),
            _b((w / 2 - 0.1, 0.055, 1.0), (0.12, 0.06, 0.03), "metal")]


def door_glazed(r: U) -> list[Part]:
    w, h = r.uniform(0.8, 1.0), r.uniform(2.0, 2.15)
    rows = int(r.integers(2, 5))
    parts = [_b((0, 0, h / 2), (w, 0.04, h), "glass")]
    for x in (-w / 2 + 0.05, w / 2 - 0.05):
        parts.append(_b((x, 0.01, h / 2), (0.1, 0.06, h)))
    for z in np.linspace(0.05, h - 0.05, rows + 1):
        parts.append(_b((0, 0.01, z), (w, 0.06, 0.1 if z < 0.1 else 0.05)))
    parts.append(_c((w / 2 - 0.12, 0.07, 1.0), 0.012, 0.012, 0.12, "metal", rot_y(np.pi / 2)))
    return parts


def door_double(r: U) -> list[Part]:
    w, h = r.uniform(1.4, 1.8), r.uniform(2.0, 2.2)
    parts = [_b((-w / 4, 0, h / 2), (w / 2 - 0.005, 0.05, h)), _b((w / 4, 0, h / 2), (w / 2 - 0.005, 0.05, h)),
             _b((0, 0.005, h + 0.04), (w + 0.16, 0.06, 0.08), "accent")]
    for x in (-0.06, 0.06):
        parts.append(_b((x, 0.05, 1.05), (0.02, 0.04, 0.3), "metal"))
    return parts


def door_sliding_barn(r: U) -> list[Part]:  # held out: leaf proud of the wall, hung from a rail
    w, h = r.uniform(0.9, 1.2), r.uniform(2.0, 2.15)
    parts = [_b((0, 0.06, h / 2 + 0.02), (w, 0.04, h - 0.02)),
             _c((0, 0.06, h + 0.1), 0.015, 0.015, 2 * w + 0.2, "metal", rot_y(np.pi / 2))]
    for x in (-w / 2 + 0.15, w / 2 - 0.15):
        parts.append(_c((x, 0.06, h + 0.1), 0.05, 0.05, 0.02, "metal", rot_x(np.pi / 2)))
    for z in (0.35, h - 0.35):  # Z-brace battens
        parts.append(_b((0, 0.09, z), (w, 0.02, 0.1), "accent"))
    parts.append(_b((0, 0.09, h / 2), (w * 1.15, 0.02, 0.1), "accent", rot_y(np.arctan2(h - 0.7, w))))
    return parts


# ------------------------------------------------------------------------------------- window


def window_framed(r: U) -> list[Part]:
    w, h, z0 = r.uniform(0.8, 1.8), r.uniform(1.0, 1.4), r.uniform(0.8, 1.0)
    fr = 0.05
    return [_b((0, 0, z0 + h / 2), (w, 0.04, h), "glass"),
            _b((0, 0.02, z0 + fr / 2), (w + 2 * fr, 0.06, fr), "accent"),
            _b((0, 0.02, z0 + h - fr / 2), (w + 2 * fr, 0.06, fr), "accent"),
            _b((-w / 2 - fr / 2, 0.02, z0 + h / 2), (fr, 0.06, h), "accent"),
            _b((w / 2 + fr / 2, 0.02, z0 + h / 2), (fr, 0.06, h), "accent"),
            _b((0, 0.07, z0 - 0.015), (w + 0.2, 0.14, 0.03), "accent")]


def window_mullion_grid(r: U) -> list[Part]:
    cols, rows = int(r.integers(2, 5)), int(r.integers(1, 4))
    cw, rh = r.uniform(0.35, 0.55), r.uniform(0.35, 0.6)
    w, h, z0 = cols * cw, rows * rh, r.uniform(0.7, 1.1)
    parts = [_b((0, -0.01, z0 + h / 2), (w, 0.02, h), "glass")]
    for x in np.linspace(-w / 2, w / 2, cols + 1):
        parts.append(_b((x, 0.01, z0 + h / 2), (0.04, 0.05, h + 0.04), "main"))
    for z in np.linspace(z0, z0 + h, rows + 1):
        parts.append(_b((0, 0.01, z), (w + 0.04, 0.05, 0.04), "main"))
    return parts


def window_tall_french(r: U) -> list[Part]:
    w, h = r.uniform(0.9, 1.6), r.uniform(1.9, 2.3)
    z0 = r.uniform(0.05, 0.3)
    return [_b((0, 0, z0 + h / 2), (w, 0.03, h), "glass"),
            _b((0, 0.025, z0 + h / 2), (0.06, 0.05, h), "main"),
            _b((0, 0.03, z0 + h + 0.04), (w + 0.12, 0.06, 0.08), "main"),
            _b((0, 0.03, z0 - 0.03), (w + 0.12, 0.06, 0.06), "main")]


def window_arched(r: U) -> list[Part]:  # held out: rectangular lower pane under a half-round arch
    w, h, z0 = r.uniform(0.7, 1.3), r.uniform(0.8, 1.2), r.uniform(0.8, 1.0)
    arch = rot_x(np.pi / 2)
    return [_b((0, 0, z0 + h / 2), (w, 0.04, h), "glass"),
            _c((0, 0.0, z0 + h), w / 2, w / 2, 0.04, "glass", arch),
            _c((0, 0.02, z0 + h), w / 2 + 0.05, w / 2 + 0.05, 0.02, "accent", arch),
            _b((0, 0.05, z0 - 0.02), (w + 0.16, 0.1, 0.04), "accent")]


# ---------------------------------------------------------------------------------- bookshelf


def _books(r: U, x0: float, x1: float, z: float, depth: float, max_h: float) -> list[Part]:
    """A row of upright books standing on a shelf (part of the bookshelf instance)."""
    parts, x = [], x0 + 0.01
    while x < x1 - 0.05 and len(parts) < 12:
        t, bh = r.uniform(0.02, 0.06), r.uniform(0.5, 0.95) * max_h
        if r.random() < 0.85:
            parts.append(_b((x + t / 2, depth / 2 + 0.01, z + bh / 2), (t, depth * r.uniform(0.6, 0.9), bh), "vivid"))
        x += t + 0.003
    return parts


def bookshelf_frame(r: U) -> list[Part]:
    w, d, h = r.uniform(0.6, 1.2), r.uniform(0.25, 0.4), r.uniform(1.2, 2.0)
    t = 0.02
    parts = [_b((-w / 2 + t / 2, d / 2, h / 2), (t, d, h)), _b((w / 2 - t / 2, d / 2, h / 2), (t, d, h)),
             _b((0, d / 2, h - t / 2), (w - 2 * t, d, t)), _b((0, d / 2, 0.05), (w - 2 * t, d, 0.1)),
             _b((0, 0.005, h / 2), (w - 2 * t, 0.01, h - 0.1), "accent")]
    zs = np.linspace(0.1, h - t, int(r.integers(2, 5)) + 2)
    for z in zs[1:-1]:
        parts.append(_b((0, d / 2, z), (w - 2 * t, d - 0.01, t)))
    if r.random() < 0.7:
        for z0, z1 in zip(zs[:-1], zs[1:]):
            parts += _books(r, -w / 2 + t, w / 2 - t, z0 + t / 2, d, z1 - z0 - 0.04)
    return parts


def bookshelf_ladder(r: U) -> list[Part]:
    w, d, h = r.uniform(0.5, 0.9), r.uniform(0.35, 0.5), r.uniform(1.4, 1.9)
    lean = np.arctan2(d - 0.05, h)
    parts = []
    for x in (-w / 2, w / 2):
        parts.append(_b((x, (d + 0.02) / 2, h / 2), (0.035, 0.035, h / np.cos(lean)), "accent", rot_x(lean)))
        parts.append(_b((x, 0.02, h / 2), (0.03, 0.03, h), "accent"))
    for k, z in enumerate(np.linspace(0.25, h - 0.15, int(r.integers(3, 6)))):
        depth = (d - 0.05) * (1 - z / h) + 0.08
        parts.append(_b((0, depth / 2 + 0.01, z), (w, depth, 0.025)))
    return parts


def bookshelf_cube_grid(r: U) -> list[Part]:
    cols, rows = int(r.integers(2, 5)), int(r.integers(2, 5))
    cell, d = r.uniform(0.3, 0.4), r.uniform(0.3, 0.4)
    w, h, t = cols * cell, rows * cell, 0.025
    parts = [_b((0, 0.005, h / 2), (w, 0.01, h), "accent")]
    for x in np.linspace(-w / 2, w / 2, cols + 1):
        parts.append(_b((x, d / 2, h / 2), (t, d, h)))
    for z in np.linspace(0, h, rows + 1):
        parts.append(_b((0, d / 2, z + t / 2 if z == 0 else z), (w + t, d, t)))
    for i in range(cols):
        for j in range(rows):
            if r.random() < 0.4:
                x0 = -w / 2 + i * cell
                parts += _books(r, x0, x0 + cell, j * cell + t, d, cell - 0.04)[:5]
    return parts


def bookshelf_tube_posts(r: U) -> list[Part]:  # held out: four round posts, open wire-like shelves
    w, d, h = r.uniform(0.8, 1.4), r.uniform(0.35, 0.5), r.uniform(1.2, 2.0)
    parts = [_c((x, y, h / 2), 0.015, 0.015, h, "metal") for x in (-w / 2, w / 2) for y in (0.03, d - 0.03)]
    for z in np.linspace(0.1, h - 0.05, int(r.integers(3, 6))):
        parts.append(_b((0, d / 2, z), (w, d - 0.04, 0.012), "metal"))
        for k in range(int(r.integers(0, 4))):
            parts.append(_c((r.uniform(-w / 2 + 0.1, w / 2 - 0.1), d / 2, z + 0.08), 0.06, 0.06, 0.15, "vivid"))
    return parts


# ------------------------------------------------------------------------------------ picture


def picture_flat_panel(r: U) -> list[Part]:
    w, h, t = r.uniform(0.3, 1.0), r.uniform(0.3, 0.8), r.uniform(0.02, 0.04)
    return [_b((0, t / 2, r.uniform(1.3, 1.7)), (w, t, h), "vivid")]


def picture_thick_frame(r: U) -> list[Part]:
    w, h, zc = r.uniform(0.4, 1.2), r.uniform(0.4, 0.9), r.uniform(1.3, 1.7)
    f, t = r.uniform(0.03, 0.08), r.uniform(0.03, 0.06)
    return [_b((0, 0.01, zc), (w - f, 0.02, h - f), "vivid"),
            _b((0, t / 2, zc + h / 2 - f / 2), (w, t, f), "accent"), _b((0, t / 2, zc - h / 2 + f / 2), (w, t, f), "accent"),
            _b((-w / 2 + f / 2, t / 2, zc), (f, t, h - 2 * f), "accent"),
            _b((w / 2 - f / 2, t / 2, zc), (f, t, h - 2 * f), "accent")]


def picture_matted_poster(r: U) -> list[Part]:
    w, h, zc = r.uniform(0.5, 1.0), r.uniform(0.6, 1.1), r.uniform(1.3, 1.7)
    return [_b((0, 0.006, zc), (w, 0.012, h), "glass"), _b((0, 0.014, zc), (w * 0.7, 0.006, h * 0.7), "vivid")]


def picture_oval_medallion(r: U) -> list[Part]:  # held out: oval canvas in an oval frame
    rx, rz, zc = r.uniform(0.15, 0.4), r.uniform(0.2, 0.5), r.uniform(1.3, 1.7)
    face = rot_x(np.pi / 2)
    return [_c((0, 0.012, zc), rx + 0.04, rz + 0.04, 0.024, "accent", face),
            _c((0, 0.03, zc), rx, rz, 0.012, "vivid", face)]


# --------------------------------------------------------------------------------------- desk


def desk_pedestal(r: U) -> list[Part]:
    w, d, h = r.uniform(1.0, 1.6), r.uniform(0.5, 0.75), r.uniform(0.72, 0.76)
    pw = r.uniform(0.35, 0.45)
    return [_b((0, d / 2, h - 0.015), (w, d, 0.03)),
            _b((-w / 2 + 0.0125, d / 2, (h - 0.03) / 2), (0.025, d - 0.02, h - 0.03), "accent"),
            _b((w / 2 - pw / 2, d / 2, (h - 0.03) / 2), (pw, d - 0.02, h - 0.03)),
            _b((-pw / 2, 0.02, (h - 0.03) * 0.6), (w - pw - 0.025, 0.02, (h - 0.03) * 0.5), "accent")]


def desk_legs_drawer(r: U) -> list[Part]:
    w, d, h = r.uniform(1.1, 1.8), r.uniform(0.6, 0.8), r.uniform(0.72, 0.77)
    parts = [_b((0, d / 2, h - 0.02), (w, d, 0.04)),
             _b((0, 0.05, h - 0.25), (w - 0.1, 0.02, 0.4), "accent"),
             _b((w / 2 - 0.3, d / 2, h - 0.12), (0.45, d - 0.1, 0.14), "accent")]
    for x in (-w / 2 + 0.04, w / 2 - 0.04):
        for y in (0.04, d - 0.04):
            parts.append(_b((x, y, (h - 0.04) / 2), (0.05, 0.05, h - 0.04), "metal"))
    return parts


def desk_corner_l(r: U) -> list[Part]:
    w, d, ext, h = r.uniform(1.3, 1.8), r.uniform(0.6, 0.75), r.uniform(1.0, 1.4), r.uniform(0.72, 0.76)
    side = 1 if r.random() < 0.5 else -1
    xe = side * (w / 2 - d / 2)
    return [_b((0, d / 2, h - 0.015), (w, d, 0.03)),
            _b((xe, d + (ext - d) / 2, h - 0.015), (d, ext - d, 0.03)),
            _b((-side * (w / 2 - 0.015), d / 2, (h - 0.03) / 2), (0.03, d, h - 0.03), "accent"),
            _b((xe, ext - 0.015, (h - 0.03) / 2), (d, 0.03, h - 0.03), "accent"),
            _b((xe, d / 2, (h - 0.03) / 2), (d - 0.1, d - 0.1, h - 0.03), "main")]


def desk_standing_t_leg(r: U) -> list[Part]:  # held out: two columns on foot bars, monitor riser
    w, d, h = r.uniform(1.2, 1.7), r.uniform(0.6, 0.8), r.uniform(0.72, 1.1)
    parts = [_b((0, d / 2, h - 0.0125), (w, d, 0.025))]
    for x in (-w / 2 + 0.15, w / 2 - 0.15):
        parts.append(_c((x, d / 2, (h - 0.025) / 2), 0.04, 0.03, h - 0.025, "metal"))
        parts.append(_c((x, d / 2, 0.02), 0.025, 0.025, d, "metal", rot_x(np.pi / 2)))
    parts.append(_b((0, 0.12, h + 0.06), (w * 0.6, 0.2, 0.02), "accent"))
    for x in (-w * 0.28, w * 0.28):
        parts.append(_b((x, 0.12, h + 0.025), (0.02, 0.2, 0.05), "accent"))
    return parts


# ------------------------------------------------------------------------------------ clutter
# not instances: labelled as the stuff they stand on (see randomized.py)


def clutter_carton(r: U) -> list[Part]:
    s = r.uniform(0.08, 0.5, 3)
    return [_b((0, s[1] / 2, s[2] / 2), tuple(s), "accent")]


def clutter_bin(r: U) -> list[Part]:
    rad, h = r.uniform(0.1, 0.2), r.uniform(0.2, 0.5)
    return [_c((0, rad, h / 2), rad, rad, h, "vivid")]


def clutter_plant(r: U) -> list[Part]:
    pr, ph = r.uniform(0.08, 0.2), r.uniform(0.12, 0.35)
    fr = r.uniform(0.15, 0.45)
    return [_c((0, pr, ph / 2), pr, pr, ph, "accent"), _e((0, pr, ph + fr * 0.8), fr, fr, fr * r.uniform(0.8, 1.6), "vivid")]


def clutter_floor_lamp(r: U) -> list[Part]:
    h = r.uniform(1.2, 1.8)
    return [_c((0, 0.15, 0.015), 0.14, 0.14, 0.03, "metal"), _c((0, 0.15, h / 2), 0.012, 0.012, h, "metal"),
            _c((0, 0.15, h), r.uniform(0.12, 0.22), r.uniform(0.12, 0.22), 0.22, "soft")]


def clutter_ball_bag(r: U) -> list[Part]:
    s = r.uniform(0.1, 0.3)
    return [_e((0, s, s * 0.8), s, s * r.uniform(0.7, 1.3), s * 0.8, "vivid")]


def clutter_monitor(r: U) -> list[Part]:
    w, h = r.uniform(0.4, 0.7), r.uniform(0.25, 0.4)
    return [_b((0, 0.1, 0.01), (0.2, 0.15, 0.02), "metal"), _b((0, 0.1, 0.12), (0.04, 0.02, 0.22), "metal"),
            _b((0, 0.08, 0.12 + h / 2), (w, 0.03, h), "metal")]


def clutter_cup_bottle(r: U) -> list[Part]:
    rad, h = r.uniform(0.03, 0.05), r.uniform(0.08, 0.3)
    return [_c((0, rad, h / 2), rad, rad, h, "vivid")]


def clutter_book_pile(r: U) -> list[Part]:
    parts, z = [], 0.0
    for k in range(int(r.integers(1, 5))):
        t = r.uniform(0.02, 0.06)
        parts.append(_b((0, 0.15, z + t / 2), (r.uniform(0.15, 0.3), r.uniform(0.2, 0.3), t), "vivid",
                        rot_z(r.uniform(-0.3, 0.3))))
        z += t
    return parts


def clutter_radiator(r: U) -> list[Part]:  # wall-mounted
    w, h = r.uniform(0.6, 1.4), r.uniform(0.4, 0.7)
    n = int(w / 0.08)
    return [_b((x, 0.05, 0.15 + h / 2), (0.04, 0.08, h), "metal") for x in np.linspace(-w / 2, w / 2, n)]


def clutter_wall_box(r: U) -> list[Part]:  # wall-mounted: switch, outlet, AC unit, clock, shelf
    kind = r.integers(4)
    z = r.uniform(0.25, 2.2)
    if kind == 0:
        return [_b((0, 0.01, z), (0.09, 0.02, 0.09), "soft")]
    if kind == 1:
        return [_b((0, 0.12, r.uniform(2.0, 2.3)), (r.uniform(0.7, 1.0), 0.24, 0.3), "soft")]
    if kind == 2:
        return [_c((0, 0.02, r.uniform(1.6, 2.1)), 0.15, 0.15, 0.04, "vivid", rot_x(np.pi / 2))]
    return [_b((0, 0.12, r.uniform(1.2, 1.8)), (r.uniform(0.5, 1.0), 0.24, 0.025), "main")]


@dataclass(frozen=True)
class Family:
    name: str
    semantic: int
    build: Callable[[U], list[Part]]
    heldout: bool = False


FAMILIES: tuple[Family, ...] = (
    Family("cabinet_plinth_box", CABINET, cabinet_plinth_box),
    Family("cabinet_legged_sideboard", CABINET, cabinet_legged_sideboard),
    Family("cabinet_nightstand", CABINET, cabinet_nightstand),
    Family("cabinet_round_pedestal", CABINET, cabinet_round_pedestal, True),
    Family("bed_box", BED, bed_box),
    Family("bed_legged_frame", BED, bed_legged_frame),
    Family("bed_platform_slanted", BED, bed_platform_slanted),
    Family("bed_bolster_daybed", BED, bed_bolster_daybed, True),
    Family("chair_four_leg", CHAIR, chair_four_leg),
    Family("chair_office_swivel", CHAIR, chair_office_swivel),
    Family("chair_round_stool_back", CHAIR, chair_round_stool_back),
    Family("chair_cantilever_sled", CHAIR, chair_cantilever_sled, True),
    Family("sofa_box", SOFA, sofa_box),
    Family("sofa_cushioned", SOFA, sofa_cushioned),
    Family("sofa_corner_sectional", SOFA, sofa_corner_sectional),
    Family("sofa_rolled_arm", SOFA, sofa_rolled_arm, True),
    Family("table_four_leg", TABLE, table_four_leg),
    Family("table_round_pedestal", TABLE, table_round_pedestal),
    Family("table_trestle", TABLE, table_trestle),
    Family("table_oval_tripod", TABLE, table_oval_tripod, True),
    Family("door_panel_jamb", DOOR, door_panel_jamb),
    Family("door_glazed", DOOR, door_glazed),
    Family("door_double", DOOR, door_double),
    Family("door_sliding_barn", DOOR, door_sliding_barn, True),
    Family("window_framed", WINDOW, window_framed),
    Family("window_mullion_grid", WINDOW, window_mullion_grid),
    Family("window_tall_french", WINDOW, window_tall_french),
    Family("window_arched", WINDOW, window_arched, True),
    Family("bookshelf_frame", BOOKSHELF, bookshelf_frame),
    Family("bookshelf_ladder", BOOKSHELF, bookshelf_ladder),
    Family("bookshelf_cube_grid", BOOKSHELF, bookshelf_cube_grid),
    Family("bookshelf_tube_posts", BOOKSHELF, bookshelf_tube_posts, True),
    Family("picture_flat_panel", PICTURE, picture_flat_panel),
    Family("picture_thick_frame", PICTURE, picture_thick_frame),
    Family("picture_matted_poster", PICTURE, picture_matted_poster),
    Family("picture_oval_medallion", PICTURE, picture_oval_medallion, True),
    Family("desk_pedestal", DESK, desk_pedestal),
    Family("desk_legs_drawer", DESK, desk_legs_drawer),
    Family("desk_corner_l", DESK, desk_corner_l),
    Family("desk_standing_t_leg", DESK, desk_standing_t_leg, True),
)

FLOOR_CLUTTER = (clutter_carton, clutter_bin, clutter_plant, clutter_floor_lamp, clutter_ball_bag)
SURFACE_CLUTTER = (clutter_monitor, clutter_cup_bottle, clutter_book_pile, clutter_carton, clutter_plant)
WALL_CLUTTER = (clutter_radiator, clutter_wall_box)
WALL_MOUNTED = (DOOR, WINDOW, PICTURE)  # live in the wall plane


def families_of(semantic: int, heldout: bool) -> tuple[Family, ...]:
    return tuple(f for f in FAMILIES if f.semantic == semantic and f.heldout == heldout)
