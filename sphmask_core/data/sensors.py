"""Simulated range sensors that image `Primitives`: an RGB-D camera and a rotating LiDAR.

RGB-D: pinhole rays over a W x H grid, depth noise growing with the square of the depth (the
structured-light / stereo error model), holes (dropout at grazing incidence, beyond range and in
random blobs) and flying pixels: at a depth edge a pixel may land between the two surfaces, and
such points carry no label (`prim = -1`). LiDAR: `n_beams` rings at fixed elevations swept over
azimuth, Gaussian range noise, random dropout, no colour. Everything random comes from the
generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .primitives import Primitives, cast_rays


@dataclass
class RGBDConfig:
    width: int = 160
    height: int = 120
    fov_h_deg: float = 70.0
    min_range: float = 0.3
    max_range: float = 6.0
    noise_a: float = 0.002  # depth sigma (m) = noise_a + noise_b * depth^2
    noise_b: float = 0.0025
    grazing_cos: float = 0.15  # |cos(incidence)| below this: the pixel is a hole
    blob_holes: float = 0.05  # fraction of the image lost in random blobs
    flying_prob: float = 0.5  # probability that an edge pixel becomes a flying pixel
    edge_jump: float = 0.08  # depth step (m) that makes an edge

    def validate(self) -> "RGBDConfig":
        if self.width < 8 or self.height < 8:
            raise ValueError(f"RGB-D image must be at least 8 x 8, got {self.width} x {self.height}")
        if not 10 <= self.fov_h_deg <= 150:
            raise ValueError(f"fov_h_deg must be in [10, 150], got {self.fov_h_deg}")
        if not 0 <= self.min_range < self.max_range:
            raise ValueError(f"need 0 <= min_range < max_range, got {self.min_range}, {self.max_range}")
        for name in ("blob_holes", "flying_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        return self


@dataclass
class LidarConfig:
    n_beams: int = 16
    elevation_deg: tuple[float, float] = (-15.0, 15.0)
    azimuth_steps: int = 900
    max_range: float = 30.0
    min_range: float = 0.3
    range_sigma: float = 0.015
    dropout: float = 0.05

    def validate(self) -> "LidarConfig":
        if self.n_beams < 1 or self.azimuth_steps < 8:
            raise ValueError(f"need n_beams >= 1 and azimuth_steps >= 8, got {self.n_beams}, {self.azimuth_steps}")
        lo, hi = self.elevation_deg
        if not -90 < lo <= hi < 90:
            raise ValueError(f"elevation_deg {self.elevation_deg} must be ordered within (-90, 90)")
        if not 0 <= self.min_range < self.max_range:
            raise ValueError(f"need 0 <= min_range < max_range, got {self.min_range}, {self.max_range}")
        if self.range_sigma < 0 or not 0 <= self.dropout < 1:
            raise ValueError("range_sigma must be >= 0 and dropout in [0, 1)")
        return self


@dataclass
class SensorPoints:
    """Returns of one sensor sweep, in the world frame."""

    xyz: np.ndarray  # (M, 3)
    prim: np.ndarray  # (M,) int64 primitive hit, -1 = flying pixel (no label)
    normal: np.ndarray  # (M, 3) surface normal (zeros for flying pixels)


def camera_pose(position: np.ndarray, yaw: float, pitch_down: float, roll: float = 0.0) -> np.ndarray:
    """(4, 4) world <- camera (x forward, y left, z up; REP 103) at `position`."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch_down), np.sin(pitch_down)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1.0]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])  # positive angle pitches x downwards
    cr, sr = np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    pose = np.eye(4)
    pose[:3, :3] = rz @ ry @ rx
    pose[:3, 3] = position
    return pose


