"""Dynamic convolution, radial migration and mask assembly (METHOD 3.6, 4.4)."""

from __future__ import annotations

import pytest
import torch

from sphmask_core.model.migration import (
    assemble_masks,
    dyco_kernel_size,
    dyco_layer_dims,
    dynamic_conv,
    migrated_radius,
)
from sphmask_core.model.spherical import cartesian_to_spherical, find_sector, ray_targets

T, P = 5, 5


def _reference_dyco(kernels, qxyz, qsize, uxyz, usize, ufeat, hidden, n_layers):
    """Naive per-(query, unit) evaluation with the explicit 38-channel input."""
    dims = dyco_layer_dims(ufeat.shape[1], hidden, n_layers)
    out = torch.zeros(kernels.shape[0], uxyz.shape[0], dtype=kernels.dtype)
    for q in range(kernels.shape[0]):
        x = torch.cat([qxyz[q] - uxyz, (qsize[q] - usize).abs(), ufeat], dim=1)  # (U, 38)
        w_off, b_off = 0, sum(i * o for i, o in dims)
        for li, (i, o) in enumerate(dims):
            w = kernels[q, w_off : w_off + i * o].reshape(i, o)
            b = kernels[q, b_off : b_off + o]
            w_off += i * o
            b_off += o
            x = x @ w
            if li < n_layers - 1:
                x = torch.relu(x + b)
        out[q] = x[:, 0]
    return out


def test_kernel_size_matches_spec():
    assert dyco_kernel_size(32, 32, 2) == 1281  # W1 38x32, W2 32x1, b1 32, b2 1
    assert dyco_layer_dims(32, 32, 3) == [(38, 32), (32, 16), (16, 1)]


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_dynamic_conv_matches_reference(n_layers):
    g = torch.Generator().manual_seed(n_layers)
    k, u, c, h = 7, 40, 32, 32
    kern = torch.randn(k, dyco_kernel_size(c, h, n_layers), generator=g, dtype=torch.float64)
    args = [torch.randn(k, 3, generator=g, dtype=torch.float64), torch.rand(k, 3, generator=g, dtype=torch.float64),
            torch.randn(u, 3, generator=g, dtype=torch.float64), torch.rand(u, 3, generator=g, dtype=torch.float64),
            torch.randn(u, c, generator=g, dtype=torch.float64)]
    z = dynamic_conv(kern, *args, hidden=h, num_layers=n_layers)
    assert z.shape == (k, u)
    torch.testing.assert_close(z, _reference_dyco(kern, *args, h, n_layers))
    torch.testing.assert_close(dynamic_conv(kern, *args, hidden=h, num_layers=n_layers, chunk_size=2), z)
    if n_layers > 1:
        # the last bias (b2) is generated but not applied
        kern2 = kern.clone()
        kern2[:, -1] += 100.0
        torch.testing.assert_close(dynamic_conv(kern2, *args, hidden=h, num_layers=n_layers), z)


def test_dynamic_conv_validates_shapes_and_propagates_gradient():
    kern = torch.randn(3, 1281, requires_grad=True)
    feats = torch.randn(10, 32, requires_grad=True)
    z = dynamic_conv(kern, torch.zeros(3, 3), torch.ones(3, 3), torch.randn(10, 3), torch.rand(10, 3), feats)
    z.sum().backward()
    assert kern.grad is not None and kern.grad.abs().sum() > 0
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="kernels"):
        dynamic_conv(torch.randn(3, 1280), torch.zeros(3, 3), torch.ones(3, 3), torch.randn(10, 3), torch.rand(10, 3), feats)
    with pytest.raises(ValueError, match="unit_xyz"):
        dynamic_conv(kern, torch.zeros(3, 3), torch.ones(3, 3), torch.randn(9, 3), torch.rand(10, 3), feats)


