"""ScanNet benchmark instance-segmentation evaluation (AP, AP50, AP25), METHOD 9.1.

Reproduces the semantics of the official ScanNet benchmark script
(``BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py``, current version, whose void
mask is "GT label not an evaluated class") with vectorized bookkeeping:

* GT encoding: per point ``label_id * 1000 + instance``; 0 = unannotated.
* A GT instance is a distinct non-zero id whose ``id // 1000`` is an evaluated label id. It is
  *evaluated* when ``id >= 1000`` and it has at least ``min_region_size`` points; the others
  (small, or "group" ids below 1000) only make overlapping predictions ignorable.
* Predictions of a label id outside the evaluated set, or with fewer than ``min_region_size``
  points, are dropped before anything else.
* Per IoU threshold (strict ``IoU > t``) and class, GTs are visited in ascending id order (scenes
  in input order) and take their overlapping predictions in prediction order: the first unused
  one matches; later ones are duplicates, counted as false positives with the lower score while
  the GT keeps the higher one. A duplicate stays unused and may still match a later GT (possible
  only below IoU 0.5, where a prediction can overlap two GTs by more than the threshold).
* A prediction above the threshold with no GT at all (not even a small one) is a false positive
  unless the fraction of its points on void, group or small-GT points exceeds the threshold.
* AP is the ScanNet step integration of the raw (non-interpolated) precision-recall curve
  (recall convolved with ``[-0.5, 0, 0.5]``); a class with GT but no predictions has AP 0, a class
  without evaluated GT has AP NaN (also when it has predictions), means are ``nanmean``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Same float construction as the official script so boundary IoUs compare identically.
IOU_THRESHOLDS: np.ndarray = np.append(np.arange(0.5, 0.95, 0.05), 0.25)
_IS_25 = np.isclose(IOU_THRESHOLDS, 0.25)
_IS_50 = np.isclose(IOU_THRESHOLDS, 0.5)

SCANNET_CLASS_NAMES: tuple[str, ...] = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
    "otherfurniture",
)
SCANNET_LABEL_IDS: tuple[int, ...] = (
    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39,
)

GT_LABEL_DIVISOR = 1000


@dataclass
class PredInstance:
    """One predicted instance in benchmark form."""

    mask: np.ndarray  # (N,) bool, True = point belongs to the instance
    label_id: int
    confidence: float


# --------------------------------------------------------------------------------------------
# Conversions from the project's label / result conventions
# --------------------------------------------------------------------------------------------


def gt_ids_from_labels(semantic: np.ndarray, instance: np.ndarray, label_shift: int) -> np.ndarray:
    """Encode per-point labels as benchmark GT ids ``(sem - label_shift + 1) * 1000 + inst + 1``.

    Points with ``instance < 0`` become 0 (void). Semantic ids below ``label_shift - 1`` (and
    unlabelled points that still carry an instance) are clamped to label 0, as the reference
    ports do, so they are never an evaluated class.
    """
    semantic = np.asarray(semantic)
    instance = np.asarray(instance)
    if semantic.ndim != 1 or instance.shape != semantic.shape:
        raise ValueError(
            f"semantic and instance must be 1-D arrays of equal length, got shapes "
            f"{semantic.shape} and {instance.shape}"
        )
    if not (np.issubdtype(semantic.dtype, np.integer) and np.issubdtype(instance.dtype, np.integer)):
        raise ValueError("semantic and instance labels must be integer arrays")
    inst = instance.astype(np.int64)
    if inst.size and inst.max() >= GT_LABEL_DIVISOR - 1:
        raise ValueError(
            f"instance id {int(inst.max())} does not fit the label*1000+instance encoding "
            f"(max {GT_LABEL_DIVISOR - 2})"
        )
    label = np.maximum(semantic.astype(np.int64) - int(label_shift) + 1, 0)
    ids = label * GT_LABEL_DIVISOR + inst + 1
    ids[inst < 0] = 0
    return ids


def pred_instances_from_masks(
    masks: Sequence[np.ndarray],
    class_ids: np.ndarray,
    scores: np.ndarray,
    n_points: int,
) -> list[PredInstance]:
    """Turn per-instance point-index arrays (``Instances.masks``) into ``PredInstance``s.

    ``label_id = class_id + 1``, matching :func:`gt_ids_from_labels`.
    """
    class_ids = np.asarray(class_ids).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(masks) != class_ids.shape[0] or len(masks) != scores.shape[0]:
        raise ValueError(
            f"masks ({len(masks)}), class_ids ({class_ids.shape[0]}) and scores "
            f"({scores.shape[0]}) must have the same length"
        )
    out: list[PredInstance] = []
    for idx, cls, score in zip(masks, class_ids, scores):
        idx = np.asarray(idx)
        if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n_points):
            raise ValueError(f"mask indices must be integers in [0, {n_points})")
        mask = np.zeros(n_points, dtype=bool)
        mask[idx] = True
        out.append(PredInstance(mask=mask, label_id=int(cls) + 1, confidence=float(score)))
    return out


# --------------------------------------------------------------------------------------------
# Per-scene statistics (everything the matching needs; the masks can then be dropped)
# --------------------------------------------------------------------------------------------


@dataclass
class SceneStats:
    """GT instances, predictions and their same-class overlaps of one scene."""

    gt_class: np.ndarray  # (G,) int64 class index, GTs in ascending id order
    gt_count: np.ndarray  # (G,) int64 points
    gt_eval: np.ndarray  # (G,) bool: id >= 1000 and count >= min_region_size
    gt_ignore_weight: np.ndarray  # (G,) int64: 1 for group, 1 for small (both may apply)
    pred_class: np.ndarray  # (P,) int64
    pred_conf: np.ndarray  # (P,) float64
    pred_count: np.ndarray  # (P,) int64
    pred_void: np.ndarray  # (P,) int64 points on void GT
    pair_pred: np.ndarray  # (E,) int64, pairs sorted by (gt, pred)
    pair_gt: np.ndarray  # (E,) int64
    pair_inter: np.ndarray  # (E,) int64, > 0


def _check_scene_inputs(gt_ids: np.ndarray, preds: Sequence[PredInstance]) -> np.ndarray:
    gt_ids = np.asarray(gt_ids)
    if gt_ids.ndim != 1 or not np.issubdtype(gt_ids.dtype, np.integer):
        raise ValueError(f"gt_ids must be a 1-D integer array, got {gt_ids.dtype} {gt_ids.shape}")
    if gt_ids.size and gt_ids.min() < 0:
        raise ValueError("gt_ids must be non-negative (label_id*1000+instance, 0 = void)")
    n = gt_ids.shape[0]
    for k, p in enumerate(preds):
        m = np.asarray(p.mask)
        if m.shape != (n,):
            raise ValueError(f"prediction {k}: mask has shape {m.shape}, expected ({n},)")
        if not np.isfinite(p.confidence):
            raise ValueError(f"prediction {k}: confidence must be finite, got {p.confidence}")
    return gt_ids.astype(np.int64, copy=False)


def _unique_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse, return_counts)``; a counting pass when ids are small."""
    top = int(ids.max(initial=0))
    if top > 4 * ids.shape[0] + (1 << 16):
        return np.unique(ids, return_inverse=True, return_counts=True)
    hist = np.bincount(ids, minlength=top + 1)
    uniq = np.flatnonzero(hist)
    lookup = np.zeros(top + 1, dtype=np.int64)
    lookup[uniq] = np.arange(uniq.shape[0])
    return uniq, lookup[ids], hist[uniq]


