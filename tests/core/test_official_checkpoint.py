"""Converting the authors' Spherical Mask / ISBNet checkpoints (sphmask_core.official_checkpoint).

Their code cannot run here (CUDA extensions), so the source state dicts are generated below from
their module definitions (yunshin/SphericalMask spherical_mask/model/{spherical_mask,blocks,
aggregator}.py, VinAIResearch/ISBNet isbnet/model/isbnet.py, pointnet2 pytorch_utils): key names,
shapes and dtypes as their `model.state_dict()` has them, random values. The few places where
their layout differs from ours are re-implemented here independently (sparse-conv weight layouts,
the 1x1x1 shortcut, GenericMLP / BatchNorm with PyTorch's default eps).
"""

from __future__ import annotations

import copy
import random
import types
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from sphmask_core.checkpoint import build_model_from_checkpoint, load_checkpoint, config_from_checkpoint
from sphmask_core.config import ModelConfig, QueryHeadConfig, load_model_config
from sphmask_core.model.migration import assemble_masks, assemble_masks_pruned
from sphmask_core.model.query_heads import MaskTower, QueryHeads
from sphmask_core.official_checkpoint import (
    ConversionError,
    convert_state_dict,
    main,
    official_config,
    our_name,
    their_name,
)

CHANNELS, LEVELS, REPS = 32, 7, 2
DEC, MASK_DIM, N_SEM, N_INST, RAYS = 128, 32, 20, 18, 25


