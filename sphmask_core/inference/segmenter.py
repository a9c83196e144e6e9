"""`Segmenter`: raw point cloud in, `Instances` out (METHOD 6).

    seg = Segmenter.from_checkpoint()            # shipped small synthetic model, cuda if available
    inst = seg(xyz, rgb)                         # xyz (N, 3) metres, rgb (N, 3) in [-1, 1] or None

Colour: the model takes rgb normalised to [-1, 1] (raw / 127.5 - 1). `rgb=None` feeds zeros, the
Scene contract's "colourless" value; a model trained with colour then sees every point as mid-grey,
which works for geometry-dominated scenes but is less accurate than giving real colour. Models
configured with `in_channels: 3` ignore colour altogether.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sphmask_core.checkpoint import CheckpointError, build_model_from_checkpoint
from sphmask_core.config import ModelConfig, TestConfig
from sphmask_core.data.collate import Batch
from sphmask_core.inference.instances import Instances, point_instance_from_masks
from sphmask_core.inference.nms import greedy_nms, matrix_nms, suppress_duplicates
from sphmask_core.model.candidates import select_candidates
from sphmask_core.model.spherical_mask import ScenePrediction, SphericalMask

IGNORE = -100


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> cuda when available, else cpu; anything else as given."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available")
    return dev


def _as_array(name: str, value: Any, n: int | None, cols: int | None) -> np.ndarray:
    arr = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
    if cols is None:
        if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
            raise ValueError(f"{name} must have shape ({n if n is not None else 'N'},), got {arr.shape}")
    elif arr.ndim != 2 or arr.shape[1] != cols or (n is not None and arr.shape[0] != n):
        raise ValueError(f"{name} must have shape ({n if n is not None else 'N'}, {cols}), got {arr.shape}")
    return arr


def validate_inputs(
    xyz: Any, rgb: Any | None, superpoints: Any | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Coerce and check the inputs: (xyz float32 (N,3), rgb float32 (N,3), superpoints int64 (N,) | None)."""
    xyz_a = _as_array("xyz", xyz, None, 3)
    if xyz_a.dtype.kind not in "fiu":
        raise ValueError(f"xyz must be numeric, got dtype {xyz_a.dtype}")
    xyz_a = np.ascontiguousarray(xyz_a, dtype=np.float32)
    n = xyz_a.shape[0]
    bad = ~np.isfinite(xyz_a).all(axis=1)
    if bad.any():
        raise ValueError(f"xyz has {int(bad.sum())} rows with NaN or inf (first at row {int(np.argmax(bad))})")
    if rgb is None:
        rgb_a = np.zeros((n, 3), dtype=np.float32)
    else:
        rgb_a = np.ascontiguousarray(_as_array("rgb", rgb, n, 3), dtype=np.float32)
        bad = ~np.isfinite(rgb_a).all(axis=1)
        if bad.any():
            raise ValueError(f"rgb has {int(bad.sum())} rows with NaN or inf (first at row {int(np.argmax(bad))})")
        if n and np.abs(rgb_a).max() > 2.0:
            raise ValueError("rgb must be normalised to [-1, 1] (raw / 127.5 - 1); got values beyond that")
    sp_a = None
    if superpoints is not None:
        sp_a = _as_array("superpoints", superpoints, n, None)
        if sp_a.dtype.kind not in "iu":
            raise ValueError(f"superpoints must be integer ids, got dtype {sp_a.dtype}")
        sp_a = sp_a.astype(np.int64)
        if n and sp_a.min() < 0:
            raise ValueError("superpoint ids must be >= 0")
    return xyz_a, rgb_a, sp_a


def rotate_z(xyz: np.ndarray, angle: float) -> np.ndarray:
    """Rotate points (N, 3) by `angle` radians about the z axis."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    return xyz @ rot.T


def superpoint_refine(point_masks: Tensor, superpoint: Tensor) -> Tensor:
    """A superpoint joins a mask iff >= 50% of its points are in it (METHOD 6.6). (K, N) -> (K, N)."""
    n_sp = int(superpoint.max()) + 1 if superpoint.numel() else 0
    sizes = torch.bincount(superpoint, minlength=n_sp).to(torch.float32)  # (S,)
    inside = torch.zeros(point_masks.shape[0], n_sp, device=point_masks.device)
    inside.index_add_(1, superpoint, point_masks.to(torch.float32))  # (K, S)
    keep_sp = inside / sizes.clamp(min=1.0) >= 0.5  # (K, S)
    return keep_sp[:, superpoint]


def mask_boxes(rows: Tensor, pids: Tensor, xyz: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Min and max corner (k, 3) of the points `pids` (P,) of each row `rows` (P,) over xyz (N, 3)."""
    pts = xyz[pids]  # (P, 3)
    idx = rows[:, None].expand(-1, 3)
    lo = xyz.new_full((k, 3), float("inf")).scatter_reduce_(0, idx, pts, reduce="amin")
    hi = xyz.new_full((k, 3), float("-inf")).scatter_reduce_(0, idx, pts, reduce="amax")
    return lo, hi


