"""`eval`: run the node's processing over a bag, offline, and score it against ground truth.

The frames go through the same `Pipeline` the live node runs (decode, pose, accumulate, crop,
voxelize, cap, model, score threshold), built from the node parameters of a YAML file's
`/**: ros__parameters` section, so offline numbers are the live node's numbers. Poses come from
the bag: odometry on the parameters' `odometry_topic` (pose_source odometry) or `/tf` +
`/tf_static` (pose_source tf), fed by `sphmask_core.sensor.poses` (training on bags uses the same
feed); a cloud waits until a pose at or after its stamp has been read
(or the bag's time has passed its stamp by `tf_timeout`), as the live node waits for odometry.

Ground truth: when the clouds carry `instance_id` / `semantic_id` fields (`record-synthetic`
writes them), each processed window is one benchmark scene: GT ids are built per output point
(accumulated windows included) and the predictions are the published instances, scored with the
benchmark-exact ScanNet evaluator per frame and over all frames. Ground-truth classes are matched
to the model's classes by name (names from `--classes FILE`, else the bag's custom_data, else
the synthetic labels; the classes file is the one training's `dataset.classes` takes).

Outputs under OUT_DIR: `output_bag/` (InstanceArray, MarkerArray and labelled cloud topics, each
message stamped with its input cloud's stamp and written at its input's log time), `report.json`
(metrics, per-frame latency percentiles, skipped frames and why), `renders/frame_NNNNN.png` (top
and perspective view of the published instances, ground truth beside them) and `report.html`
(metrics table, precision/recall curves at IoU 0.5, latency per stage, instances over time, the
renders: the page a person opens).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sphmask_core.data.classes import BAG_NAMES_KEY, BAG_SHIFT_KEY
from sphmask_core.data.scene import SYNTHETIC_LABELS
from sphmask_core.evaluation.scannet_eval import (
    GT_LABEL_DIVISOR,
    ScanNetEvaluator,
    pred_instances_from_masks,
)
from sphmask_core.sensor.bag_reader import BagMessage, BagReader
from sphmask_core.sensor.node_params import NodeParams, load_node_params
from sphmask_core.sensor.pointcloud2 import CloudError
from sphmask_core.sensor.poses import BagPoseFeed, posed_clouds
from sphmask_ros.bag.messages import to_rclpy
from sphmask_ros.bag.writer import BagWriter, make_output_dir, make_qos
from sphmask_ros.pipeline import FrameSkipped, Pipeline, decode_frame

__all__ = [
    "EvalConfig",
    "EvalReport",
    "GroundTruthLabels",
    "gt_ids_for_model",
    "percentiles",
    "evaluate_bag",
    "OUTPUT_TOPICS",
]

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
OUTPUT_TOPICS = {
    "instances": ("/sphmask/instances", "sphmask/msg/InstanceArray"),
    "markers": ("/sphmask/markers", "visualization_msgs/msg/MarkerArray"),
    "labelled_cloud": ("/sphmask/labelled_cloud", "sensor_msgs/msg/PointCloud2"),
}


# ------------------------------------------------------------------------------ ground truth


@dataclass(frozen=True)
class GroundTruthLabels:
    """Names of the bag's semantic ids and the stuff/instance split."""

    semantic_names: tuple[str, ...]
    label_shift: int

    @staticmethod
    def from_custom_data(custom: dict[str, str]) -> "GroundTruthLabels":
        names = custom.get(BAG_NAMES_KEY)
        shift = custom.get(BAG_SHIFT_KEY)
        if names is None or shift is None:
            return GroundTruthLabels(SYNTHETIC_LABELS.semantic_names, SYNTHETIC_LABELS.label_shift)
        return GroundTruthLabels(tuple(json.loads(names)), int(shift))


