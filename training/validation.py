"""Validation during training: the benchmark-exact ScanNet protocol through the deployed
inference path."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.trainer import Trainer


def validate_model(trainer: Trainer) -> dict[str, float]:
    """Benchmark-exact AP / AP50 / AP25 of the current model on the validation split.

    Inference goes through `Segmenter` with the in-memory model, so validation sees exactly the
    post-processing (NMS, superpoint refinement, size filters) that deployment uses.
    """
    from sphmask_core.evaluation.scannet_eval import ScanNetEvaluator, gt_ids_from_labels, pred_instances_from_masks
    from sphmask_core.inference.segmenter import Segmenter

    cfg = trainer.cfg
    labels = trainer.model_cfg.labels
    names = list(labels.instance_names)
    evaluator = ScanNetEvaluator(names, list(range(1, len(names) + 1)), min_region_size=cfg.val_min_region_size)
    n = len(trainer.val_set)
    if cfg.val_max_scenes:
        n = min(n, cfg.val_max_scenes)
    segmenter = Segmenter(trainer.model, trainer.model_cfg, device=trainer.device)
    try:
        for i in range(n):
            scene = trainer.val_set[i]
            inst = segmenter(scene.xyz, scene.rgb, scene.superpoint)
            gt = gt_ids_from_labels(scene.semantic, scene.instance, labels.label_shift)
            evaluator.add_scene(gt, pred_instances_from_masks(inst.masks, inst.class_ids, inst.scores, len(scene.xyz)))
    finally:
        trainer.model.train()
    res = evaluator.result()
    return {"AP": res["AP"], "AP50": res["AP50"], "AP25": res["AP25"]}