# Up to this many (instance, point) cells the point masks are gathered densely: a bool gather and
# nonzero are cheaper than the sorts of the pair expansion until the masks get large.
_DENSE_POINT_MASK_ELEMENTS = 1 << 25


def _voxel_mask_points(voxel_masks: Tensor, point_to_voxel: Tensor) -> tuple[Tensor, Tensor]:
    """(row, point) pairs of the point masks voxel_masks[:, point_to_voxel], points ascending per row.

    voxel_masks: (K, V) bool; point_to_voxel: (N,). Same pairs as nonzero of the (K, N) gather.
    """
    n_vox = voxel_masks.shape[1]
    count = torch.bincount(point_to_voxel, minlength=n_vox)  # (V,)
    start = torch.cumsum(count, 0) - count  # (V,)
    by_voxel = torch.argsort(point_to_voxel, stable=True)  # (N,) points grouped by voxel
    mrow, mvox = torch.nonzero(voxel_masks, as_tuple=True)  # (M,)
    per = count[mvox]  # (M,)
    pair = torch.repeat_interleave(torch.arange(mvox.numel(), device=mvox.device), per)  # (P,)
    first = torch.cumsum(per, 0) - per  # (M,)
    pos = start[mvox][pair] + torch.arange(pair.numel(), device=pair.device) - first[pair]  # (P,)
    rows, pids = mrow[pair], by_voxel[pos]
    key = rows * max(point_to_voxel.numel(), 1) + pids
    order = torch.argsort(key)
    return rows[order], pids[order]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def postprocess(
    pred: ScenePrediction,
    xyz: Tensor,
    test_cfg: TestConfig,
    class_names: list[str],
    n_theta: int,
    n_phi: int,
    superpoint: Tensor | None = None,
    centers_to_input: np.ndarray | None = None,
    reference: bool = False,
) -> Instances:
    """METHOD 6.2-6.7 on one scene's raw predictions -> Instances (timings left empty).

    xyz (N, 3): the scene's points in the frame the instances are reported in (used for boxes);
    superpoint (N,) enables superpoint refinement when `test_cfg.superpoint_refinement`;
    centers_to_input (3, 3) maps predicted centres back to that frame (undoes a test rotation).
    reference=True builds the (K', N) point masks even without superpoint refinement (the
    original path; same result, kept to test against).
    """
    n_points = pred.point_to_voxel.shape[0]
    n_cls = len(class_names)
    empty = Instances.empty(n_points, class_names, n_theta, n_phi)
    k = pred.class_probs.shape[0]
    if k == 0 or n_points == 0:
        return empty
    probs = pred.class_probs  # (K, C + 1)
    conf = pred.conf.clamp(0.0, 1.0)  # (K,)
    # METHOD 6.2: no query predicts a foreground class -> nothing to report
    cand = select_candidates(probs, pred.conf, n_cls, test_cfg.topk_candidates)
    if cand is None:
        return empty
    top_scores, q_idx, c_idx = cand.scores, cand.queries, cand.classes  # (T,)
    mask_row = torch.full((k,), -1, dtype=torch.long, device=q_idx.device)
    mask_row[pred.mask_queries] = torch.arange(pred.mask_queries.numel(), device=q_idx.device)
    if bool((mask_row[q_idx] < 0).any()):
        raise ValueError("ScenePrediction has no mask for a top-k candidate query (mask_queries too narrow)")

    # voxels in no unit read an all-False extra column
    n_units = pred.unit_masks.shape[1]
    unit_masks = torch.nn.functional.pad(pred.unit_masks[mask_row[q_idx]], (0, 1))  # (T, U + 1)
    v2u = torch.where(pred.voxel_to_unit >= 0, pred.voxel_to_unit, n_units)  # (V,)
    if reference:
        masks, weights = unit_masks[:, v2u], None  # (T, V) voxel masks
    else:
        # NMS on unit masks, each unit weighted by its voxels: the same voxel counts and IoUs
        # without the (T, V) expansion (T is the top-k, ~100x the instances that survive)
        masks, weights = unit_masks, torch.bincount(v2u, minlength=n_units + 1)  # (T, U + 1), (U + 1,)
    n_vox = masks.sum(dim=1) if weights is None else (masks.to(torch.float64) @ weights.to(torch.float64)).long()
    big = n_vox >= test_cfg.npoint_thresh  # (T,)
    if not bool(big.any()):
        return empty
    masks, top_scores, q_idx, c_idx = masks[big], top_scores[big], q_idx[big], c_idx[big]

    if test_cfg.nms == "greedy":
        keep = greedy_nms(masks, c_idx, top_scores, iou_threshold=test_cfg.nms_iou_threshold, weights=weights)
        keep = keep if test_cfg.nms_topk < 0 else keep[: test_cfg.nms_topk]
        new_scores = top_scores[keep]
    else:
        keep, new_scores = matrix_nms(masks, c_idx, top_scores, sigma=test_cfg.nms_sigma,
                                      topk=test_cfg.nms_topk, weights=weights)
    masks, q_idx, c_idx = masks[keep], q_idx[keep], c_idx[keep]
    # what a consumer gets (node, predict, validation): instances at or above the threshold
    above = (new_scores >= test_cfg.score_threshold).nonzero(as_tuple=True)[0]
    if above.numel() == 0:
        return empty
    masks, q_idx, c_idx, new_scores = masks[above], q_idx[above], c_idx[above], new_scores[above]
    if test_cfg.duplicate_iou > 0:
        dup = suppress_duplicates(masks, c_idx, new_scores, test_cfg.duplicate_iou, weights=weights)
        masks, q_idx, c_idx, new_scores = masks[dup], q_idx[dup], c_idx[dup], new_scores[dup]
    voxel_masks = masks if weights is None else masks[:, v2u]  # (K', V)

    refine = superpoint is not None and test_cfg.superpoint_refinement
    p2v = pred.point_to_voxel  # (N,)
    if refine or reference:
        point_masks = voxel_masks[:, p2v]  # (K', N)
        if refine:
            point_masks = superpoint_refine(point_masks, superpoint.to(point_masks.device))
        n_in = point_masks.sum(dim=1)  # (K',)
    else:
        # without refinement a point is in a mask iff its voxel is: count through the voxels
        per_voxel = torch.bincount(p2v, minlength=voxel_masks.shape[1]).to(torch.float64)  # (V,)
        n_in = (voxel_masks.to(torch.float64) @ per_voxel).long()  # (K',) whole numbers, exact
    ok = (n_in >= max(test_cfg.min_points, 1)).nonzero(as_tuple=True)[0]
    if ok.numel() == 0:
        return empty
    order = torch.argsort(new_scores[ok], descending=True, stable=True)
    final = ok[order]  # (K,) rows of the published instances, best first
    q_idx, c_idx, new_scores = q_idx[final], c_idx[final], new_scores[final]
    if refine or reference:
        rows, pids = torch.nonzero(point_masks[final], as_tuple=True)  # (P,) row-major: points ascending
    elif final.numel() * p2v.numel() <= _DENSE_POINT_MASK_ELEMENTS:
        rows, pids = torch.nonzero(voxel_masks[final][:, p2v], as_tuple=True)
    else:
        # many instances on a large cloud: expand voxels to their points (cost ~ the masks' size)
        rows, pids = _voxel_mask_points(voxel_masks[final], p2v)

    lo, hi = mask_boxes(rows, pids, xyz.to(rows.device), ok.numel())
    sizes = n_in[final].tolist()  # points per published mask, counted above
    masks = [m.astype(np.int64) for m in np.split(pids.cpu().numpy(), np.cumsum(sizes)[:-1])]
    scores_np = new_scores.float().cpu().numpy().astype(np.float32)
    centers = pred.centers[q_idx].float().cpu().numpy()
    if centers_to_input is not None:
        centers = centers @ centers_to_input.T
    return Instances(
        point_instance=point_instance_from_masks(masks, scores_np, n_points),
        masks=masks,
        class_ids=c_idx.cpu().numpy().astype(np.int64),
        class_names=list(class_names),
        scores=scores_np,
        class_probs=probs[q_idx, c_idx].float().cpu().numpy().astype(np.float32),
        iou_scores=conf[q_idx].float().cpu().numpy().astype(np.float32),
        centers=centers.astype(np.float32),
        rays=pred.rays[q_idx].float().cpu().numpy().astype(np.float32),
        n_theta=n_theta,
        n_phi=n_phi,
        boxes=torch.cat([lo, hi], dim=1).float().cpu().numpy().astype(np.float32),
    )


