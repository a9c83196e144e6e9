"""Solid primitives (oriented boxes, elliptic cylinders, ellipsoids) and exact ray casting.

The randomised room generator (`randomized.py`) builds every surface of a room from these three
solids and images them with simulated sensors (`sensors.py`): each sensor ray returns the nearest
hit, the primitive it hit and the surface normal there. A primitive is an affine image of a unit
solid (cube [-1, 1]^3, cylinder x^2 + y^2 <= 1 with |z| <= 1, unit ball), so one ray/primitive
test is done in the unit frame, where the ray parameter t is the same as in the world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOX, CYLINDER, ELLIPSOID = 0, 1, 2


@dataclass
class Primitives:
    """P solids in world coordinates with their labels and base colours."""

    kind: np.ndarray  # (P,) int64: BOX / CYLINDER / ELLIPSOID
    center: np.ndarray  # (P, 3)
    rot: np.ndarray  # (P, 3, 3) world <- local
    half: np.ndarray  # (P, 3) half extents (cylinder: radii x, y and half height; ellipsoid: radii)
    color: np.ndarray  # (P, 3) base colour, 0..1
    semantic: np.ndarray  # (P,) int64
    instance: np.ndarray  # (P,) int64, -100 for stuff

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @classmethod
    def concat(cls, parts: list["Primitives"]) -> "Primitives":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("kind", "center", "rot", "half", "color", "semantic", "instance")))

    def bounding_radius(self) -> np.ndarray:
        """(P,) radius of a sphere about `center` that holds the solid."""
        return np.linalg.norm(self.half, axis=1)


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclass
class RayHits:
    t: np.ndarray  # (R,) distance along the unit ray, inf = no hit
    prim: np.ndarray  # (R,) int64 primitive index, -1 = no hit
    normal: np.ndarray  # (R, 3) unit world normal at the hit (zeros without hit)


def _unit_hits(kind: np.ndarray, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entry distance (K,) (inf = miss or origin inside) and unit-frame normal (K, 3) of pairs."""
    k = o.shape[0]
    t = np.full(k, np.inf)
    nrm = np.zeros((k, 3))
    safe_d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    # boxes: slab test against the unit cube
    b = kind == BOX
    if b.any():
        ob, db = o[b], safe_d[b]
        t1, t2 = (-1.0 - ob) / db, (1.0 - ob) / db
        tmin = np.minimum(t1, t2)  # (Kb, 3)
        t_in, axis = tmin.max(axis=1), tmin.argmax(axis=1)
        t_out = np.maximum(t1, t2).min(axis=1)
        ok = (t_in <= t_out) & (t_in > 0)
        tb = np.where(ok, t_in, np.inf)
        nb = np.zeros_like(ob)
        nb[np.arange(len(axis)), axis] = -np.sign(db[np.arange(len(axis)), axis])
        t[b], nrm[b] = tb, nb
    # ellipsoids: unit sphere
    e = kind == ELLIPSOID
    if e.any():
        oe, de = o[e], d[e]
        a = (de * de).sum(1)
        bb = (oe * de).sum(1)
        c = (oe * oe).sum(1) - 1.0
        disc = bb * bb - a * c
        te = (-bb - np.sqrt(np.maximum(disc, 0.0))) / a
        ok = (disc >= 0) & (te > 0)
        t[e] = np.where(ok, te, np.inf)
        nrm[e] = oe + te[:, None] * de
    # cylinders: side x^2 + y^2 = 1 within |z| <= 1, caps z = +-1 within the disc
    c_ = kind == CYLINDER
    if c_.any():
        oc, dc, sdc = o[c_], d[c_], safe_d[c_]
        a = dc[:, 0] ** 2 + dc[:, 1] ** 2
        bb = oc[:, 0] * dc[:, 0] + oc[:, 1] * dc[:, 1]
        cc = oc[:, 0] ** 2 + oc[:, 1] ** 2 - 1.0
        disc = bb * bb - a * cc
        ts = (-bb - np.sqrt(np.maximum(disc, 0.0))) / np.maximum(a, 1e-12)
        zs = oc[:, 2] + ts * dc[:, 2]
        side_ok = (disc >= 0) & (a > 1e-12) & (ts > 0) & (np.abs(zs) <= 1.0)
        tcap = np.minimum((-1.0 - oc[:, 2]) / sdc[:, 2], (1.0 - oc[:, 2]) / sdc[:, 2])
        pc = oc[:, :2] + tcap[:, None] * dc[:, :2]
        cap_ok = (tcap > 0) & ((pc ** 2).sum(1) <= 1.0)
        t_side = np.where(side_ok, ts, np.inf)
        t_cap = np.where(cap_ok, tcap, np.inf)
        use_cap = t_cap < t_side
        tcy = np.minimum(t_side, t_cap)
        p = oc + np.where(np.isfinite(tcy), tcy, 0.0)[:, None] * dc
        ncy = np.where(use_cap[:, None], np.stack([np.zeros_like(tcy), np.zeros_like(tcy), np.sign(p[:, 2])], 1),
                       np.stack([p[:, 0], p[:, 1], np.zeros_like(tcy)], 1))
        t[c_], nrm[c_] = tcy, ncy
    return t, nrm


def cast_rays(origin: np.ndarray, dirs: np.ndarray, prims: Primitives, chunk: int = 8192) -> RayHits:
    """Nearest hit of rays origin + t * dirs (unit dirs (R, 3), one origin (3,)) on `prims`.

    Bounding spheres select the (ray, primitive) pairs that get the exact unit-frame test, so the
    cost follows the number of primitives each ray passes near, not R x P.
    """
    origin = np.asarray(origin, np.float64)
    dirs = np.asarray(dirs, np.float64)
    n = dirs.shape[0]
    t_best = np.full(n, np.inf)
    p_best = np.full(n, -1, np.int64)
    n_best = np.zeros((n, 3))
    if len(prims) == 0 or n == 0:
        return RayHits(t_best, p_best, n_best)
    rel = prims.center - origin  # (P, 3)
    radius = prims.bounding_radius()
    dist2 = (rel * rel).sum(1)
    o_local = np.einsum("pji,pj->pi", prims.rot, -rel) / prims.half  # (P, 3) unit frame origin
    for s in range(0, n, chunk):
        d = dirs[s : s + chunk]
        proj = d @ rel.T  # (C, P)
        perp2 = dist2[None] - proj ** 2
        cand = (perp2 <= radius[None] ** 2) & (proj >= -radius[None])
        ri, pi = np.nonzero(cand)
        if ri.size == 0:
            continue
        d_local = np.einsum("kji,kj->ki", prims.rot[pi], d[ri]) / prims.half[pi]
        t, nu = _unit_hits(prims.kind[pi], o_local[pi], d_local)
        hit = np.isfinite(t)
        ri, pi, t, nu = ri[hit], pi[hit], t[hit], nu[hit]
        if ri.size == 0:
            continue
        order = np.lexsort((t, ri))
        ri, pi, t, nu = ri[order], pi[order], t[order], nu[order]
        first = np.r_[True, ri[1:] != ri[:-1]]
        ri, pi, t, nu = ri[first], pi[first], t[first], nu[first]
        # unit-frame normal -> world: inverse-transpose of the scaling, then the rotation
        nw = np.einsum("kij,kj->ki", prims.rot[pi], nu / prims.half[pi])
        nw /= np.maximum(np.linalg.norm(nw, axis=1, keepdims=True), 1e-12)
        t_best[s + ri], p_best[s + ri], n_best[s + ri] = t, pi, nw
    return RayHits(t_best, p_best, n_best)