def scene_stats(
    gt_ids: np.ndarray,
    preds: Sequence[PredInstance],
    valid_label_ids: Sequence[int],
    min_region_size: int = 100,
) -> SceneStats:
    """Count all GT-instance x prediction intersections of one scene at once."""
    gt_ids = _check_scene_inputs(gt_ids, preds)
    valid = np.asarray(valid_label_ids, dtype=np.int64)

    uniq, inv, counts = _unique_ids(gt_ids)
    u_label = uniq // GT_LABEL_DIVISOR
    u_valid = np.isin(u_label, valid)
    u_is_gt = u_valid & (uniq != 0)
    u_void = ~u_valid
    gt_cols = np.flatnonzero(u_is_gt)  # ascending id order, as np.unique in the reference
    gt_ids_u = uniq[gt_cols]
    gt_class = np.searchsorted(np.sort(valid), u_label[gt_cols])
    gt_class = np.argsort(valid)[gt_class]  # class index = position in valid_label_ids
    gt_count = counts[gt_cols].astype(np.int64)
    gt_small = gt_count < min_region_size
    gt_group = gt_ids_u < GT_LABEL_DIVISOR
    gt_eval = ~gt_small & ~gt_group

    label_to_class = {int(v): i for i, v in enumerate(valid)}
    keep: list[int] = []
    point_lists: list[np.ndarray] = []
    for k, p in enumerate(preds):
        if int(p.label_id) not in label_to_class:
            continue
        pts = np.flatnonzero(p.mask)
        if pts.shape[0] >= min_region_size:
            keep.append(k)
            point_lists.append(pts)
    n_pred = len(keep)
    if n_pred:
        n_u = uniq.shape[0]
        cnt = np.array([pts.shape[0] for pts in point_lists], dtype=np.int64)
        # Histogram of the GT-id columns under each mask: cost ~ mask sizes, not K x N.
        inter_u = np.stack([np.bincount(inv[pts], minlength=n_u) for pts in point_lists])  # (K, U)
        pred_void = inter_u[:, u_void].sum(axis=1)
        pred_class = np.array([label_to_class[int(preds[k].label_id)] for k in keep], dtype=np.int64)
        pred_conf = np.array([float(preds[k].confidence) for k in keep], dtype=np.float64)
        inter_g = inter_u[:, gt_cols]  # (K, G)
        same = pred_class[:, None] == gt_class[None, :]
        g_idx, p_idx = np.nonzero(((inter_g > 0) & same).T)  # sorted by (gt, pred)
        pair_inter = inter_g[p_idx, g_idx]
    else:
        cnt = np.zeros(0, np.int64)
        pred_void = np.zeros(0, np.int64)
        pred_class = np.zeros(0, np.int64)
        pred_conf = np.zeros(0, np.float64)
        p_idx = g_idx = pair_inter = np.zeros(0, np.int64)
    return SceneStats(
        gt_class=gt_class.astype(np.int64),
        gt_count=gt_count,
        gt_eval=gt_eval,
        gt_ignore_weight=gt_small.astype(np.int64) + gt_group.astype(np.int64),
        pred_class=pred_class,
        pred_conf=pred_conf,
        pred_count=np.asarray(cnt, dtype=np.int64),
        pred_void=np.asarray(pred_void, dtype=np.int64),
        pair_pred=p_idx.astype(np.int64),
        pair_gt=g_idx.astype(np.int64),
        pair_inter=np.asarray(pair_inter, dtype=np.int64),
    )


