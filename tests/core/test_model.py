"""SphericalMask: size of the full model, forward/backward of the small one, degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sphmask_core.config import apply_overrides, load_model_config
from sphmask_core.data.collate import collate
from sphmask_core.data.scene import Scene
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from sphmask_core.model.query_heads import count_parameters
from sphmask_core.model.spherical_mask import SphericalMask
from sphmask_core.ops.voxelize import voxel_mean, voxelize


@pytest.fixture(autouse=True)
def _one_thread():
    # 2 shared cores: a second intra-op thread makes the sparse convolutions far slower
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _all_object_cfg(**extra):
    # an untrained semantic head is near-uniform (1/12 < 0.1 per class): with threshold 0 every
    # voxel is "object", so the whole query path runs
    return apply_overrides(load_model_config("small"), {"test.filter_bg_thresh": 0.0, **extra})


@pytest.fixture(scope="module")
def scene20k() -> Scene:
    return generate_scene(3, SyntheticConfig(target_points_range=(20000, 20000)))


def test_full_model_parameter_count() -> None:
    model = SphericalMask(load_model_config("full_scannet"))
    # exact: the count of the authors' live modules; any missing or extra layer changes it
    assert count_parameters(model) == 30_725_685
    assert count_parameters(model.backbone) == 30_106_304
    assert count_parameters(model.query_heads.kernel_head) == 198_529
    assert count_parameters(model.mask_tower) == 4320
    assert model.query_heads.kernel_size == 1281
    assert count_parameters(model.aggregator1) + count_parameters(model.aggregator2) == 204_288
    assert count_parameters(SphericalMask(load_model_config("small"))) == 976_181


def test_backbone_stage_forward_backward(scene20k: Scene) -> None:
    torch.manual_seed(0)
    model = SphericalMask(load_model_config("small"))
    out = model.forward_train(collate([scene20k]), stage="backbone")
    assert set(out) >= {"loss", "pointwise_loss", "pw_semantic_loss", "pw_centroid_loss", "pw_corner_loss"}
    assert torch.equal(out["loss"], out["pointwise_loss"])
    out["loss"].backward()
    assert model.backbone.input_conv[0].weight.grad is not None
    assert model.pointwise_heads.semantic[3].weight.grad is not None
    # the query stage takes no part in pre-training
    assert all(p.grad is None for p in model.query_heads.parameters())


def test_semantic_weights_weight_the_pointwise_semantic_loss(scene20k: Scene) -> None:
    # weight 1 on wall, 0 elsewhere is the plain loss over the voxels labelled wall alone
    wall_only = apply_overrides(load_model_config("small"), {"loss.semantic_weights": [1.0] + [0.0] * 11})
    torch.manual_seed(0)
    plain = SphericalMask(load_model_config("small"))
    weighted = SphericalMask(wall_only)
    weighted.load_state_dict(plain.state_dict())
    relabelled = Scene(scene20k.xyz, scene20k.rgb, np.where(scene20k.semantic == 0, 0, -100),
                       np.full_like(scene20k.instance, -100), name="walls")
    assert (scene20k.semantic == 0).any() and (scene20k.semantic > 0).any()
    got = weighted.forward_train(collate([scene20k]), stage="backbone")["pw_semantic_loss"]
    want = plain.forward_train(collate([relabelled]), stage="backbone")["pw_semantic_loss"]
    everything = plain.forward_train(collate([scene20k]), stage="backbone")["pw_semantic_loss"]
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, everything)
    with pytest.raises(ValueError, match="semantic_weights needs 12 values"):
        SphericalMask(apply_overrides(load_model_config("small"), {"loss.semantic_weights": [1.0] * 3}))


def test_full_stage_every_parameter_gets_a_gradient(scene20k: Scene) -> None:
    torch.manual_seed(0)
    model = SphericalMask(_all_object_cfg())
    out = model.forward_train(collate([scene20k]), stage="full")
    for key in ("cls_loss", "dice_loss", "bce_loss", "margin_loss", "coarse_loss", "aux_cls_loss", "instance_loss"):
        assert key in out and torch.isfinite(out[key]), key
    assert out["instance_loss"] > 0
    assert torch.allclose(out["loss"], 0.25 * out["pointwise_loss"] + out["instance_loss"])
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # Documented unused output: the last dynamic-conv bias (b2) is generated but never applied
    # (METHOD 3.6), so the kernel generator's last output channel gets exactly zero gradient.
    last = model.query_heads.kernel_head[-1]
    assert float(last.weight.grad[-1].abs().sum()) == 0.0 and float(last.bias.grad[-1]) == 0.0
    assert float(last.weight.grad[:-1].abs().sum()) > 0.0


def test_no_object_voxels_gives_zero_loss_with_grad(scene20k: Scene) -> None:
    torch.manual_seed(0)
    model = SphericalMask(apply_overrides(load_model_config("small"), {"test.filter_bg_thresh": 1.0}))
    out = model.forward_train(collate([scene20k]), stage="full")
    assert float(out["instance_loss"]) == 0.0
    assert out["instance_loss"].requires_grad
    out["loss"].backward()  # must not raise


def test_fewer_points_than_samples_and_two_scenes() -> None:
    torch.manual_seed(0)
    cfg = _all_object_cfg()
    model = SphericalMask(cfg)
    rng = np.random.default_rng(0)
    tiny = Scene.from_arrays(rng.uniform(0, 1, (150, 3)), semantic=np.full(150, 4), instance=np.zeros(150, np.int64))
    other = generate_scene(4, SyntheticConfig(target_points_range=(3000, 3000), n_objects_range=(2, 3)))
    batch = collate([tiny, other])
    out = model.forward_train(batch, stage="full")
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    model.eval()
    with torch.no_grad():
        preds = model.forward_test(batch)
    assert len(preds) == 2
    n_vox_tiny = preds[0].voxel_to_unit.shape[0]
    # tiny scene: fewer object voxels than queries -> one query per distinct voxel at most
    assert 0 < preds[0].n_queries <= min(n_vox_tiny, cfg.aggregator.n_queries)
    assert preds[1].n_queries == cfg.aggregator.n_queries
    for p, n in zip(preds, (150, 3000)):
        assert p.point_to_voxel.shape == (n,)
        assert p.unit_masks.shape == (p.mask_queries.numel(), p.unit_xyz.shape[0])
        assert p.class_probs.shape == (p.n_queries, cfg.n_classes + 1)
        assert torch.allclose(p.class_probs.sum(1), torch.ones(p.n_queries))
        assert set(p.timings) == {"voxelize", "backbone", "aggregators", "heads", "migration_assembly"}


def test_superpoint_units() -> None:
    torch.manual_seed(0)
    cfg = _all_object_cfg()
    model = SphericalMask(cfg)
    sc = generate_scene(5, SyntheticConfig(target_points_range=(4000, 4000), n_objects_range=(2, 3)))
    # coarse superpoints: 0.4 m cells
    cell = np.floor(sc.xyz / 0.4).astype(np.int64)
    sp = np.unique(cell, axis=0, return_inverse=True)[1].reshape(-1)
    sc = Scene.from_arrays(sc.xyz, sc.rgb, sc.semantic, sc.instance, superpoint=sp)
    batch = collate([sc])
    out = model.forward_train(batch, stage="full")
    out["loss"].backward()
    model.eval()
    with torch.no_grad():
        pred = model.forward_test(batch)[0]
    # a voxel belongs to the superpoint of its first point; units are those superpoints, in id order
    vmap = voxelize(batch.grid_xyz, batch.offsets, cfg.voxel_size)
    voxel_sp = batch.superpoint[vmap.first_point]  # (V,)
    expected = torch.unique(voxel_sp, return_inverse=True)[1]
    assert torch.equal(pred.voxel_to_unit, expected)
    assert pred.unit_masks.shape[1] == int(expected.max()) + 1
    # unit position = mean of its voxels' mean positions
    vxyz = voxel_mean(batch.xyz, vmap.point_to_voxel, vmap.n_voxels)
    u = int(expected[0])
    assert torch.allclose(pred.unit_xyz[u], vxyz[expected == u].mean(0), atol=1e-5)


def test_bad_stage() -> None:
    model = SphericalMask(load_model_config("small"))
    with pytest.raises(ValueError, match="stage"):
        model.forward_train(collate([generate_scene(0, SyntheticConfig(target_points_range=(1000, 1000)))]), stage="heads")


# ------------------------------------------------------------------ S3DIS test-time x4 split


def test_x4_split_order_interleaves_each_scene_by_hand() -> None:
    from sphmask_core.model.spherical_mask import x4_split_order

    order, piece_offsets = x4_split_order(torch.tensor([0, 6, 13]))
    assert order.tolist() == [0, 4, 1, 5, 2, 3, 6, 10, 7, 11, 8, 12, 9]
    assert piece_offsets.tolist() == [0, 2, 4, 5, 6, 8, 10, 12, 13]


def test_x4_split_runs_each_subset_through_the_unet_alone(scene20k: Scene) -> None:
    torch.manual_seed(0)
    model = SphericalMask(_all_object_cfg(**{"test.x4_split": True})).eval()
    batch = collate([scene20k])
    with torch.no_grad():
        vox, feats, pw, piece = model._backbone_x4(batch)
        for k in range(4):
            # the independent truth: subset k as a scene of its own
            sub = Scene(scene20k.xyz[k::4], scene20k.rgb[k::4], scene20k.semantic[k::4],
                        scene20k.instance[k::4], name="piece")
            alone = model._voxelize(collate([sub]))
            alone_feats, _ = model._backbone(alone)
            rows = piece == k
            torch.testing.assert_close(feats[rows], alone_feats)
            torch.testing.assert_close(vox.xyz[rows], alone.xyz)
            # every point of subset k sits in that subset's voxel (alone.point_to_voxel, shifted)
            first = int(torch.nonzero(rows)[0])
            assert torch.equal(vox.vmap.point_to_voxel[k::4], alone.vmap.point_to_voxel + first)
    assert vox.vmap.voxel_offsets.tolist() == [0, vox.xyz.shape[0]] and bool((vox.batch == 0).all())
    # a cell occupied by several subsets has several voxels
    assert vox.xyz.shape[0] > model._voxelize(batch).xyz.shape[0]
    seen = {}
    queries = model._queries

    def spy(vox_, feats_, pw_, units, train, **kwargs):
        seen["pieces"] = set(piece[units.object_voxel].tolist())
        return queries(vox_, feats_, pw_, units, train, **kwargs)

    model._queries = spy
    with torch.no_grad():
        pred = model.forward_test(batch)[0]
    assert seen["pieces"] == {0, 1}  # queries are sampled from the first two subsets only
    assert pred.point_to_voxel.shape == (scene20k.xyz.shape[0],) and pred.unit_masks.shape[0] > 0
