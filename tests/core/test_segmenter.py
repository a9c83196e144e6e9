"""Segmenter / postprocess / Instances on synthetic scenes: shapes, consistency, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sphmask_core.checkpoint import CheckpointError, save_checkpoint
from sphmask_core.config import apply_overrides, load_model_config
from sphmask_core.data.collate import collate
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from sphmask_core.inference.instances import Instances, point_instance_from_masks
from sphmask_core.inference.segmenter import Segmenter, predict_batch, rotate_z, superpoint_refine
from sphmask_core.model.spherical_mask import SphericalMask

STAGES = {"voxelize", "backbone", "aggregators", "heads", "migration_assembly", "nms", "total"}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    # untrained model; all thresholds open so that it does report instances
    cfg = apply_overrides(
        load_model_config("small"),
        {"test.filter_bg_thresh": 0.0, "test.npoint_thresh": 0, "test.min_points": 1,
         "test.score_threshold": 0.0},
    )
    torch.manual_seed(0)
    return Segmenter(SphericalMask(cfg), cfg, device="cpu")


@pytest.fixture(scope="module")
def scene():
    return generate_scene(7, SyntheticConfig(target_points_range=(5000, 5000), n_objects_range=(3, 4)))


def _check_consistent(inst: Instances, xyz: np.ndarray) -> None:
    n = xyz.shape[0]
    k = len(inst)
    assert inst.point_instance.shape == (n,) and inst.point_instance.dtype == np.int64
    assert inst.class_ids.shape == (k,) and inst.scores.shape == (k,) and inst.boxes.shape == (k, 6)
    assert inst.rays.shape == (k, inst.n_theta * inst.n_phi) and inst.centers.shape == (k, 3)
    assert np.all(np.diff(inst.scores) <= 0)
    assert np.all((inst.iou_scores >= 0) & (inst.iou_scores <= 1))
    assert np.all((inst.class_probs >= 0) & (inst.class_probs <= 1))
    covered = np.zeros(n, bool)
    best = np.full(n, -1)
    for i, m in enumerate(inst.masks):
        assert m.dtype == np.int64 and np.all(np.diff(m) > 0)
        np.testing.assert_allclose(inst.boxes[i, :3], xyz[m].min(0), atol=1e-6)
        np.testing.assert_allclose(inst.boxes[i, 3:], xyz[m].max(0), atol=1e-6)
        # scores are descending, so the first mask covering a point has the highest score
        fresh = m[best[m] < 0]
        best[fresh] = i
        covered[m] = True
    np.testing.assert_array_equal(inst.point_instance, best)
    assert np.all(inst.point_instance[~covered] == -1)


def test_segment_synthetic_scene(seg: Segmenter, scene) -> None:
    inst = seg(scene.xyz, scene.rgb)
    assert len(inst) > 0
    assert inst.class_names == seg.cfg.class_names
    assert set(inst.timings) == STAGES
    assert all(v >= 0 for v in inst.timings.values())
    assert inst.timings["total"] >= inst.timings["backbone"]
    _check_consistent(inst, scene.xyz)
    assert len(inst) <= seg.cfg.test.topk_candidates


def test_rgb_none_and_tensor_input(seg: Segmenter, scene) -> None:
    inst = seg(torch.from_numpy(scene.xyz))
    _check_consistent(inst, scene.xyz)


def test_superpoint_refinement_gives_whole_superpoints(seg: Segmenter, scene) -> None:
    # cells finer than a voxel, so that the (tiny) masks of an untrained model keep some
    sp = np.unique(np.floor(scene.xyz / 0.02).astype(np.int64), axis=0, return_inverse=True)[1].reshape(-1)
    inst = seg(scene.xyz, scene.rgb, superpoints=sp)
    assert len(inst) > 0
    _check_consistent(inst, scene.xyz)
    for m in inst.masks:
        inside = np.zeros(scene.n_points, bool)
        inside[m] = True
        # every superpoint is entirely in or entirely out
        frac = np.bincount(sp, weights=inside) / np.bincount(sp)
        assert np.all((frac == 0) | (frac == 1))


def test_superpoint_refine_majority_rule() -> None:
    masks = torch.tensor([[1, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    sp = torch.tensor([0, 0, 0, 1, 1, 2])
    out = superpoint_refine(masks, sp)
    # superpoint 0: 2/3 in mask 0, 1/3 in mask 1; superpoint 1: 1/2 in mask 0 (ties join)
    expected = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(out, expected)


def test_empty_cloud(seg: Segmenter) -> None:
    inst = seg(np.zeros((0, 3), np.float32))
    assert len(inst) == 0 and inst.point_instance.shape == (0,)
    assert inst.rays.shape == (0, 25) and "total" in inst.timings


def test_nothing_found_gives_empty_result(scene) -> None:
    cfg = load_model_config("small")  # untrained: no class reaches filter_bg_thresh 0.1
    torch.manual_seed(0)
    inst = Segmenter(SphericalMask(cfg), cfg, device="cpu")(scene.xyz, scene.rgb)
    assert len(inst) == 0
    assert np.all(inst.point_instance == -1) and inst.point_instance.shape == (scene.n_points,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"xyz": np.array([[0.0, 0.0, np.nan]] * 10)}, "NaN or inf"),
        ({"xyz": np.array([[0.0, np.inf, 0.0]] * 10)}, "NaN or inf"),
        ({"xyz": np.zeros((10, 2))}, r"xyz must have shape \(N, 3\)"),
        ({"xyz": np.zeros(30)}, r"xyz must have shape \(N, 3\)"),
        ({"xyz": np.zeros((10, 3)), "rgb": np.zeros((9, 3))}, r"rgb must have shape \(10, 3\)"),
        ({"xyz": np.zeros((10, 3)), "rgb": np.full((10, 3), 200.0)}, "normalised"),
        ({"xyz": np.zeros((10, 3)), "rgb": np.full((10, 3), np.nan)}, "rgb has 10 rows"),
        ({"xyz": np.zeros((10, 3)), "superpoints": np.zeros(11, np.int64)}, "superpoints must have shape"),
        ({"xyz": np.zeros((10, 3)), "superpoints": np.full(10, -1)}, "superpoint ids"),
        ({"xyz": np.zeros((10, 3)), "superpoints": np.zeros(10)}, "integer"),
    ],
)
def test_bad_input_raises(seg: Segmenter, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        seg(**kwargs)


def test_predict_batch_matches_segmenter(seg: Segmenter, scene) -> None:
    a = seg(scene.xyz, scene.rgb)
    b = predict_batch(seg.model, collate([scene]))[0]
    assert len(a) == len(b)
    for ma, mb in zip(a.masks, b.masks):
        np.testing.assert_array_equal(ma, mb)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_rotation_option_reports_in_input_frame(seg: Segmenter, scene) -> None:
    cfg = apply_overrides(seg.cfg, {"test.rotate": True})
    rot = Segmenter(seg.model, cfg, device="cpu")
    inst = rot(scene.xyz, scene.rgb)
    _check_consistent(inst, scene.xyz)  # boxes are of the original, unrotated points
    # the same as running the plain segmenter on the rotated cloud, centres rotated back
    ref = seg(rotate_z(scene.xyz, cfg.test.rotation_angle), scene.rgb)
    assert len(ref) == len(inst)
    np.testing.assert_allclose(rotate_z(inst.centers, cfg.test.rotation_angle), ref.centers, atol=1e-4)


def test_rotate_z() -> None:
    p = np.array([[1.0, 0.0, 2.0]], np.float32)
    np.testing.assert_allclose(rotate_z(p, math.pi / 2), [[0.0, 1.0, 2.0]], atol=1e-6)


def test_from_checkpoint(tmp_path, seg: Segmenter, scene) -> None:
    path = save_checkpoint(tmp_path / "m.pt", seg.model, seg.cfg, seg.class_names, seg.cfg.labels)
    again = Segmenter.from_checkpoint(path, device="cpu")
    assert again.device == torch.device("cpu") and again.class_names == seg.class_names
    a, b = seg(scene.xyz, scene.rgb), again(scene.xyz, scene.rgb)
    np.testing.assert_array_equal(a.point_instance, b.point_instance)
    with pytest.raises(CheckpointError):
        Segmenter.from_checkpoint(tmp_path / "absent.pt")


def test_auto_device_follows_cuda_availability(monkeypatch) -> None:
    from sphmask_core.inference import segmenter as segmenter_module

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert segmenter_module.resolve_device("auto") == torch.device("cuda")
    assert segmenter_module.resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert segmenter_module.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        segmenter_module.resolve_device("cuda")


@pytest.fixture(scope="module")
def shipped() -> Segmenter:
    """The shipped (trained) model with every instance kept: real, non-zero scores."""
    seg = Segmenter.from_checkpoint(None, device="cpu")
    seg.cfg = apply_overrides(seg.cfg, {"test.score_threshold": 0.0})
    return seg


def test_final_score_is_sqrt_of_class_probability_times_iou(shipped: Segmenter, scene) -> None:
    inst = shipped(scene.xyz, scene.rgb)
    assert len(inst) >= 2 and 0.05 < inst.scores[0] < 0.99  # where sqrt and product differ
    undecayed = np.sqrt(inst.class_probs * inst.iou_scores)  # (K,)
    # matrix NMS never decays the best instance and only lowers the others
    np.testing.assert_allclose(inst.scores[0], undecayed[0], rtol=1e-5)
    assert np.all(inst.scores <= undecayed + 1e-6)


def test_score_threshold_drops_what_the_node_would_not_publish(shipped: Segmenter, scene) -> None:
    everything = shipped(scene.xyz, scene.rgb)
    cut = float(np.median(np.unique(everything.scores)))
    cfg = apply_overrides(shipped.cfg, {"test.score_threshold": cut})
    some = Segmenter(shipped.model, cfg, device="cpu")(scene.xyz, scene.rgb)
    assert 0 < len(some) < len(everything)
    np.testing.assert_array_equal(some.scores, everything.scores[everything.scores >= cut])
    _check_consistent(some, scene.xyz)


def test_point_instance_from_masks_hand_example() -> None:
    masks = [np.array([0, 1, 2]), np.array([2, 3]), np.array([3, 4])]
    scores = np.array([0.5, 0.9, 0.5], np.float32)
    # point 2: masks 0 (0.5) and 1 (0.9) -> 1; point 3: masks 1 and 2 -> 1; point 5 uncovered
    np.testing.assert_array_equal(point_instance_from_masks(masks, scores, 6), [0, 0, 1, 1, 2, -1])
    # equal scores: the lower index wins
    np.testing.assert_array_equal(point_instance_from_masks(masks[::2], np.array([0.5, 0.5]), 6), [0, 0, 0, 1, 1, -1])


def test_instances_validation() -> None:
    e = Instances.empty(4, ["a", "b"])
    assert len(e) == 0 and e.n_points == 4 and e.labels == []
    with pytest.raises(ValueError, match="class_ids"):
        Instances(
            point_instance=np.array([0, -1], np.int64), masks=[np.array([0], np.int64)],
            class_ids=np.array([5], np.int64), class_names=["a"], scores=np.ones(1, np.float32),
            class_probs=np.ones(1, np.float32), iou_scores=np.ones(1, np.float32),
            centers=np.zeros((1, 3), np.float32), rays=np.zeros((1, 25), np.float32), n_theta=5, n_phi=5,
            boxes=np.zeros((1, 6), np.float32),
        )
    with pytest.raises(ValueError, match="scores has shape"):
        Instances(
            point_instance=np.array([0, -1], np.int64), masks=[np.array([0], np.int64)],
            class_ids=np.array([0], np.int64), class_names=["a"], scores=np.ones(2, np.float32),
            class_probs=np.ones(1, np.float32), iou_scores=np.ones(1, np.float32),
            centers=np.zeros((1, 3), np.float32), rays=np.zeros((1, 25), np.float32), n_theta=5, n_phi=5,
            boxes=np.zeros((1, 6), np.float32),
        )


def test_default_checkpoint(scene) -> None:
    from sphmask_core.pretrained import default_checkpoint_path

    path = default_checkpoint_path()  # shipped in the repository: it must be there
    seg = Segmenter.from_checkpoint(None, device="cpu")
    assert path.name == "sphmask_small_synthetic.pt"
    _check_consistent(seg(scene.xyz, scene.rgb), scene.xyz)


def test_missing_default_checkpoint_is_named(tmp_path, monkeypatch) -> None:
    import sphmask_core.pretrained as pretrained

    monkeypatch.setattr(pretrained, "__file__", str(tmp_path / "__init__.py"))
    with pytest.raises(FileNotFoundError, match="sphmask_small_synthetic.pt"):
        pretrained.default_checkpoint_path()
    with pytest.raises(CheckpointError, match="not installed"):
        Segmenter.from_checkpoint(None, device="cpu")


def test_greedy_nms_setting_is_used_and_keeps_same_class_masks_apart(shipped: Segmenter, scene,
                                                                   monkeypatch) -> None:
    from sphmask_core.inference import segmenter as segmenter_module

    calls = []
    real = segmenter_module.greedy_nms

    def spy(masks, labels, scores, iou_threshold, weights=None):
        keep = real(masks, labels, scores, iou_threshold=iou_threshold, weights=weights)
        calls.append((masks[keep], labels[keep], iou_threshold, weights))
        return keep

    monkeypatch.setattr(segmenter_module, "greedy_nms", spy)
    cfg = apply_overrides(shipped.cfg, {"test.nms": "greedy", "test.nms_iou_threshold": 0.1,
                                        "test.nms_topk": -1})
    inst = Segmenter(shipped.model, cfg, device="cpu")(scene.xyz, scene.rgb)
    assert len(calls) == 1 and len(inst) >= 1
    masks, labels, thr, weights = calls[0]
    from sphmask_core.inference.nms import mask_iou_matrix

    iou = mask_iou_matrix(masks, weights)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    assert thr == 0.1 and bool((iou[same & off_diagonal] <= 0.1).all())
    _check_consistent(inst, scene.xyz)
