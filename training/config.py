"""Training configuration: plain dataclasses, loaded from YAML, with dotted command-line overrides.

A config file mirrors `TrainConfig` exactly; any key that is not a field is an error naming the
key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sphmask_core.config_io import from_plain, parse_yaml, read_yaml

DATASET_NAMES = ("synthetic", "scannet", "s3dis", "stpls3d", "folder", "bag")
STAGES = ("backbone", "full")


class ConfigError(ValueError):
    """A training config is malformed: unknown key, wrong type or out-of-range value."""


@dataclass
class DatasetConfig:
    name: str = "synthetic"  # one of DATASET_NAMES
    root: str = ""  # folder of the prepared dataset (unused for synthetic)
    # scannet: train/val/trainval; s3dis: e.g. "Area_1,Area_2"; folder: comma-separated file
    # names, sub-folders or glob patterns relative to root (e.g. "train/*.ply,extra.npz")
    train_split: str = "train"
    val_split: str = "val"
    # synthetic scenes are identified by their generator seed: [start, stop)
    train_seeds: list[int] = field(default_factory=lambda: [0, 64])
    val_seeds: list[int] = field(default_factory=lambda: [100000, 100008])
    synthetic: dict[str, Any] = field(default_factory=dict)  # generator config overrides
    augment: bool = True  # augmentation of training scenes (never of validation scenes)
    augment_cfg: dict[str, Any] = field(default_factory=dict)  # augmentation config overrides
    repeat: int = 1  # each training scene appears `repeat` times per epoch (ISBNet "repeat")
    subsample: float = 1.0  # fraction of points kept per training load (S3DIS: 0.25)
    # classes file (sphmask_core/data/classes.py); required for `folder` (for `bag`, the bags'
    # metadata is used without it), and the model's class list follows it (a different list than
    # init_from's re-initialises the class layers)
    classes: str = ""
    # bag (sphmask_core/data/bag.py): rosbag2 recordings (directories or .mcap/.db3 files) of
    # each split, and the time range [start, end) taken from each, in seconds from the bag's
    # first cloud (end null = to the end); one bag may serve both splits with disjoint ranges
    train_bags: list[str] = field(default_factory=list)
    val_bags: list[str] = field(default_factory=list)
    train_range: list[float | None] = field(default_factory=lambda: [0.0, None])
    val_range: list[float | None] = field(default_factory=lambda: [0.0, None])
    topic: str = "/points"  # labelled PointCloud2 topic of the bags
    # node parameter file whose pre-processing (fixed_frame, pose_source, accumulate, crop,
    # input_voxel_size, max_points, ...) makes the windows, as in the node and `sphmask-bag eval`
    params_file: str = "config/sphmask.yaml"


@dataclass
class ModelRef:
    name: str = "small"  # shipped model config name (sphmask_core/configs/NAME.yaml) or a path
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted keys -> values


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 0.0  # max gradient norm; 0 = off


@dataclass
class ScheduleConfig:
    epochs: int = 20
    step_epoch: float = 10.0  # constant lr until this epoch, then cosine to min_lr at `epochs`
    min_lr: float = 1e-6


@dataclass
class TrainConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelRef = field(default_factory=ModelRef)
    stage: str = "full"  # "backbone" (pre-training: U-Net + point-wise heads) or "full"
    init_from: str = ""  # checkpoint (or run dir: its best.pt/last.pt) to initialise weights from
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    batch_size: int = 4  # scenes per iteration per process
    accumulate: int = 1  # iterations per optimizer update (loss divided by it)
    drop_last: bool = True
    amp: bool = False  # fp16 autocast + GradScaler; CUDA only (ignored with a notice on the CPU)
    seed: int = 0
    device: str = "auto"  # auto / cpu / cuda / cuda:N
    val_every: int = 1  # validate every N epochs; 0 = never
    val_max_scenes: int = 0  # 0 = the whole validation split
    val_min_region_size: int = 100  # benchmark min_region_size (STPLS3D: 10)
    save_every: int = 50  # also save last.pt every N iterations inside an epoch; 0 = epoch ends only
    max_steps: int = 0  # stop after this many iterations in total (smoke tests, debugging); 0 = off
    checkpoint_dir: str = "runs"  # run directories are created under it
    run_name: str = ""  # default: config file stem + time stamp
    num_workers: int = 2
    log_every: int = 10  # iterations between metrics-history rows


def validate(cfg: TrainConfig) -> TrainConfig:
    """Range checks that a type check cannot express; returns cfg for chaining."""
    ds = cfg.dataset
    if ds.name not in DATASET_NAMES:
        raise ConfigError(f"config key 'dataset.name' must be one of {DATASET_NAMES}, got {ds.name!r}")
    for key in ("train_seeds", "val_seeds"):
        seeds = getattr(ds, key)
        if len(seeds) != 2 or seeds[0] >= seeds[1]:
            raise ConfigError(f"config key 'dataset.{key}' must be [start, stop) with start < stop, got {seeds}")
    if ds.name == "folder" and not ds.classes:
        raise ConfigError("config key 'dataset.classes' (a classes YAML) is required for dataset 'folder'")
    if ds.name == "bag":
        _validate_bag_dataset(ds)
    elif ds.name != "synthetic" and not ds.root:
        raise ConfigError(f"config key 'dataset.root' is required for dataset {ds.name!r}")
    if ds.repeat < 1:
        raise ConfigError(f"config key 'dataset.repeat' must be >= 1, got {ds.repeat}")
    if not 0.0 < ds.subsample <= 1.0:
        raise ConfigError(f"config key 'dataset.subsample' must be in (0, 1], got {ds.subsample}")
    if cfg.stage not in STAGES:
        raise ConfigError(f"config key 'stage' must be one of {STAGES}, got {cfg.stage!r}")
    positive = {
        "batch_size": cfg.batch_size,
        "accumulate": cfg.accumulate,
        "schedule.epochs": cfg.schedule.epochs,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {value}")
    nonneg = {
        "val_every": cfg.val_every,
        "val_max_scenes": cfg.val_max_scenes,
        "val_min_region_size": cfg.val_min_region_size,
        "save_every": cfg.save_every,
        "max_steps": cfg.max_steps,
        "num_workers": cfg.num_workers,
        "optim.weight_decay": cfg.optim.weight_decay,
        "optim.grad_clip": cfg.optim.grad_clip,
    }
    for key, value in nonneg.items():
        if value < 0:
            raise ConfigError(f"config key '{key}' must be >= 0, got {value}")
    if not (cfg.optim.lr > 0 and math.isfinite(cfg.optim.lr)):
        raise ConfigError(f"config key 'optim.lr' must be a positive number, got {cfg.optim.lr}")
    if not 0 <= cfg.schedule.min_lr <= cfg.optim.lr:
        raise ConfigError(
            f"config key 'schedule.min_lr' must be in [0, optim.lr={cfg.optim.lr}], got {cfg.schedule.min_lr}"
        )
    # step_epoch >= epochs is allowed: a constant learning rate
    if cfg.schedule.step_epoch < 0:
        raise ConfigError(f"config key 'schedule.step_epoch' must be >= 0, got {cfg.schedule.step_epoch}")
    if len(cfg.optim.betas) != 2 or not all(0.0 <= b < 1.0 for b in cfg.optim.betas):
        raise ConfigError(f"config key 'optim.betas' must be two numbers in [0, 1), got {cfg.optim.betas}")
    if cfg.log_every < 1:
        raise ConfigError(f"config key 'log_every' must be >= 1, got {cfg.log_every}")
    return cfg


def _validate_bag_dataset(ds: DatasetConfig) -> None:
    if not ds.train_bags:
        raise ConfigError("config key 'dataset.train_bags' (a list of bags) is required for dataset 'bag'")
    if not ds.params_file:
        raise ConfigError("config key 'dataset.params_file' (the node's parameter file) is required for dataset 'bag'")
    for key in ("train_range", "val_range"):
        rng = getattr(ds, key)
        start = rng[0] if len(rng) == 2 else None
        end = rng[1] if len(rng) == 2 else None
        if start is None or not (math.isfinite(start) and start >= 0) or (end is not None and not end > start):
            raise ConfigError(f"config key 'dataset.{key}' must be [start, end) seconds with "
                              f"0 <= start < end (end null = to the end), got {rng}")


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    return validate(from_plain(TrainConfig, data, "", error=ConfigError))


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set data[a][b][c] = value for 'a.b.c', creating sections; the key check happens in _build.

    Keys below a free-form mapping field (model.overrides, dataset.synthetic, ...) are kept
    dotted-nested as well, so `model.overrides.backbone.channels=16` yields
    {"backbone": {"channels": 16}} inside overrides.
    """
    parts = dotted.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"malformed override key '{dotted}'")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
            node[part] = child
        if not isinstance(child, dict):
            raise ConfigError(f"override '{dotted}': '{'.'.join(parts[: i + 1])}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=3e-4' -> ('optim.lr', 0.0003); the value is read as YAML ('[0, 8]', 'true', ...)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not raw.strip():
        return key, ""
    # a one-entry mapping, so that the value is read by the config loader's own YAML rules
    data = parse_yaml(f"v: {raw}", f"override '{text}'", error=ConfigError)
    return key, data["v"]


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Returns a deep-copied dict with each 'a.b=value' override applied."""
    out = _deepcopy_dict(data)
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(out, key, value)
    return out


def _deepcopy_dict(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy_dict(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy_dict(v) for v in data]
    return data


def read_config_dict(path: str | Path) -> dict[str, Any]:
    return read_yaml(path, error=ConfigError)


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML training config, apply dotted `key=value` overrides, validate."""
    data = read_config_dict(path)
    data = apply_overrides(data, list(overrides or []))
    return config_from_dict(data)


def save_train_config(cfg: TrainConfig, path: str | Path) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)


def lr_at(cfg: ScheduleConfig, base_lr: float, epoch: float) -> float:
    """Constant `base_lr` until `step_epoch`, then cosine down to `min_lr` at `epochs`.

    `epoch` is fractional (epoch index + iteration / iterations per epoch) so the rate changes
    every iteration, as in ISBNet/Spherical Mask's `cosine_lr_after_step`.
    """
    if epoch < cfg.step_epoch or cfg.epochs <= cfg.step_epoch:
        return base_lr
    progress = min(1.0, (epoch - cfg.step_epoch) / (cfg.epochs - cfg.step_epoch))
    return cfg.min_lr + 0.5 * (base_lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))
