import numpy as np
import pytest
import torch
from torch import nn

from sphmask_core.model.aggregator import LocalAggregator
from sphmask_core.model.backbone import count_parameters
from sphmask_core.ops.sampling import farthest_point_sample_dense


def _first_k(d2: np.ndarray, r: float, k: int) -> list[int]:
    hits = [j for j in range(len(d2)) if d2[j] < r * r][:k]
    return hits + [hits[0]] * (k - len(hits))


def _apply(seq: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """Evaluate an eval-mode stack of 1x1 convs / BN / ReLU on rows x (K, C_in), layer by layer."""
    for m in seq:
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            x = x @ m.weight.detach().numpy().reshape(m.out_channels, -1).T
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            scale = m.weight.detach().numpy() / np.sqrt(m.running_var.numpy() + m.eps)
            x = (x - m.running_mean.numpy()) * scale + m.bias.detach().numpy()
        elif isinstance(m, nn.ReLU):
            x = np.maximum(x, 0)
        else:
            raise AssertionError(f"unexpected layer {m}")
    return x


def _reference(agg, xyz, feats, boxes, lengths, idx):
    """METHOD 3.4 steps 2-5 written per query with explicit loops."""
    out = []
    for b in range(xyz.shape[0]):
        p, f = xyz[b, : lengths[b]], feats[b, : lengths[b]]
        s = boxes[b, : lengths[b], 3:] - boxes[b, : lengths[b], :3]
        samples = idx[b]
        g = []
        for i in samples:
            nb = _first_k(((p - p[i]) ** 2).sum(1), agg.radius, agg.k)
            x = np.concatenate([(p[nb] - p[i]) / agg.radius, np.abs(s[nb] - s[i]), f[nb]], axis=1)
            g.append(_apply(agg.mlp1, x).max(0))
        g = np.stack(g)  # (S, C)
        q, qs = p[samples], s[samples]
        r2 = 2 * agg.radius
        h = []
        for a in range(len(samples)):
            nb = _first_k(((q - q[a]) ** 2).sum(1), r2, agg.k_post)
            x = np.concatenate([(q[nb] - q[a]) / r2, np.abs(qs[nb] - qs[a]), g[nb]], axis=1)
            h.append(_apply(agg.mlp2, x).max(0))
        out.append(np.maximum(_apply(agg.mlp3, np.stack(h)) + g, 0))
    return np.stack(out)


def _inputs(seed: int, b: int, n: int, c: int, lengths: list[int]):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(b, n, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)
    feats = torch.randn(b, n, c, generator=g, dtype=torch.float64)
    half = 0.05 + 0.3 * torch.rand(b, n, 3, generator=g, dtype=torch.float64)
    boxes = torch.cat([xyz - half, xyz + 1.5 * half], dim=-1)
    return xyz, feats, boxes, torch.tensor(lengths)


def _randomize_bn(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))


def test_matches_per_query_loop_reference():
    torch.manual_seed(0)
    agg = LocalAggregator(8, [8, 16], [16], radius=0.35, k=6, k_post=5).double().eval()
    _randomize_bn(agg, 1)
    xyz, feats, boxes, lengths = _inputs(2, 2, 120, 8, [120, 90])
    idx = farthest_point_sample_dense(xyz, lengths, 24)  # (2, 24)
    with torch.no_grad():
        out = agg(xyz, feats, boxes, lengths, idx)
    ref = _reference(agg, xyz.numpy(), feats.numpy(), boxes.numpy(), lengths.tolist(), idx.numpy())
    np.testing.assert_allclose(out.features.numpy(), ref, rtol=1e-9, atol=1e-9)
    assert out.features.shape == (2, 24, 16)
    assert torch.equal(out.xyz, torch.gather(xyz, 1, idx[..., None].expand(-1, -1, 3)))
    assert torch.equal(out.boxes, torch.gather(boxes, 1, idx[..., None].expand(-1, -1, 6)))
    assert torch.equal(out.index, idx)


