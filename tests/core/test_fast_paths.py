"""Fast inference paths against the original ones they replace (issue 13).

Every fast path must give the reference's results exactly: masks, scores and classes of the
Segmenter on random weights and on the shipped model, for several scenes and sizes; the blocked
dynamic convolution and the pruned assembly bit for bit; scatter boxes equal to the dense ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sphmask_core.config import apply_overrides, load_model_config
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from sphmask_core.inference.instances import Instances
from sphmask_core.inference.segmenter import Segmenter, mask_boxes
from sphmask_core.model.candidates import select_candidates
from sphmask_core.model.migration import (
    assemble_masks,
    assemble_masks_pruned,
    dyco_kernel_size,
    dynamic_conv,
    dynamic_conv_blocked,
)
from sphmask_core.model.spherical_mask import SphericalMask


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _dyco_inputs(g: torch.Generator, k: int, u: int, c: int, h: int, n_layers: int, dtype=torch.float32):
    kern = torch.randn(k, dyco_kernel_size(c, h, n_layers), generator=g, dtype=dtype) * 0.3
    return kern, [
        torch.randn(k, 3, generator=g, dtype=dtype), torch.rand(k, 3, generator=g, dtype=dtype),
        torch.randn(u, 3, generator=g, dtype=dtype), torch.rand(u, 3, generator=g, dtype=dtype),
        torch.randn(u, c, generator=g, dtype=dtype),
    ]


@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("block_size", [None, 64, 1000])
def test_blocked_dynamic_conv_equals_reference(n_layers, block_size):
    g = torch.Generator().manual_seed(10 + n_layers)
    kern, args = _dyco_inputs(g, 37, 2500, 16, 16, n_layers)
    ref = dynamic_conv(kern, *args, hidden=16, num_layers=n_layers)
    new = dynamic_conv_blocked(kern, *args, hidden=16, num_layers=n_layers, block_size=block_size)
    torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-5)
    assert dynamic_conv_blocked(kern[:0], *[a[:0] for a in args[:2]], *args[2:], hidden=16, num_layers=n_layers).shape == (0, 2500)


def test_blocked_dynamic_conv_gradients_equal_reference():
    g = torch.Generator().manual_seed(3)
    kern, args = _dyco_inputs(g, 9, 300, 16, 16, 2, dtype=torch.float64)
    leaves = [kern, *args]
    grads = []
    for conv in (dynamic_conv, dynamic_conv_blocked):
        xs = [t.clone().requires_grad_(True) for t in leaves]
        z = conv(xs[0], *xs[1:], hidden=16, num_layers=2, **({"block_size": 64} if conv is dynamic_conv_blocked else {}))
        (z.sin() * torch.arange(z.numel(), dtype=z.dtype).view_as(z)).sum().backward()
        grads.append([x.grad for x in xs])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_pruned_assembly_is_bit_identical():
    g = torch.Generator().manual_seed(5)
    k, u = 70, 3000
    centers = torch.randn(k, 3, generator=g)
    rays = torch.rand(k, 25, generator=g) * 2.0
    rays[:3] = 0.0  # every ray below min_ray
    z = torch.randn(k, u, generator=g) * 0.5
    unit_xyz = torch.randn(u, 3, generator=g) * 1.5
    unit_xyz[:5] = centers[0]  # units exactly at a centre
    ref = assemble_masks(centers, rays, z, unit_xyz, 5, 5)
    new = assemble_masks_pruned(centers, rays, z, unit_xyz, 5, 5, chunk_size=16)
    assert torch.equal(ref, new)
    # both decided and sector-dependent pairs occur in this case
    assert 0 < int(ref.sum()) < ref.numel()


def test_scatter_boxes_equal_dense_min_max():
    g = torch.Generator().manual_seed(1)
    masks = torch.rand(6, 500, generator=g) < 0.3
    masks[2] = False
    xyz = torch.randn(500, 3, generator=g)
    rows, pids = torch.nonzero(masks, as_tuple=True)
    lo, hi = mask_boxes(rows, pids, xyz, 6)
    inf = torch.full_like(xyz, float("inf"))
    assert torch.equal(lo, torch.where(masks[:, :, None], xyz[None], inf[None]).amin(1))
    assert torch.equal(hi, torch.where(masks[:, :, None], xyz[None], -inf[None]).amax(1))


def test_voxel_mask_points_equal_point_mask_gather():
    from sphmask_core.inference.segmenter import _voxel_mask_points

    g = torch.Generator().manual_seed(2)
    voxel_masks = torch.rand(5, 40, generator=g) < 0.4
    voxel_masks[1] = False
    p2v = torch.randint(0, 40, (700,), generator=g)
    p2v[p2v == 7] = 8  # a voxel without points
    rows, pids = _voxel_mask_points(voxel_masks, p2v)
    ref_rows, ref_pids = torch.nonzero(voxel_masks[:, p2v], as_tuple=True)
    assert torch.equal(rows, ref_rows) and torch.equal(pids, ref_pids)


def test_candidates_none_when_nothing_is_foreground():
    probs = torch.tensor([[0.1, 0.2, 0.7], [0.3, 0.1, 0.6]])
    assert select_candidates(probs, torch.ones(2), 2, 10) is None
    cand = select_candidates(torch.tensor([[0.6, 0.1, 0.3], [0.3, 0.1, 0.6]]), torch.tensor([1.0, 0.25]), 2, 3)
    # scores: (0,0) sqrt(.6), (0,1) sqrt(.1), (1,0) sqrt(.075), (1,1) sqrt(.025)
    assert cand.queries.tolist() == [0, 0, 1] and cand.classes.tolist() == [0, 1, 0]


def _assert_same(a: Instances, b: Instances) -> None:
    assert len(a) == len(b)
    for x, y in zip(a.masks, b.masks):
        assert np.array_equal(x, y)
    for name in ("scores", "class_ids", "class_probs", "iou_scores", "boxes", "centers", "rays", "point_instance"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def _compare(seg: Segmenter, seeds_sizes) -> int:
    found = 0
    for seed, n in seeds_sizes:
        sc = generate_scene(seed, SyntheticConfig(target_points_range=(n, n), n_objects_range=(3, 6)))
        seg.reference = True
        ref = seg(sc.xyz, sc.rgb)
        seg.reference = False
        new = seg(sc.xyz, sc.rgb)
        _assert_same(ref, new)
        found += len(ref)
    return found


@pytest.mark.parametrize("dense_points", [True, False])
def test_fast_inference_equals_reference_random_weights(dense_points, monkeypatch):
    from sphmask_core.inference import segmenter as segmenter_module

    if not dense_points:  # the pair expansion of many instances on large clouds
        monkeypatch.setattr(segmenter_module, "_DENSE_POINT_MASK_ELEMENTS", 0)
    torch.manual_seed(0)
    cfg = apply_overrides(
        load_model_config("small"),
        {"test.filter_bg_thresh": 0.0, "test.npoint_thresh": 0, "test.min_points": 1, "test.score_threshold": 0.0},
    )
    seg = Segmenter(SphericalMask(cfg), cfg, device="cpu")
    assert _compare(seg, [(0, 3000), (1, 8000), (2, 15000)]) > 0


def test_fast_inference_equals_reference_shipped_model():
    seg = Segmenter.from_checkpoint(device="cpu")
    assert _compare(seg, [(400010, 20000), (400011, 40000)]) > 0



def test_training_losses_and_gradients_equal_reference_fps():
    from sphmask_core.data.collate import collate

    torch.manual_seed(0)
    cfg = apply_overrides(load_model_config("small"), {"test.filter_bg_thresh": 0.0})
    model = SphericalMask(cfg).train()
    batch = collate([generate_scene(s, SyntheticConfig(target_points_range=(3000, 4000))) for s in (0, 1)])
    results = []
    for reference in (True, False):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the criterion's sampling
        out = model.forward_train(batch, stage="full", reference=reference)
        out["loss"].backward()
        results.append((out, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (ref, ref_grads), (new, new_grads) = results
    assert float(ref["instance_loss"].detach()) > 0
    for key in ref:
        assert torch.equal(ref[key], new[key]), key
    assert len(ref_grads) == len(new_grads) and all(torch.equal(a, b) for a, b in zip(ref_grads, new_grads))