# --------------------------------------------------------------------------------------------
# Matching and AP over all scenes
# --------------------------------------------------------------------------------------------


@dataclass
class _Pooled:
    """All scenes' statistics concatenated with global indices."""

    gt_class: np.ndarray
    gt_eval: np.ndarray
    gt_group: np.ndarray  # (G,) int64 (scene, class) group id
    pred_class: np.ndarray
    pred_conf: np.ndarray
    pred_ignored_frac: np.ndarray  # (P,) float64 (void + group/small overlap) / count
    pred_group: np.ndarray  # (P,) int64 (scene, class) group id
    pair_pred: np.ndarray
    pair_gt: np.ndarray
    pair_iou: np.ndarray  # (E,) float64


def _pool(stats: Sequence[SceneStats], n_classes: int) -> _Pooled:
    gt_off = np.cumsum([0] + [s.gt_class.shape[0] for s in stats])
    pr_off = np.cumsum([0] + [s.pred_class.shape[0] for s in stats])
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    gt_class = cat([s.gt_class for s in stats], np.int64)
    gt_count = cat([s.gt_count for s in stats], np.int64)
    gt_scene = cat([np.full(s.gt_class.shape[0], i) for i, s in enumerate(stats)], np.int64)
    pred_class = cat([s.pred_class for s in stats], np.int64)
    pred_count = cat([s.pred_count for s in stats], np.int64)
    pred_scene = cat([np.full(s.pred_class.shape[0], i) for i, s in enumerate(stats)], np.int64)
    pair_pred = cat([s.pair_pred + pr_off[i] for i, s in enumerate(stats)], np.int64)
    pair_gt = cat([s.pair_gt + gt_off[i] for i, s in enumerate(stats)], np.int64)
    pair_inter = cat([s.pair_inter for s in stats], np.int64)
    ign_w = cat([s.gt_ignore_weight for s in stats], np.int64)
    ignored = cat([s.pred_void for s in stats], np.int64) + np.bincount(
        pair_pred, weights=pair_inter * ign_w[pair_gt], minlength=pred_class.shape[0]
    ).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ignored_frac = ignored.astype(np.float64) / pred_count.astype(np.float64)
        pair_iou = pair_inter.astype(np.float64) / (
            gt_count[pair_gt] + pred_count[pair_pred] - pair_inter
        ).astype(np.float64)
    return _Pooled(
        gt_class=gt_class,
        gt_eval=cat([s.gt_eval for s in stats], bool),
        gt_group=gt_scene * n_classes + gt_class,
        pred_class=pred_class,
        pred_conf=cat([s.pred_conf for s in stats], np.float64),
        pred_ignored_frac=ignored_frac,
        pred_group=pred_scene * n_classes + pred_class,
        pair_pred=pair_pred,
        pair_gt=pair_gt,
        pair_iou=pair_iou,
    )


