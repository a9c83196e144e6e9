"""`sphmask-predict`: segment a dataset split or a folder of clouds with a trained checkpoint.

    sphmask-predict --checkpoint CKPT --dataset NAME --root DIR [--split val] --out OUT_DIR
    sphmask-predict --checkpoint CKPT --input FOLDER --out OUT_DIR

OUT_DIR receives ScanNet benchmark-format predictions (`pred/<scene>.txt` + `pred/pred_mask/`),
one picture per scene (`render/<scene>.png`: top and perspective view of the instances the node
would publish, `--render-threshold`, ground truth beside them for a labelled split),
`classes.yaml` (class names and benchmark label ids, the `--classes` file of `sphmask-eval`),
`report.html` (metrics, precision/recall curves, latency, instances per scene, the renders; its
path is printed at the end) and, for a labelled dataset split, the GT files (`gt/<scene>.txt`)
and `metrics.json` (AP / AP50 / AP25 of the benchmark evaluator), so
`sphmask-eval scannet --gt OUT/gt --pred OUT/pred --classes OUT/classes.yaml` reproduces them.

Input clouds: .npy (N, 3) or (N, 6+) xyz[rgb], .txt (whitespace or comma separated columns
x y z [r g b]), .ply (vertex x y z [red green blue]), .pcd (PCD v0.7, any data format). Colours
0..255 or 0..1 are mapped to [-1, 1]; clouds without colour get zeros.
Your own labelled clouds: `--dataset folder --root DIR --split 'val/*.ply' --classes classes.yaml`
(the folder dataset and classes file of training). An existing non-empty OUT_DIR is refused
unless `--overwrite` (which removes its previous outputs first); an empty cloud is reported and
skipped; a backbone-stage checkpoint is refused (its query heads are untrained).
Exit codes: 0 done, 2 bad input (checkpoint, dataset folder, cloud file, existing OUT_DIR).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml

from sphmask_core.data.pcd import PcdError, pcd_points, read_pcd
from sphmask_core.render import PUBLISH_THRESHOLD, render_instances

CLOUD_SUFFIXES = (".npy", ".txt", ".ply", ".pcd")


class InputError(ValueError):
    """An input cloud file cannot be read."""


# ---------------------------------------------------------------------------------- readers


def normalise_rgb(rgb: np.ndarray) -> np.ndarray:
    """Colours 0..255 (any value > 1) or 0..1 -> [-1, 1] float32; values already in [-1, 1]
    with negatives are kept."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.size == 0:
        return rgb.astype(np.float32).reshape(-1, 3)
    if rgb.max() > 1.0 + 1e-6:
        out = rgb / 127.5 - 1.0
    elif rgb.min() >= 0.0:
        out = rgb * 2.0 - 1.0
    else:
        out = rgb
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _split_columns(arr: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1 and arr.size in (3, 6):
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise InputError(f"{path}: expected N rows of x y z [r g b], got an array of shape {arr.shape}")
    xyz = arr[:, :3]
    rgb = normalise_rgb(arr[:, 3:6]) if arr.shape[1] >= 6 else np.zeros((len(arr), 3), np.float32)
    return xyz, rgb


def _read_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    delimiter = "," if "," in first else None
    try:
        arr = np.loadtxt(path, delimiter=delimiter, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{path}: not a table of numbers ({exc})") from None
    return _split_columns(arr, path)


def _read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sphmask_core.data import ply
    except ImportError as exc:
        raise InputError(f"{path}: PLY support is not available ({exc})") from None
    try:
        cloud = ply.read_ply(path)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: {exc}") from None
    vertex = cloud["vertex"] if isinstance(cloud, dict) and "vertex" in cloud else cloud
    names = vertex.dtype.names or ()
    missing = [c for c in "xyz" if c not in names]
    if missing:
        raise InputError(f"{path}: PLY vertices have no {missing} property")
    xyz = np.stack([vertex[c] for c in "xyz"], axis=1).astype(np.float64)
    if all(c in names for c in ("red", "green", "blue")):
        raw = np.stack([vertex[c] for c in ("red", "green", "blue")], axis=1).astype(np.float64)
        # integer colour properties are 0..255 even when a dark cloud never exceeds 1
        rgb = (raw / 127.5 - 1.0).astype(np.float32) if vertex["red"].dtype.kind in "ui" else normalise_rgb(raw)
    else:
        rgb = np.zeros((len(xyz), 3), np.float32)
    return xyz, rgb


def _read_pcd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        xyz, rgb = pcd_points(read_pcd(path))
    except (PcdError, OSError) as exc:
        raise InputError(f"{path}: {exc}") from None
    rgb = rgb if rgb is not None else np.zeros((len(xyz), 3), np.float32)
    return xyz.astype(np.float64), rgb.astype(np.float32)


def read_cloud(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (N, 3) float32 metres, rgb (N, 3) float32 in [-1, 1]) of a cloud file; finite points only."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"cloud file not found: {path}")
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{path}: not a plain numeric .npy array ({exc})") from None
        xyz, rgb = _split_columns(arr, path)
    elif suffix == ".txt":
        xyz, rgb = _read_txt(path)
    elif suffix == ".ply":
        xyz, rgb = _read_ply(path)
    elif suffix == ".pcd":
        xyz, rgb = _read_pcd(path)
    else:
        raise InputError(f"{path}: unsupported cloud format {suffix!r} (use one of {CLOUD_SUFFIXES})")
    finite = np.isfinite(xyz).all(axis=1)
    return xyz[finite].astype(np.float32), rgb[finite].astype(np.float32)


def input_clouds(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"input folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CLOUD_SUFFIXES)
    if not files:
        raise InputError(f"no point cloud files ({', '.join(CLOUD_SUFFIXES)}) in {folder}")
    return files


# ---------------------------------------------------------------------------------- outputs


def benchmark_label_ids(label_spec: Any) -> list[int]:
    """Label ids written to prediction files: NYU40 ids for the ScanNet label set (what the
    official benchmark and `sphmask-eval scannet` without --classes expect), else 1..C."""
    from sphmask_core.data.scene import SCANNET_LABELS
    from sphmask_core.evaluation.scannet_eval import SCANNET_LABEL_IDS

    if tuple(label_spec.semantic_names) == tuple(SCANNET_LABELS.semantic_names) and (
        label_spec.label_shift == SCANNET_LABELS.label_shift
    ):
        return list(SCANNET_LABEL_IDS)
    return list(range(1, label_spec.n_instance_classes + 1))


def _safe_name(name: str) -> str:
    cleaned = "".join(c if (c.isalnum() or c in "._-") else "_" for c in name)
    return cleaned or "scene"


class PredictionWriter:
    """Writes one scene's benchmark files and rendering; keeps running AP statistics."""

    def __init__(self, out_dir: Path, label_spec: Any, class_names: list[str], render: bool = True,
                 min_region_size: int = 100, render_threshold: float = PUBLISH_THRESHOLD) -> None:
        from sphmask_core.evaluation.scannet_eval import ScanNetEvaluator

        self.out_dir = out_dir
        self.label_spec = label_spec
        self.class_names = class_names
        self.label_ids = benchmark_label_ids(label_spec)
        self.render = render
        self.render_threshold = render_threshold
        self.renders: list[Path] = []
        self.stages_ms: dict[str, list[float]] = {}
        self.published: list[int] = []  # instances at or above render_threshold, per scene
        self.evaluator = ScanNetEvaluator(class_names, self.label_ids, min_region_size=min_region_size)
        (out_dir / "pred").mkdir(parents=True, exist_ok=True)
        (out_dir / "classes.yaml").write_text(
            yaml.safe_dump({"class_names": list(class_names), "label_ids": self.label_ids}, sort_keys=False)
        )

    def _preds(self, inst: Any, n_points: int) -> list[Any]:
        from sphmask_core.evaluation.scannet_eval import pred_instances_from_masks

        preds = pred_instances_from_masks(inst.masks, inst.class_ids, inst.scores, n_points)
        for p in preds:
            p.label_id = self.label_ids[p.label_id - 1]
        return preds

    def _gt(self, semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
        from sphmask_core.evaluation.scannet_eval import GT_LABEL_DIVISOR, gt_ids_from_labels

        gt = gt_ids_from_labels(semantic, instance, self.label_spec.label_shift)  # label 1..C, 0 = none
        label = gt // GT_LABEL_DIVISOR
        lut = np.array([0, *self.label_ids], dtype=np.int64)
        # labels beyond the instance classes cannot occur for valid scenes; keep them unevaluated
        mapped = np.where(label <= len(self.label_ids), lut[np.minimum(label, len(self.label_ids))], 0)
        return np.where(gt > 0, mapped * GT_LABEL_DIVISOR + gt % GT_LABEL_DIVISOR, 0)

    def write(self, name: str, xyz: np.ndarray, inst: Any, semantic: np.ndarray | None = None,
              instance: np.ndarray | None = None) -> None:
        from sphmask_core.evaluation.formats import write_gt_file, write_prediction_file

        scene = _safe_name(name)
        preds = self._preds(inst, len(xyz))
        write_prediction_file(self.out_dir / "pred", scene, preds)
        for stage, seconds in (getattr(inst, "timings", None) or {}).items():
            self.stages_ms.setdefault(stage, []).append(seconds * 1e3)
        self.published.append(int((np.asarray(inst.scores) >= self.render_threshold).sum()))
        gt_ids = None
        if semantic is not None and instance is not None:
            from sphmask_core.evaluation.scannet_eval import gt_ids_from_labels

            gt_ids = gt_ids_from_labels(semantic, instance, self.label_spec.label_shift)
            gt = self._gt(semantic, instance)
            (self.out_dir / "gt").mkdir(exist_ok=True)
            write_gt_file(self.out_dir / "gt" / f"{scene}.txt", gt)
            self.evaluator.add_scene(gt, preds)
        if self.render:
            path = self.out_dir / "render" / f"{scene}.png"
            render_instances(path, xyz, inst, gt_ids=gt_ids, score_threshold=self.render_threshold, title=scene)
            self.renders.append(path)

    def metrics(self) -> dict[str, Any] | None:
        if self.evaluator.num_scenes == 0:
            return None
        return self.evaluator.result()

    def report(self, title: str, facts: list[tuple[str, str]]) -> Path:
        """Write OUT/report.html (see module doc)."""
        from sphmask_core.report import ReportData, write_report

        metrics = self.metrics()
        curves = self.evaluator.pr_curves(0.5) if metrics is not None else {}
        return write_report(self.out_dir, ReportData(
            title=title, metrics=metrics, pr_curves=curves, stages_ms=self.stages_ms,
            instances=self.published, time_label=f"scene (instances with score >= {self.render_threshold:.2f})",
            renders=self.renders, facts=facts))


# ---------------------------------------------------------------------------------- main


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse an existing output folder: merging into it mixes two runs' pred/ files, which
    sphmask-eval then scores together."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"output folder {out} already exists; choose another --out or add --overwrite")
        import shutil

        for sub in ("pred", "gt", "render"):
            shutil.rmtree(out / sub, ignore_errors=True)
        for name in ("metrics.json", "report.html", "classes.yaml"):
            (out / name).unlink(missing_ok=True)


def _check_classes(path: Path, model_labels: Any) -> None:
    """The classes file must name the model's classes: ids are matched by position."""
    from sphmask_core.data.classes import load_classes

    labels = load_classes(path).labels
    if tuple(labels.semantic_names) != tuple(model_labels.semantic_names) or labels.label_shift != model_labels.label_shift:
        raise InputError(
            f"classes file {path} ({list(labels.semantic_names)}, {labels.label_shift} stuff) differs from the "
            f"model's classes ({list(model_labels.semantic_names)}, {model_labels.label_shift} stuff)"
        )


def _dataset_scenes(name: str, root: str, split: str, max_scenes: int, classes: Path | None = None) -> Iterator[Any]:
    from training.config import DatasetConfig
    from training.datasets import build_dataset

    ds = build_dataset(DatasetConfig(name=name, root=root, val_split=split, classes=str(classes or "")), train=False)
    n = len(ds) if max_scenes <= 0 else min(len(ds), max_scenes)
    for i in range(n):
        yield ds[i]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sphmask-predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="trained checkpoint (.pt) or run directory; default: shipped model")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=("synthetic", "scannet", "s3dis", "stpls3d", "folder"),
                     help="dataset name (folder: your own labelled clouds, with --classes)")
    src.add_argument("--input", type=Path, help="folder of .ply/.npy/.txt/.pcd clouds")
    parser.add_argument("--root", default="", help="dataset folder (--dataset)")
    parser.add_argument("--split", default="val", help="dataset split (--dataset), default val")
    parser.add_argument("--classes", type=Path, default=None,
                        help="classes YAML of --dataset folder (the file training's dataset.classes took)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty; see --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out folder (its old pred/gt files are removed)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--max-scenes", type=int, default=0, help="stop after N scenes (0 = all)")
    parser.add_argument("--min-region-size", type=int, default=100, help="evaluation min points (STPLS3D 10)")
    parser.add_argument("--no-render", action="store_true", help="skip the PNG renderings")
    parser.add_argument("--render-threshold", type=float, default=PUBLISH_THRESHOLD,
                        help=f"renders show instances with at least this score (default {PUBLISH_THRESHOLD}, "
                             "what the node publishes; 0 = all)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any] | None:
    from sphmask_core.inference.segmenter import Segmenter

    checkpoint = args.checkpoint
    if checkpoint:
        from sphmask_core.checkpoint import resolve_checkpoint_path

        checkpoint = resolve_checkpoint_path(checkpoint)
    if args.dataset and args.dataset != "synthetic" and not args.root:
        raise InputError(f"--root is required with --dataset {args.dataset}")
    if args.dataset == "folder" and args.classes is None:
        raise InputError("--classes FILE.yaml is required with --dataset folder")
    _prepare_out(args.out, args.overwrite)
    segmenter = Segmenter.from_checkpoint(checkpoint, device=args.device)
    if args.classes is not None:
        _check_classes(args.classes, segmenter.cfg.labels)
    if not 0.0 <= args.render_threshold <= 1.0:
        raise InputError(f"--render-threshold must be in [0, 1], got {args.render_threshold}")
    writer = PredictionWriter(args.out, segmenter.cfg.labels, segmenter.class_names, render=not args.no_render,
                              min_region_size=args.min_region_size, render_threshold=args.render_threshold)
    from tqdm import tqdm

    t0 = time.perf_counter()
    n = 0
    empty: list[str] = []
    if args.dataset:
        split = args.split
        root = args.root
        if args.dataset == "synthetic":
            # synthetic "splits" are seed ranges: 'val' = the training configs' validation seeds
            from training.config import DatasetConfig

            train_ds = _train_dataset_config(checkpoint)
            seeds = train_ds.get("val_seeds", DatasetConfig().val_seeds) if split == "val" else _seed_range(split)
            scenes = _synthetic_scenes(seeds, train_ds.get("synthetic", {}), args.max_scenes)
        else:
            scenes = _dataset_scenes(args.dataset, root, split, args.max_scenes, args.classes)
        for scene in tqdm(scenes, desc="scenes", unit="scene"):
            inst = segmenter(scene.xyz, scene.rgb, scene.superpoint)
            writer.write(scene.name, scene.xyz, inst, scene.semantic, scene.instance)
            n += 1
    else:
        files = input_clouds(args.input)
        if args.max_scenes > 0:
            files = files[: args.max_scenes]
        for path in tqdm(files, desc="clouds", unit="cloud"):
            xyz, rgb = read_cloud(path)
            if len(xyz) == 0:
                empty.append(path.name)
                print(f"skipped {path}: empty cloud (no finite points), nothing written", file=sys.stderr)
                continue
            inst = segmenter(xyz, rgb)
            writer.write(path.stem, xyz, inst)
            n += 1
    metrics = writer.metrics()
    summary = {"scenes": n, "seconds": time.perf_counter() - t0, "checkpoint": str(checkpoint or "default"),
               "empty_clouds": empty}
    if metrics is not None:
        summary.update({k: metrics[k] for k in ("AP", "AP50", "AP25")})
        (args.out / "metrics.json").write_text(json.dumps({**summary, "per_class": metrics["per_class"]}, indent=1))
        print(f"AP {metrics['AP']:.4f}  AP50 {metrics['AP50']:.4f}  AP25 {metrics['AP25']:.4f}  ({n} scenes)")
    print(f"wrote predictions of {n} scene(s) to {args.out}"
          + (f"; skipped {len(empty)} empty cloud(s): {', '.join(empty)}" if empty else ""))
    page = writer.report(f"sphmask-predict: {args.dataset or args.input}",
                         [("checkpoint", str(checkpoint or "shipped model")), ("scenes", str(n)),
                          ("source", f"{args.dataset} {args.split}" if args.dataset else str(args.input))])
    summary["report"] = str(page)
    print(f"report: {page}")
    return summary


def _seed_range(split: str) -> list[int]:
    try:
        seeds = [int(v) for v in split.split(":")]
    except ValueError:
        seeds = []
    if len(seeds) != 2 or seeds[0] >= seeds[1]:
        raise InputError(f"synthetic --split must be 'val' or START:STOP seeds, got {split!r}")
    return seeds


def _train_dataset_config(checkpoint: Path | None) -> dict[str, Any]:
    """The dataset section a checkpoint was trained with ({} for none): synthetic predictions
    use the same generator settings and validation seeds."""
    if checkpoint is None:
        return {}
    from sphmask_core.checkpoint import load_checkpoint

    train_cfg = load_checkpoint(checkpoint).get("train_config") or {}
    ds = train_cfg.get("dataset") if isinstance(train_cfg, dict) else None
    return ds if isinstance(ds, dict) and ds.get("name") == "synthetic" else {}


def _synthetic_scenes(seeds: list[int], generator: dict[str, Any], max_scenes: int) -> Iterator[Any]:
    from training.config import DatasetConfig
    from training.datasets import build_dataset

    ds = build_dataset(DatasetConfig(name="synthetic", val_seeds=list(seeds), synthetic=dict(generator)), train=False)
    n = len(ds) if max_scenes <= 0 else min(len(ds), max_scenes)
    for i in range(n):
        yield ds[i]


def main(argv: list[str] | None = None) -> int:
    from sphmask_core.checkpoint import CheckpointError
    from sphmask_core.evaluation.formats import FormatError
    from sphmask_core.data.errors import DatasetError
    from training.config import ConfigError
    from training.datasets import DatasetNotFoundError

    args = parse_args(argv)
    try:
        run(args)
    except (CheckpointError, DatasetNotFoundError, DatasetError, ConfigError, InputError, FormatError) as exc:
        print(f"sphmask-predict: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