def predict_batch(model: SphericalMask, batch: Batch, class_names: list[str] | None = None) -> list[Instances]:
    """Instances of every scene of a collated batch (e.g. validation during training).

    Runs in eval mode under inference_mode; the model's training flag is restored afterwards.
    Masks index the batch's points of each scene; superpoint refinement uses `batch.superpoint`.
    """
    cfg = model.cfg
    names = list(class_names) if class_names is not None else cfg.class_names
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            preds = model.forward_test(batch)
            out = []
            for b, pred in enumerate(preds):
                p0, p1 = int(batch.offsets[b]), int(batch.offsets[b + 1])
                sp = None
                if batch.superpoint is not None:
                    sp = torch.unique(batch.superpoint[p0:p1], return_inverse=True)[1]
                t0 = time.perf_counter()
                inst = postprocess(
                    pred, batch.xyz[p0:p1], cfg.test, names, cfg.heads.n_theta, cfg.heads.n_phi, superpoint=sp
                )
                inst.timings = dict(pred.timings, nms=time.perf_counter() - t0)
                out.append(inst)
    finally:
        model.train(was_training)
    return out


class Segmenter:
    """A trained SphericalMask wrapped for inference on single point clouds."""

    def __init__(
        self,
        model: SphericalMask,
        cfg: ModelConfig,
        class_names: list[str] | None = None,
        device: str | torch.device = "auto",
        reference: bool = False,
    ) -> None:
        self.cfg = cfg
        # True: the model's original all-query path (same results, slower; for tests and benches)
        self.reference = reference
        self.class_names = list(class_names) if class_names is not None else cfg.class_names
        if len(self.class_names) != cfg.n_classes:
            raise ValueError(
                f"{len(self.class_names)} class names given but the model has {cfg.n_classes} instance classes"
            )
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, device: str | torch.device = "auto") -> "Segmenter":
        """Load a checkpoint (None = the shipped default model)."""
        if path is None:
            from sphmask_core.pretrained import default_checkpoint_path

            try:
                path = default_checkpoint_path()
            except FileNotFoundError as e:
                raise CheckpointError(str(e)) from e
        model, cfg, meta = build_model_from_checkpoint(path, map_location="cpu")
        return cls(model, cfg, class_names=list(meta["class_names"]), device=device)

    def _batch(self, xyz: np.ndarray, rgb: np.ndarray, superpoints: np.ndarray | None) -> Batch:
        n = xyz.shape[0]
        dev = self.device
        xyz_t = torch.from_numpy(xyz).to(dev)
        use_sp = superpoints is not None and self.cfg.use_superpoints
        sp_t = None
        if use_sp:
            _, inverse = np.unique(superpoints, return_inverse=True)
            sp_t = torch.from_numpy(inverse.reshape(-1).astype(np.int64)).to(dev)
        return Batch(
            xyz=xyz_t,
            grid_xyz=xyz_t,
            rgb=torch.from_numpy(rgb).to(dev),
            offsets=torch.tensor([0, n], dtype=torch.int64, device=dev),
            semantic=torch.full((n,), IGNORE, dtype=torch.int64, device=dev),
            instance=torch.full((n,), IGNORE, dtype=torch.int64, device=dev),
            superpoint=sp_t,
            scene_names=["input"],
        )

    def __call__(self, xyz: Any, rgb: Any | None = None, superpoints: Any | None = None) -> Instances:
        """Segment one cloud: xyz (N, 3) metres, rgb (N, 3) in [-1, 1] or None, superpoints (N,) or None."""
        t0 = time.perf_counter()
        xyz_a, rgb_a, sp_a = validate_inputs(xyz, rgb, superpoints)
        n = xyz_a.shape[0]
        tcfg = self.cfg.test
        hcfg = self.cfg.heads
        if n == 0:
            return Instances.empty(0, self.class_names, hcfg.n_theta, hcfg.n_phi, {"total": time.perf_counter() - t0})
        model_xyz = rotate_z(xyz_a, tcfg.rotation_angle) if tcfg.rotate else xyz_a
        back = None
        if tcfg.rotate:
            c, s = math.cos(-tcfg.rotation_angle), math.sin(-tcfg.rotation_angle)
            back = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
        self.model.eval()  # the wrapped model may be shared with a trainer that set train mode
        with torch.inference_mode():
            batch = self._batch(model_xyz, rgb_a, sp_a)
            pred = self.model.forward_test(batch, reference=self.reference)[0]
            _sync(self.device)
            t_nms = time.perf_counter()
            inst = postprocess(
                pred,
                torch.from_numpy(xyz_a).to(self.device),
                tcfg,
                self.class_names,
                hcfg.n_theta,
                hcfg.n_phi,
                superpoint=batch.superpoint,
                centers_to_input=back,
                reference=self.reference,
            )
            _sync(self.device)
        timings = dict(pred.timings)
        timings["nms"] = time.perf_counter() - t_nms
        timings["total"] = time.perf_counter() - t0
        inst.timings = timings
        return inst

    def warmup(self, n_points: int = 5000, seed: int = 0) -> float:
        """Run one inference on a random box of points (allocations, kernels); returns seconds."""
        rng = np.random.default_rng(seed)
        xyz = rng.uniform(0.0, 4.0, size=(n_points, 3)).astype(np.float32)
        t0 = time.perf_counter()
        self(xyz)
        return time.perf_counter() - t0


__all__ = ["Segmenter", "postprocess", "predict_batch", "resolve_device", "rotate_z", "superpoint_refine", "validate_inputs"]
