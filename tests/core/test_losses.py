"""Box IoU, scene targets, margin loss, instance criterion and point-wise losses (METHOD 5)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sphmask_core.losses.box import box_giou, box_giou_pairwise, box_iou, box_iou_pairwise, points_aabb
from sphmask_core.losses.criterion import InstanceCriterion, LossConfig, SceneQueryPredictions, TERMS, margin_loss
from sphmask_core.losses.pointwise import pointwise_losses
from sphmask_core.losses.targets import build_scene_targets
from sphmask_core.model.spherical import ray_targets

T, P = 5, 5


# ---------------------------------------------------------------------------------------- boxes
def test_box_iou_and_giou_by_hand():
    a = torch.tensor([[0.0, 0, 0, 1, 1, 1]])
    b = torch.tensor([[0.5, 0, 0, 1.5, 1, 1]])
    c = torch.tensor([[2.0, 0, 0, 3, 1, 1]])
    torch.testing.assert_close(box_iou(a, b), torch.tensor([1 / 3]))
    torch.testing.assert_close(box_giou(a, b), torch.tensor([1 / 3]))
    torch.testing.assert_close(box_iou(a, c), torch.tensor([0.0]))
    torch.testing.assert_close(box_giou(a, c), torch.tensor([-1 / 3]))  # hull 3, union 2
    pair_iou = box_iou_pairwise(torch.cat([a, b]), torch.cat([a, b, c]))
    torch.testing.assert_close(pair_iou, torch.tensor([[1.0, 1 / 3, 0.0], [1 / 3, 1.0, 0.0]]), atol=1e-5, rtol=0)
    torch.testing.assert_close(box_giou_pairwise(a, c), torch.tensor([[-1 / 3]]))
    # inverted box: finite, counts as empty
    inv = torch.tensor([[1.0, 1, 1, 0, 0, 0]])
    assert torch.isfinite(box_giou(inv, a)).all() and box_iou(inv, a).item() == 0.0
    with pytest.raises(ValueError):
        box_iou(a[:, :5], b)


def test_points_aabb():
    xyz = torch.tensor([[0.0, 1, 2], [3, -1, 0], [5, 5, 5], [1, 1, 1]])
    boxes = points_aabb(xyz, torch.tensor([0, 0, -1, 2]), 3)
    torch.testing.assert_close(boxes, torch.tensor([[0.0, -1, 0, 3, 1, 2], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]]))


# -------------------------------------------------------------------------------------- targets
def test_scene_targets_superpoints_by_hand():
    xyz = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 2, 2], [3, 3, 3], [4, 3, 3], [9, 9, 9]])
    inst = torch.tensor([7, 7, -100, -100, 7, 3, 3, 9])
    sem = torch.tensor([3, 3, 0, 0, 3, 5, 5, 1])  # instance 9 has semantic 1 -> class -1 -> dropped
    unit = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2])  # unit 3 has no voxels
    t = build_scene_targets(xyz, inst, sem, unit, 4, label_shift=2, n_theta=T, n_phi=P)
    # ids sorted: 3 -> 0, 7 -> 1
    assert t.labels.tolist() == [3, 1]
    # unit 0: 2/4 voxels of id 7 -> positive (>= 50 %); unit 1: id 3 has 2/3, id 7 only 1/3
    assert t.masks.tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]
    torch.testing.assert_close(t.unit_xyz[0], torch.tensor([0.25, 0.25, 0.25]))
    torch.testing.assert_close(t.unit_xyz[3], torch.zeros(3))
    torch.testing.assert_close(t.boxes, torch.tensor([[3.0, 3, 3, 4, 3, 3], [0, 0, 0, 2, 2, 2]]))
    # rays on voxels, not units
    exp_rays = ray_targets(xyz[[5, 6, 0, 1, 4]], torch.tensor([0, 0, 1, 1, 1]), 2, T, P)
    torch.testing.assert_close(t.ray_targets, exp_rays)
    assert t.ray_targets.shape == (2, T * P + 3)


def test_scene_targets_without_superpoints_and_errors():
    xyz = torch.rand(6, 3)
    inst = torch.tensor([0, 0, 1, 1, -100, 1])
    sem = torch.tensor([2, 2, 4, 4, 0, 4])
    t = build_scene_targets(xyz, inst, sem, None, 6, 2, T, P)
    assert t.masks.tolist() == [[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 1]]
    torch.testing.assert_close(t.unit_xyz, xyz)
    assert t.labels.tolist() == [0, 2]
    with pytest.raises(ValueError, match="n_units"):
        build_scene_targets(xyz, inst, sem, None, 5, 2, T, P)
    with pytest.raises(ValueError, match="unit_of_voxel"):
        build_scene_targets(xyz, inst, sem, torch.tensor([0, 1, 2, 3, 4, 9]), 6, 2, T, P)
    empty = build_scene_targets(xyz, torch.full((6,), -100), sem, None, 6, 2, T, P)
    assert empty.masks.shape == (0, 6) and empty.ray_targets.shape == (0, 28)


# ---------------------------------------------------------------------------------- margin loss
def _two_unit_case():
    # single sector (1 x 1) so every unit compares against ray 0; centre of the union = origin
    unit_xyz = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]])
    gt = torch.tensor([[1.0, 0.0]])
    z = torch.tensor([[0.5, 0.2]], requires_grad=True)
    rays = torch.tensor([[1.5]], requires_grad=True)
    return unit_xyz, gt, z, rays


def test_margin_loss_code_variant_by_hand_and_gradients():
    unit_xyz, gt, z, rays = _two_unit_case()
    loss = margin_loss(z, gt, rays, unit_xyz, torch.zeros(1, 3), torch.zeros(1, 3), 1, 1, "code")
    # TP unit 0: r' = 1 - 2*0.5 = 0, x = -r' = 0, y = +1;  FP unit 1: r' = 0.6, x = 1.5 - 0.6, y = -1
    exp = (math.log(2.0) + F.softplus(torch.tanh(torch.tensor(0.9))).item()) / 2
    assert loss.item() == pytest.approx(exp, rel=1e-6)
    loss.backward()
    assert rays.grad is None  # rays get no gradient from the margin loss
    # d/dz0 of softplus(-tanh(z0 - (r - z0).detach()... )) / 2 at x = 0: -0.5 * 1 / 2 (one grad path)
    assert z.grad[0, 0].item() == pytest.approx(-0.25, rel=1e-5)
    assert z.grad[0, 1].item() != 0.0


def test_margin_loss_paper_variant_and_empty_tp():
    unit_xyz, gt, z, rays = _two_unit_case()
    loss = margin_loss(z, gt, rays, unit_xyz, torch.zeros(1, 3), torch.zeros(1, 3), 1, 1, "paper")
    # separate means: L_mc over the FP only + L_sc over the TP only
    exp = math.log(2.0) + F.softplus(torch.tanh(torch.tensor(0.9))).item()
    assert loss.item() == pytest.approx(exp, rel=1e-6)
    # paper sets come from the ray test: unit 1 (not in GT) with z < 0 but r' = 1.2 < 1.5 is FP
    z2 = torch.tensor([[0.5, -0.1]], requires_grad=True)
    # (centre = the predicted one at the origin, so both units keep r = 1)
    zc = torch.zeros(1, 3)
    l_code = margin_loss(z2, gt, rays, unit_xyz, zc, zc, 1, 1, "code", center_mode="pred")
    l_paper = margin_loss(z2, gt, rays, unit_xyz, zc, zc, 1, 1, "paper", center_mode="pred")
    # code: unit 1 is TN (ignored) -> only the TP term; paper: TP term + FP term (x = 1.5 - 1.2)
    assert l_code.item() == pytest.approx(math.log(2.0), rel=1e-5)
    exp_paper = math.log(2.0) + F.softplus(torch.tanh(torch.tensor(0.3))).item()
    assert l_paper.item() == pytest.approx(exp_paper, rel=1e-5)
    # union centre (code default): the union is unit 0 alone, so its r = 0 and r' = -1
    l_union = margin_loss(z2, gt, rays, unit_xyz, zc, zc, 1, 1, "code")
    assert l_union.item() == pytest.approx(F.softplus(-torch.tanh(torch.tensor(1.0))).item(), rel=1e-5)
    # code variant: no TP -> zero (with a graph)
    z3 = torch.tensor([[-0.5, 0.2]], requires_grad=True)
    assert margin_loss(z3, gt, rays, unit_xyz, torch.zeros(1, 3), torch.zeros(1, 3), 1, 1, "code").item() == 0.0


# ------------------------------------------------------------------------------------ criterion
N_CLS = 4


def _scene(seed: int):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(300, 3, generator=g) * torch.tensor([4.0, 2.0, 1.0])
    inst = (xyz[:, 0] // 1).long()  # 4 slabs
    inst[xyz[:, 2] < 0.15] = -100  # "floor"
    sem = torch.where(inst >= 0, inst % N_CLS + 2, torch.zeros_like(inst))
    unit = (xyz[:, 0] // 0.25).long() * 4 + (xyz[:, 1] // 0.5).long()  # 16 x 4 grid superpoints
    return build_scene_targets(xyz, inst, sem, unit, 64, 2, T, P)


def _random_preds(k, u, seed, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(k, 3, generator=g) * 3
    p = SceneQueryPredictions(
        cls_logits=torch.randn(k, N_CLS + 1, generator=g),
        conf=torch.randn(k, generator=g),
        boxes=torch.cat([lo, lo + torch.rand(k, 3, generator=g)], 1),
        rays=torch.rand(k, T * P, generator=g),
        centers=torch.rand(k, 3, generator=g) * 3,
        mask_logits=torch.randn(k, u, generator=g),
    )
    if requires_grad:
        for f in ("cls_logits", "conf", "boxes", "rays", "centers", "mask_logits"):
            getattr(p, f).requires_grad_(True)
    return p


def _perfect_preds(t, k, copies=1):
    """Queries [0, copies*G) predict GT (q mod G) exactly; the rest predict "no object"."""
    g = t.n_instances
    n = copies * g
    gi = torch.arange(n) % g
    p = _random_preds(k, t.masks.shape[1], 99, requires_grad=False)
    p.cls_logits[:] = -10.0
    p.cls_logits[torch.arange(n), t.labels[gi]] = 10.0
    p.cls_logits[n:, N_CLS] = 10.0
    p.conf[:n] = 1.0
    p.boxes[:n] = t.boxes[gi]
    p.rays[:n] = t.ray_targets[gi, : T * P]
    p.centers[:n] = t.ray_targets[gi, T * P :]
    p.mask_logits[:n] = torch.where(t.masks[gi] > 0, 8.0, -8.0)
    return p


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_criterion_forward_backward_finite(variant):
    targets = [_scene(0), _scene(1)]
    preds = [_random_preds(16, 64, 10), _random_preds(16, 64, 11)]
    crit = InstanceCriterion(LossConfig(margin_variant=variant), N_CLS, T, P)
    out = crit(preds, targets)
    for t in TERMS:
        assert f"{t}_loss" in out and f"aux_{t}_loss" in out
    for key, v in out.items():
        assert v.ndim == 0 and torch.isfinite(v), key
    out["loss"].backward()
    for f in ("cls_logits", "conf", "boxes", "rays", "centers", "mask_logits"):
        grad = getattr(preds[0], f).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, f


def test_criterion_total_is_weighted_sum():
    targets = [_scene(0)]
    preds = [_random_preds(12, 64, 3)]
    cfg = LossConfig()
    out = InstanceCriterion(cfg, N_CLS, T, P)(preds, targets)
    exp = sum(cfg.weight(t) * (out[f"{t}_loss"] + 2.0 * out[f"aux_{t}_loss"]) for t in TERMS)
    torch.testing.assert_close(out["loss"], exp)
    no_aux = InstanceCriterion(LossConfig(aux_weight=0.0), N_CLS, T, P)(preds, targets)
    assert "aux_cls_loss" not in no_aux
    torch.testing.assert_close(no_aux["cls_loss"], out["cls_loss"])


def test_perfect_prediction_beats_random():
    targets = [_scene(0), _scene(2)]
    rand_preds = [_random_preds(16, 64, 5), _random_preds(16, 64, 6)]
    # main terms (one-to-one matching)
    crit = InstanceCriterion(LossConfig(aux_weight=0.0), N_CLS, T, P)
    perfect = crit([_perfect_preds(t, 16) for t in targets], targets)
    rand = crit(rand_preds, targets)
    assert perfect["loss"] < 0.2 * rand["loss"]
    for t in TERMS:
        assert perfect[f"{t}_loss"] < rand[f"{t}_loss"], t
    for t in ("box", "giou", "coarse", "cls", "conf", "bce"):
        assert perfect[f"{t}_loss"].item() == pytest.approx(0.0, abs=1e-3), t
    # the soft margin on tanh cannot go below log(1 + e^-1) for a TP unit
    assert perfect["margin_loss"].item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-3)
    # auxiliary terms: each GT predicted by 4 queries is perfect for the duplicated matching
    full = InstanceCriterion(LossConfig(), N_CLS, T, P)
    dup_perfect = full([_perfect_preds(t, 16, copies=4) for t in targets], targets)
    dup_rand = full(rand_preds, targets)
    for t in ("box", "giou", "coarse", "cls", "conf", "bce", "dice"):
        assert dup_perfect[f"aux_{t}_loss"].item() == pytest.approx(0.0, abs=1e-3), t
    assert dup_perfect["loss"] < dup_rand["loss"]


def test_rays_get_no_gradient_through_margin_term_in_criterion():
    targets = [_scene(0)]
    preds = [_random_preds(12, 64, 4)]
    cfg = LossConfig(**{f"{t}_weight": 0.0 for t in TERMS if t != "margin"}, aux_weight=0.0)
    out = InstanceCriterion(cfg, N_CLS, T, P)(preds, targets)
    assert out["margin_loss"] > 0
    out["loss"].backward()
    assert preds[0].rays.grad is None or preds[0].rays.grad.abs().sum() == 0
    assert preds[0].mask_logits.grad.abs().sum() > 0


def test_criterion_scene_without_instances_and_bad_config():
    empty = build_scene_targets(torch.rand(10, 3), torch.full((10,), -100), torch.zeros(10, dtype=torch.long), None, 10, 2, T, P)
    p = _random_preds(8, 10, 1)
    out = InstanceCriterion(LossConfig(), N_CLS, T, P)([p], [empty])
    assert torch.isfinite(out["loss"]) and out["dice_loss"] == 0
    out["loss"].backward()
    with pytest.raises(ValueError, match="margin_variant"):
        LossConfig(margin_variant="both")
    with pytest.raises(ValueError, match="units"):
        InstanceCriterion(LossConfig(), N_CLS, T, P)([_random_preds(8, 11, 1)], [empty])


# ---------------------------------------------------------------------------------- point-wise
def test_pointwise_losses_by_hand():
    xyz = torch.tensor([[0.0, 0, 0], [1, 0, 0], [5, 5, 5]])
    sem = torch.tensor([2, 2, -100])
    inst = torch.tensor([4, 4, -100])
    zeros = dict(centroid_offset=torch.zeros(3, 3), corner_offset=torch.zeros(3, 6), box_conf=torch.zeros(3))
    logits = torch.zeros(3, 3)
    out = pointwise_losses(logits, voxel_xyz=xyz, voxel_semantic=sem, voxel_instance=inst, voxel_scale=50.0, **zeros)
    assert out["semantic"].item() == pytest.approx(math.log(3.0))
    assert out["centroid"].item() == pytest.approx(0.5)  # |+-0.5| per voxel, 2 voxels / P=2
    assert out["corner"].item() == pytest.approx(1.0)  # (1 + 1) / 2
    half = pointwise_losses(logits, voxel_xyz=xyz, voxel_semantic=sem, voxel_instance=inst, voxel_scale=25.0, **zeros)
    assert half["centroid"].item() == pytest.approx(0.25)
    # perfect offsets and conf (instance given a non-flat box): box terms vanish
    xyz2 = torch.tensor([[0.0, 0, 0], [1, 1, 1], [5, 5, 5]])
    cen2 = torch.tensor([[0.5, 0.5, 0.5], [-0.5, -0.5, -0.5], [0, 0, 0]])
    cor2 = torch.tensor([[0.0, 0, 0, 1, 1, 1], [-1, -1, -1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    good = pointwise_losses(torch.tensor([[0, 0, 20.0]] * 3), cen2, cor2, torch.ones(3), xyz2, sem, inst)
    for t in ("centroid", "corner", "giou", "box_conf"):
        assert good[t].item() == pytest.approx(0.0, abs=1e-5), t
    assert good["semantic"].item() < 1e-6


def test_pointwise_gradients_and_no_instances():
    v = 50
    g = torch.Generator().manual_seed(0)
    args = [torch.randn(v, 5, generator=g).requires_grad_(), torch.randn(v, 3, generator=g).requires_grad_(),
            torch.randn(v, 6, generator=g).requires_grad_(), torch.randn(v, generator=g).requires_grad_()]
    xyz = torch.rand(v, 3, generator=g)
    out = pointwise_losses(*args, xyz, torch.randint(0, 5, (v,), generator=g), torch.randint(-1, 3, (v,), generator=g))
    out["loss"].backward()
    assert all(a.grad is not None and torch.isfinite(a.grad).all() for a in args)
    none = pointwise_losses(*[a.detach() for a in args], xyz, torch.full((v,), -100), torch.full((v,), -100))
    assert none["loss"].item() == 0.0
    with pytest.raises(ValueError, match="corner_offset"):
        pointwise_losses(args[0], args[1], args[2][:, :3], args[3], xyz, torch.zeros(v), torch.zeros(v))
