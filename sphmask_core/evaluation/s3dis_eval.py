"""S3DIS instance metrics at IoU 0.5: mPrec50, mRec50, mMUCov, mMWCov (METHOD 9.2).

Protocol (as the ISBNet/SoftGroup S3DIS evaluation that produced the published numbers):

* Predictions are painted onto the points in ascending confidence (stable for ties), so each
  point belongs to the highest-confidence mask covering it; a prediction is then the set of
  points it kept (a fully covered mask disappears). Its class is its own label.
* GT instances are the distinct non-zero ids ``label_id * 1000 + instance`` whose label is
  evaluated; other points are ignored as GT but still count in predicted instance sizes.
* Precision/recall: per class, every prediction whose best same-class GT IoU is >= 0.5 is a
  TP, otherwise an FP (several predictions may hit one GT, hence recall is clipped to 1).
  Prec_c = TP / (TP + FP), Rec_c = min(1, TP / #GT), summed over all scenes; NaN where undefined.
* MUCov_c: per scene, mean over the class's GTs of their best same-class prediction IoU; then
  the mean over scenes containing the class. MWCov_c: same, each GT weighted by its size.
* Class means are ``nanmean``.

``uncovered_as_instance=True`` reproduces a quirk of the ISBNet script, where the points no
mask covers form one extra prediction of the first class; off by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sphmask_core.evaluation.scannet_eval import GT_LABEL_DIVISOR, PredInstance

S3DIS_CLASS_NAMES: tuple[str, ...] = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door", "chair", "table",
    "bookcase", "sofa", "board", "clutter",
)
# METHOD 9.2 encoding for S3DIS: label_id = sem + 1.
S3DIS_LABEL_IDS: tuple[int, ...] = tuple(range(1, 14))

IOU_THRESHOLD = 0.5


@dataclass
class _SceneCounts:
    tp: np.ndarray  # (C,) int64
    fp: np.ndarray  # (C,) int64
    n_gt: np.ndarray  # (C,) int64
    mucov: np.ndarray  # (C,) float64, NaN where the scene has no GT of the class
    mwcov: np.ndarray  # (C,) float64


def paint_predictions(preds: Sequence[PredInstance], n_points: int) -> np.ndarray:
    """Per point, the index into ``preds`` of the highest-confidence mask covering it; -1 if none."""
    conf = np.array([float(p.confidence) for p in preds], dtype=np.float64)
    owner = np.full(n_points, -1, dtype=np.int64)
    for k in np.argsort(conf, kind="stable"):
        owner[np.asarray(preds[k].mask, dtype=bool)] = k
    return owner


def s3dis_scene_counts(
    gt_ids: np.ndarray,
    preds: Sequence[PredInstance],
    valid_label_ids: Sequence[int],
    uncovered_as_instance: bool = False,
) -> _SceneCounts:
    """TP/FP/#GT and coverage of one scene."""
    gt_ids = np.asarray(gt_ids)
    if gt_ids.ndim != 1 or not np.issubdtype(gt_ids.dtype, np.integer):
        raise ValueError(f"gt_ids must be a 1-D integer array, got {gt_ids.dtype} {gt_ids.shape}")
    n = gt_ids.shape[0]
    valid = [int(v) for v in valid_label_ids]
    label_to_class = {v: i for i, v in enumerate(valid)}
    n_cls = len(valid)
    for k, p in enumerate(preds):
        if np.asarray(p.mask).shape != (n,):
            raise ValueError(f"prediction {k}: mask has shape {np.asarray(p.mask).shape}, expected ({n},)")
        if not np.isfinite(p.confidence):
            raise ValueError(f"prediction {k}: confidence must be finite, got {p.confidence}")
    kept = [p for p in preds if int(p.label_id) in label_to_class]

    # GT instances
    uniq, inv = np.unique(gt_ids.astype(np.int64), return_inverse=True)
    u_label = uniq // GT_LABEL_DIVISOR
    is_gt = (uniq != 0) & np.isin(u_label, valid)
    gt_of_u = np.full(uniq.shape[0], -1, dtype=np.int64)
    gt_of_u[is_gt] = np.arange(int(is_gt.sum()))
    gt_point = gt_of_u[inv]  # (N,) GT instance index or -1
    gt_class = np.array([label_to_class[int(v)] for v in u_label[is_gt]], dtype=np.int64)
    n_g = gt_class.shape[0]
    gt_size = np.bincount(gt_point[gt_point >= 0], minlength=n_g)

    # Painted prediction instances (only those keeping at least one point)
    owner = paint_predictions(kept, n)
    pred_cls_all = np.array([label_to_class[int(p.label_id)] for p in kept], dtype=np.int64)
    if uncovered_as_instance and np.any(owner < 0):
        owner = np.where(owner < 0, len(kept), owner)
        pred_cls_all = np.append(pred_cls_all, 0)
    n_p_all = pred_cls_all.shape[0]
    pred_size_all = np.bincount(owner[owner >= 0], minlength=n_p_all)
    alive = np.flatnonzero(pred_size_all > 0)
    pred_class = pred_cls_all[alive]
    pred_size = pred_size_all[alive]
    remap = np.full(n_p_all + 1, -1, dtype=np.int64)
    remap[alive] = np.arange(alive.shape[0])
    pred_point = remap[owner]  # owner -1 maps to the trailing -1
    n_pr = alive.shape[0]

    both = (gt_point >= 0) & (pred_point >= 0)
    inter = np.bincount(
        pred_point[both] * n_g + gt_point[both], minlength=n_pr * n_g
    ).reshape(n_pr, n_g)  # (P, G)
    union = pred_size[:, None] + gt_size[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)  # (P, G)
    same = pred_class[:, None] == gt_class[None, :]
    iou_same = np.where(same, iou, -1.0)

    best_for_pred = iou_same.max(axis=1, initial=-1.0)  # (P,)
    is_tp = best_for_pred >= IOU_THRESHOLD
    tp = np.bincount(pred_class[is_tp], minlength=n_cls)
    fp = np.bincount(pred_class[~is_tp], minlength=n_cls)
    n_gt = np.bincount(gt_class, minlength=n_cls)

    best_for_gt = np.maximum(iou_same.max(axis=0, initial=0.0), 0.0)  # (G,)
    with np.errstate(invalid="ignore", divide="ignore"):
        mucov = np.bincount(gt_class, weights=best_for_gt, minlength=n_cls) / n_gt
        mwcov = np.bincount(gt_class, weights=best_for_gt * gt_size, minlength=n_cls) / np.bincount(
            gt_class, weights=gt_size.astype(np.float64), minlength=n_cls
        )
    mucov[n_gt == 0] = np.nan
    mwcov[n_gt == 0] = np.nan
    return _SceneCounts(tp=tp, fp=fp, n_gt=n_gt, mucov=mucov, mwcov=mwcov)


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.any(~np.isnan(x)) else float("nan")