def test_translation_invariant_and_padding_ignored():
    agg = LocalAggregator(4, [8], [8], radius=0.5, k=8, k_post=8).double().eval()
    xyz, feats, boxes, lengths = _inputs(3, 2, 60, 4, [60, 40])
    idx = farthest_point_sample_dense(xyz, lengths, 10)
    shift = torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        ref = agg(xyz, feats, boxes, lengths, idx).features
        moved = agg(xyz + shift, feats, boxes + shift.repeat(2), lengths, idx).features
        xyz2, feats2 = xyz.clone(), feats.clone()
        xyz2[1, 40:] = xyz[1, 0]  # padding right next to real points
        feats2[1, 40:] = 1e6
        padded = agg(xyz2, feats2, boxes, lengths, idx).features
    torch.testing.assert_close(moved, ref)
    torch.testing.assert_close(padded, ref)


def test_train_mode_backward_and_prefix_samples():
    agg1 = LocalAggregator(32, [32, 64], [64], radius=0.2, k=32, k_post=64)
    agg2 = LocalAggregator(64, [64, 128], [128], radius=0.4, k=32, k_post=32)
    assert count_parameters(agg1) + count_parameters(agg2) == 204_288  # METHOD 3.7: ~204 k
    g = torch.Generator().manual_seed(4)
    xyz = torch.rand(2, 3000, 3, generator=g) * 2
    feats = torch.randn(2, 3000, 32, generator=g, requires_grad=True)
    boxes = torch.cat([xyz - 0.1, xyz + 0.1], dim=-1)
    lengths = torch.tensor([3000, 2500])
    idx = farthest_point_sample_dense(xyz, lengths, 256)
    first = agg1(xyz, feats, boxes, lengths, idx)
    prefix = torch.arange(64).expand(2, 64).contiguous()  # first 64 of the FPS order (training rule)
    second = agg2(first.xyz, first.features, first.boxes, torch.full((2,), 256), prefix)
    assert second.features.shape == (2, 64, 128)
    second.features.square().mean().backward()
    assert float(feats.grad.abs().sum()) > 0
    for model in (agg1, agg2):
        assert all(p.grad is not None for p in model.parameters())


def test_bad_input():
    agg = LocalAggregator(4, [8], [8], radius=0.5, k=4, k_post=4)
    xyz, feats, boxes, lengths = _inputs(5, 1, 20, 4, [10])
    with pytest.raises(ValueError, match="sample_idx must index real rows"):
        agg(xyz.float(), feats.float(), boxes.float(), lengths, torch.tensor([[0, 15]]))
    with pytest.raises(ValueError, match="features"):
        agg(xyz.float(), feats[..., :3].float(), boxes.float(), lengths, torch.tensor([[0, 5]]))
    with pytest.raises(ValueError, match="second_dims"):
        LocalAggregator(4, [8], [16], radius=0.5, k=4, k_post=4)


@pytest.mark.parametrize("train", [False, True])
def test_neighbour_max_in_channels_last_layout_is_exact(train, monkeypatch):
    """The layout-aware max (inference) and the plain one (training, with gradients) give
    bit-identical features and gradients to amax over dim 3."""
    import sphmask_core.model.aggregator as aggregator_module

    torch.manual_seed(5)
    agg = LocalAggregator(32, [32, 64], [64], radius=0.2, k=32, k_post=64).train(train)
    _randomize_bn(agg, 2)
    g = torch.Generator().manual_seed(6)
    xyz = torch.rand(2, 2000, 3, generator=g) * 2
    feats = torch.randn(2, 2000, 32, generator=g)
    boxes = torch.cat([xyz - 0.05, xyz + 0.05], dim=-1)
    lengths = torch.tensor([2000, 1500])
    idx = farthest_point_sample_dense(xyz, lengths, 200)
    results = []
    for reduce in (aggregator_module._max_over_neighbours, lambda y: y.amax(dim=3)):
        monkeypatch.setattr(aggregator_module, "_max_over_neighbours", reduce)
        f = feats.clone().requires_grad_(train)
        with torch.set_grad_enabled(train):
            out = agg(xyz, f, boxes, lengths, idx).features
        if train:
            out.square().sum().backward()
        results.append((out.detach(), f.grad))
    assert torch.equal(results[0][0], results[1][0])
    if train:
        assert torch.equal(results[0][1], results[1][1])