class _Authors:
    """Builds one of their state dicts; `layout` is how spconv saved its weights."""

    def __init__(self, layout: str = "KRSC", seed: int = 0) -> None:
        self.sd: dict[str, torch.Tensor] = {}
        self.layout = layout
        self.gen = torch.Generator().manual_seed(seed)

    def t(self, key: str, *shape: int) -> None:
        self.sd[key] = torch.randn(*shape, generator=self.gen)

    def bn(self, prefix: str, c: int) -> None:
        self.t(prefix + ".weight", c)
        self.t(prefix + ".bias", c)
        self.t(prefix + ".running_mean", c)
        self.sd[prefix + ".running_var"] = torch.rand(c, generator=self.gen) * 1e-2 + 1e-4
        self.sd[prefix + ".num_batches_tracked"] = torch.tensor(int(torch.randint(1, 10**6, (1,), generator=self.gen)))

    def spconv(self, key: str, out: int, k: int, inp: int) -> None:
        shape = {"KRSC": (out, k, k, k, inp), "RSKC": (k, k, k, out, inp), "RSCK": (k, k, k, inp, out)}[self.layout]
        self.t(key, *shape)

    def residual(self, prefix: str, cin: int, cout: int) -> None:
        if cin != cout:
            self.spconv(prefix + "i_branch.0.weight", cout, 1, cin)
        self.bn(prefix + "conv_branch.0", cin)
        self.spconv(prefix + "conv_branch.2.weight", cout, 3, cin)
        self.bn(prefix + "conv_branch.3", cout)
        self.spconv(prefix + "conv_branch.5.weight", cout, 3, cout)

    def ublock(self, prefix: str, planes: list[int]) -> None:
        c = planes[0]
        for i in range(REPS):
            self.residual(f"{prefix}blocks.block{i}.", c, c)
        if len(planes) > 1:
            self.bn(prefix + "conv.0", c)
            self.spconv(prefix + "conv.2.weight", planes[1], 2, c)
            self.ublock(prefix + "u.", planes[1:])
            self.bn(prefix + "deconv.0", planes[1])
            self.spconv(prefix + "deconv.2.weight", c, 2, planes[1])
            for i in range(REPS):
                self.residual(f"{prefix}blocks_tail.block{i}.", c * (2 - i), c)

    def mlp(self, prefix: str, c: int, out: int) -> None:  # blocks.MLP, num_layers 2
        self.t(prefix + ".0.weight", c, c)
        self.t(prefix + ".0.bias", c)
        self.bn(prefix + ".1", c)
        self.t(prefix + ".3.weight", out, c)
        self.t(prefix + ".3.bias", out)

    def aggregator(self, prefix: str, m: int) -> None:  # aggregator.LocalAggregator(mlp_dim=m)
        for i, (cin, cout) in enumerate([(m + 6, m), (m, 2 * m)]):
            self.t(f"{prefix}.mlp_module1.layer{i}.conv.weight", cout, cin, 1, 1)
            self.bn(f"{prefix}.mlp_module1.layer{i}.bn.bn", cout)
        self.t(f"{prefix}.mlp_module2.layer0.conv.weight", 2 * m, 2 * m + 6, 1, 1)
        self.bn(f"{prefix}.mlp_module2.layer0.bn.bn", 2 * m)
        for i, (cin, cout) in enumerate([(2 * m, 8 * m), (8 * m, 2 * m)]):
            self.t(f"{prefix}.mlp_module3.{i}.conv.weight", cout, cin, 1)
            self.bn(f"{prefix}.mlp_module3.{i}.bn.bn", cout)

    def generic_mlp(self, prefix: str, cin: int, hidden: list[int], out: int, conv: bool = True,
                    out_norm: bool = False) -> None:
        tail = (1,) if conv else ()
        index, c = 0, cin
        for h in hidden:
            self.t(f"{prefix}.layers.{index}.weight", h, c, *tail)
            self.bn(f"{prefix}.layers.{index + 1}", h)
            index, c = index + 3, h
        self.t(f"{prefix}.layers.{index}.weight", out, c, *tail)
        self.t(f"{prefix}.layers.{index}.bias", out)
        if out_norm:
            self.bn(f"{prefix}.layers.{index + 1}", out)

    def conv_blocks(self, prefix: str, c: int, n: int, out: int) -> None:  # conv_with_kaiming_uniform("BN")
        for i in range(n):
            self.t(f"{prefix}.{i}.0.weight", c, c, 1)
            self.bn(f"{prefix}.{i}.1", c)
        self.t(f"{prefix}.{n}.weight", out, c, 1)
        self.t(f"{prefix}.{n}.bias", out)

    def build(self, spherical: bool = True, dyco_layers: int = 2) -> dict[str, torch.Tensor]:
        c = CHANNELS
        self.spconv("input_conv.0.weight", c, 3, 6)
        self.ublock("unet.", [c * (i + 1) for i in range(LEVELS)])
        self.bn("output_layer.0", c)
        for name, out in (("semantic_linear", N_SEM), ("offset_linear", 3), ("offset_vertices_linear", 6),
                          ("box_conf_linear", 1)):
            self.mlp(name, c, out)
        self.aggregator("point_aggregator1", c)
        self.aggregator("point_aggregator2", 2 * c)
        self.generic_mlp("inst_shared_mlp", 4 * c, [4 * c], DEC, out_norm=True)
        heads = [("inst_sem_head", N_INST + 1), ("inst_conf_head", 1), ("inst_box_head", 6)]
        if spherical:
            heads += [("rid_module", RAYS), ("inst_center_head", 3)]
        for name, out in heads:
            self.generic_mlp(name, DEC, [DEC, DEC], out)
        self.conv_blocks("mask_tower", c, 3, MASK_DIM)
        m = MASK_DIM
        if dyco_layers == 2:
            n_params = (m + 6) * m + m + m + 1
        else:
            n_params = (m + 6) * m + m * (m // 2) + m // 2 + m + m // 2 + 1
        self.conv_blocks("inst_mask_head", DEC, 2, n_params)
        self.t("criterion.empty_weight", N_INST + 1)
        if spherical:  # built, never used (METHOD 10.2)
            self.conv_blocks("inst_mask_head_angular", DEC, 2, 32)
            self.generic_mlp("inst_inside_mask", c, [32, 32, 32], 32, conv=False)
            for prefix in ("inside_mask_head", "criterion.inside_mask_head"):
                self.generic_mlp(prefix, 32, [32, 32], 32, conv=False)
            self.bn("norm", 16)
            self.bn("criterion.norm", 16)
        # GenericMLP's hidden linear/conv layers have no bias; nothing to drop
        return self.sd


@pytest.fixture(scope="module")
def cfg() -> ModelConfig:
    return official_config()


@pytest.fixture(scope="module")
def own(cfg) -> dict[str, torch.Tensor]:
    from sphmask_core.model.spherical_mask import SphericalMask

    return SphericalMask(cfg).state_dict()


@pytest.fixture(scope="module")
def theirs() -> dict[str, torch.Tensor]:
    return _Authors().build()


@pytest.fixture(scope="module")
def converted(theirs, cfg, own):
    return convert_state_dict(theirs, cfg, "official", reference=own)


def _fingerprint(t: torch.Tensor) -> tuple:
    d = t.detach().double().flatten()
    return (d.numel(), round(float(d.sum()), 6), round(float((d * d).sum()), 6))


def test_every_tensor_of_ours_is_filled_each_from_a_distinct_tensor_of_theirs(converted, theirs, own):
    assert list(converted.state) == list(own)
    for k, v in converted.state.items():
        assert v.shape == own[k].shape and v.dtype == own[k].dtype, k
    used = Counter(_fingerprint(v) for k, v in theirs.items() if not k.startswith(tuple(converted.unused)))
    got = Counter(_fingerprint(v) for v in converted.state.values())
    assert got == used  # a bijection: no tensor of theirs used twice, none left out
    assert sum(v.numel() for k, v in converted.state.items() if "running" not in k and "num_batches" not in k) \
        == 30_725_685
    assert converted.spconv_layout == "KRSC"


def test_unused_modules_are_listed_not_converted(converted):
    prefixes = {k.split(".")[0] for k in converted.unused}
    assert prefixes == {"inst_mask_head_angular", "inst_inside_mask", "inside_mask_head", "norm", "criterion"}


@pytest.mark.parametrize("their, ours", [
    ("input_conv.0.weight", "backbone.input_conv.0.weight"),
    ("unet.u.u.blocks.block1.conv_branch.3.running_var", "backbone.unet.inner.inner.blocks.1.body.2.0.running_var"),
    ("unet.u.u.u.u.u.u.blocks.block0.conv_branch.5.weight", "backbone.unet." + "inner." * 6 + "blocks.0.body.3.weight"),
    ("unet.conv.0.num_batches_tracked", "backbone.unet.down.0.0.num_batches_tracked"),
    ("unet.u.conv.2.weight", "backbone.unet.inner.down.1.weight"),
    ("unet.u.deconv.2.weight", "backbone.unet.inner.up.1.weight"),
    ("unet.blocks_tail.block1.conv_branch.0.bias", "backbone.unet.tail.1.body.0.0.bias"),
    ("output_layer.0.running_var", "backbone.output_layer.0.running_var"),
    ("offset_vertices_linear.3.weight", "pointwise_heads.corner_offset.3.weight"),
    ("offset_linear.1.running_mean", "pointwise_heads.centroid_offset.1.running_mean"),
    ("point_aggregator2.mlp_module1.layer1.bn.bn.running_mean", "aggregator2.mlp1.4.running_mean"),
    ("point_aggregator1.mlp_module2.layer0.conv.weight", "aggregator1.mlp2.0.weight"),
    ("point_aggregator1.mlp_module3.1.conv.weight", "aggregator1.mlp3.3.weight"),
    ("inst_shared_mlp.layers.4.weight", "query_heads.inst_shared_mlp.4.weight"),
    ("inst_sem_head.layers.6.weight", "query_heads.class_head.6.weight"),
    ("rid_module.layers.6.bias", "query_heads.ray_head.6.bias"),
    ("inst_center_head.layers.4.running_var", "query_heads.center_head.4.running_var"),
    ("inst_mask_head.1.1.running_mean", "query_heads.kernel_head.4.running_mean"),
    ("inst_mask_head.2.weight", "query_heads.kernel_head.6.weight"),
    ("mask_tower.2.1.weight", "mask_tower.net.7.weight"),
    ("mask_tower.3.bias", "mask_tower.net.9.bias"),
])
def test_values_land_where_their_module_is_ours(converted, theirs, their, ours):
    assert torch.equal(converted.state[ours], theirs[their])


def test_shortcut_is_their_1x1_sparse_conv_forward(converted, theirs):
    # Custom1x1Subm3d.forward: features @ weight.view(out, in).T
    w = theirs["unet.u.blocks_tail.block0.i_branch.0.weight"]  # (64, 1, 1, 1, 128)
    x = torch.randn(7, 128)
    expected = x @ w.view(64, 128).T
    ours = nn.Linear(128, 64, bias=False)
    ours.weight.data.copy_(converted.state["backbone.unet.inner.tail.0.shortcut.weight"])
    torch.testing.assert_close(ours(x), expected)


@pytest.mark.parametrize("layout", ["RSKC", "RSCK"])
def test_spconv_2_1_native_layouts_are_permuted_to_krsc(layout, cfg, own):
    src = _Authors(layout=layout).build()
    conv = convert_state_dict(src, cfg, "official", reference=own)
    assert conv.spconv_layout == layout
    rng = random.Random(0)
    for their, ours in (("unet.u.blocks.block0.conv_branch.2.weight", "backbone.unet.inner.blocks.0.body.1.weight"),
                        ("unet.u.conv.2.weight", "backbone.unet.inner.down.1.weight"),
                        ("input_conv.0.weight", "backbone.input_conv.0.weight")):
        w, t = conv.state[ours], src[their]
        for _ in range(50):
            o, a, b, c, i = (rng.randrange(n) for n in w.shape)
            value = t[a, b, c, o, i] if layout == "RSKC" else t[a, b, c, i, o]
            assert w[o, a, b, c, i] == value
    w = src["unet.blocks_tail.block0.i_branch.0.weight"]
    expected = w[0, 0, 0] if layout == "RSKC" else w[0, 0, 0].T  # (out, in)
    assert torch.equal(conv.state["backbone.unet.tail.0.shortcut.weight"], expected)


def _their_generic_mlp(state: dict[str, torch.Tensor], prefix: str, n_hidden: int, out_norm: bool = False) -> nn.Module:
    """Their GenericMLP(use_conv, bn1d) from torch primitives: BatchNorm1d with PyTorch's default eps."""
    layers: list[nn.Module] = []
    for i in range(n_hidden):
        w = state[f"{prefix}.layers.{3 * i}.weight"]
        layers += [nn.Conv1d(w.shape[1], w.shape[0], 1, bias=False), nn.BatchNorm1d(w.shape[0]), nn.ReLU()]
    w = state[f"{prefix}.layers.{3 * n_hidden}.weight"]
    layers.append(nn.Conv1d(w.shape[1], w.shape[0], 1, bias=True))
    if out_norm:
        layers += [nn.BatchNorm1d(w.shape[0]), nn.ReLU()]
    net = nn.Sequential(*layers)
    net.load_state_dict({k[len(prefix) + len(".layers."):]: v for k, v in state.items()
                         if k.startswith(prefix + ".layers.")})
    return net.eval()


def test_query_heads_reproduce_their_generic_mlps_with_their_batchnorm_eps(converted, theirs, cfg):
    heads = QueryHeads(cfg.heads, cfg.aggregator.query_dim, cfg.n_classes)
    heads.load_state_dict({k[len("query_heads."):]: v for k, v in converted.state.items()
                           if k.startswith("query_heads.")})
    heads.eval()
    feats, xyz = torch.randn(40, DEC), torch.randn(40, 3)
    with torch.no_grad():
        out = heads(feats, xyz)
        shared = _their_generic_mlp(theirs, "inst_shared_mlp", 1, out_norm=True)
        h = shared(feats.t()[None])
        for name, ours in (("inst_sem_head", out.class_logits), ("rid_module", out.rays)):
            ref = _their_generic_mlp(theirs, name, 2)(h)[0].t()
            torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
        centre = _their_generic_mlp(theirs, "inst_center_head", 2)(h)[0].t() + xyz
        torch.testing.assert_close(out.centers, centre, rtol=1e-5, atol=1e-5)
        # with our former eps (1e-4) the trained-like small running variances give other outputs
        old = copy.deepcopy(heads)
        for m in old.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.eps = 1e-4
        assert not torch.allclose(old(feats, xyz).class_logits, out.class_logits, rtol=1e-3, atol=1e-3)


def test_mask_tower_reproduces_their_conv_blocks(converted, theirs, cfg):
    tower = MaskTower(CHANNELS, MASK_DIM, cfg.heads.bn_eps)
    tower.load_state_dict({k[len("mask_tower."):]: v for k, v in converted.state.items() if k.startswith("mask_tower.")})
    tower.eval()
    ref = nn.Sequential(*[nn.Sequential(nn.Conv1d(32, 32, 1, bias=False), nn.BatchNorm1d(32), nn.ReLU())
                          for _ in range(3)], nn.Conv1d(32, 32, 1))
    ref.load_state_dict({k[len("mask_tower."):]: v for k, v in theirs.items() if k.startswith("mask_tower.")})
    ref.eval()
    x = torch.randn(30, CHANNELS)
    with torch.no_grad():
        # their forward: mask_tower(feats.unsqueeze(2).permute(2, 1, 0)).permute(2, 1, 0)
        expected = ref(x.unsqueeze(2).permute(2, 1, 0)).permute(2, 1, 0)[:, :, 0]
        torch.testing.assert_close(tower(x), expected, rtol=1e-5, atol=1e-5)


def test_pointwise_heads_reproduce_their_mlps(converted, theirs, cfg):
    from sphmask_core.model.pointwise_heads import PointwiseHeads

    heads = PointwiseHeads(CHANNELS, N_SEM, cfg.backbone.bn_eps)
    heads.load_state_dict({k[len("pointwise_heads."):]: v for k, v in converted.state.items()
                           if k.startswith("pointwise_heads.")})
    heads.eval()
    x = torch.randn(50, CHANNELS)
    with torch.no_grad():
        out = heads(x)
        for name, ours in (("semantic_linear", out["semantic"]), ("offset_vertices_linear", out["corner_offset"])):
            w = {k[len(name) + 1:]: v for k, v in theirs.items() if k.startswith(name + ".")}
            # blocks.MLP with norm_fn = BatchNorm1d(eps=1e-4, momentum=0.1)
            ref = nn.Sequential(nn.Linear(32, 32), nn.BatchNorm1d(32, eps=1e-4), nn.ReLU(), nn.Linear(32, w["3.bias"].numel()))
            ref.load_state_dict(w)
            torch.testing.assert_close(ours, ref.eval()(x), rtol=1e-5, atol=1e-5)


def _their_dynamic_conv(kernels, q_xyz, q_boxes, u_xyz, u_boxes, u_feats, mask_dim=MASK_DIM):
    """parse_dynamic_params + mask_heads_forward (2 layers): [rel. coords, |box-size diff|, feats]."""
    m, k = mask_dim, kernels.shape[0]
    w0, w1, b0, _b1 = torch.split(kernels, [(m + 6) * m, m, m, 1], dim=1)
    w0, w1 = w0.reshape(k, m + 6, m), w1.reshape(k, m, 1)
    x = u_feats.t()[None].repeat(k, 1, 1)  # (K, C, U)
    rel = (q_xyz[:, None, :] - u_xyz[None]).permute(0, 2, 1)
    qd, ud = q_boxes[:, 3:] - q_boxes[:, :3], u_boxes[:, 3:] - u_boxes[:, :3]
    size = (qd[:, None, :] - ud[None]).abs().permute(0, 2, 1)
    x = torch.cat([rel, size, x], 1)  # (K, 38, U)
    x = torch.relu(torch.einsum("qab,qan->qbn", w0, x) + b0[:, :, None])
    return torch.einsum("qab,qan->qbn", w1, x)[:, 0]  # last bias not applied


def test_dynamic_convolution_matches_their_kernel_layout():
    from sphmask_core.model.migration import dynamic_conv, dynamic_conv_blocked

    g = torch.Generator().manual_seed(3)
    k, u = 9, 70
    kernels = torch.randn(k, 1281, generator=g) * 0.3
    q_xyz, u_xyz = torch.randn(k, 3, generator=g), torch.randn(u, 3, generator=g)
    q_min, u_min = torch.randn(k, 3, generator=g), torch.randn(u, 3, generator=g)
    q_boxes = torch.cat([q_min, q_min + torch.rand(k, 3, generator=g)], 1)
    u_boxes = torch.cat([u_min, u_min + torch.rand(u, 3, generator=g)], 1)
    feats = torch.randn(u, MASK_DIM, generator=g)
    ref = _their_dynamic_conv(kernels, q_xyz, q_boxes, u_xyz, u_boxes, feats)
    q_sizes, u_sizes = q_boxes[:, 3:] - q_boxes[:, :3], u_boxes[:, 3:] - u_boxes[:, :3]
    for fn in (dynamic_conv, dynamic_conv_blocked):
        torch.testing.assert_close(fn(kernels, q_xyz, q_sizes, u_xyz, u_sizes, feats), ref, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------ refusals


def test_missing_key_is_named(theirs, cfg, own):
    src = dict(theirs)
    del src["unet.u.u.blocks.block1.conv_branch.3.running_var"]
    with pytest.raises(ConversionError, match=r"missing key 'unet\.u\.u\.blocks\.block1\.conv_branch\.3\.running_var' "
                                              r"\(for our 'backbone\.unet\.inner\.inner\.blocks\.1\.body\.2\.0\.running_var'"):
        convert_state_dict(src, cfg, "official", reference=own)


def test_their_name_inverts_the_map_for_every_tensor(converted, theirs):
    blocks = {"inst_mask_head": 2, "mask_tower": 3}
    for ours in converted.state:
        their = their_name(ours, blocks)
        assert their in theirs and our_name(their, blocks) == ours, (ours, their)


def test_unknown_key_is_named(theirs, cfg, own):
    src = {**theirs, "inst_extra_head.layers.0.weight": torch.zeros(3)}
    with pytest.raises(ConversionError, match=r"unknown key 'inst_extra_head\.layers\.0\.weight'"):
        convert_state_dict(src, cfg, "official", reference=own)


@pytest.mark.parametrize("key, shape", [("inst_sem_head.layers.6.weight", (14, DEC, 1)),
                                        ("unet.u.conv.2.weight", (64, 2, 2, 2, 96))])
def test_wrong_shape_is_named(theirs, cfg, own, key, shape):
    src = {**theirs, key: torch.zeros(shape)}
    with pytest.raises(ConversionError, match=rf"wrong shape for '{key}'"):
        convert_state_dict(src, cfg, "official", reference=own)


def _run(tmp_path: Path, capsys, kind: str, payload, pickle_module=None) -> tuple[int, list[str], Path]:
    src, out = tmp_path / "src.pth", tmp_path / "out.pt"
    if isinstance(payload, bytes):
        src.write_bytes(payload)
    else:
        torch.save(payload, src)
    rc = main([kind, str(src), str(out)])
    captured = capsys.readouterr()
    return rc, captured.err.strip().splitlines(), out


class _Custom:  # anything a weights_only load cannot rebuild
    pass


@pytest.mark.parametrize("payload, message", [
    (b"not a checkpoint at all", "is not a PyTorch checkpoint"),
    ([torch.zeros(2)], "no 'net' state dict"),
    ({"net": {"input_conv.0.weight": torch.zeros(1)}, "extra": _Custom()}, "needs pickle to load and is refused"),
])
def test_files_that_are_not_checkpoints_are_refused_in_one_line(tmp_path, capsys, payload, message):
    rc, err, out = _run(tmp_path, capsys, "official", payload)
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_isbnet_given_as_official_and_reverse_are_refused(tmp_path, capsys):
    # detection precedes every other check: a few of ISBNet's tensors are enough
    isbnet = {"net": {"input_conv.0.weight": torch.zeros(32, 3, 3, 3, 6),
                      "inst_sem_head.layers.6.bias": torch.zeros(N_INST + 1)}, "epoch": 1}
    rc, err, out = _run(tmp_path, capsys, "official", isbnet)
    assert rc == 2 and len(err) == 1 and "ISBNet checkpoint" in err[0] and "sphmask-convert isbnet" in err[0]
    assert not out.exists()
    rc, err, out = _run(tmp_path, capsys, "isbnet", {"net": {"input_conv.0.weight": torch.zeros(1),
                                                               "rid_module.layers.6.bias": torch.zeros(25)}})
    assert rc == 2 and len(err) == 1 and "Spherical Mask checkpoint" in err[0] and "sphmask-convert official" in err[0]
    assert not out.exists()


def test_missing_key_through_the_command_exits_2_naming_it(tmp_path, capsys, theirs):
    src = {k: v for k, v in theirs.items() if k != "mask_tower.3.bias"}
    rc, err, out = _run(tmp_path, capsys, "official", {"net": src, "epoch": 155})
    assert rc == 2 and len(err) == 1 and "missing key 'mask_tower.3.bias'" in err[0], err
    assert not out.exists()


# ------------------------------------------------------------------------------ end to end


def test_official_command_writes_a_loadable_model_with_the_released_test_settings(tmp_path, capsys, theirs):
    rc, _, out = _run(tmp_path, capsys, "official", {"net": theirs, "epoch": 155, "optimizer": {"state": {}}})
    capsys.readouterr()  # the command's report, not checked here
    assert rc == 0
    model, mcfg, meta = build_model_from_checkpoint(out)
    assert mcfg.test.rotate and mcfg.test.clamp_center and mcfg.heads.bn_eps == 1e-5
    assert mcfg.backbone.bn_eps == 1e-4  # their U-Net and point-wise heads: eps 1e-4
    assert meta["class_names"] == list(load_model_config("full_scannet").class_names) and len(meta["class_names"]) == 18
    assert meta["metrics"]["source_epoch"] == 155
    assert torch.equal(model.state_dict()["query_heads.ray_head.6.bias"], theirs["rid_module.layers.6.bias"])
    for m in model.query_heads.modules():
        if isinstance(m, nn.BatchNorm1d):
            assert m.eps == 1e-5
    assert all(m.eps == 1e-4 for m in model.backbone.modules() if isinstance(m, nn.BatchNorm1d))


def test_isbnet_converts_to_a_backbone_checkpoint_the_full_stage_starts_from(tmp_path, capsys):
    from training.trainer import Trainer

    src = _Authors(seed=1).build(spherical=False, dyco_layers=3)
    rc, _, out = _run(tmp_path, capsys, "isbnet", {"net": src, "epoch": 80})
    assert rc == 0
    ckpt = load_checkpoint(out)
    assert "query_heads.ray_head.6.bias" not in ckpt["model"]
    assert "query_heads.kernel_head.6.weight" not in ckpt["model"]  # 3-layer kernels: dropped
    assert "query_heads.kernel_head.4.running_var" in ckpt["model"]
    with pytest.raises(Exception, match="missing"):
        build_model_from_checkpoint(out)  # not a model to predict with
    from sphmask_core.model.spherical_mask import SphericalMask

    mcfg = config_from_checkpoint(ckpt)
    model = SphericalMask(mcfg)
    fresh_rays = model.state_dict()["query_heads.ray_head.6.weight"].clone()
    # the trainer's own start-from-checkpoint step, on a stand-in holding just what it reads
    Trainer.init_weights_from(types.SimpleNamespace(model=model, model_cfg=mcfg, model_factory=SphericalMask), out)
    sd = model.state_dict()
    assert torch.equal(sd["backbone.unet.inner.up.1.weight"], src["unet.u.deconv.2.weight"])
    assert torch.equal(sd["aggregator2.mlp3.4.running_var"], src["point_aggregator2.mlp_module3.1.bn.bn.running_var"])
    assert torch.equal(sd["query_heads.ray_head.6.weight"], fresh_rays)  # not in ISBNet: left as initialised


# ------------------------------------------------------------------------------ switches


def _one_query(center: list[float]) -> tuple[torch.Tensor, ...]:
    centers = torch.tensor([center])
    rays = torch.full((1, 25), 0.1)  # a ball of radius 0.1 around the centre
    return centers, rays


@pytest.mark.parametrize("assemble", [assemble_masks, assemble_masks_pruned])
def test_clamp_center_moves_only_a_centre_below_0_01(assemble):
    units = torch.tensor([[-0.15, 0.5, 0.5], [0.05, 0.5, 0.5], [0.3, 0.5, 0.5]])
    z = torch.zeros(1, 3)
    centers, rays = _one_query([-0.2, 0.5, 0.5])  # x below 0.01: the released code moves it to 0.01
    ours = assemble(centers, rays, z, units, 5, 5)
    released = assemble(centers, rays, z, units, 5, 5, clamp_center=True)
    assert ours.tolist() == [[True, False, False]]  # 0.05 from the predicted centre
    assert released.tolist() == [[False, True, False]]  # 0.04 from (0.01, 0.5, 0.5)
    centers, rays = _one_query([0.25, 0.5, 0.5])  # every coordinate >= 0.01: no change
    assert assemble(centers, rays, z, units, 5, 5, clamp_center=True).tolist() == \
        assemble(centers, rays, z, units, 5, 5).tolist() == [[False, False, True]]


def test_batchnorm_eps_of_heads_follows_the_config_and_old_checkpoints_keep_1e_4():
    assert QueryHeadConfig().bn_eps == 1e-5
    heads = QueryHeads(QueryHeadConfig(bn_eps=3e-5), 128, 18)
    assert {m.eps for m in heads.modules() if isinstance(m, nn.BatchNorm1d)} == {3e-5}
    assert load_model_config("full_scannet").heads.bn_eps == 1e-5
    assert load_model_config("small").heads.bn_eps == 1e-4
    data = load_model_config("small").to_dict()
    del data["heads"]["bn_eps"]  # a checkpoint written before the key existed
    assert config_from_checkpoint({"model_config": data}).heads.bn_eps == 1e-4
