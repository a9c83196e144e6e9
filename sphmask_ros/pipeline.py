"""The node's processing of one cloud, without any ROS graph: pose -> pre-process -> model.

`Pipeline.process(frame)` is what the node's worker thread runs and what the latency benchmark
times; it never touches DDS. Pre-processing (transform, accumulate, crop, voxelize, cap) is
`sphmask_core.sensor.preprocess.Preprocessor` (one per input topic, since each owns an
accumulation buffer); the model is `sphmask_core.inference.segmenter.Segmenter`.

Output cloud. The model runs on the voxelized, capped points; its instances are broadcast back
to the preprocessor's output cloud (every accumulated point that survived the crop, in the output
frame) through `point_to_model`. That cloud is what ~/labelled_cloud publishes and what
`Instance.point_indices` index. With one cloud, no crop and no fixed frame it is the input
cloud's finite points in their original order.

Colour-free input: clouds without rgb/rgba/r,g,b fields are fed to the model with zero colour
(the Scene contract's "colourless"); the labelled cloud then has no rgb field.
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from sphmask_core.inference.instances import Instances
from sphmask_core.sensor.node_params import NodeParams, preprocess_config
from sphmask_core.sensor.pointcloud2 import DecodedCloud, decode_cloud
from sphmask_core.sensor.poses import PoseSource
from sphmask_core.sensor.preprocess import PreparedInput, Preprocessor, Skipped
from sphmask_ros.tracking import InstanceTracker, TrackerConfig

_NS = 1_000_000_000


class FrameSkipped(Exception):
    """The frame cannot be processed (no pose for its frame); the node warns and skips it."""


@dataclass
class Frame:
    """A decoded input cloud waiting for the worker."""

    cloud: DecodedCloud
    header: Header  # the input header (stamp and frame as received)
    topic: str
    received_ns: int  # node clock when the callback ran
    decode_s: float

    @property
    def stamp_ns(self) -> int:
        return int(self.header.stamp.sec) * _NS + int(self.header.stamp.nanosec)


def decode_frame(msg: Any, topic: str, received_ns: int) -> Frame:
    """Decode and validate a PointCloud2 (raises pointcloud2.CloudError when malformed)."""
    t0 = time.perf_counter()
    cloud = decode_cloud(msg)
    header = Header(stamp=Time(sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec),
                    frame_id=msg.header.frame_id)
    return Frame(cloud, header, topic, received_ns, time.perf_counter() - t0)


@dataclass
class FrameResult:
    """Everything the node publishes for one frame."""

    header: Header  # input stamp, output frame
    stamp_ns: int
    xyz: np.ndarray  # (P, 3) float32, the labelled cloud
    rgb: np.ndarray | None  # (P, 3) float32 in [-1, 1], None for colour-free input
    instances: Instances  # over the P points of xyz
    stages_s: dict[str, float]
    capped: bool
    n_before_cap: int
    n_model_points: int
    # per-point extra fields of the labelled cloud (e.g. ground-truth instance_id / semantic_id
    # of recorded synthetic clouds), aligned with xyz
    point_extras: dict[str, np.ndarray] = field(default_factory=dict)
    empty_reason: str = ""  # why nothing reached the model (empty cloud, cropped away)
    input_header: Header | None = None  # the input cloud's own header (instance image)
    raw_shape: tuple[int, int] = (0, 0)  # (height, width) of the current input cloud
    point_sweep: np.ndarray | None = None  # (P,) int32, 0 = current cloud
    point_raw_index: np.ndarray | None = None  # (P,) int64 into that sweep's raw cloud
    track_ids: np.ndarray | None = None  # (K,) int64 stable ids (sphmask_ros.tracking)
    points_dropped: dict[str, int] = field(default_factory=dict)  # by pre-processing, by reason


# Up to this many (instance, output point) cells each mask is expanded by a dense lookup over the
# output points; past it, by grouping the output points once (an argsort of P, ~40 ms at 300k).
_DENSE_EXPANSION_ELEMENTS = 1 << 25


def _expand_dense(masks: list[np.ndarray], model_of: np.ndarray, n_model: int) -> list[np.ndarray]:
    """Ascending output points of each mask through one (n_model + 1,) membership table per mask.
    model_of (P,): model point of each output point, n_model for none (a slot in no mask)."""
    out = []
    for model_idx in masks:
        member = np.zeros(n_model + 1, dtype=bool)
        member[model_idx] = True
        out.append(np.flatnonzero(member[model_of]))
    return out


def _expand_grouped(masks: list[np.ndarray], model_of: np.ndarray, n_model: int) -> list[np.ndarray]:
    """Ascending output points of each mask from a CSR grouping of output points by model point
    (model_of as in _expand_dense)."""
    order = np.argsort(model_of, kind="stable")  # (P,)
    counts = np.bincount(model_of, minlength=n_model + 1)[:n_model]  # (V,)
    starts = np.concatenate([[0], np.cumsum(counts)])  # (V + 1,)
    out = []
    for model_idx in masks:
        c = counts[model_idx]  # (m,)
        # positions in `order` of every output point of these model points
        offsets = np.repeat(starts[model_idx] - np.cumsum(c) + c, c) + np.arange(int(c.sum()))
        out.append(np.sort(order[offsets]))
    return out


def expand_instances(inst: Instances, point_to_model: np.ndarray, xyz: np.ndarray) -> Instances:
    """Instances over model points -> instances over the output points mapping to them.

    point_to_model: (P,) int64 model point of each output point (-1 = none); xyz: (P, 3) output
    points, used for the boxes. Masks may overlap, so each mask is expanded on its own.
    """
    n_out = point_to_model.shape[0]
    n_model = inst.n_points
    if len(inst) == 0:
        return Instances.empty(n_out, inst.class_names, inst.n_theta, inst.n_phi, inst.timings)
    model_of = np.where(point_to_model >= 0, point_to_model, n_model)  # (P,) n_model = none
    boxes = np.zeros((len(inst), 6), dtype=np.float32)  # (K, 6)
    expand = _expand_dense if len(inst) * n_out <= _DENSE_EXPANSION_ELEMENTS else _expand_grouped
    masks = expand(inst.masks, model_of, n_model)
    for k, out_idx in enumerate(masks):
        if out_idx.size:
            pts = xyz[out_idx]
            boxes[k, :3], boxes[k, 3:] = pts.min(axis=0), pts.max(axis=0)
    point_instance = np.append(inst.point_instance, -1)[model_of]  # (P,) -1 where no model point
    return Instances(
        point_instance=point_instance.astype(np.int64),
        masks=masks,
        class_ids=inst.class_ids,
        class_names=inst.class_names,
        scores=inst.scores,
        class_probs=inst.class_probs,
        iou_scores=inst.iou_scores,
        centers=inst.centers,
        rays=inst.rays,
        n_theta=inst.n_theta,
        n_phi=inst.n_phi,
        boxes=boxes,
        timings=dict(inst.timings),
    )


def tracker_config(params: NodeParams) -> TrackerConfig:
    return TrackerConfig(max_age=params.tracking_max_age,
                         max_distance=params.tracking_max_distance).validate()


def input_grid_warning(input_voxel_size: float, model_voxel_size: float) -> str | None:
    """Why an input thinning grid at or above the model's voxel loses detail, or None."""
    if input_voxel_size <= 0 or input_voxel_size < model_voxel_size:
        return None
    return (f"input_voxel_size {input_voxel_size:g} m is not below the model's voxel size "
            f"{model_voxel_size:g} m: the model re-voxelises on its own grid, so thinning this "
            f"coarse discards detail; use a smaller value (e.g. {model_voxel_size / 2:g}) or 0")