def test_migrated_radius_value_and_gradient_paths():
    r = torch.tensor([1.0, 2.0], requires_grad=True)
    z = torch.tensor([0.25, -0.5], requires_grad=True)
    out = migrated_radius(r, z, train=True)
    torch.testing.assert_close(out.detach(), torch.tensor([0.5, 3.0]))
    out.sum().backward()
    assert r.grad is None  # only through the detached path
    torch.testing.assert_close(z.grad, torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(migrated_radius(r, z, train=False).detach(), torch.tensor([0.5, 3.0]))


def _grid_box(lo, hi, step=0.05):
    axes = [torch.arange(l, h + 1e-9, step, dtype=torch.float64) for l, h in zip(lo, hi)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def test_mask_assembly_convex_object_is_fully_covered():
    # dense sphere (filled ball) and a box: GT centre + GT rays, zero migration -> all points in
    ball = _grid_box((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5))
    ball = ball[ball.norm(dim=1) <= 0.5] + torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    box = _grid_box((-1.0, 0.0, 0.0), (-0.4, 0.8, 0.3))
    xyz = torch.cat([ball, box])
    inst = torch.cat([torch.zeros(len(ball)), torch.ones(len(box))]).long()
    tgt = ray_targets(xyz, inst, 2, T, P)
    masks = assemble_masks(tgt[:, 25:], tgt[:, :25], torch.zeros(2, len(xyz), dtype=torch.float64), xyz, T, P)
    assert masks.dtype == torch.bool and masks.shape == (2, len(xyz))
    assert masks[0, inst == 0].all() and masks[1, inst == 1].all()
    assert not masks[0, inst == 1].any() and not masks[1, inst == 0].any()


def test_mask_assembly_non_convex_false_positives_removed_by_migration():
    # L-shaped object with a small cube sitting in its concave corner
    arm_a = _grid_box((0.0, 0.0, 0.0), (2.0, 0.4, 0.4))
    arm_b = _grid_box((0.0, 0.45, 0.0), (0.4, 2.0, 0.4))
    ell = torch.cat([arm_a, arm_b])
    cube = _grid_box((0.9, 0.9, 0.0), (1.3, 1.3, 0.4))
    xyz = torch.cat([ell, cube])  # (U, 3)
    is_ell = torch.cat([torch.ones(len(ell)), torch.zeros(len(cube))]).bool()
    tgt = ray_targets(ell, torch.zeros(len(ell), dtype=torch.long), 1, T, P)
    center, rays = tgt[:, 25:], tgt[:, :25]
    z = torch.zeros(1, len(xyz), dtype=torch.float64)
    mask = assemble_masks(center, rays, z, xyz, T, P)[0]
    assert mask[is_ell].all()
    false_pos = mask & ~is_ell
    assert false_pos.sum() > 0.5 * len(cube)  # most of the cube lies inside the L's rays

    # migrate the false positives outwards: r - 2z = ray + 0.1
    r, pol, az = cartesian_to_spherical(xyz, center[0])
    rho = rays[0][find_sector(pol, az, T, P)]
    z_fix = z.clone()
    z_fix[0, false_pos] = (r[false_pos] - rho[false_pos] - 0.1) / 2
    fixed = assemble_masks(center, rays, z_fix, xyz, T, P)[0]
    assert fixed[is_ell].all()
    assert not fixed[~is_ell].any()
    # and a positive delta pulls an outside point in
    far = torch.tensor([[5.0, 5.0, 0.2]], dtype=torch.float64)
    r_far, pol_f, az_f = cartesian_to_spherical(far, center[0])
    gap = float(r_far[0] - rays[0][find_sector(pol_f, az_f, T, P)][0])
    assert not assemble_masks(center, rays, torch.zeros(1, 1, dtype=torch.float64), far, T, P)[0, 0]
    assert assemble_masks(center, rays, torch.full((1, 1), gap / 2 + 0.01, dtype=torch.float64), far, T, P)[0, 0]


def test_mask_assembly_chunking_and_min_ray():
    g = torch.Generator().manual_seed(3)
    centers, rays = torch.randn(9, 3, generator=g), torch.rand(9, 25, generator=g) * 2 - 0.5
    z, xyz = torch.randn(9, 50, generator=g) * 0.3, torch.randn(50, 3, generator=g)
    a = assemble_masks(centers, rays, z, xyz, T, P, chunk_size=2)
    b = assemble_masks(centers, rays, z, xyz, T, P, chunk_size=64)
    assert torch.equal(a, b)
    # negative rays act as 0.01: a unit at the centre with z=0 is inside
    m = assemble_masks(torch.zeros(1, 3), torch.full((1, 25), -1.0), torch.zeros(1, 1), torch.zeros(1, 3), T, P)
    assert m.item()
    with pytest.raises(ValueError):
        assemble_masks(centers, rays[:, :24], z, xyz, T, P)
