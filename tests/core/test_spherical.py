"""Spherical conversion, sectors, ray targets and ray polygons (METHOD 4.1-4.3)."""

from __future__ import annotations

import math

import pytest
import torch

from sphmask_core.model.spherical import (
    cartesian_to_spherical,
    find_sector,
    ray_targets,
    rays_to_polygon,
    sector_mid_directions,
)

T, P = 5, 5


def _sector(point, center=(0.0, 0.0, 0.0)):
    r, pol, az = cartesian_to_spherical(
        torch.tensor(point, dtype=torch.float64), torch.tensor(center, dtype=torch.float64)
    )
    return int(find_sector(pol, az, T, P)), float(r), float(pol), float(az)


def test_conversion_known_angles():
    # +x: polar 90, code azimuth 0 + 180 = 180
    _, r, pol, az = _sector((2.0, 0.0, 0.0))
    assert (r, pol, az) == pytest.approx((2.0, 90.0, 180.0))
    # +y -> 270, -y -> 90, +z -> polar 0
    assert _sector((0.0, 1.0, 0.0))[3] == pytest.approx(270.0)
    assert _sector((0.0, -1.0, 0.0))[3] == pytest.approx(90.0)
    _, r, pol, _ = _sector((1.0, 1.0, math.sqrt(2.0)), center=(0.0, 0.0, 0.0))
    assert r == pytest.approx(2.0)
    assert pol == pytest.approx(45.0)


def test_sector_ids_by_hand():
    # poles
    assert _sector((0.0, 0.0, 1.0))[0] == 0 * P + 2  # polar 0, azimuth atan2(0,0)+180 = 180
    assert _sector((0.0, 0.0, -1.0))[0] == 4 * P + 2  # polar 180 clipped to the last bin
    # exactly at the centre: polar bin 0, azimuth bin 2
    assert _sector((1.0, 2.0, 3.0), center=(1.0, 2.0, 3.0))[:2] == (2, 0.0)
    # azimuth seam at -x: just above y=0 -> ~360 -> last bin; just below -> ~0 -> bin 0
    assert _sector((-1.0, 1e-6, 0.0))[0] == 2 * P + 4
    assert _sector((-1.0, -1e-6, 0.0))[0] == 2 * P + 0
    # a point at polar 40 deg (bin 1) and geometric azimuth 100 deg (code 280 -> bin 3)
    pol, az = math.radians(40.0), math.radians(100.0)
    p = (math.sin(pol) * math.cos(az), math.sin(pol) * math.sin(az), math.cos(pol))
    assert _sector(p, center=(0.0, 0.0, 0.0))[0] == 1 * P + 3
    # relative to a shifted centre
    assert _sector((5.0 + p[0], -3.0 + p[1], 1.0 + p[2]), center=(5.0, -3.0, 1.0))[0] == 8


def test_find_sector_bin_edges_and_validation():
    pol = torch.tensor([0.0, 35.999, 36.0, 179.9, 180.0])
    az = torch.tensor([0.0, 71.999, 72.0, 359.9, 360.0])
    ids = find_sector(pol, az, T, P)
    assert ids.tolist() == [0, 0, 1 * P + 1, 4 * P + 4, 4 * P + 4]
    assert find_sector(torch.tensor([70.0]), torch.tensor([100.0]), 3, 4).tolist() == [1 * 4 + 1]
    with pytest.raises(ValueError, match="n_theta"):
        find_sector(pol, az, 7, P)
    with pytest.raises(ValueError, match="n_phi"):
        find_sector(pol, az, T, 7)
    with pytest.raises(ValueError):
        find_sector(pol, az, 0, P)


def _symmetric_sphere(n_pairs: int, radius: float) -> torch.Tensor:
    # Fibonacci points plus their antipodes, so the mean is exactly the centre
    i = torch.arange(n_pairs, dtype=torch.float64) + 0.5
    phi = torch.acos(1 - 2 * i / (2 * n_pairs))
    theta = math.pi * (1 + 5**0.5) * i
    pts = torch.stack([torch.sin(phi) * torch.cos(theta), torch.sin(phi) * torch.sin(theta), torch.cos(phi)], 1)
    return torch.cat([pts, -pts]) * radius


