import pytest
import spconv.pytorch as spconv
import torch
from spconv.core import ConvAlgo

from sphmask_core.model.backbone import BackboneConfig, UNet, conv_algo_for, count_parameters, set_conv_algo
from sphmask_core.ops.voxelize import voxel_mean, voxelize

SMALL = BackboneConfig(in_channels=6, base_channels=16, levels=4, blocks_per_level=2, voxel_size=0.05)


def _expected_unet_params(cfg: BackboneConfig) -> int:
    """Closed-form count from METHOD 3.1 (bias-free convs, affine BN = 2C each)."""
    ch = cfg.channels
    n = 27 * cfg.in_channels * ch[0] + 2 * ch[0]  # input conv + output BN
    for i, c in enumerate(ch):
        n += cfg.blocks_per_level * (2 * (2 * c) + 2 * 27 * c * c)  # down-path blocks
        if i + 1 < len(ch):
            c2 = ch[i + 1]
            n += 2 * c + 8 * c * c2 + 2 * c2 + 8 * c2 * c  # BN+down conv, BN+inverse conv
            n += 2 * 2 * c + 27 * 2 * c * c + 2 * c + 27 * c * c + 2 * c * c  # first tail block (1x1 shortcut)
            n += (cfg.blocks_per_level - 1) * (4 * c + 54 * c * c)
    return n


def test_full_scannet_parameter_count():
    model = UNet(BackboneConfig())
    n = count_parameters(model)
    assert n == _expected_unet_params(BackboneConfig())
    assert abs(n - 30.11e6) / 30.11e6 < 0.005


def test_conv_algo_choice_and_explicit_on_every_layer():
    assert conv_algo_for("cpu") == ConvAlgo.Native
    assert conv_algo_for(torch.device("cuda", 0)) == ConvAlgo.MaskImplicitGemm
    with pytest.raises(ValueError, match="cpu and cuda"):
        conv_algo_for("meta")
    model = UNet(SMALL, algo=conv_algo_for("cpu"))
    convs = [m for m in model.modules() if isinstance(m, (spconv.SubMConv3d, spconv.SparseConv3d, spconv.SparseInverseConv3d))]
    assert len(convs) > 10 and all(c.algo == ConvAlgo.Native for c in convs)
    set_conv_algo(model, ConvAlgo.MaskImplicitGemm)
    assert all(c.algo == ConvAlgo.MaskImplicitGemm for c in convs)


def _scene(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([4.0, 4.0, 2.0])
    rgb = torch.rand(n, 3, generator=g) * 2 - 1
    return xyz, torch.cat([rgb, xyz], dim=1)


def test_small_forward_backward_20k_points():
    torch.manual_seed(0)
    xyz, feats = _scene(20_000, 0)
    offsets = torch.tensor([0, 12_000, 20_000])
    vm = voxelize(xyz, offsets, SMALL.voxel_size)
    vfeat = voxel_mean(feats, vm.point_to_voxel, vm.n_voxels)  # (V, 6)
    model = UNet(SMALL)
    out = model(vfeat, vm.coords, vm.batch_size, vm.spatial_shape)  # (V, 16)
    assert out.shape == (vm.n_voxels, SMALL.out_channels)
    assert bool(torch.isfinite(out).all()) and bool((out >= 0).all())  # ends with ReLU
    point_out = out[vm.point_to_voxel]  # (N, 16) devoxelized
    point_out.square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == []


def test_output_follows_input_row_order():
    xyz, feats = _scene(3000, 1)
    vm = voxelize(xyz, torch.tensor([0, 3000]), 0.1)
    vfeat = voxel_mean(feats, vm.point_to_voxel, vm.n_voxels)
    model = UNet(BackboneConfig(base_channels=8, levels=3, voxel_size=0.1)).eval()
    perm = torch.randperm(vm.n_voxels, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(vfeat, vm.coords, 1, vm.spatial_shape)
        permuted = model(vfeat[perm], vm.coords[perm], 1, vm.spatial_shape)
    torch.testing.assert_close(permuted, ref[perm], rtol=1e-4, atol=1e-5)


def test_bad_input_shapes():
    model = UNet(SMALL)
    with pytest.raises(ValueError, match="feats"):
        model(torch.zeros(5, 3), torch.zeros(5, 4, dtype=torch.int32), 1, [128, 128, 128])
    with pytest.raises(ValueError, match="coords"):
        model(torch.zeros(5, 6), torch.zeros(5, 3, dtype=torch.int32), 1, [128, 128, 128])
    with pytest.raises(ValueError, match="levels"):
        BackboneConfig(levels=0)


def test_pointwise_heads_shapes_init_and_boxes():
    from sphmask_core.model.pointwise_heads import PointwiseHeads, absolute_boxes, box_sizes

    torch.manual_seed(0)
    heads = PointwiseHeads(32, 20)
    assert count_parameters(heads) == 4 * (32 * 32 + 32 + 64) + (32 + 1) * (20 + 3 + 6 + 1)  # 5470 (METHOD 3.7)
    last = heads.semantic[3]
    assert float(last.bias.abs().max()) == 0.0 and 0.005 < float(last.weight.std()) < 0.015
    out = heads(torch.randn(50, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "semantic": (50, 20), "centroid_offset": (50, 3), "corner_offset": (50, 6), "box_conf": (50,)
    }
    xyz = torch.tensor([[1.0, 2.0, 3.0]])
    boxes = absolute_boxes(xyz, torch.tensor([[-0.5, -1.0, 0.0, 0.5, 1.0, 2.0]]))
    assert boxes.tolist() == [[0.5, 1.0, 3.0, 1.5, 3.0, 5.0]]
    assert box_sizes(boxes).tolist() == [[1.0, 2.0, 2.0]]
    with pytest.raises(ValueError, match="feats"):
        heads(torch.randn(5, 16))
