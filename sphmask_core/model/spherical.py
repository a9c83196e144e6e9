"""Spherical coordinates, angular sectors and ray targets (METHOD 4.1-4.3).

Angle convention (the released code's, not the paper's Eq. 1), for v = point - centre:

* ``r``       = |v| in metres;
* ``polar``   = angle from +z, atan2(sqrt(vx^2 + vy^2), vz), in degrees, in [0, 180];
* ``azimuth`` = atan2(vy, vx) + 180, in degrees, in [0, 360]. So azimuth 0 / 360 is the -x
  direction (the seam), 90 is -y, 180 is +x and 270 is +y.

Sectors split polar into ``n_theta`` and azimuth into ``n_phi`` equal bins; a sector id is
``polar_bin * n_phi + azimuth_bin`` (polar-major), which is also the order of the rays.
"""

from __future__ import annotations

import torch
from torch import Tensor

EMPTY_RAY = 1e-6


def cartesian_to_spherical(points: Tensor, centers: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Spherical coordinates of ``points`` about ``centers`` (broadcast, both (..., 3)).

    Returns ``(r, polar_deg, azimuth_deg)``, each of the broadcast shape without the last axis.
    A point exactly at its centre gets r = 0, polar 0 and azimuth 180.
    """
    if points.shape[-1] != 3 or centers.shape[-1] != 3:
        raise ValueError(
            f"points and centers need a last axis of size 3, got {tuple(points.shape)} "
            f"and {tuple(centers.shape)}"
        )
    v = points - centers  # (..., 3)
    rho_xy = torch.sqrt(v[..., 0] ** 2 + v[..., 1] ** 2)  # (...)
    r = torch.sqrt(rho_xy**2 + v[..., 2] ** 2)  # (...)
    polar = torch.rad2deg(torch.atan2(rho_xy, v[..., 2]))  # (...) in [0, 180]
    azimuth = torch.rad2deg(torch.atan2(v[..., 1], v[..., 0])) + 180.0  # (...) in [0, 360]
    return r, polar, azimuth


def sector_steps(n_theta: int, n_phi: int) -> tuple[int, int]:
    """Angular bin widths in whole degrees (polar, azimuth); the counts must divide 180 / 360.

    The reference builds anchors with an int() step, which silently yields extra bins when the
    count does not divide the range, so such counts are rejected.
    """
    for name, n, full in (("n_theta", n_theta, 180), ("n_phi", n_phi, 360)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive int, got {n!r}")
        if full % n != 0:
            raise ValueError(f"{name}={n} must divide {full} degrees evenly")
    return 180 // n_theta, 360 // n_phi


def find_sector(polar_deg: Tensor, azimuth_deg: Tensor, n_theta: int, n_phi: int) -> Tensor:
    """Sector id (int64, same shape as the inputs) = polar_bin * n_phi + azimuth_bin.

    bin = floor(angle / step) clipped to [0, n - 1]; so polar 180 falls in the last polar bin and
    azimuth 360 in the last azimuth bin.
    """
    step_t, step_p = sector_steps(n_theta, n_phi)
    polar_bin = torch.div(polar_deg, step_t, rounding_mode="floor").long().clamp_(0, n_theta - 1)
    azim_bin = torch.div(azimuth_deg, step_p, rounding_mode="floor").long().clamp_(0, n_phi - 1)
    return polar_bin * n_phi + azim_bin


def ray_targets(
    xyz: Tensor,
    instance: Tensor,
    n_instances: int,
    n_theta: int,
    n_phi: int,
    empty_value: float = EMPTY_RAY,
) -> Tensor:
    """Ray ground truth of every instance at once: ``(G, n_theta * n_phi + 3)``.

    Row g = [max radius of instance g's points in each sector (polar-major), centre xyz], the
    centre being the mean of the instance's points. Sectors without points get ``empty_value``.
    Points whose instance id is outside [0, n_instances) (e.g. -100) are ignored; an instance
    with no points gets all rays ``empty_value`` and centre 0.

    xyz: (M, 3) float; instance: (M,) int.
    """
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must be (M, 3), got {tuple(xyz.shape)}")
    if instance.shape != xyz.shape[:1]:
        raise ValueError(f"instance must be ({xyz.shape[0]},), got {tuple(instance.shape)}")
    if n_instances < 0:
        raise ValueError(f"n_instances must be >= 0, got {n_instances}")
    n_rays = n_theta * n_phi
    sector_steps(n_theta, n_phi)
    valid = (instance >= 0) & (instance < n_instances)
    pts = xyz[valid]  # (M', 3)
    inst = instance[valid].long()  # (M',)
    dtype = xyz.dtype if xyz.is_floating_point() else torch.float32
    pts = pts.to(dtype)

    counts = torch.zeros(n_instances, dtype=dtype, device=xyz.device).index_add_(
        0, inst, torch.ones_like(inst, dtype=dtype)
    )  # (G,)
    sums = torch.zeros(n_instances, 3, dtype=dtype, device=xyz.device).index_add_(0, inst, pts)
    centers = sums / counts.clamp(min=1.0)[:, None]  # (G, 3)

    r, polar, azim = cartesian_to_spherical(pts, centers[inst])  # (M',)
    sector = find_sector(polar, azim, n_theta, n_phi)  # (M',)
    rays = torch.full((n_instances * n_rays,), empty_value, dtype=dtype, device=xyz.device)
    rays.scatter_reduce_(0, inst * n_rays + sector, r, reduce="amax", include_self=True)
    return torch.cat([rays.view(n_instances, n_rays), centers], dim=1)  # (G, R + 3)


def sector_mid_directions(
    n_theta: int, n_phi: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> Tensor:
    """Unit vectors (R, 3) pointing through the middle of each sector (polar-major order).

    Sector (i, j) spans polar [i*step_t, (i+1)*step_t) and code-azimuth [j*step_p, (j+1)*step_p);
    its mid direction has polar (i + 0.5) * step_t from +z and code-azimuth (j + 0.5) * step_p,
    i.e. a geometric azimuth (from +x towards +y) of code-azimuth - 180.
    """
    step_t, step_p = sector_steps(n_theta, n_phi)
    polar = torch.deg2rad((torch.arange(n_theta, dtype=torch.float64) + 0.5) * step_t)  # (T,)
    azim = torch.deg2rad((torch.arange(n_phi, dtype=torch.float64) + 0.5) * step_p - 180.0)  # (P,)
    pol, az = torch.meshgrid(polar, azim, indexing="ij")  # (T, P)
    dirs = torch.stack(
        [torch.sin(pol) * torch.cos(az), torch.sin(pol) * torch.sin(az), torch.cos(pol)], dim=-1
    )  # (T, P, 3)
    return dirs.reshape(n_theta * n_phi, 3).to(dtype=dtype, device=device)


def rays_to_polygon(center: Tensor, rays: Tensor, n_theta: int, n_phi: int) -> Tensor:
    """3D end points of every ray, drawn along its sector's mid direction.

    center: (..., 3); rays: (..., R) with R = n_theta * n_phi (polar-major).
    Returns (..., R, 3) = center + ray * mid_direction (see ``sector_mid_directions`` for the
    angle convention). Rays are used as given (no clamping), so a negative ray points backwards.
    """
    n_rays = n_theta * n_phi
    if rays.shape[-1] != n_rays:
        raise ValueError(f"rays need a last axis of {n_rays} (= {n_theta} x {n_phi}), got {rays.shape[-1]}")
    if center.shape[-1] != 3:
        raise ValueError(f"center needs a last axis of size 3, got {tuple(center.shape)}")
    dirs = sector_mid_directions(n_theta, n_phi, dtype=rays.dtype, device=rays.device)  # (R, 3)
    return center[..., None, :] + rays[..., :, None] * dirs  # (..., R, 3)


def polygon_sector_angles(n_theta: int, n_phi: int) -> Tensor:
    """(R, 2) lower-edge (polar, code-azimuth) anchors in degrees of each sector, polar-major."""
    step_t, step_p = sector_steps(n_theta, n_phi)
    pol, az = torch.meshgrid(
        torch.arange(n_theta) * float(step_t), torch.arange(n_phi) * float(step_p), indexing="ij"
    )
    return torch.stack([pol, az], dim=-1).reshape(-1, 2)


__all__ = [
    "EMPTY_RAY",
    "cartesian_to_spherical",
    "find_sector",
    "polygon_sector_angles",
    "ray_targets",
    "rays_to_polygon",
    "sector_mid_directions",
    "sector_steps",
]