class S3DISEvaluator:
    """Streaming S3DIS metrics: add scenes one at a time."""

    def __init__(
        self,
        class_names: Sequence[str] = S3DIS_CLASS_NAMES,
        valid_label_ids: Sequence[int] | None = None,
        uncovered_as_instance: bool = False,
    ) -> None:
        if valid_label_ids is None:
            valid_label_ids = list(range(1, len(class_names) + 1))
        if len(class_names) != len(valid_label_ids) or not class_names:
            raise ValueError(
                f"class_names ({len(class_names)}) and valid_label_ids ({len(valid_label_ids)}) "
                "must be non-empty and of equal length"
            )
        if len(set(int(v) for v in valid_label_ids)) != len(valid_label_ids):
            raise ValueError(f"valid_label_ids must be distinct, got {list(valid_label_ids)}")
        self.class_names = list(class_names)
        self.valid_label_ids = [int(v) for v in valid_label_ids]
        self.uncovered_as_instance = uncovered_as_instance
        self._scenes: list[_SceneCounts] = []

    def add_scene(self, gt_ids: np.ndarray, preds: Sequence[PredInstance]) -> None:
        self._scenes.append(
            s3dis_scene_counts(gt_ids, preds, self.valid_label_ids, self.uncovered_as_instance)
        )

    def result(self) -> dict:
        if not self._scenes:
            raise ValueError("no scenes to evaluate")
        tp = np.sum([s.tp for s in self._scenes], axis=0).astype(np.float64)
        fp = np.sum([s.fp for s in self._scenes], axis=0).astype(np.float64)
        n_gt = np.sum([s.n_gt for s in self._scenes], axis=0).astype(np.float64)
        mucov_s = np.stack([s.mucov for s in self._scenes])  # (S, C)
        mwcov_s = np.stack([s.mwcov for s in self._scenes])
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = tp / (tp + fp)
            rec = np.minimum(1.0, tp / n_gt)
        present = ~np.isnan(mucov_s)
        n_present = present.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mucov = np.where(n_present > 0, np.nansum(mucov_s, axis=0) / n_present, np.nan)
            mwcov = np.where(n_present > 0, np.nansum(mwcov_s, axis=0) / n_present, np.nan)
        per_class = {
            name: {
                "Prec50": float(prec[c]),
                "Rec50": float(rec[c]),
                "MUCov": float(mucov[c]),
                "MWCov": float(mwcov[c]),
            }
            for c, name in enumerate(self.class_names)
        }
        return {
            "mPrec50": _nanmean(prec),
            "mRec50": _nanmean(rec),
            "mMUCov": _nanmean(mucov),
            "mMWCov": _nanmean(mwcov),
            "per_class": per_class,
            "num_scenes": len(self._scenes),
        }


def evaluate_s3dis(
    gt_ids: Sequence[np.ndarray],
    predictions: Sequence[Sequence[PredInstance]],
    class_names: Sequence[str] = S3DIS_CLASS_NAMES,
    valid_label_ids: Sequence[int] | None = None,
    uncovered_as_instance: bool = False,
) -> dict:
    """S3DIS metrics over scenes; GT ids as in ScanNet (``label_id*1000+inst``, 0 = void).

    ``valid_label_ids`` defaults to ``1..C`` (the METHOD 9.2 encoding ``sem + 1``). Returns
    ``{"mPrec50", "mRec50", "mMUCov", "mMWCov", "per_class", "num_scenes"}``.
    """
    if len(gt_ids) != len(predictions):
        raise ValueError(f"{len(gt_ids)} GT scenes but {len(predictions)} prediction lists")
    ev = S3DISEvaluator(class_names, valid_label_ids, uncovered_as_instance)
    for g, p in zip(gt_ids, predictions):
        ev.add_scene(g, p)
    return ev.result()