def _greedy_sequential(
    gts: np.ndarray, pair_pred: np.ndarray, pair_gt: np.ndarray, conf: np.ndarray
) -> tuple[list[int], list[float], list[float]]:
    """Reference-order greedy matching of one (scene, class) group.

    ``pair_*`` are the above-threshold pairs of evaluated GTs, sorted by (gt, pred).
    Returns (matched gt ids, TP scores, duplicate FP scores).
    """
    visited: set[int] = set()
    matched: list[int] = []
    tp: list[float] = []
    dup: list[float] = []
    for g in gts:
        best: float | None = None
        for p in pair_pred[pair_gt == g]:
            if int(p) in visited:
                continue
            c = float(conf[p])
            if best is None:
                best = c
                visited.add(int(p))
            else:
                dup.append(min(best, c))
                best = max(best, c)
        if best is not None:
            matched.append(int(g))
            tp.append(best)
    return matched, tp, dup


def _match_threshold(pool: _Pooled, thr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Classify predictions/GTs at one IoU threshold.

    Returns (matched (G,) bool, TP scores + their class, FP scores + their class) as
    ``matched, scores (M,), is_tp (M,), score_class (M,)``.
    """
    n_pred = pool.pred_class.shape[0]
    over = pool.pair_iou > thr  # (E,)
    found_gt = np.zeros(n_pred, dtype=bool)
    found_gt[pool.pair_pred[over]] = True
    lone_fp = ~found_gt & (pool.pred_ignored_frac <= thr)

    ev = over & pool.gt_eval[pool.pair_gt]
    e_pred, e_gt = pool.pair_pred[ev], pool.pair_gt[ev]
    n_cand = np.bincount(e_pred, minlength=n_pred)
    # A prediction above threshold for two GTs makes the outcome order dependent: replay the
    # reference loop for those (scene, class) groups only.
    slow_groups = np.unique(pool.pred_group[n_cand > 1])
    slow = np.isin(pool.gt_group[e_gt], slow_groups)

    matched = np.zeros(pool.gt_class.shape[0], dtype=bool)
    f_pred, f_gt = e_pred[~slow], e_gt[~slow]
    f_conf = pool.pred_conf[f_pred]
    order = np.lexsort((-f_conf, f_gt))  # per GT, highest confidence first
    f_gt, f_conf = f_gt[order], f_conf[order]
    first = np.ones(f_gt.shape[0], dtype=bool)
    first[1:] = f_gt[1:] != f_gt[:-1]
    matched[f_gt[first]] = True
    tp_scores = [f_conf[first]]
    tp_class = [pool.gt_class[f_gt[first]]]
    fp_scores = [f_conf[~first], pool.pred_conf[lone_fp]]
    fp_class = [pool.gt_class[f_gt[~first]], pool.pred_class[lone_fp]]

    s_pred, s_gt = e_pred[slow], e_gt[slow]
    for grp in slow_groups:
        in_grp = pool.gt_group[s_gt] == grp
        gts = np.flatnonzero((pool.gt_group == grp) & pool.gt_eval)
        m, tp, dup = _greedy_sequential(gts, s_pred[in_grp], s_gt[in_grp], pool.pred_conf)
        cls = int(pool.gt_class[gts[0]])
        matched[m] = True
        tp_scores.append(np.asarray(tp, np.float64))
        tp_class.append(np.full(len(tp), cls, np.int64))
        fp_scores.append(np.asarray(dup, np.float64))
        fp_class.append(np.full(len(dup), cls, np.int64))

    tp_s, fp_s = np.concatenate(tp_scores), np.concatenate(fp_scores)
    scores = np.concatenate([tp_s, fp_s])
    is_tp = np.concatenate([np.ones(tp_s.shape[0], bool), np.zeros(fp_s.shape[0], bool)])
    score_class = np.concatenate(tp_class + fp_class).astype(np.int64)
    return matched, scores, is_tp, score_class


def precision_recall(scores: np.ndarray, is_tp: np.ndarray,
                     hard_false_negatives: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw precision and recall at every distinct score (detections with score >= it), in
    ascending score order: ``(precision (S,), recall (S,), score (S,))``."""
    scores = np.asarray(scores, dtype=np.float64)
    is_tp = np.asarray(is_tp, dtype=bool)
    order = np.argsort(scores, kind="stable")
    s_sorted = scores[order]
    cum = np.concatenate([[0], np.cumsum(is_tp[order])])  # (n+1,) TPs strictly below index
    uniq, first = np.unique(s_sorted, return_index=True)
    n_total, n_true = s_sorted.shape[0], int(cum[-1])
    below = cum[first]
    tp = n_true - below
    fp = n_total - first - tp
    fn = below + hard_false_negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / (tp + fp), tp / (tp + fn), uniq


def average_precision(scores: np.ndarray, is_tp: np.ndarray, hard_false_negatives: int) -> float:
    """ScanNet step-integrated AP of scored detections plus unmatched GTs.

    Precision/recall are taken at every distinct score (detections with score >= it), plus an
    artificial (recall 0, precision 1) point; step widths = recall convolved with [-.5, 0, .5].
    """
    if np.asarray(scores).shape[0] == 0:
        return 0.0
    precision, recall, _ = precision_recall(scores, is_tp, hard_false_negatives)
    precision = np.append(precision, 1.0)
    recall = np.append(recall, 0.0)
    padded = np.concatenate([[recall[0]], recall, [0.0]])
    step = np.convolve(padded, [-0.5, 0.0, 0.5], "valid")
    return float(np.dot(precision, step))


def pr_curves(stats: Sequence[SceneStats], n_classes: int,
              iou: float = 0.5) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per class with GT and predictions: ``precision_recall`` at one IoU threshold, matched
    exactly as for the AP table (so the curve is the one its AP integrates)."""
    pool = _pool(stats, n_classes)
    n_eval_gt = np.bincount(pool.gt_class[pool.gt_eval], minlength=n_classes)
    matched, scores, is_tp, score_class = _match_threshold(pool, float(iou))
    n_matched = np.bincount(pool.gt_class[matched], minlength=n_classes)
    out = {}
    for c in range(n_classes):
        sel = score_class == c
        if n_eval_gt[c] > 0 and sel.any():
            out[c] = precision_recall(scores[sel], is_tp[sel], int(n_eval_gt[c] - n_matched[c]))
    return out


def ap_table(stats: Sequence[SceneStats], n_classes: int) -> np.ndarray:
    """AP per (class, IoU threshold) over all scenes, shape (C, len(IOU_THRESHOLDS))."""
    pool = _pool(stats, n_classes)
    has_gt = np.bincount(pool.gt_class[pool.gt_eval], minlength=n_classes) > 0
    has_pred = np.bincount(pool.pred_class, minlength=n_classes) > 0
    n_eval_gt = np.bincount(pool.gt_class[pool.gt_eval], minlength=n_classes)
    table = np.full((n_classes, IOU_THRESHOLDS.shape[0]), np.nan)
    for ti, thr in enumerate(IOU_THRESHOLDS):
        matched, scores, is_tp, score_class = _match_threshold(pool, float(thr))
        n_matched = np.bincount(pool.gt_class[matched], minlength=n_classes)
        for c in range(n_classes):
            if has_gt[c] and has_pred[c]:
                sel = score_class == c
                table[c, ti] = average_precision(scores[sel], is_tp[sel], int(n_eval_gt[c] - n_matched[c]))
            elif has_gt[c]:
                table[c, ti] = 0.0
    return table


def summarize(table: np.ndarray, class_names: Sequence[str]) -> dict:
    """Means as the reference: per class plain average over thresholds, overall nanmean."""
    main = table[:, ~_IS_25]

    def nanmean(x: np.ndarray) -> float:
        return float(np.nanmean(x)) if np.any(~np.isnan(x)) else float("nan")

    per_class = {
        name: {
            "AP": float(np.mean(main[c])),
            "AP50": float(table[c, _IS_50][0]),
            "AP25": float(table[c, _IS_25][0]),
        }
        for c, name in enumerate(class_names)
    }
    return {
        "AP": nanmean(main),
        "AP50": nanmean(table[:, _IS_50]),
        "AP25": nanmean(table[:, _IS_25]),
        "per_class": per_class,
    }


def _check_classes(class_names: Sequence[str], valid_label_ids: Sequence[int]) -> None:
    if len(class_names) != len(valid_label_ids) or len(class_names) == 0:
        raise ValueError(
            f"class_names ({len(class_names)}) and valid_label_ids ({len(valid_label_ids)}) "
            "must be non-empty and of equal length"
        )
    ids = [int(v) for v in valid_label_ids]
    if len(set(ids)) != len(ids) or min(ids) < 0:
        raise ValueError(f"valid_label_ids must be distinct non-negative integers, got {ids}")


class ScanNetEvaluator:
    """Streaming form of :func:`evaluate_scannet`: add scenes one at a time, masks are not kept."""

    def __init__(
        self,
        class_names: Sequence[str],
        valid_label_ids: Sequence[int],
        min_region_size: int = 100,
    ) -> None:
        _check_classes(class_names, valid_label_ids)
        if int(min_region_size) < 1:
            raise ValueError(f"min_region_size must be >= 1, got {min_region_size}")
        self.class_names = list(class_names)
        self.valid_label_ids = [int(v) for v in valid_label_ids]
        self.min_region_size = int(min_region_size)
        self._stats: list[SceneStats] = []

    def add_scene(self, gt_ids: np.ndarray, preds: Sequence[PredInstance]) -> None:
        self._stats.append(scene_stats(gt_ids, preds, self.valid_label_ids, self.min_region_size))

    @property
    def num_scenes(self) -> int:
        return len(self._stats)

    def ap_table(self) -> np.ndarray:
        return ap_table(self._stats, len(self.class_names))

    def pr_curves(self, iou: float = 0.5) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Class name -> (precision, recall, score) at IoU `iou`; classes without GT or
        predictions are left out."""
        return {self.class_names[c]: v for c, v in pr_curves(self._stats, len(self.class_names), iou).items()}

    def result(self) -> dict:
        if not self._stats:
            raise ValueError("no scenes to evaluate")
        out = summarize(self.ap_table(), self.class_names)
        out["num_scenes"] = len(self._stats)
        return out


def evaluate_scannet(
    gt_ids: Sequence[np.ndarray],
    predictions: Sequence[Sequence[PredInstance]],
    class_names: Sequence[str] = SCANNET_CLASS_NAMES,
    valid_label_ids: Sequence[int] = SCANNET_LABEL_IDS,
    min_region_size: int = 100,
) -> dict:
    """Evaluate scenes with the ScanNet benchmark protocol.

    Returns ``{"AP", "AP50", "AP25", "per_class": {name: {"AP", "AP50", "AP25"}}, "num_scenes"}``.
    """
    if len(gt_ids) != len(predictions):
        raise ValueError(f"{len(gt_ids)} GT scenes but {len(predictions)} prediction lists")
    ev = ScanNetEvaluator(class_names, valid_label_ids, min_region_size)
    for g, p in zip(gt_ids, predictions):
        ev.add_scene(g, p)
    return ev.result()
