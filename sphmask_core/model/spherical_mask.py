"""The Spherical Mask network (METHOD 1.1, 3, 5, 6): `SphericalMask(cfg)`.

Data flow of one batch (B scenes, N points, V voxels, U units, K queries per scene):
points -> voxelize (mean features) -> sparse U-Net (V, D) -> point-wise heads -> foreground
filter on units (superpoints, or voxels when there are none) -> two local aggregators over the
object voxels -> query heads -> dynamic convolution of every query over every unit of its scene
(z, K x U) -> training: targets + matching + losses; test: spherical mask assembly.

`forward_train` returns losses; `forward_test` returns one `ScenePrediction` per scene, the raw
material that `sphmask_core.inference.segmenter.postprocess` turns into `Instances`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sphmask_core.config import ModelConfig
from sphmask_core.data.collate import Batch
from sphmask_core.losses.criterion import InstanceCriterion, SceneQueryPredictions
from sphmask_core.losses.pointwise import POINTWISE_TERMS, pointwise_losses
from sphmask_core.losses.targets import SceneTargets, build_scene_targets
from sphmask_core.model.aggregator import LocalAggregator
from sphmask_core.model.backbone import UNet, conv_algo_for, set_conv_algo
from sphmask_core.model.candidates import select_candidates
from sphmask_core.model.migration import assemble_masks, assemble_masks_pruned, dynamic_conv, dynamic_conv_blocked
from sphmask_core.model.pointwise_heads import PointwiseHeads, absolute_boxes, box_sizes
from sphmask_core.model.query_heads import MaskTower, QueryHeads, QueryOutputs
from sphmask_core.ops.sampling import farthest_point_sample_dense, to_padded
from sphmask_core.ops.scatter import batch_ids_from_offsets, scatter_mean
from sphmask_core.ops.voxelize import VoxelMap, voxel_mean, voxelize

STAGES = ("backbone", "full")
POINTWISE_SCALE_FULL = 0.25  # METHOD 5.5: point-wise losses x0.25 when the whole model trains
# METHOD 3.3: with this few object voxels in the whole batch the query stage is skipped in training
MIN_OBJECT_VOXELS_TRAIN = 100
# a scene needs at least 2 object voxels for the query stage (BatchNorm needs > 1 value)
MIN_OBJECT_VOXELS_SCENE = 2


def floor_relative_xyz(xyz: Tensor, offsets: Tensor) -> Tensor:
    """(N, 3) positions minus each scene's (mean x, mean y, lowest z).

    Makes the xyz input features independent of where the frame's origin is: a room in its own
    frame and the same room seen from a gravity-aligned sensor give the same features.
    """
    n_scenes = offsets.numel() - 1
    scene = batch_ids_from_offsets(offsets)  # (N,)
    ref = scatter_mean(xyz, scene, n_scenes)  # (B, 3)
    low = torch.full((n_scenes,), float("inf"), dtype=xyz.dtype, device=xyz.device)
    low = low.scatter_reduce(0, scene, xyz[:, 2], reduce="amin")  # (B,)
    ref = torch.cat([ref[:, :2], low[:, None]], 1)  # (B, 3)
    return xyz - ref[scene]


@dataclass
class ScenePrediction:
    """Raw test-time outputs of one scene (tensors on the model's device).

    point_to_voxel: (N_s,) voxel (local to the scene) of every point
    voxel_to_unit:  (V_s,) unit (local) of every voxel, -1 = in no unit (never in a mask)
    unit_xyz:       (U_s, 3) mean position of each unit
    unit_masks:     (K_m, U_s) bool, spherical mask assembly (METHOD 4.4) of the queries in mask_queries
    mask_queries:   (K_m,) ascending query indices that have a mask row: every query on the
                    reference path, only those of the top-k candidates otherwise (the others
                    cannot reach NMS)
    class_probs:    (K, C + 1) softmax, last column = no object
    conf:           (K,) raw predicted IoU
    centers:        (K, 3) spherical centres (query xyz + centre offset)
    rays:           (K, R) ray lengths, polar-major
    boxes:          (K, 6) predicted AABB
    timings:        seconds per stage for the whole batch
    """

    point_to_voxel: Tensor
    voxel_to_unit: Tensor
    unit_xyz: Tensor
    unit_masks: Tensor
    mask_queries: Tensor
    class_probs: Tensor
    conf: Tensor
    centers: Tensor
    rays: Tensor
    boxes: Tensor
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_queries(self) -> int:
        return int(self.class_probs.shape[0])


@dataclass
class _Voxels:
    vmap: VoxelMap
    xyz: Tensor  # (V, 3) mean point position (metres)
    feats: Tensor  # (V, C_in)
    semantic: Tensor  # (V,) label of the voxel's first point
    instance: Tensor  # (V,)
    batch: Tensor  # (V,) scene of each voxel


@dataclass
class _Units:
    unit_of_voxel: Tensor  # (V,) global unit id, -1 = voxel not in any unit (train subsample)
    n_units: int
    unit_offsets: Tensor  # (B+1,) units of scene b are rows unit_offsets[b]:unit_offsets[b+1]
    xyz: Tensor  # (U, 3)
    feats: Tensor  # (U, D)
    boxes: Tensor  # (U, 6)
    object_voxel: Tensor  # (V,) bool, voxels the queries are sampled from


@dataclass
class _Queries:
    scenes: list[int]  # scenes that have queries, in order
    counts: list[int]  # queries per listed scene
    xyz: Tensor  # (M, 3) query positions
    out: QueryOutputs  # flattened over the listed scenes


X4_QUERY_PIECES = 2  # x4_split: queries come from the object voxels of the first two subsets


def x4_split_order(offsets: Tensor) -> tuple[Tensor, Tensor]:
    """Point order and offsets of the four interleaved subsets of every scene.

    offsets: (B+1,) scene offsets. Subset k of scene b holds its points k, k+4, k+8, ... (local
    indices); the returned order (N,) lists scene 0's subsets 0..3, then scene 1's, and so on,
    and piece_offsets (4B+1,) delimits them.
    """
    counts = offsets[1:] - offsets[:-1]  # (B,)
    local = torch.arange(int(offsets[-1]), device=offsets.device) - torch.repeat_interleave(offsets[:-1], counts)
    scene = torch.repeat_interleave(torch.arange(counts.numel(), device=offsets.device), counts)
    piece = scene * 4 + local % 4  # (N,) global subset id
    order = torch.argsort(piece, stable=True)  # points are in local order within each subset
    sizes = torch.bincount(piece, minlength=4 * counts.numel())  # (4B,)
    piece_offsets = torch.zeros(sizes.numel() + 1, dtype=torch.int64, device=offsets.device)
    piece_offsets[1:] = torch.cumsum(sizes, 0)
    return order, piece_offsets


def _offsets_from_batch(batch_ids: Tensor, b: int) -> Tensor:
    off = torch.zeros(b + 1, dtype=torch.int64, device=batch_ids.device)
    off[1:] = torch.cumsum(torch.bincount(batch_ids, minlength=b), 0)
    return off


class SphericalMask(nn.Module):
    """Spherical Mask instance segmentation network; see the module docstring."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"SphericalMask needs a ModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        b, a, h = cfg.backbone, cfg.aggregator, cfg.heads
        d = b.out_channels
        self.backbone = UNet(b, conv_algo_for("cpu"))
        self.pointwise_heads = PointwiseHeads(d, cfg.labels.n_semantic, b.bn_eps, b.bn_momentum)
        self.aggregator1 = LocalAggregator(d, list(a.mlp_pa1), [a.mlp_pa1[-1]], a.radius_pa1, a.k_pa1, a.k_post_pa1)
        self.aggregator2 = LocalAggregator(
            a.mlp_pa1[-1], list(a.mlp_pa2), [a.mlp_pa2[-1]], a.radius_pa2, a.k_pa2, a.k_post_pa2
        )
        self.query_heads = QueryHeads(h, a.query_dim, cfg.n_classes)
        self.mask_tower = MaskTower(d, h.mask_dim, h.bn_eps)
        self.criterion = InstanceCriterion(cfg.loss, cfg.n_classes, h.n_theta, h.n_phi,
                                           voxel_scale=cfg.voxel_scale)
        sem_w = cfg.loss.semantic_weights
        if sem_w is not None and len(sem_w) != cfg.labels.n_semantic:
            raise ValueError(f"loss.semantic_weights needs {cfg.labels.n_semantic} values (one per semantic "
                             f"class, stuff included), got {len(sem_w)}")
        # a buffer follows the model's device and is no parameter (checkpoints stay compatible)
        self.register_buffer("_semantic_weights", None if sem_w is None else torch.tensor(sem_w), persistent=False)
        self._algo_device_type = "cpu"

    # ------------------------------------------------------------------------------ stages

    def _ensure_conv_algo(self, device: torch.device) -> None:
        # spconv layers carry their algorithm; the CPU build only runs Native
        if device.type != self._algo_device_type:
            set_conv_algo(self.backbone, conv_algo_for(device))
            self._algo_device_type = device.type

    def _voxelize(self, batch: Batch) -> _Voxels:
        vmap = voxelize(batch.grid_xyz, batch.offsets, self.cfg.voxel_size)
        v = vmap.n_voxels
        xyz_feat = floor_relative_xyz(batch.xyz, batch.offsets) if self.cfg.xyz_feature == "floor" else batch.xyz
        point_feats = torch.cat([batch.rgb, xyz_feat], 1) if self.cfg.in_channels == 6 else xyz_feat  # (N, C_in)
        return _Voxels(
            vmap=vmap,
            xyz=voxel_mean(batch.xyz, vmap.point_to_voxel, v),
            feats=voxel_mean(point_feats, vmap.point_to_voxel, v),
            semantic=batch.semantic[vmap.first_point],
            instance=batch.instance[vmap.first_point],
            batch=vmap.coords[:, 0].long(),
        )

    def _backbone(self, vox: _Voxels) -> tuple[Tensor, dict[str, Tensor]]:
        vm = vox.vmap
        feats = self.backbone(vox.feats, vm.coords, vm.batch_size, vm.spatial_shape)  # (V, D)
        return feats, self.pointwise_heads(feats)

    def _backbone_x4(self, batch: Batch) -> tuple[_Voxels, Tensor, dict[str, Tensor], Tensor]:
        """U-Net over the four interleaved subsets of every scene (METHOD 6.1, test.x4_split).

        The subsets go through voxelization and the U-Net as separate batch entries; the result
        is one scene again whose voxels are those of its four subsets (a cell occupied by several
        subsets has several voxels), each point mapped to its own subset's voxel. Returns the
        merged voxels, their features and point-wise outputs, and the subset of each voxel (V,).
        """
        order, piece_offsets = x4_split_order(batch.offsets)  # (N,), (4B+1,)
        pieced = Batch(
            xyz=batch.xyz[order], grid_xyz=batch.grid_xyz[order], rgb=batch.rgb[order],
            offsets=piece_offsets, semantic=batch.semantic[order], instance=batch.instance[order],
            superpoint=None, scene_names=[f"{n}#{k}" for n in batch.scene_names for k in range(4)],
        )
        vox = self._voxelize(pieced)
        feats, pw = self._backbone(vox)
        vm = vox.vmap
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        scene = vox.batch // 4  # (V,) pieces 4b..4b+3 are scene b, so voxels stay scene-grouped
        merged = VoxelMap(
            coords=torch.cat([scene[:, None].to(vm.coords.dtype), vm.coords[:, 1:]], 1),
            point_to_voxel=vm.point_to_voxel[inverse],
            voxel_offsets=vm.voxel_offsets[::4].contiguous(),
            first_point=order[vm.first_point],
            counts=vm.counts,
            spatial_shape=vm.spatial_shape,
        )
        out = _Voxels(vmap=merged, xyz=vox.xyz, feats=vox.feats, semantic=vox.semantic,
                      instance=vox.instance, batch=scene)
        return out, feats, pw, vox.batch % 4

    def _object_filter(self, sem_logits: Tensor, unit: Tensor, n_units: int) -> Tensor:
        """(n_units,) bool: unit-averaged semantic softmax has an instance class >= threshold."""
        with torch.no_grad():
            prob = scatter_mean(sem_logits.detach().float().softmax(dim=1), unit, n_units)  # (U, S)
            inst_prob = prob[:, self.cfg.labels.label_shift :]
            return (inst_prob >= self.cfg.test.filter_bg_thresh).any(dim=1)

    def _units(self, batch: Batch, vox: _Voxels, feats: Tensor, pw: dict[str, Tensor], train: bool) -> _Units:
        b = batch.batch_size
        v = vox.xyz.shape[0]
        voxel_boxes = absolute_boxes(vox.xyz, pw["corner_offset"])  # (V, 6)
        if self.cfg.use_superpoints and batch.superpoint is not None:
            sp = batch.superpoint[vox.vmap.first_point]  # (V,) superpoint of the voxel's first point
            # superpoints without a first point of any voxel disappear; ids stay scene-ordered
            uniq, unit = torch.unique(sp, sorted=True, return_inverse=True)
            n_units = int(uniq.numel())
            object_voxel = self._object_filter(pw["semantic"], unit, n_units)[unit]  # (V,)
        else:
            object_voxel = self._object_filter(pw["semantic"], torch.arange(v, device=vox.xyz.device), v)
            # the voxels z is supervised on in training are the ones that may join a mask at test
            candidates = object_voxel if self.cfg.voxel_units == "object" else torch.ones_like(object_voxel)
            if train:
                unit = self._subsample_voxels(candidates, vox.batch, b)
            else:
                unit = torch.full((v,), -1, dtype=torch.long, device=vox.xyz.device)
                unit[candidates] = torch.arange(int(candidates.sum()), device=vox.xyz.device)
            n_units = int(unit.max()) + 1 if unit.numel() and int(unit.max()) >= 0 else 0
        in_unit = unit >= 0
        idx = unit[in_unit]
        unit_batch = torch.zeros(n_units, dtype=torch.long, device=vox.xyz.device)
        unit_batch[idx] = vox.batch[in_unit]
        return _Units(
            unit_of_voxel=unit,
            n_units=n_units,
            unit_offsets=_offsets_from_batch(unit_batch, b),
            xyz=scatter_mean(vox.xyz[in_unit], idx, n_units),
            feats=scatter_mean(feats[in_unit], idx, n_units),
            boxes=scatter_mean(voxel_boxes[in_unit], idx, n_units),
            object_voxel=object_voxel,
        )

    def _subsample_voxels(self, candidates: Tensor, voxel_batch: Tensor, b: int) -> Tensor:
        """Unit id per voxel (-1 = none): up to max_units_train random candidate voxels per scene."""
        dev = candidates.device
        cap = self.cfg.max_units_train
        obj = torch.nonzero(candidates, as_tuple=True)[0]  # (O,) ascending, grouped by scene
        ob = voxel_batch[obj]
        # a random rank within each scene: sort by (scene, random key)
        key = ob.double() * 2.0 + torch.rand(obj.numel(), device=dev, dtype=torch.float64)
        perm = torch.argsort(key)
        off = _offsets_from_batch(ob, b)
        rank = torch.empty_like(perm)
        rank[perm] = torch.arange(perm.numel(), device=dev) - off[ob[perm]]
        keep = obj[rank < cap]  # ascending voxel order, so units stay grouped by scene
        unit = torch.full_like(voxel_batch, -1)
        unit[keep] = torch.arange(keep.numel(), device=dev)
        return unit

    def _queries(
        self, vox: _Voxels, feats: Tensor, pw: dict[str, Tensor], units: _Units, train: bool, fps: str = "auto"
    ) -> _Queries | None:
        """Aggregators + query heads for scenes with enough object voxels; None if there are none.
        fps: the farthest point sampling method (same rows with every method)."""
        a = self.cfg.aggregator
        b = vox.vmap.batch_size
        obj = torch.nonzero(units.object_voxel, as_tuple=True)[0]  # (O,)
        per_scene = torch.bincount(vox.batch[obj], minlength=b)  # (B,)
        scenes = [i for i, n in enumerate(per_scene.tolist()) if n >= MIN_OBJECT_VOXELS_SCENE]
        if not scenes:
            return None
        scene_t = torch.tensor(scenes, device=obj.device)
        obj = obj[torch.isin(vox.batch[obj], scene_t)]
        # renumber active scenes 0..B'-1 for the padded layout
        remap = torch.full((b,), -1, dtype=torch.long, device=obj.device)
        remap[scene_t] = torch.arange(len(scenes), device=obj.device)
        obj_off = _offsets_from_batch(remap[vox.batch[obj]], len(scenes))
        boxes = absolute_boxes(vox.xyz[obj], pw["corner_offset"][obj])  # (O, 6)
        xyz_p, lengths = to_padded(vox.xyz[obj], obj_off)  # (B', N_max, 3)
        feat_p, _ = to_padded(feats[obj], obj_off)
        box_p, _ = to_padded(boxes, obj_off)

        s1 = farthest_point_sample_dense(xyz_p.detach(), lengths, a.n_sample_pa1, fps)  # (B', S1)
        out1 = self.aggregator1(xyz_p, feat_p, box_p, lengths, s1)
        # past a scene's object-voxel count FPS repeats itself: keep only distinct samples
        len2 = lengths.clamp(max=a.n_sample_pa1)
        n_q = a.n_queries
        if train:
            # a prefix of an FPS sequence is itself FPS (METHOD 3.4)
            s2 = torch.arange(n_q, device=obj.device)[None].expand(len(scenes), -1) % len2[:, None]
        else:
            s2 = farthest_point_sample_dense(out1.xyz.detach(), len2, n_q, fps)  # (B', n_q)
        out2 = self.aggregator2(out1.xyz, out1.features, out1.boxes, len2, s2.contiguous())
        valid = torch.arange(n_q, device=obj.device)[None] < len2[:, None].clamp(max=n_q)  # (B', n_q)
        q_feats = out2.features[valid]  # (M, C)
        q_xyz = out2.xyz[valid]  # (M, 3)
        return _Queries(
            scenes=scenes,
            counts=valid.sum(1).tolist(),
            xyz=q_xyz,
            out=self.query_heads(q_feats, q_xyz),
        )

    def _mask_logits(
        self, q: _Queries, units: _Units, mask_feats: Tensor, rows: list[Tensor] | None = None, reference: bool = False
    ) -> list[Tensor]:
        """z (K_b, U_b) for every scene with queries (dynamic convolution, METHOD 3.6).

        rows: per scene, the (ascending) local queries to compute (None = all); z then has one
        row per listed query. reference: the original chunked implementation instead of the
        unit-blocked one (same values; kept to test and benchmark against).
        """
        h = self.cfg.heads
        conv = dynamic_conv if reference else dynamic_conv_blocked
        zs = []
        start = 0
        q_sizes = box_sizes(q.out.boxes)  # (M, 3)
        u_sizes = box_sizes(units.boxes)  # (U, 3)
        for i, (scene, k) in enumerate(zip(q.scenes, q.counts)):
            u0, u1 = int(units.unit_offsets[scene]), int(units.unit_offsets[scene + 1])
            sel = torch.arange(start, start + k, device=q.xyz.device) if rows is None else rows[i] + start
            zs.append(
                conv(
                    q.out.kernels[sel], q.xyz[sel], q_sizes[sel], units.xyz[u0:u1], u_sizes[u0:u1],
                    mask_feats[u0:u1], hidden=h.mask_dim, num_layers=h.num_dyco_layer,
                )
            )
            start += k
        return zs

    # ------------------------------------------------------------------------------ training

    def forward_train(self, batch: Batch, stage: str = "full", reference: bool = False) -> dict[str, Tensor]:
        """Losses of one batch: "loss" = total, other keys = each term (for logging).

        stage "backbone": U-Net + point-wise heads, point-wise losses unscaled.
        stage "full": point-wise losses x0.25 + instance criterion (METHOD 5.5).
        reference=True: the batched torch FPS instead of the CPU one (same samples, same losses).
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self._ensure_conv_algo(batch.device)
        vox = self._voxelize(batch)
        feats, pw = self._backbone(vox)
        pw_losses = pointwise_losses(
            pw["semantic"], pw["centroid_offset"], pw["corner_offset"], pw["box_conf"],
            vox.xyz, vox.semantic, vox.instance, voxel_scale=self.cfg.voxel_scale,
            class_weights=self._semantic_weights,
        )
        out = {f"pw_{t}_loss": pw_losses[t] for t in POINTWISE_TERMS}
        out["pointwise_loss"] = pw_losses["loss"]
        if stage == "backbone":
            out["loss"] = pw_losses["loss"]
            return out

        inst = self._instance_losses(batch, vox, feats, pw, fps="torch" if reference else "auto")
        out.update(inst)
        out["instance_loss"] = inst["loss"]
        out["loss"] = POINTWISE_SCALE_FULL * pw_losses["loss"] + inst["loss"]
        return out

    def _query_stage_zero(self) -> Tensor:
        """0 connected to every query-stage parameter, so an empty batch still has a grad_fn."""
        params = [p for m in (self.aggregator1, self.aggregator2, self.query_heads, self.mask_tower) for p in m.parameters()]
        return sum(p.sum() for p in params) * 0.0

    def _instance_losses(
        self, batch: Batch, vox: _Voxels, feats: Tensor, pw: dict[str, Tensor], fps: str = "auto"
    ) -> dict[str, Tensor]:
        units = self._units(batch, vox, feats, pw, train=True)
        n_obj = int(units.object_voxel.sum())
        q = None
        if n_obj > MIN_OBJECT_VOXELS_TRAIN and units.n_units >= 2:
            q = self._queries(vox, feats, pw, units, train=True, fps=fps)
        if q is None:
            zero = self._query_stage_zero()
            return {"loss": zero}
        mask_feats = self.mask_tower(units.feats)  # (U, mask_dim)
        # training keeps the original kernel: the blocked one sums gradients in another order, and
        # such rounding changes alone move a short training run's trajectory (tests/core/test_overfit.py)
        zs = self._mask_logits(q, units, mask_feats, reference=True)
        preds, targets = [], []
        start = 0
        h = self.cfg.heads
        for scene, k, z in zip(q.scenes, q.counts, zs):
            sl = slice(start, start + k)
            start += k
            preds.append(
                SceneQueryPredictions(
                    cls_logits=q.out.class_logits[sl], conf=q.out.conf[sl], boxes=q.out.boxes[sl],
                    rays=q.out.rays[sl], centers=q.out.centers[sl], mask_logits=z,
                )
            )
            targets.append(self._scene_targets(vox, units, scene, h.n_theta, h.n_phi))
        losses = self.criterion(preds, targets)
        # scenes without queries contribute nothing; keep the per-scene mean over the whole batch
        scale = len(q.scenes) / batch.batch_size
        return {k: v * scale for k, v in losses.items()}

    def _scene_targets(self, vox: _Voxels, units: _Units, scene: int, n_theta: int, n_phi: int) -> SceneTargets:
        v0, v1 = int(vox.vmap.voxel_offsets[scene]), int(vox.vmap.voxel_offsets[scene + 1])
        u0, u1 = int(units.unit_offsets[scene]), int(units.unit_offsets[scene + 1])
        n_u = u1 - u0
        unit = units.unit_of_voxel[v0:v1] - u0  # (V_s,)
        # voxels outside every unit (training subsample) go to one extra unit, dropped below;
        # rays and boxes are still computed on all the scene's voxels (METHOD 4.3)
        unit = torch.where(unit >= 0, unit, torch.full_like(unit, n_u))
        tgt = build_scene_targets(
            vox.xyz[v0:v1].detach(), vox.instance[v0:v1], vox.semantic[v0:v1], unit, n_u + 1,
            self.cfg.labels.label_shift, n_theta, n_phi,
        )
        return SceneTargets(
            unit_xyz=units.xyz[u0:u1].detach(), masks=tgt.masks[:, :n_u], labels=tgt.labels,
            boxes=tgt.boxes, ray_targets=tgt.ray_targets,
        )

    # ------------------------------------------------------------------------------ inference

    def forward(self, batch: Batch, stage: str = "full") -> dict[str, Tensor] | list[ScenePrediction]:
        """forward_train in training mode, forward_test in eval mode."""
        return self.forward_train(batch, stage) if self.training else self.forward_test(batch)

    def forward_test(self, batch: Batch, reference: bool = False) -> list[ScenePrediction]:
        """Raw per-scene predictions (METHOD 6.1-6.3); masks by spherical assembly.

        Masks are computed only for queries among the top-k (query, class) candidates of their
        scene, by the unit-blocked dynamic convolution and the pruned assembly. reference=True
        runs the original path (every query, reference kernels, batched torch FPS): same masks
        for the candidates.
        """
        dev = batch.device
        self._ensure_conv_algo(dev)
        timer = _StageTimer(dev)
        if self.cfg.test.x4_split:
            vox, feats, pw, piece = self._backbone_x4(batch)
        else:
            vox = self._voxelize(batch)
            timer.lap("voxelize")
            feats, pw = self._backbone(vox)
        timer.lap("backbone")
        units = self._units(batch, vox, feats, pw, train=False)
        if self.cfg.test.x4_split:
            units.object_voxel &= piece < X4_QUERY_PIECES
        q = self._queries(vox, feats, pw, units, train=False, fps="torch" if reference else "auto")
        timer.lap("aggregators")
        b = batch.batch_size
        h = self.cfg.heads
        n_cls = self.cfg.n_classes
        starts: dict[int, tuple[int, int]] = {}
        rows: dict[int, Tensor] = {}
        z_of: dict[int, Tensor] = {}
        if q is not None:
            s = 0
            for scene, k in zip(q.scenes, q.counts):
                starts[scene] = (s, k)
                probs = q.out.class_logits[s : s + k].float().softmax(dim=1)
                if reference:
                    rows[scene] = torch.arange(k, device=dev)
                else:
                    cand = select_candidates(probs, q.out.conf[s : s + k], n_cls, self.cfg.test.topk_candidates)
                    rows[scene] = (
                        torch.unique(cand.queries) if cand is not None else torch.zeros(0, dtype=torch.long, device=dev)
                    )
                s += k
            mask_feats = self.mask_tower(units.feats)
            timer.lap("heads")
            zs = self._mask_logits(q, units, mask_feats, [rows[sc] for sc in q.scenes], reference=reference)
            z_of = dict(zip(q.scenes, zs))
        else:
            timer.lap("heads")
        assemble = assemble_masks if reference else assemble_masks_pruned
        preds: list[ScenePrediction] = []
        for scene in range(b):
            p0, p1 = int(batch.offsets[scene]), int(batch.offsets[scene + 1])
            v0, v1 = int(vox.vmap.voxel_offsets[scene]), int(vox.vmap.voxel_offsets[scene + 1])
            u0, u1 = int(units.unit_offsets[scene]), int(units.unit_offsets[scene + 1])
            p2v = vox.vmap.point_to_voxel[p0:p1] - v0
            v2u = units.unit_of_voxel[v0:v1] - u0
            unit_xyz = units.xyz[u0:u1]
            if scene in starts:
                s, k = starts[scene]
                o = q.out
                sl = slice(s, s + k)
                sel = rows[scene] + s
                masks = assemble(
                    o.centers[sel], o.rays[sel], z_of[scene], unit_xyz, h.n_theta, h.n_phi,
                    clamp_center=self.cfg.test.clamp_center,
                )
                preds.append(
                    ScenePrediction(
                        point_to_voxel=p2v, voxel_to_unit=v2u, unit_xyz=unit_xyz, unit_masks=masks,
                        mask_queries=rows[scene], class_probs=o.class_logits[sl].float().softmax(dim=1),
                        conf=o.conf[sl], centers=o.centers[sl], rays=o.rays[sl], boxes=o.boxes[sl],
                    )
                )
            else:
                preds.append(_empty_prediction(p2v, v2u, unit_xyz, n_cls, h.n_theta * h.n_phi))
        timer.lap("migration_assembly")
        for p in preds:
            p.timings = dict(timer.times)
        return preds


def _empty_prediction(p2v: Tensor, v2u: Tensor, unit_xyz: Tensor, n_cls: int, n_rays: int) -> ScenePrediction:
    z = unit_xyz.new_zeros
    return ScenePrediction(
        point_to_voxel=p2v, voxel_to_unit=v2u, unit_xyz=unit_xyz,
        unit_masks=torch.zeros(0, unit_xyz.shape[0], dtype=torch.bool, device=unit_xyz.device),
        mask_queries=torch.zeros(0, dtype=torch.long, device=unit_xyz.device),
        class_probs=z(0, n_cls + 1), conf=z(0), centers=z(0, 3), rays=z(0, n_rays), boxes=z(0, 6),
    )


class _StageTimer:
    """Wall-clock seconds per stage; synchronises CUDA so asynchronous kernels are counted."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: dict[str, float] = {}
        self._sync()
        self._last = time.perf_counter()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def lap(self, name: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self._last
        self._last = now


__all__ = ["STAGES", "ScenePrediction", "SphericalMask"]