def _blob_mask(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool holes made of smooth random blobs covering about `fraction` of the image."""
    if fraction <= 0:
        return np.zeros(shape, bool)
    h, w = shape
    coarse = rng.random((h // 8 + 2, w // 8 + 2))
    ys = np.linspace(0, coarse.shape[0] - 1.001, h)
    xs = np.linspace(0, coarse.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None]
    c = coarse
    smooth = (c[y0][:, x0] * (1 - fy) * (1 - fx) + c[y0 + 1][:, x0] * fy * (1 - fx)
              + c[y0][:, x0 + 1] * (1 - fy) * fx + c[y0 + 1][:, x0 + 1] * fy * fx)
    return smooth < np.quantile(smooth, fraction)


def simulate_rgbd(pose: np.ndarray, prims: Primitives, cfg: RGBDConfig, rng: np.random.Generator) -> SensorPoints:
    """One depth image of `prims` from `pose` (world <- camera), back-projected to the world."""
    w, h = cfg.width, cfg.height
    f = (w / 2) / np.tan(np.deg2rad(cfg.fov_h_deg) / 2)
    u = (np.arange(w) + 0.5 - w / 2) / f
    v = (np.arange(h) + 0.5 - h / 2) / f
    vv, uu = np.meshgrid(v, u, indexing="ij")  # (H, W)
    cam = np.stack([np.ones_like(uu), -uu, -vv], axis=-1).reshape(-1, 3)  # x forward, y left, z up
    dirs_cam = cam / np.linalg.norm(cam, axis=1, keepdims=True)
    dirs = dirs_cam @ pose[:3, :3].T  # (R, 3) world
    hits = cast_rays(pose[:3, 3], dirs, prims)
    depth = hits.t * dirs_cam[:, 0]  # (R,) along the optical axis
    valid = np.isfinite(depth) & (depth >= cfg.min_range) & (depth <= cfg.max_range)
    cos_inc = np.abs((hits.normal * dirs).sum(1))
    valid &= cos_inc >= cfg.grazing_cos
    valid &= ~_blob_mask((h, w), cfg.blob_holes, rng).reshape(-1)
    depth = np.where(valid, depth, np.nan).reshape(h, w)
    prim = np.where(valid, hits.prim, -1).reshape(h, w)
    # flying pixels: at a depth step, the far pixel may take a depth between the two surfaces
    fly = np.zeros((h, w), bool)
    new_depth = depth.copy()
    for axis in (0, 1):
        a = depth
        b = np.roll(depth, -1, axis=axis)
        step = np.abs(a - b) > cfg.edge_jump
        if axis == 0:
            step[-1] = False
        else:
            step[:, -1] = False
        far = step & (a > b)
        pick = far & (rng.random((h, w)) < cfg.flying_prob) & ~fly
        mix = rng.uniform(0.1, 0.9, (h, w))
        new_depth = np.where(pick, b + mix * (a - b), new_depth)
        fly |= pick
    sigma = cfg.noise_a + cfg.noise_b * new_depth ** 2
    noisy = new_depth + rng.normal(0.0, 1.0, (h, w)) * np.nan_to_num(sigma)
    keep = np.isfinite(noisy).reshape(-1)
    t = (noisy.reshape(-1) / dirs_cam[:, 0])[keep]
    xyz = pose[:3, 3] + dirs[keep] * t[:, None]
    prim_out = np.where(fly.reshape(-1), -1, prim.reshape(-1))[keep]
    normal = np.where(fly.reshape(-1, 1), 0.0, hits.normal)[keep]
    return SensorPoints(xyz, prim_out.astype(np.int64), normal)


def simulate_lidar(pose: np.ndarray, prims: Primitives, cfg: LidarConfig, rng: np.random.Generator) -> SensorPoints:
    """One revolution of a rotating multi-beam LiDAR at `pose` (world <- sensor)."""
    el = np.deg2rad(np.linspace(cfg.elevation_deg[0], cfg.elevation_deg[1], cfg.n_beams))
    az = np.arange(cfg.azimuth_steps) * (2 * np.pi / cfg.azimuth_steps) + rng.uniform(0, 2 * np.pi / cfg.azimuth_steps)
    ee, aa = np.meshgrid(el, az, indexing="ij")  # (B, A)
    local = np.stack([np.cos(ee) * np.cos(aa), np.cos(ee) * np.sin(aa), np.sin(ee)], -1).reshape(-1, 3)
    dirs = local @ pose[:3, :3].T
    hits = cast_rays(pose[:3, 3], dirs, prims)
    t = hits.t + rng.normal(0.0, cfg.range_sigma, hits.t.shape)
    keep = np.isfinite(hits.t) & (t >= cfg.min_range) & (t <= cfg.max_range) & (rng.random(t.shape) >= cfg.dropout)
    xyz = pose[:3, 3] + dirs[keep] * t[keep, None]
    return SensorPoints(xyz, hits.prim[keep], hits.normal[keep])