def gt_ids_for_model(semantic: np.ndarray, instance: np.ndarray, labels: GroundTruthLabels,
                     class_names: Sequence[str]) -> np.ndarray:
    """(P,) benchmark GT ids `(model class + 1) * 1000 + instance + 1`; 0 = void.

    A point is void when it has no instance, its semantic id is "stuff" (below label_shift) or
    unknown, or its class is not one of the model's classes (matched by name).
    """
    semantic = np.asarray(semantic, dtype=np.int64)
    instance = np.asarray(instance, dtype=np.int64)
    if instance.size and instance.max() >= GT_LABEL_DIVISOR - 1:
        raise ValueError(f"instance id {int(instance.max())} too large for the benchmark encoding")
    lookup = np.zeros(len(labels.semantic_names), dtype=np.int64)  # semantic id -> label id
    for sem, name in enumerate(labels.semantic_names):
        if sem >= labels.label_shift and name in class_names:
            lookup[sem] = list(class_names).index(name) + 1
    known = (semantic >= 0) & (semantic < lookup.shape[0])
    label = np.where(known, lookup[np.clip(semantic, 0, max(lookup.shape[0] - 1, 0))], 0)
    ids = label * GT_LABEL_DIVISOR + instance + 1
    ids[(instance < 0) | (label == 0)] = 0
    return ids


# ------------------------------------------------------------------------------ pipeline


# ------------------------------------------------------------------------------ driver


@dataclass
class EvalConfig:
    bag: Path
    topic: str = "/points"
    checkpoint: str | None = None  # None = params' checkpoint, else the shipped model
    params_file: Path | None = None
    out: Path | None = None  # default: <bag>_eval next to the bag
    overwrite: bool = False
    max_frames: int = 0  # 0 = all
    min_region_size: int = 100  # benchmark default; smaller for thin test clouds
    renders: int = 3
    progress: bool = True
    warmup: bool = True  # one untimed inference first, as the node does before subscribing
    classes: Path | None = None  # classes file naming the bag's semantic ids (else custom_data)

    def output_dir(self) -> Path:
        return self.out if self.out is not None else self.bag.parent / f"{self.bag.name}_eval"


@dataclass
class EvalReport:
    data: dict  # what report.json holds
    out_dir: Path

    @property
    def metrics(self) -> dict | None:
        return self.data["metrics"]


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50 / p95 / max / mean (None when empty)."""
    if len(values) == 0:
        return {"p50": None, "p95": None, "max": None, "mean": None}
    arr = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
            "max": float(arr.max()), "mean": float(arr.mean())}


def _clean(value: Any) -> Any:
    """NaN -> None recursively, so report.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _render(path: Path, xyz: np.ndarray, inst: Any, gt_ids: np.ndarray | None, header: Any,
            stamp_ns: int, score_threshold: float, title: str) -> Path:
    from sphmask_core.render import render_instances

    render_instances(path, xyz, inst, gt_ids=gt_ids, score_threshold=score_threshold,
                     frame_id=str(getattr(header, "frame_id", "")), stamp_ns=stamp_ns, title=title)
    return path


def _write_html(out_dir: Path, data: dict, overall: ScanNetEvaluator) -> Path:
    from sphmask_core.report import ReportData, write_report

    rows = data["per_frame"]
    stages: dict[str, list[float]] = {}
    for row in rows:
        for stage, ms in row["stages_ms"].items():
            stages.setdefault(stage, []).append(ms)
    stages["total"] = [row["latency_ms"] for row in rows]
    t0 = rows[0]["stamp_ns"] if rows else 0
    frames = data["frames"]
    return write_report(out_dir, ReportData(
        title=f"sphmask-bag eval: {Path(data['bag']).name} {data['topic']}",
        metrics=data["metrics"],
        pr_curves=overall.pr_curves(0.5) if data["metrics"] else {},
        stages_ms=stages,
        instances=[row["instances"] for row in rows],
        times=[(row["stamp_ns"] - t0) * 1e-9 for row in rows],
        time_label="seconds since the first frame (stamps)",
        renders=data["renders"],
        facts=[("bag", data["bag"]), ("model", data["model"]), ("device", data["device"]),
               ("frames", f"{frames['processed']} processed, {frames['skipped']} skipped"),
               ("score threshold", str(data["params"].get("score_threshold"))),
               ("output bag", data["output_bag"])]))


