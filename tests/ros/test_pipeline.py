"""The node's pipeline without a ROS graph: instance expansion, the shipped model on synthetic
frames, class names, devices and the input grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from std_msgs.msg import Header

from sphmask_core.inference.instances import Instances, point_instance_from_masks
from sphmask_ros.pointcloud2 import encode_cloud


@pytest.mark.parametrize("dense", [True, False])
def test_expand_instances_matches_brute_force(dense, monkeypatch):
    from sphmask_ros import pipeline
    from sphmask_ros.pipeline import expand_instances

    if not dense:
        monkeypatch.setattr(pipeline, "_DENSE_EXPANSION_ELEMENTS", 0)

    rng = np.random.default_rng(2)
    n_model, n_out = 50, 400
    to_model = rng.integers(-1, n_model, n_out)  # -1 = dropped by the cap
    xyz = rng.normal(size=(n_out, 3)).astype(np.float32)
    masks = [np.sort(rng.choice(n_model, 20, replace=False)).astype(np.int64) for _ in range(3)]
    scores = np.array([0.5, 0.9, 0.2], np.float32)
    model = Instances(
        point_instance=point_instance_from_masks(masks, scores, n_model), masks=masks,
        class_ids=np.array([0, 1, 0]), class_names=["a", "b"], scores=scores,
        class_probs=scores, iou_scores=scores, centers=np.zeros((3, 3), np.float32),
        rays=np.zeros((3, 4), np.float32), n_theta=2, n_phi=2, boxes=np.zeros((3, 6), np.float32))
    out = expand_instances(model, to_model, xyz)
    for k, m in enumerate(masks):
        expected = np.flatnonzero(np.isin(to_model, m))
        assert np.array_equal(out.masks[k], expected)
        np.testing.assert_allclose(out.boxes[k, :3], xyz[expected].min(0))
        np.testing.assert_allclose(out.boxes[k, 3:], xyz[expected].max(0))
    brute = np.array([model.point_instance[j] if j >= 0 else -1 for j in to_model])
    assert np.array_equal(out.point_instance, brute)


def test_shipped_model_finds_synthetic_instances():
    import sphmask_core.pretrained as pretrained

    path = Path(pretrained.__file__).parent / pretrained.DEFAULT_CHECKPOINT_NAME
    assert path.is_file(), f"the shipped checkpoint {path} is missing from the repository"
    from sphmask_core.data.scene import SYNTHETIC_LABELS
    from sphmask_core.data.synthetic import generate_frames
    from sphmask_core.evaluation.scannet_eval import (
        evaluate_scannet,
        gt_ids_from_labels,
        pred_instances_from_masks,
    )
    from sphmask_core.sensor.node_params import NodeParams
    from sphmask_ros.pipeline import Pipeline, decode_frame

    pipeline = Pipeline.from_params(NodeParams(device="cpu"))  # checkpoint "" = shipped model
    names = pipeline.class_names
    gts, preds = [], []
    for seed in (9001, 9002):
        _, frames = generate_frames(seed, n_frames=2)
        frame = frames[0]
        msg = encode_cloud(Header(frame_id="sensor"), {"xyz": frame.xyz, "rgb": frame.rgb})
        result = pipeline.process(decode_frame(msg, "points", 0))
        inst = result.instances
        assert inst.n_points == frame.xyz.shape[0]  # the output cloud is the input cloud
        gts.append(gt_ids_from_labels(frame.semantic, frame.instance, SYNTHETIC_LABELS.label_shift))
        preds.append(pred_instances_from_masks(inst.masks, inst.class_ids, inst.scores, inst.n_points))
    metrics = evaluate_scannet(gts, preds, names, list(range(1, len(names) + 1)))
    assert metrics["AP50"] > 0.5, metrics


def test_class_names_override_and_device_errors(checkpoint):
    from sphmask_core.sensor.node_params import NodeParams
    from sphmask_ros.pipeline import Pipeline

    names = [f"thing{i}" for i in range(10)]
    pipeline = Pipeline.from_params(NodeParams(checkpoint=str(checkpoint), device="cpu",
                                               class_names=tuple(names)), warmup=False)
    assert pipeline.class_names == names and pipeline.model_name == "random_small"
    with pytest.raises(ValueError, match="class_names has 2 names but the model has 10"):
        Pipeline.from_params(NodeParams(checkpoint=str(checkpoint), device="cpu",
                                        class_names=("a", "b")), warmup=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Pipeline.from_params(NodeParams(checkpoint=str(checkpoint), device="cuda"), warmup=False)


def test_input_grid_at_or_above_the_model_voxel_is_warned(checkpoint):
    from sphmask_core.sensor.node_params import NodeParams
    from sphmask_ros.pipeline import Pipeline

    class Log:
        def __init__(self) -> None:
            self.warnings: list[str] = []

        def warning(self, msg: str) -> None:
            self.warnings.append(msg)

    quiet, loud = Log(), Log()
    # the small model's voxel is 0.05 m
    fine = Pipeline.from_params(NodeParams(checkpoint=str(checkpoint), device="cpu",
                                           input_voxel_size=0.02), logger=quiet, warmup=False)
    assert quiet.warnings == []
    Pipeline.from_params(NodeParams(checkpoint=str(checkpoint), device="cpu",
                                    input_voxel_size=0.05), logger=loud, warmup=False)
    assert len(loud.warnings) == 1 and "input_voxel_size 0.05" in loud.warnings[0]
    assert "voxel size 0.05" in loud.warnings[0]
    fine.logger = quiet
    fine.set_params(NodeParams(checkpoint=str(checkpoint), device="cpu", input_voxel_size=0.1))
    assert len(quiet.warnings) == 1  # a run-time change is checked too
