"""Instance losses of Spherical Mask (METHOD 5.1-5.5).

For each scene the queries are matched to ground truth twice: one-to-one (main terms) and with
every GT duplicated ``dup`` times (auxiliary terms, weighted ``aux_weight``). Per scene each
term is summed over matched pairs and divided by their number; terms are then averaged over the
scenes of the batch. Point-wise losses are not part of this module (see ``pointwise.py``).

Margin loss, ``margin_variant``:
* ``"code"`` (released model): sets by the sign of z vs the GT mask, one soft-margin mean over
  FP, TP and FN (METHOD 5.3);
* ``"paper"``: sets by the ray test of the migrated radius (paper Eqs. 5, 6, 9), with separate
  means L_mc over FP and FN and L_sc over TP (Eqs. 7, 11), summed.
Predicted rays never receive gradient from the margin loss; z does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sphmask_core.losses.box import box_giou
from sphmask_core.losses.matching import MatchWeights, duplicated_match, hungarian_match, match_cost
from sphmask_core.losses.targets import SceneTargets
from sphmask_core.model.migration import migrated_radius
from sphmask_core.model.spherical import cartesian_to_spherical, find_sector

TERMS = ("cls", "conf", "dice", "bce", "box", "giou", "margin", "coarse")
MARGIN_VARIANTS = ("code", "paper")
MARGIN_CENTERS = ("union", "pred")


@dataclass
class LossConfig:
    """Weights and switches of the instance losses (defaults = the released ScanNet model).

    cls/conf/dice/bce/box/giou/margin/coarse_weight: per-term weights (METHOD 5.4; the code's
    "second_l1" = margin + coarse, both weight 1). eos_coef: CE weight of the no-object class.
    dup / aux_weight: duplicated auxiliary matching (0 aux_weight disables it).
    margin_variant: "code" | "paper" (see module doc). margin_center: spherical centre in the
    margin loss, "union" = mean of units in GT mask OR z >= 0 (code) or "pred" = predicted centre.
    match_*: matching cost weights (METHOD 5.2); match_coarse adds the [rays, centre] L1 (paper).
    class_weights: optional CE weight per instance class (no-object weight is eos_coef).
    semantic_weights: optional CE weight per semantic class (stuff included) of the point-wise
    semantic head, e.g. ISBNet's STPLS3D weights against its rare classes.
    """

    cls_weight: float = 0.5
    conf_weight: float = 0.5
    dice_weight: float = 1.0
    bce_weight: float = 1.0
    box_weight: float = 0.5
    giou_weight: float = 0.5
    margin_weight: float = 1.0
    coarse_weight: float = 1.0
    eos_coef: float = 0.1
    dup: int = 4
    aux_weight: float = 2.0
    margin_variant: str = "code"
    margin_center: str = "union"
    match_cls: float = 0.5
    match_conf: float = 0.2
    match_giou: float = 0.2
    match_coarse: float = 0.0
    class_weights: tuple[float, ...] | None = None
    semantic_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.margin_variant not in MARGIN_VARIANTS:
            raise ValueError(f"LossConfig.margin_variant must be one of {MARGIN_VARIANTS}, got {self.margin_variant!r}")
        if self.margin_center not in MARGIN_CENTERS:
            raise ValueError(f"LossConfig.margin_center must be one of {MARGIN_CENTERS}, got {self.margin_center!r}")
        if self.dup < 1:
            raise ValueError(f"LossConfig.dup must be >= 1, got {self.dup}")
        for name in ("eos_coef", "aux_weight") + tuple(f"{t}_weight" for t in TERMS):
            if getattr(self, name) < 0:
                raise ValueError(f"LossConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("class_weights", "semantic_weights"):
            values = getattr(self, name)
            if values is not None and (not values or min(values) < 0):
                raise ValueError(f"LossConfig.{name} must be a non-empty list of weights >= 0, got {values}")

    def weight(self, term: str) -> float:
        return float(getattr(self, f"{term}_weight"))

    def match_weights(self) -> MatchWeights:
        return MatchWeights(cls=self.match_cls, conf=self.match_conf, giou=self.match_giou, coarse=self.match_coarse)


@dataclass
class SceneQueryPredictions:
    """Query outputs of one scene (K queries, U units)."""

    cls_logits: Tensor  # (K, C + 1), last column = no object
    conf: Tensor  # (K,) raw IoU confidence
    boxes: Tensor  # (K, 6) absolute AABB (min xyz, max xyz)
    rays: Tensor  # (K, R) raw ray lengths in metres, polar-major
    centers: Tensor  # (K, 3) absolute spherical centres
    mask_logits: Tensor  # (K, U) z: mask logit = radial migration delta


def _soft_margin(x: Tensor, y: Tensor) -> Tensor:
    """Element-wise soft margin on tanh(x): log(1 + exp(-y tanh(x)))."""
    return F.softplus(-y * torch.tanh(x))


def margin_loss(
    z: Tensor,
    gt_masks: Tensor,
    rays: Tensor,
    unit_xyz: Tensor,
    gt_centers: Tensor,
    pred_centers: Tensor,
    n_theta: int,
    n_phi: int,
    variant: str = "code",
    center_mode: str = "union",
) -> Tensor:
    """Radial-migration margin loss of the matched queries (METHOD 5.3), a scalar.

    z: (Q, U) with gradient; gt_masks: (Q, U) {0,1}; rays: (Q, R) (used detached);
    unit_xyz: (U, 3); gt_centers: (Q, 3) fallback centre when a query's union set is empty;
    pred_centers: (Q, 3) used (detached) when center_mode == "pred".
    """
    m = gt_masks.bool()
    with torch.no_grad():
        pos = z >= 0  # (Q, U)
        if center_mode == "union":
            union = (m | pos).to(unit_xyz.dtype)  # (Q, U)
            cnt = union.sum(dim=1, keepdim=True)
            centers = torch.where(cnt > 0, union @ unit_xyz / cnt.clamp(min=1), gt_centers.to(unit_xyz.dtype))
        else:
            centers = pred_centers.detach().to(unit_xyz.dtype)
        r, polar, azim = cartesian_to_spherical(unit_xyz[None], centers[:, None])  # (Q, U)
        sector = find_sector(polar, azim, n_theta, n_phi)  # (Q, U)
        rho = rays.detach().gather(1, sector).to(z.dtype)  # (Q, U)
    r_mig = migrated_radius(r.to(z.dtype), z, train=True)  # (Q, U), gradient only through z
    zero = z.sum() * 0.0
    if variant == "code":
        fp, fn, tp = pos & ~m, ~pos & m, pos & m
        if not bool(tp.any()):
            return zero
        x = torch.cat([rho[fp] - r_mig[fp], -r_mig[tp], rho[fn] - r_mig[fn]])
        y = torch.cat([-torch.ones_like(x[: int(fp.sum())]), torch.ones_like(x[int(fp.sum()) :])])
        return _soft_margin(x, y).mean()
    if variant == "paper":
        inside = (r_mig <= rho).detach()
        fp, fn, tp = inside & ~m, ~inside & m, inside & m
        loss = zero
        if bool((fp | fn).any()):
            x = torch.cat([rho[fp] - r_mig[fp], rho[fn] - r_mig[fn]])
            y = torch.cat([-torch.ones(int(fp.sum()), dtype=x.dtype, device=x.device),
                           torch.ones(int(fn.sum()), dtype=x.dtype, device=x.device)])
            loss = loss + _soft_margin(x, y).mean()
        if bool(tp.any()):
            loss = loss + _soft_margin(-r_mig[tp], torch.ones_like(r_mig[tp])).mean()
        return loss
    raise ValueError(f"unknown margin variant {variant!r}; expected one of {MARGIN_VARIANTS}")


def mask_iou(pred: Tensor, gt: Tensor) -> Tensor:
    """Row-wise IoU (Q,) of boolean masks (Q, U); empty union -> 0."""
    p, g = pred.float(), gt.float()
    inter = (p * g).sum(dim=1)
    union = p.sum(dim=1) + g.sum(dim=1) - inter
    return inter / (union + 1e-6)


class InstanceCriterion:
    """Matching + instance losses over a batch of scenes.

    ``criterion(preds, targets)`` with one ``SceneQueryPredictions`` and one ``SceneTargets``
    per scene returns ``{"<term>_loss": main, "aux_<term>_loss": aux, ..., "loss": total}`` with
    total = sum_t w_t main_t + aux_weight * sum_t w_t aux_t (aux terms only when aux_weight > 0).
    """

    def __init__(self, cfg: LossConfig, n_classes: int, n_theta: int, n_phi: int,
                 voxel_scale: float = 50.0) -> None:
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if cfg.class_weights is not None and len(cfg.class_weights) != n_classes:
            raise ValueError(f"LossConfig.class_weights needs {n_classes} values, got {len(cfg.class_weights)}")
        self.cfg = cfg
        self.n_classes = n_classes
        self.n_theta = n_theta
        self.n_phi = n_phi
        self.voxel_scale = voxel_scale  # voxels per metre (ModelConfig.voxel_scale)

    def _ce_weight(self, device: torch.device) -> Tensor:
        w = torch.ones(self.n_classes + 1, device=device)
        if self.cfg.class_weights is not None:
            w[: self.n_classes] = torch.tensor(self.cfg.class_weights, device=device)
        w[self.n_classes] = self.cfg.eos_coef
        return w

    def _scene_terms(self, pred: SceneQueryPredictions, tgt: SceneTargets, q: Tensor, g: Tensor) -> dict[str, Tensor]:
        k = pred.cls_logits.shape[0]
        cls_target = torch.full((k,), self.n_classes, dtype=torch.long, device=pred.cls_logits.device)
        cls_target[q] = tgt.labels[g].to(cls_target.device)
        terms = {"cls": F.cross_entropy(pred.cls_logits, cls_target, weight=self._ce_weight(pred.cls_logits.device))}
        n = int(q.numel())
        if n == 0:
            zero = (pred.mask_logits.sum() + pred.conf.sum() + pred.boxes.sum() + pred.rays.sum() + pred.centers.sum()) * 0.0
            for t in TERMS[1:]:
                terms[t] = zero
            return terms
        z = pred.mask_logits[q]  # (n, U)
        gt = tgt.masks[g].to(z.dtype)  # (n, U)
        sig = z.sigmoid()
        terms["dice"] = (1 - (2 * (sig * gt).sum(1) + 1) / (sig.sum(1) + gt.sum(1) + 1)).sum() / n
        terms["bce"] = F.binary_cross_entropy_with_logits(z, gt, reduction="none").mean(1).sum() / n
        with torch.no_grad():
            iou_target = mask_iou(z >= 0, gt.bool())  # (n,)
        terms["conf"] = ((pred.conf[q] - iou_target) ** 2).sum() / n
        gt_boxes = tgt.boxes[g].to(pred.boxes.dtype)
        terms["box"] = F.l1_loss(pred.boxes[q], gt_boxes, reduction="sum") / n * (self.voxel_scale / 50.0)
        terms["giou"] = (1 - box_giou(pred.boxes[q], gt_boxes)).sum() / n
        ray_pred = torch.cat([pred.rays[q], pred.centers[q]], dim=1)  # (n, R + 3)
        terms["coarse"] = F.l1_loss(ray_pred, tgt.ray_targets[g].to(ray_pred.dtype))
        n_rays = self.n_theta * self.n_phi
        terms["margin"] = margin_loss(
            z, gt, pred.rays[q], tgt.unit_xyz.to(z.dtype), tgt.ray_targets[g, n_rays:], pred.centers[q],
            self.n_theta, self.n_phi, self.cfg.margin_variant, self.cfg.margin_center,
        )
        return terms

    def _check(self, pred: SceneQueryPredictions, tgt: SceneTargets) -> None:
        k, u = pred.mask_logits.shape
        n_rays = self.n_theta * self.n_phi
        if pred.cls_logits.shape != (k, self.n_classes + 1):
            raise ValueError(f"cls_logits must be ({k}, {self.n_classes + 1}), got {tuple(pred.cls_logits.shape)}")
        if pred.rays.shape != (k, n_rays) or pred.centers.shape != (k, 3) or pred.boxes.shape != (k, 6):
            raise ValueError(
                f"rays/centers/boxes must be ({k}, {n_rays})/({k}, 3)/({k}, 6), got "
                f"{tuple(pred.rays.shape)}/{tuple(pred.centers.shape)}/{tuple(pred.boxes.shape)}"
            )
        if tgt.masks.shape[1] != u or tgt.unit_xyz.shape != (u, 3):
            raise ValueError(f"targets have {tgt.masks.shape[1]} units but mask_logits has {u}")
        if tgt.ray_targets.shape[1] != n_rays + 3:
            raise ValueError(f"ray_targets must have {n_rays + 3} columns, got {tgt.ray_targets.shape[1]}")

    def __call__(self, preds: list[SceneQueryPredictions], targets: list[SceneTargets]) -> dict[str, Tensor]:
        if len(preds) != len(targets) or not preds:
            raise ValueError(f"need one target per prediction (non-empty), got {len(preds)} and {len(targets)}")
        use_aux = self.cfg.aux_weight > 0
        sums: dict[str, Tensor] = {}
        for pred, tgt in zip(preds, targets):
            self._check(pred, tgt)
            coarse = self.cfg.match_coarse != 0
            cost = match_cost(
                pred.cls_logits, pred.conf, pred.boxes, tgt.labels, tgt.boxes, self.cfg.match_weights(),
                torch.cat([pred.rays, pred.centers], 1) if coarse else None, tgt.ray_targets if coarse else None,
            )
            rounds = [("", hungarian_match(cost))]
            if use_aux:
                rounds.append(("aux_", duplicated_match(cost, self.cfg.dup)))
            for prefix, (q, g) in rounds:
                for t, v in self._scene_terms(pred, tgt, q, g).items():
                    key = f"{prefix}{t}_loss"
                    sums[key] = sums[key] + v if key in sums else v
        b = len(preds)
        out = {key: v / b for key, v in sums.items()}
        total = sum(self.cfg.weight(t) * out[f"{t}_loss"] for t in TERMS)
        if use_aux:
            total = total + self.cfg.aux_weight * sum(self.cfg.weight(t) * out[f"aux_{t}_loss"] for t in TERMS)
        out["loss"] = total
        return out


__all__ = ["LossConfig", "InstanceCriterion", "SceneQueryPredictions", "margin_loss", "mask_iou", "TERMS"]