def _load_segmenter(cfg: EvalConfig, params: NodeParams) -> tuple[Any, str]:
    from sphmask_core.inference.segmenter import Segmenter
    from sphmask_core.pretrained import DEFAULT_CHECKPOINT_NAME

    path = cfg.checkpoint or params.checkpoint or None
    seg = Segmenter.from_checkpoint(path, device=params.device)
    override = params.class_name_override
    if override:
        if len(override) != len(seg.class_names):
            raise ValueError(f"class_names has {len(override)} names but the model has "
                             f"{len(seg.class_names)} classes")
        seg.class_names = list(override)
    return seg, Path(path).stem if path else Path(DEFAULT_CHECKPOINT_NAME).stem


def evaluate_bag(cfg: EvalConfig, segmenter: Any = None, model_name: str = "",
                 log: Callable[[str], None] = print) -> EvalReport:
    """Run the evaluation (see module doc). `segmenter` replaces the checkpoint's model (tests).

    Raises BagError (unreadable bag, missing topic, output exists), ValueError (bad
    parameters), CheckpointError. Ctrl-C stops early with the output bag and a report of the
    frames so far (`"interrupted": true`), then re-raises KeyboardInterrupt.
    """
    from sphmask_ros import conversions

    params = load_node_params(cfg.params_file)
    bag = BagReader(cfg.bag, warn=lambda w: log(f"warning: {w}"))
    info = bag.require_topic(cfg.topic, POINTCLOUD2)
    out_dir = make_output_dir(cfg.output_dir(), cfg.overwrite)
    if segmenter is None:
        segmenter, model_name = _load_segmenter(cfg, params)
    feed = BagPoseFeed(params, bag)
    pipeline = Pipeline(segmenter, params, model_name or "model", pose_source=feed.poses)
    if cfg.warmup and hasattr(segmenter, "warmup"):
        pipeline.warmup_s = segmenter.warmup()
    class_names = list(pipeline.class_names)
    labels = GroundTruthLabels.from_custom_data(bag.custom_data)
    if cfg.classes is not None:
        from sphmask_core.data.classes import load_classes

        spec = load_classes(cfg.classes).labels
        labels = GroundTruthLabels(spec.semantic_names, spec.label_shift)
    overall = ScanNetEvaluator(class_names, list(range(1, len(class_names) + 1)),
                               cfg.min_region_size)
    n_expected = info.count if cfg.max_frames <= 0 else min(info.count, cfg.max_frames)
    render_at = set(np.unique(np.linspace(0, max(n_expected - 1, 0),
                                          max(min(cfg.renders, n_expected), 0)).round().astype(int)).tolist()) \
        if cfg.renders > 0 else set()
    (out_dir / "renders").mkdir(parents=True, exist_ok=True)

    per_frame: list[dict] = []
    skipped: list[dict] = []
    latencies: list[float] = []
    renders: list[str] = []
    has_gt: bool | None = None
    interrupted = False
    index = 0
    tolerance_ns = int(round(params.tf_timeout * 1e9))

    from tqdm import tqdm

    bar = tqdm(total=n_expected, unit="frame", disable=not cfg.progress, desc="eval")
    with BagWriter(out_dir / "output_bag", "mcap") as out:
        for key, (topic, msgtype) in OUTPUT_TOPICS.items():
            out.add_topic(topic, msgtype, [make_qos(True, False, 1 if key != "instances" else 5)])

        def process(msg: BagMessage) -> None:
            nonlocal index, has_gt
            k = index
            index += 1
            t0 = time.perf_counter()
            try:
                frame = decode_frame(to_rclpy(msg), cfg.topic, msg.log_time_ns)
            except CloudError as exc:
                skipped.append({"index": k, "stamp_ns": None, "reason": "invalid", "detail": str(exc)})
                return
            try:
                result = pipeline.process(frame)
            except FrameSkipped as exc:
                skipped.append({"index": k, "stamp_ns": frame.stamp_ns, "reason": "no_transform",
                                "detail": str(exc)})
                return
            except Exception as exc:  # noqa: BLE001 - the node drops such frames and goes on
                skipped.append({"index": k, "stamp_ns": frame.stamp_ns, "reason": "model_error",
                                "detail": f"{type(exc).__name__}: {exc}"})
                pipeline.recover_from_error(exc)
                return
            latency_ms = (time.perf_counter() - t0) * 1e3
            inst = result.instances
            out.write_rclpy(OUTPUT_TOPICS["instances"][0], msg.log_time_ns,
                            conversions.instances_to_msg(inst, result.header, inst.n_points,
                                                         pipeline.model_name, result.track_ids))
            out.write_rclpy(OUTPUT_TOPICS["markers"][0], msg.log_time_ns,
                            conversions.instances_to_markers(inst, result.header, result.track_ids))
            if params.publish_labelled_cloud:
                out.write_rclpy(OUTPUT_TOPICS["labelled_cloud"][0], msg.log_time_ns,
                                conversions.labelled_cloud(inst, result.header, result.xyz, result.rgb))
            latencies.append(latency_ms)
            row: dict[str, Any] = {"index": k, "stamp_ns": frame.stamp_ns,
                                   "points": int(inst.n_points), "model_points": result.n_model_points,
                                   "instances": len(inst), "latency_ms": latency_ms,
                                   "stages_ms": {s: v * 1e3 for s, v in result.stages_s.items()}}
            if result.empty_reason:
                row["empty"] = result.empty_reason
            extras = result.point_extras
            frame_gt = "instance_id" in extras and "semantic_id" in extras
            if not result.empty_reason:
                has_gt = frame_gt if has_gt is None else (has_gt and frame_gt)
            gt = None
            if frame_gt and inst.n_points == extras["instance_id"].shape[0]:
                gt = gt_ids_for_model(extras["semantic_id"], extras["instance_id"], labels, class_names)
                preds = pred_instances_from_masks(inst.masks, inst.class_ids, inst.scores, inst.n_points)
                overall.add_scene(gt, preds)
                one = ScanNetEvaluator(class_names, list(range(1, len(class_names) + 1)),
                                       cfg.min_region_size)
                one.add_scene(gt, preds)
                res = one.result()
                row.update({"AP": res["AP"], "AP50": res["AP50"], "AP25": res["AP25"]})
            per_frame.append(row)
            if k in render_at:
                path = out_dir / "renders" / f"frame_{k:05d}.png"
                _render(path, result.xyz, inst, gt, result.header, frame.stamp_ns, params.score_threshold,
                        f"frame {k}")
                renders.append(str(path))

        try:
            for msg in posed_clouds(bag.messages([cfg.topic] + feed.topics), cfg.topic, feed,
                                    tolerance_ns, cfg.max_frames):
                process(msg)
                bar.update(1)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()

    metrics = None
    if has_gt and overall.num_scenes:
        metrics = overall.result()
    elif has_gt is False or not per_frame:
        log(f"note: clouds on '{cfg.topic}' carry no instance_id/semantic_id fields; no metrics")
    by_reason: dict[str, int] = {}
    for s in skipped:
        by_reason[s["reason"]] = by_reason.get(s["reason"], 0) + 1
    data = _clean({
        "bag": str(cfg.bag),
        "topic": cfg.topic,
        "model": pipeline.model_name,
        "device": pipeline.device,
        "class_names": class_names,
        "params": {f: getattr(params, f) for f in params.__dataclass_fields__},
        "frames": {"in_bag": info.count, "considered": index, "processed": len(per_frame),
                   "skipped": len(skipped), "skipped_by_reason": by_reason},
        "skipped": skipped,
        "ground_truth": bool(has_gt),
        "min_region_size": cfg.min_region_size,
        "metrics": metrics,
        "latency_ms": percentiles(latencies),
        "per_frame": per_frame,
        "renders": renders,
        "output_bag": str(out_dir / "output_bag"),
        "warnings": list(bag.warnings),
        "interrupted": interrupted,
    })
    data["report_html"] = str(out_dir / "report.html")
    (out_dir / "report.json").write_text(json.dumps(data, indent=2))
    _write_html(out_dir, data, overall)
    if interrupted:
        raise KeyboardInterrupt
    return EvalReport(data, out_dir)
