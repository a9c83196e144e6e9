"""Checkpoint files: one `torch.save` dict readable with `torch.load(weights_only=True)`.

Layout (docs/ARCHITECTURE.md "Checkpoints"): format, version, model_config (dict), class_names,
label_spec (dict), model (state_dict), plus optional training state (optimizer, scheduler, epoch,
step, rng, train_config, metrics). Every failure to read one raises `CheckpointError` with a
single sentence that names the file and the problem.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sphmask_core.config import ModelConfig

FORMAT = "sphmask-checkpoint"
VERSION = 1
TRAINING_KEYS = ("optimizer", "scheduler", "epoch", "step", "rng", "train_config", "metrics")
_REQUIRED_KEYS = ("version", "model_config", "class_names", "label_spec", "model")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, not a sphmask checkpoint, or does not fit."""


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a training run directory (its best.pt, else last.pt)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise CheckpointError(f"run directory {p} holds neither best.pt nor last.pt")
    return p


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | dict[str, torch.Tensor],
    cfg: ModelConfig,
    class_names: list[str] | tuple[str, ...],
    label_spec: Any,
    **training_state: Any,
) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then rename).

    `model` is a module or a state dict; a partial one (e.g. a backbone converted from ISBNet)
    initialises training but is refused by `build_model_from_checkpoint`.

    `label_spec` is a `LabelSpec` or its dict form. `training_state` keys must be among
    TRAINING_KEYS and hold only weights_only-loadable values (tensors, containers, numbers, str).
    """
    unknown = sorted(set(training_state) - set(TRAINING_KEYS))
    if unknown:
        raise ValueError(f"unknown training_state keys {unknown}; allowed: {list(TRAINING_KEYS)}")
    state = model.state_dict() if isinstance(model, nn.Module) else model
    spec_dict = label_spec.to_dict() if hasattr(label_spec, "to_dict") else dict(label_spec)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": cfg.to_dict(),
        "class_names": [str(c) for c in class_names],
        "label_spec": spec_dict,
        "model": {k: v.detach().cpu() for k, v in state.items()},
    }
    payload.update(training_state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint dict (weights_only=True); raise CheckpointError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - garbage makes torch's unpickler raise almost anything (KeyError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be read ({first})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a sphmask checkpoint (no format='{FORMAT}' entry)")
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"sphmask checkpoint {path} is incomplete: missing {missing}")
    if not isinstance(ckpt["version"], int) or ckpt["version"] > VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {ckpt['version']!r}; this sphmask reads up to {VERSION}"
        )
    return ckpt


# Query-head BatchNorm eps of every model trained before `heads.bn_eps` existed (the current
# default is the authors' 1e-5): such checkpoints keep the value they were trained with.
LEGACY_HEADS_BN_EPS = 1e-4


def config_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike = "<checkpoint>") -> ModelConfig:
    """The ModelConfig stored in a loaded checkpoint dict."""
    try:
        data = ckpt["model_config"]
        heads = data.get("heads") if isinstance(data, dict) else None
        if isinstance(heads, dict) and "bn_eps" not in heads:
            data = {**data, "heads": {**heads, "bn_eps": LEGACY_HEADS_BN_EPS}}
        return ModelConfig.from_dict(data)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} holds an invalid model configuration: {e}") from e


def load_model_weights(model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Strictly load a state_dict, turning key or shape mismatches into one CheckpointError."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with wrong shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise CheckpointError(f"weights in {path} do not match its model configuration: " + ", ".join(parts))
    model.load_state_dict(state, strict=True)


def build_model_from_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """(model in eval mode, its config, meta = the checkpoint dict without the weights)."""
    from sphmask_core.model.spherical_mask import SphericalMask  # heavy import kept local

    ckpt = load_checkpoint(path, map_location=map_location)
    train_cfg = ckpt.get("train_config")
    if isinstance(train_cfg, dict) and train_cfg.get("stage") == "backbone":
        raise CheckpointError(
            f"checkpoint {path} is from the backbone stage: its query heads are untrained, so it would find no "
            f"instances; train the full stage from it (sphmask-train CONFIG.yaml init_from={path}) and use that"
        )
    cfg = config_from_checkpoint(ckpt, path)
    try:
        model = SphericalMask(cfg)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} describes a model that cannot be built: {e}") from e
    names = ckpt["class_names"]
    if not isinstance(names, list) or len(names) != cfg.n_classes:
        raise CheckpointError(
            f"checkpoint {path} lists {len(names) if isinstance(names, list) else names!r} class names "
            f"but its model configuration has {cfg.n_classes} instance classes"
        )
    load_model_weights(model, ckpt["model"], path)
    model.eval()
    meta = {k: v for k, v in ckpt.items() if k != "model"}
    return model, cfg, meta