def test_ray_targets_sphere_all_rays_equal_radius():
    c1, c2 = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64), torch.tensor([-3.0, 0.0, 1.0], dtype=torch.float64)
    s1, s2 = _symmetric_sphere(1000, 0.7) + c1, _symmetric_sphere(1000, 1.3) + c2
    noise = torch.randn(50, 3, dtype=torch.float64) * 10
    xyz = torch.cat([s2, noise, s1])
    inst = torch.cat([torch.ones(2000), torch.full((50,), -100.0), torch.zeros(2000)]).long()
    out = ray_targets(xyz, inst, 2, T, P)
    assert out.shape == (2, T * P + 3)
    torch.testing.assert_close(out[0, :25], torch.full((25,), 0.7, dtype=torch.float64))
    torch.testing.assert_close(out[1, :25], torch.full((25,), 1.3, dtype=torch.float64))
    torch.testing.assert_close(out[0, 25:], c1)
    torch.testing.assert_close(out[1, 25:], c2)


def test_ray_targets_cube_corners_and_faces_by_hand():
    a = 0.5
    c = torch.tensor([2.0, -1.0, 0.3], dtype=torch.float64)
    corners = torch.tensor([[sx, sy, sz] for sx in (-a, a) for sy in (-a, a) for sz in (-a, a)], dtype=torch.float64)
    faces = torch.tensor([[a, 0, 0], [-a, 0, 0], [0, a, 0], [0, -a, 0], [0, 0, a], [0, 0, -a]], dtype=torch.float64)
    xyz = torch.cat([corners, faces]) + c
    out = ray_targets(xyz, torch.zeros(14, dtype=torch.long), 1, T, P)[0]
    expected = torch.full((25,), 1e-6, dtype=torch.float64)
    # corners: polar 54.7 (bin 1) for z>0, 125.3 (bin 3) for z<0; code azimuth of (x,y) signs:
    # (+,+) 225 -> 3, (-,+) 315 -> 4, (-,-) 45 -> 0, (+,-) 135 -> 1
    for pb in (1, 3):
        for ab in (0, 1, 3, 4):
            expected[pb * P + ab] = a * math.sqrt(3)
    # face centres: +x (2,2), -x (2,4), +y (2,3), -y (2,1), +z (0,2), -z (4,2)
    for s in (12, 14, 13, 11, 2, 22):
        expected[s] = a
    torch.testing.assert_close(out[:25], expected)
    torch.testing.assert_close(out[25:], c)


def test_ray_targets_matches_brute_force_and_empty_instances():
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(300, 3, generator=g)
    inst = torch.randint(-1, 3, (300,), generator=g)  # -1 ignored; instance 3 has no points
    out = ray_targets(xyz, inst, 4, 3, 4, empty_value=1e-6)
    for k in range(3):
        pts = xyz[inst == k]
        c = pts.mean(0)
        r, pol, az = cartesian_to_spherical(pts, c)
        sec = find_sector(pol, az, 3, 4)
        for s in range(12):
            sel = r[sec == s]
            exp = float(sel.max()) if len(sel) else 1e-6
            assert float(out[k, s]) == pytest.approx(exp, rel=1e-6)
        torch.testing.assert_close(out[k, 12:], c)
    assert torch.all(out[3, :12] == 1e-6) and torch.all(out[3, 12:] == 0)
    with pytest.raises(ValueError):
        ray_targets(xyz[:, :2], inst, 4, 3, 4)


def test_rays_to_polygon_round_trip():
    center = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    rays = torch.rand(2, 25, dtype=torch.float64) + 0.1
    ends = rays_to_polygon(center, rays, T, P)
    assert ends.shape == (2, 25, 3)
    r, pol, az = cartesian_to_spherical(ends, center[:, None])
    torch.testing.assert_close(r, rays)
    assert find_sector(pol, az, T, P).tolist() == [list(range(25))] * 2
    # mid angles: sector 0 direction has polar 18 deg and geometric azimuth 36 - 180 = -144 deg
    d0 = sector_mid_directions(T, P, dtype=torch.float64)[0]
    exp = torch.tensor(
        [math.sin(math.radians(18)) * math.cos(math.radians(-144)),
         math.sin(math.radians(18)) * math.sin(math.radians(-144)),
         math.cos(math.radians(18))], dtype=torch.float64)
    torch.testing.assert_close(d0, exp)
    with pytest.raises(ValueError):
        rays_to_polygon(center, rays[:, :24], T, P)