def _release_device_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Pipeline:
    """Pre-processing + model + post-filtering of one frame (see module doc)."""

    def __init__(self, segmenter: Any, params: NodeParams, model_name: str,
                 pose_source: PoseSource | None = None, logger: Any = None) -> None:
        self.segmenter = segmenter
        self.model_name = model_name
        self.logger = logger
        self.poses = pose_source or PoseSource(params)
        self.warmup_s = 0.0
        self._preprocessors: dict[str, Preprocessor] = {}
        self._trackers: dict[str, InstanceTracker] = {}  # one per input topic, like the buffers
        self._lock = threading.Lock()
        self.params = params
        self._apply_model_params(params)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, params: NodeParams, logger: Any = None, pose_source: PoseSource | None = None,
                    warmup: bool = True) -> "Pipeline":
        """Load the checkpoint (empty = shipped model) on `params.device` and warm it up.

        Raises sphmask_core.checkpoint.CheckpointError for an unreadable checkpoint and
        ValueError for a class_names override of the wrong length or an unavailable device.
        """
        from sphmask_core.inference.segmenter import Segmenter
        from sphmask_core.pretrained import DEFAULT_CHECKPOINT_NAME

        import torch

        if params.torch_threads > 0:
            torch.set_num_threads(params.torch_threads)
        path = params.checkpoint or None
        segmenter = Segmenter.from_checkpoint(path, device=params.device)
        override = params.class_name_override
        if override:
            if len(override) != len(segmenter.class_names):
                raise ValueError(
                    f"class_names has {len(override)} names but the model has "
                    f"{len(segmenter.class_names)} classes ({', '.join(segmenter.class_names)})")
            segmenter.class_names = list(override)
        name = Path(path).stem if path else Path(DEFAULT_CHECKPOINT_NAME).stem
        pipeline = cls(segmenter, params, name, pose_source=pose_source, logger=logger)
        if warmup:
            # a cloud of the largest size the node feeds the model (or 20k): allocations and,
            # on the GPU, spconv's algorithm search happen here rather than on the first cloud
            pipeline.warmup_s = segmenter.warmup(n_points=min(5_000, params.max_points))
        return pipeline

    @property
    def device(self) -> str:
        return str(self.segmenter.device)

    @property
    def class_names(self) -> list[str]:
        return list(self.segmenter.class_names)

    def _apply_model_params(self, params: NodeParams) -> None:
        cfg = self.segmenter.cfg
        warning = input_grid_warning(params.input_voxel_size, cfg.voxel_size)
        if warning and self.logger is not None:
            self.logger.warning(warning)
        test = replace(cfg.test, nms_sigma=params.nms_sigma, nms_topk=params.nms_topk,
                       min_points=params.min_points, score_threshold=params.score_threshold)
        self.segmenter.cfg = replace(cfg, test=test)

    def set_params(self, params: NodeParams) -> None:
        """Apply run-time parameter changes; takes effect from the next frame."""
        with self._lock:
            self.params = params
            self.poses.params = params
            self._apply_model_params(params)
            config = preprocess_config(params)
            for pre in self._preprocessors.values():
                pre.update_config(config)
            for tracker in self._trackers.values():
                tracker.config = tracker_config(params)

    def add_odometry(self, msg: Any) -> None:
        self.poses.add_odometry(msg)

    def _tracker(self, topic: str) -> InstanceTracker:
        tracker = self._trackers.get(topic)
        if tracker is None:
            tracker = self._trackers[topic] = InstanceTracker(tracker_config(self.params))
        return tracker

    def _track(self, topic: str, inst: Instances, xyz: np.ndarray) -> np.ndarray:
        """(K,) stable ids of the instances over the output points xyz (P, 3)."""
        with self._lock:
            tracker = self._tracker(topic)
        boxes = inst.boxes.astype(np.float64).reshape(-1, 6)  # (K, 6)
        return tracker.update([xyz[m] for m in inst.masks], 0.5 * (boxes[:, :3] + boxes[:, 3:]),
                              inst.class_ids)

    def _preprocessor(self, topic: str) -> Preprocessor:
        pre = self._preprocessors.get(topic)
        if pre is None:
            pre = Preprocessor(preprocess_config(self.params), transforms=self.poses)
            self._preprocessors[topic] = pre
        return pre

    # ------------------------------------------------------------------ processing
    def _empty(self, frame: Frame, out_frame: str, stages: dict[str, float], reason: str) -> FrameResult:
        header = Header(stamp=frame.header.stamp, frame_id=out_frame)
        seg = self.segmenter
        inst = Instances.empty(0, self.class_names, seg.cfg.heads.n_theta, seg.cfg.heads.n_phi)
        track_ids = self._track(frame.topic, inst, np.zeros((0, 3), np.float32))  # ages tracks
        return FrameResult(header, frame.stamp_ns, np.zeros((0, 3), np.float32), None, inst,
                           stages, False, 0, 0, empty_reason=reason, input_header=frame.header,
                           raw_shape=(frame.cloud.height, frame.cloud.width),
                           point_sweep=np.zeros(0, np.int32), point_raw_index=np.zeros(0, np.int64),
                           track_ids=track_ids)

    def process(self, frame: Frame) -> FrameResult:
        """One frame through pose, pre-processing and the model.

        Raises FrameSkipped when the frame's pose is unavailable; model errors propagate (the
        caller logs them and drops the frame).
        """
        with self._lock:
            params = self.params
            pre = self._preprocessor(frame.topic)
        stages = {"decode": frame.decode_s}
        out_frame = params.fixed_frame or frame.header.frame_id
        self.poses.deadline = time.monotonic() + params.tf_timeout
        prepared = pre.process(frame.cloud, frame.stamp_ns, frame.header.frame_id)
        stages.update({k: v for k, v in prepared.timings.items() if k != "total"})
        if isinstance(prepared, Skipped):
            if prepared.kind == "transform":
                raise FrameSkipped(prepared.reason)
            result = self._empty(frame, out_frame, stages, prepared.reason)  # empty / cropped away
            result.points_dropped = dict(prepared.dropped)
            return result
        assert isinstance(prepared, PreparedInput)

        t0 = time.perf_counter()
        rgb = prepared.rgb if frame.cloud.rgb is not None else None
        model_inst = self.segmenter(prepared.xyz, rgb)
        stages["inference"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        inst = expand_instances(model_inst, prepared.point_to_model, prepared.points_xyz)
        stages["postprocess"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        track_ids = self._track(frame.topic, inst, prepared.points_xyz)
        stages["tracking"] = time.perf_counter() - t0

        header = Header(stamp=frame.header.stamp, frame_id=prepared.frame_id)
        return FrameResult(
            header=header,
            stamp_ns=frame.stamp_ns,
            xyz=prepared.points_xyz,
            rgb=prepared.points_rgb if frame.cloud.rgb is not None else None,
            instances=inst,
            stages_s=stages,
            capped=prepared.capped,
            n_before_cap=prepared.n_model_before_cap,
            n_model_points=int(prepared.xyz.shape[0]),
            point_extras=prepared.point_extras,
            points_dropped=dict(prepared.dropped),
            input_header=frame.header,
            raw_shape=(frame.cloud.height, frame.cloud.width),
            point_sweep=prepared.point_sweep,
            point_raw_index=prepared.point_raw_index,
            track_ids=track_ids,
        )

    def recover_from_error(self, exc: BaseException) -> None:
        """After a failed inference (e.g. CUDA out of memory): free cached device memory."""
        _release_device_memory()

    def release(self) -> None:
        """Drop the model so its (GPU) memory can be returned."""
        self.segmenter = None
        self._preprocessors.clear()
        self._trackers.clear()
        _release_device_memory()
