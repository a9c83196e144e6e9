"""Point Migration Head (dynamic convolution), radial migration and mask assembly.

METHOD 3.6 and 4.4. One scalar ``z`` per (query, unit) is both the mask logit and the radial
migration delta: the migrated radius of unit u for query q is ``r_qu - 2 z_qu``, and the unit
belongs to the query's mask iff that radius lies inside the query's ray for u's sector.

Kernel layout (per query, length ``dyco_kernel_size``): all layer weights, then all layer
biases. Layer l's weight block is read row-major as an (in_l, out_l) matrix W_l, applied as
``h @ W_l``. The last layer's bias is generated but not applied (as in the reference).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sphmask_core.model.spherical import cartesian_to_spherical, find_sector

GEOMETRY_CHANNELS = 6  # relative position (3) + absolute box-size difference (3)
_CHUNK_ELEMENTS = 1 << 26  # bound on K_chunk * U * hidden floats per dynamic-conv chunk (256 MB fp32)
_BLOCK_ELEMENTS = 1 << 17  # K * hidden * units of one blocked dynamic-conv step (512 KiB fp32: L2)


def dyco_layer_dims(feat_dim: int, hidden: int, num_layers: int) -> list[tuple[int, int]]:
    """(in, out) of each dynamic-conv layer.

    in_0 = feat_dim + 6; the first hidden layer has ``hidden`` channels and each further hidden
    layer halves it (ISBNet's 3-layer 38x32, 32x16, 16x1); the last layer outputs 1 channel.
    """
    if num_layers < 1:
        raise ValueError(f"num_dyco_layer must be >= 1, got {num_layers}")
    if hidden < 2 ** max(num_layers - 2, 0):
        raise ValueError(f"hidden={hidden} too small for {num_layers} dynamic-conv layers")
    dims = [feat_dim + GEOMETRY_CHANNELS] + [hidden // (2**i) for i in range(num_layers - 1)] + [1]
    return [(dims[i], dims[i + 1]) for i in range(num_layers)]


def dyco_kernel_size(feat_dim: int, hidden: int, num_layers: int) -> int:
    """Number of generated kernel parameters per query (1281 for 32 / 32 / 2 layers)."""
    layers = dyco_layer_dims(feat_dim, hidden, num_layers)
    return sum(i * o for i, o in layers) + sum(o for _, o in layers)


def split_kernels(
    kernels: Tensor, feat_dim: int, hidden: int, num_layers: int
) -> tuple[list[Tensor], list[Tensor]]:
    """Split (K, P) kernels into weights [(K, in_l, out_l)] and biases [(K, out_l)]."""
    layers = dyco_layer_dims(feat_dim, hidden, num_layers)
    expected = dyco_kernel_size(feat_dim, hidden, num_layers)
    if kernels.ndim != 2 or kernels.shape[1] != expected:
        raise ValueError(
            f"kernels must be (K, {expected}) for feat_dim={feat_dim}, hidden={hidden}, "
            f"num_layers={num_layers}; got {tuple(kernels.shape)}"
        )
    sizes = [i * o for i, o in layers] + [o for _, o in layers]
    parts = torch.split(kernels, sizes, dim=1)
    k = kernels.shape[0]
    weights = [parts[l].reshape(k, i, o) for l, (i, o) in enumerate(layers)]
    biases = list(parts[num_layers:])
    return weights, biases


def _dynamic_conv_chunk(
    weights: list[Tensor],
    biases: list[Tensor],
    query_xyz: Tensor,
    query_sizes: Tensor,
    unit_xyz: Tensor,
    unit_sizes: Tensor,
    unit_feats: Tensor,
) -> Tensor:
    w0 = weights[0]  # (k, 6 + C, H)
    k, _, h_dim = w0.shape
    # Position and feature terms are linear in per-unit quantities, so for all queries at once
    # they are one GEMM (U, 3 + C) @ (3 + C, k * H); only |size_q - size_u| is truly pairwise.
    unit_in = torch.cat([-unit_xyz, unit_feats], dim=1)  # (U, 3 + C)
    w_unit = torch.cat([w0[:, :3], w0[:, 6:]], dim=1)  # (k, 3 + C, H)
    unit_term = (unit_in @ w_unit.permute(1, 0, 2).reshape(unit_in.shape[1], k * h_dim)).view(-1, k, h_dim)
    query_term = torch.einsum("kd,kdh->kh", query_xyz, w0[:, :3])  # (k, H)
    if len(weights) > 1:
        query_term = query_term + biases[0]
    size_diff = (query_sizes[:, None, :] - unit_sizes[None, :, :]).abs()  # (k, U, 3)
    h = torch.baddbmm(unit_term.transpose(0, 1) + query_term[:, None, :], size_diff, w0[:, 3:6])  # (k, U, H)
    n_layers = len(weights)
    for l in range(1, n_layers):
        h = torch.relu(h)
        if l < n_layers - 1:
            h = torch.baddbmm(biases[l][:, None, :], h, weights[l])  # (k, U, out_l)
        else:
            h = torch.bmm(h, weights[l])  # (k, U, 1); last bias intentionally not applied
    return h[..., 0]  # (k, U)


def _check_geometry(k: int, u: int, query_xyz: Tensor, query_sizes: Tensor, unit_xyz: Tensor, unit_sizes: Tensor) -> None:
    for name, t, n in (
        ("query_xyz", query_xyz, k),
        ("query_sizes", query_sizes, k),
        ("unit_xyz", unit_xyz, u),
        ("unit_sizes", unit_sizes, u),
    ):
        if t.shape != (n, 3):
            raise ValueError(f"{name} must be ({n}, 3), got {tuple(t.shape)}")


def dynamic_conv(
    kernels: Tensor,
    query_xyz: Tensor,
    query_sizes: Tensor,
    unit_xyz: Tensor,
    unit_sizes: Tensor,
    unit_feats: Tensor,
    hidden: int = 32,
    num_layers: int = 2,
    chunk_size: int | None = None,
) -> Tensor:
    """Per-query dynamic MLP over every unit: z (K, U).

    Input per (q, u): [x_q - x_u (3, metres), |size_q - size_u| (3), unit feature (C)].
    kernels: (K, dyco_kernel_size(C, hidden, num_layers)); query_xyz, query_sizes: (K, 3);
    unit_xyz, unit_sizes: (U, 3); unit_feats: (U, C). ``chunk_size`` queries are processed at
    a time (default: bounded so one chunk's hidden tensor stays under 64 M floats).
    """
    k = kernels.shape[0]
    if unit_feats.ndim != 2:
        raise ValueError(f"unit_feats must be (U, C), got {tuple(unit_feats.shape)}")
    u, c = unit_feats.shape
    _check_geometry(k, u, query_xyz, query_sizes, unit_xyz, unit_sizes)
    weights, biases = split_kernels(kernels, c, hidden, num_layers)
    if k == 0 or u == 0:
        return kernels.new_zeros(k, u)
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // max(u * hidden, 1))
    outs = []
    for s in range(0, k, chunk_size):
        e = min(s + chunk_size, k)
        outs.append(
            _dynamic_conv_chunk(
                [w[s:e] for w in weights],
                [b[s:e] for b in biases],
                query_xyz[s:e],
                query_sizes[s:e],
                unit_xyz,
                unit_sizes,
                unit_feats,
            )
        )
    return torch.cat(outs, dim=0)  # (K, U)


def _unit_block_size(k: int, hidden: int) -> int:
    # units per block so that one block's hidden activations (k x hidden x block) stay in cache
    return max(64, _BLOCK_ELEMENTS // max(k * hidden, 1))


def dynamic_conv_blocked(
    kernels: Tensor,
    query_xyz: Tensor,
    query_sizes: Tensor,
    unit_xyz: Tensor,
    unit_sizes: Tensor,
    unit_feats: Tensor,
    hidden: int = 32,
    num_layers: int = 2,
    block_size: int | None = None,
) -> Tensor:
    """`dynamic_conv` (same inputs, same z (K, U) up to float rounding) computed over blocks of units.

    Per block of B units the first layer is one GEMM (K*H, 4 + C) @ (4 + C, B): the rows hold each
    query's position and feature weights plus its position term and bias (against a ones row), so
    only the pairwise |size_q - size_u| term is added afterwards, in place; the hidden activations
    are (K, H, B) and the last layer is a batched (1, H) @ (H, B) product. Nothing of size
    K x U x H is ever held, which is what makes the reference memory-bound.
    """
    k = kernels.shape[0]
    if unit_feats.ndim != 2:
        raise ValueError(f"unit_feats must be (U, C), got {tuple(unit_feats.shape)}")
    u, c = unit_feats.shape
    _check_geometry(k, u, query_xyz, query_sizes, unit_xyz, unit_sizes)
    weights, biases = split_kernels(kernels, c, hidden, num_layers)
    if k == 0 or u == 0:
        return kernels.new_zeros(k, u)
    w0 = weights[0]  # (K, 6 + C, H0)
    h0 = w0.shape[2]
    query_term = torch.einsum("kd,kdh->kh", query_xyz, w0[:, :3])  # (K, H0)
    if num_layers > 1:
        query_term = query_term + biases[0]
    rows = torch.cat([w0[:, :3], w0[:, 6:], query_term[:, None, :]], dim=1)  # (K, 4 + C, H0)
    rows = rows.transpose(1, 2).reshape(k * h0, 4 + c)  # (K*H0, 4 + C)
    cols = torch.cat([-unit_xyz, unit_feats, unit_xyz.new_ones(u, 1)], dim=1).t()  # (4 + C, U)
    w_size = w0[:, 3:6].transpose(1, 2)  # (K, H0, 3)
    later = [w.transpose(1, 2) for w in weights[1:]]  # (K, out_l, in_l)
    q_sizes = query_sizes[:, :, None]  # (K, 3, 1)
    u_sizes = unit_sizes.t()  # (3, U)
    bs = block_size or _unit_block_size(k, h0)
    outs = []
    for s in range(0, u, bs):
        e = min(s + bs, u)
        h = torch.mm(rows, cols[:, s:e]).view(k, h0, e - s)  # (K, H0, B)
        size_diff = (q_sizes - u_sizes[None, :, s:e]).abs()  # (K, 3, B)
        h = h.baddbmm_(w_size, size_diff) if not h.requires_grad else torch.baddbmm(h, w_size, size_diff)
        for l, w in enumerate(later, start=1):
            h = torch.relu_(h) if not h.requires_grad else torch.relu(h)
            if l < num_layers - 1:
                h = torch.baddbmm(biases[l][:, :, None], w, h)  # (K, out_l, B)
            else:
                h = torch.bmm(w, h)  # (K, 1, B); last bias intentionally not applied
        outs.append(h[:, 0])
    return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]  # (K, U)


def migrated_radius(r: Tensor, z: Tensor, train: bool) -> Tensor:
    """Radius after radial migration, r - 2 z.

    In training only one of the two subtractions carries gradient, ``(r - z).detach() - z``, so
    dz gets -1 (not -2) and r gets none; the value is the same as at test time.
    """
    if train:
        return (r - z).detach() - z
    return r - 2.0 * z


def assemble_masks(
    centers: Tensor,
    rays: Tensor,
    z: Tensor,
    unit_xyz: Tensor,
    n_theta: int,
    n_phi: int,
    min_ray: float = 0.01,
    chunk_size: int = 64,
    clamp_center: bool = False,
) -> Tensor:
    """Test-time binary masks (K, U): unit u in mask q iff ray_q[sector_qu] >= r_qu - 2 z_qu.

    centers: (K, 3) spherical centres; rays: (K, n_theta*n_phi) (clamped below at ``min_ray``);
    z: (K, U) migration deltas; unit_xyz: (U, 3). Sectors are taken about each query's centre.
    clamp_center: clamp the centre coordinates at ``min_ray`` too, as the released code does (it
    clamps its whole rays + centre tensor); off by default, as it moves centres that lie below
    ``min_ray`` on an axis (`TestConfig.clamp_center`).
    """
    k, n_rays = rays.shape
    if n_rays != n_theta * n_phi:
        raise ValueError(f"rays must be (K, {n_theta * n_phi}), got {tuple(rays.shape)}")
    if centers.shape != (k, 3):
        raise ValueError(f"centers must be ({k}, 3), got {tuple(centers.shape)}")
    if z.ndim != 2 or z.shape[0] != k or unit_xyz.shape != (z.shape[1], 3):
        raise ValueError(
            f"z must be (K={k}, U) and unit_xyz (U, 3); got {tuple(z.shape)} and {tuple(unit_xyz.shape)}"
        )
    with torch.no_grad():
        rays = rays.clamp(min=min_ray)
        if clamp_center:
            centers = centers.clamp(min=min_ray)
        out = torch.empty(z.shape, dtype=torch.bool, device=z.device)
        for s in range(0, k, chunk_size):
            e = min(s + chunk_size, k)
            r, polar, azim = cartesian_to_spherical(unit_xyz[None], centers[s:e, None])  # (k, U)
            sector = find_sector(polar, azim, n_theta, n_phi)  # (k, U)
            rho = rays[s:e].gather(1, sector)  # (k, U)
            out[s:e] = rho - migrated_radius(r, z[s:e], train=False) >= 0
    return out


def assemble_masks_pruned(
    centers: Tensor,
    rays: Tensor,
    z: Tensor,
    unit_xyz: Tensor,
    n_theta: int,
    n_phi: int,
    min_ray: float = 0.01,
    chunk_size: int = 64,
    clamp_center: bool = False,
) -> Tensor:
    """`assemble_masks` (same arguments, bit-identical result) without the sector of most pairs.

    A pair whose migrated radius m = r - 2z satisfies shortest_ray - m >= 0 is inside whatever its
    sector, and one with longest_ray - m < 0 is outside (float subtraction is monotonic in the
    ray, so these tests agree exactly with the per-sector one); the angles and the sector are
    computed only for the pairs in between.
    """
    k, n_rays = rays.shape
    if n_rays != n_theta * n_phi:
        raise ValueError(f"rays must be (K, {n_theta * n_phi}), got {tuple(rays.shape)}")
    if centers.shape != (k, 3):
        raise ValueError(f"centers must be ({k}, 3), got {tuple(centers.shape)}")
    if z.ndim != 2 or z.shape[0] != k or unit_xyz.shape != (z.shape[1], 3):
        raise ValueError(
            f"z must be (K={k}, U) and unit_xyz (U, 3); got {tuple(z.shape)} and {tuple(unit_xyz.shape)}"
        )
    with torch.no_grad():
        rays = rays.clamp(min=min_ray)
        if clamp_center:
            centers = centers.clamp(min=min_ray)
        shortest = rays.min(dim=1).values[:, None]  # (K, 1)
        longest = rays.max(dim=1).values[:, None]  # (K, 1)
        out = torch.empty(z.shape, dtype=torch.bool, device=z.device)
        for s in range(0, k, chunk_size):
            e = min(s + chunk_size, k)
            # the same operations as cartesian_to_spherical, so r is bit-identical
            vx = unit_xyz[None, :, 0] - centers[s:e, 0, None]  # (k, U)
            vy = unit_xyz[None, :, 1] - centers[s:e, 1, None]
            vz = unit_xyz[None, :, 2] - centers[s:e, 2, None]
            rho_xy = torch.sqrt(vx**2 + vy**2)  # (k, U)
            m = migrated_radius(torch.sqrt(rho_xy**2 + vz**2), z[s:e], train=False)  # (k, U)
            inside = shortest[s:e] - m >= 0  # (k, U)
            open_pair = ~inside & (longest[s:e] - m >= 0)  # (k, U) depends on the sector
            qi, ui = torch.nonzero(open_pair, as_tuple=True)  # (P,)
            polar = torch.rad2deg(torch.atan2(rho_xy[qi, ui], vz[qi, ui]))
            azim = torch.rad2deg(torch.atan2(vy[qi, ui], vx[qi, ui])) + 180.0
            sector = find_sector(polar, azim, n_theta, n_phi)  # (P,)
            inside[qi, ui] = rays[s + qi, sector] - m[qi, ui] >= 0
            out[s:e] = inside
    return out


__all__ = [
    "assemble_masks_pruned",
    "assemble_masks",
    "dyco_kernel_size",
    "dyco_layer_dims",
    "dynamic_conv",
    "dynamic_conv_blocked",
    "migrated_radius",
    "split_kernels",
]
