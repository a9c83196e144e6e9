"""Deterministic stand-ins for the model, so bag metrics can be checked against known answers."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from sphmask_core.config import load_model_config
from sphmask_core.inference.instances import Instances, point_instance_from_masks


def _instances(masks: list[np.ndarray], class_ids: np.ndarray, scores: np.ndarray,
               xyz: np.ndarray, class_names: list[str]) -> Instances:
    k = len(masks)
    boxes = np.zeros((k, 6), np.float32)
    for i, m in enumerate(masks):
        boxes[i, :3], boxes[i, 3:] = xyz[m].min(axis=0), xyz[m].max(axis=0)
    n_dirs = 25
    return Instances(
        point_instance=point_instance_from_masks(masks, scores, xyz.shape[0]), masks=masks,
        class_ids=class_ids.astype(np.int64), class_names=class_names,
        scores=scores.astype(np.float32), class_probs=scores.astype(np.float32),
        iou_scores=scores.astype(np.float32), centers=(boxes[:, :3] + boxes[:, 3:]) / 2,
        rays=np.full((k, n_dirs), 0.5, np.float32), n_theta=5, n_phi=5, boxes=boxes)


class OracleSegmenter:
    """Returns the ground-truth instances of the points it is given (looked up by position).

    With `noisy`, a deterministic share of them is spoiled (eroded or halved masks, wrong
    classes, spread scores), so the AP lies strictly between 0 and 1.
    """

    def __init__(self, xyz: np.ndarray, semantic: np.ndarray, instance: np.ndarray,
                 label_shift: int = 2, noisy: bool = False) -> None:
        self.noisy = noisy
        self.cfg = load_model_config("small")
        self.class_names = list(self.cfg.class_names)
        self.device = "cpu"
        self.tree = cKDTree(xyz)
        self.semantic, self.instance, self.shift = semantic, instance, label_shift

    def __call__(self, xyz: np.ndarray, rgb: np.ndarray | None = None) -> Instances:
        xyz = np.asarray(xyz, np.float32)
        dist, idx = self.tree.query(xyz)
        assert dist.max() < 1e-4, "oracle asked about points it does not know"
        inst, sem = self.instance[idx], self.semantic[idx]
        ids = np.unique(inst[(inst >= 0) & (sem >= self.shift)])
        masks = [np.flatnonzero(inst == i) for i in ids]
        classes = np.array([sem[m[0]] - self.shift for m in masks], dtype=np.int64)
        scores = np.ones(len(masks))
        if self.noisy:
            n_cls = len(self.class_names)
            for i in range(len(masks)):
                if i % 3 == 0:
                    masks[i] = masks[i][: max(masks[i].size // 2, 1)]  # IoU 0.5: fails AP50
                elif i % 2 == 0:
                    masks[i] = masks[i][np.arange(masks[i].size) % 5 != 0]  # IoU 0.8
                if i % 4 == 3:
                    classes[i] = (classes[i] + 1) % n_cls
                scores[i] = 1.0 - 0.07 * (i % 10)
        return _instances(masks, classes, scores, xyz, self.class_names)
