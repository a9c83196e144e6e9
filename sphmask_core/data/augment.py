"""Training augmentation (METHOD 7.2): jitter, z-rotation, x/y flips, elastic distortion, colour
shift and the point-budget crop. Every random choice comes from the `np.random.Generator` passed
in, so a seeded generator reproduces an augmentation exactly.

`augment_scene` returns the augmented Scene (its xyz are the positions before elastic distortion,
used as the xyz feature) and `grid_xyz`, the elastically distorted positions that voxel
coordinates are computed from. Both are in metres; the voxel-unit parameters of METHOD 7.2 are
converted with `AugmentConfig.voxel_size`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import uniform_filter

from .scene import Scene


class SceneDropped(ValueError):
    """The scene has too few points left (after cropping) to be used for training."""


@dataclass
class AugmentConfig:
    jitter: bool = True
    jitter_sigma: float = 0.1  # std of the entries added to the identity matrix
    flip: bool = True
    flip_p: float = 0.5  # per axis (x and y independently)
    rotate: bool = True  # about z, uniform in [0, 2 pi)
    elastic: bool = True
    # (granularity, magnitude) pairs in voxels, applied in order; METHOD 7.2 (Spherical Mask).
    # ISBNet uses ((6, 40), (20, 160)). As in the reference code the noise grid's node spacing
    # is 2 * granularity.
    elastic_params: tuple[tuple[float, float], ...] = ((10.0, 60.0), (30.0, 180.0))
    voxel_size: float = 0.02  # metres per voxel, converts the voxel-unit parameters
    color_shift: bool = True
    color_sigma: float = 0.1  # one shift per channel per scene
    crop: bool = True
    max_points: int = 250_000
    crop_window_voxels: int = 512
    crop_step_voxels: int = 32  # window shrink per round (doubled above 1e6 points); S3DIS 64
    crop_retries: int = 5
    min_points: int = 5000  # fewer points left => the scene is dropped (SceneDropped)

    def validate(self) -> "AugmentConfig":
        if self.jitter_sigma < 0 or self.color_sigma < 0:
            raise ValueError("jitter_sigma and color_sigma must be >= 0")
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {self.flip_p}")
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {self.voxel_size}")
        for gran, mag in self.elastic_params:
            if not gran > 0 or mag < 0:
                raise ValueError(f"elastic (granularity, magnitude) must be (> 0, >= 0), got {(gran, mag)}")
        if self.max_points < 1 or self.crop_window_voxels < 1 or self.crop_step_voxels < 1:
            raise ValueError("max_points, crop_window_voxels and crop_step_voxels must be >= 1")
        if self.crop_retries < 1 or self.min_points < 0:
            raise ValueError("crop_retries must be >= 1 and min_points >= 0")
        return self


def _check_xyz(xyz: np.ndarray) -> None:
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"expected points of shape (N, 3), got {xyz.shape}")


def jitter(xyz: np.ndarray, rng: np.random.Generator, sigma: float = 0.1) -> np.ndarray:
    """Multiply by I + N(0, sigma^2) (3x3): a small random shear/scale."""
    _check_xyz(xyz)
    m = np.eye(3) + rng.normal(0.0, sigma, size=(3, 3))
    return (xyz @ m).astype(xyz.dtype)


def rotate_z(xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate about the z axis by an angle drawn from U(0, 2 pi)."""
    _check_xyz(xyz)
    theta = rng.uniform(0.0, 2.0 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return (xyz @ rot.T).astype(xyz.dtype)


def flip_xy(xyz: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Negate x and, independently, y, each with probability p."""
    _check_xyz(xyz)
    signs = np.where(rng.random(2) < p, -1.0, 1.0)
    return (xyz * np.array([signs[0], signs[1], 1.0])).astype(xyz.dtype)


def elastic(xyz: np.ndarray, rng: np.random.Generator, spacing: float, magnitude: float) -> np.ndarray:
    """Smooth random displacement field: Gaussian noise on a grid of node spacing `spacing`,
    smoothed by box filters, interpolated trilinearly at the points and scaled by `magnitude`
    (both in the units of xyz). Each displacement component is at most `magnitude` times the
    largest grid noise value, since the filters and interpolation only average."""
    _check_xyz(xyz)
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, got {spacing}")
    pts = xyz.astype(np.float64)
    lo = pts.min(axis=0) - spacing  # one node of margin below
    n_nodes = np.ceil((pts.max(axis=0) - lo) / spacing).astype(int) + 2  # and at least one above
    noise = rng.standard_normal((*n_nodes, 3))  # (n0, n1, n2, 3)
    for _ in range(2):  # two passes of a 3-node box filter along each spatial axis
        noise = uniform_filter(noise, size=(3, 3, 3, 1), mode="constant", cval=0.0)
    axes = tuple(lo[k] + spacing * np.arange(n_nodes[k]) for k in range(3))
    field = RegularGridInterpolator(axes, noise, method="linear", bounds_error=True)
    return (pts + magnitude * field(pts)).astype(xyz.dtype)  # (N, 3)


def color_shift(rgb: np.ndarray, rng: np.random.Generator, sigma: float = 0.1) -> np.ndarray:
    """Add one N(0, sigma^2) offset per channel to every point (not clipped, as in the code)."""
    _check_xyz(rgb)
    return (rgb + rng.normal(0.0, sigma, size=3)).astype(rgb.dtype)


def crop_mask(
    xyz: np.ndarray, rng: np.random.Generator, max_points: int, window: float, step: float
) -> np.ndarray:
    """(N,) bool: points inside a randomly placed axis-aligned window, shrunk in x and y by
    `step` (2 * step while more than 1e6 points remain) until at most `max_points` are inside.
    The window starts as a cube of side `window`; a scene with <= max_points is kept whole."""
    _check_xyz(xyz)
    keep = np.ones(xyz.shape[0], bool)
    if xyz.shape[0] <= max_points:
        return keep
    p = xyz - xyz.min(axis=0)  # (N, 3), origin at the scene's min corner
    extent = p.max(axis=0)
    size = np.full(3, float(window))
    while keep.sum() > max_points:
        shrink = 2 * step if keep.sum() > 1e6 else step
        # a window smaller than the scene slides by a random part of the difference
        offset = np.minimum(size - extent + 1e-3, 0.0) * rng.random(3)
        q = p + offset
        keep = (q >= 0).all(axis=1) & (q < size).all(axis=1)
        size[:2] -= shrink
    return keep


def augment_scene(scene: Scene, rng: np.random.Generator, cfg: AugmentConfig | None = None) -> tuple[Scene, np.ndarray]:
    """Augmented copy of `scene` and its grid positions (N', 3) float32 for voxelization.

    Raises SceneDropped when fewer than cfg.min_points points remain after cropping.
    """
    cfg = (cfg or AugmentConfig()).validate()
    scene.validate()
    xyz = scene.xyz.astype(np.float64)
    if cfg.jitter:
        xyz = jitter(xyz, rng, cfg.jitter_sigma)
    if cfg.flip:
        xyz = flip_xy(xyz, rng, cfg.flip_p)
    if cfg.rotate:
        xyz = rotate_z(xyz, rng)
    grid = xyz
    if cfg.elastic:
        for gran, mag in cfg.elastic_params:
            grid = elastic(grid, rng, 2.0 * gran * cfg.voxel_size, mag * cfg.voxel_size)
    rgb = color_shift(scene.rgb, rng, cfg.color_sigma) if cfg.color_shift else scene.rgb.copy()
    keep = np.ones(scene.n_points, bool)
    if cfg.crop:
        window = cfg.crop_window_voxels * cfg.voxel_size
        step = cfg.crop_step_voxels * cfg.voxel_size
        for _ in range(cfg.crop_retries):
            keep = crop_mask(grid, rng, cfg.max_points, window, step)
            if keep.sum() >= cfg.min_points:
                break
    if keep.sum() < cfg.min_points:
        raise SceneDropped(
            f"scene '{scene.name}' has {int(keep.sum())} points after cropping, fewer than "
            f"min_points={cfg.min_points}"
        )
    out = Scene(
        xyz=xyz.astype(np.float32),
        rgb=rgb.astype(np.float32),
        semantic=scene.semantic,
        instance=scene.instance,
        superpoint=scene.superpoint,
        name=scene.name,
    ).subset(keep)
    return out, np.ascontiguousarray(grid[keep], dtype=np.float32)
