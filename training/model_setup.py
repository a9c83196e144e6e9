"""The model of a training run: its config from the training config's `model` section."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from training.config import ConfigError, TrainConfig


def flatten_overrides(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: the dotted form `sphmask_core.config.apply_overrides` takes."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_overrides(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def build_model_config(cfg: TrainConfig) -> Any:
    from sphmask_core.config import apply_overrides, load_model_config

    try:
        model_cfg = load_model_config(cfg.model.name)
    except FileNotFoundError as exc:
        raise ConfigError(f"config key 'model.name': {exc}") from None
    if cfg.model.overrides:
        try:
            model_cfg = apply_overrides(model_cfg, flatten_overrides(cfg.model.overrides))
        except ValueError as exc:
            raise ConfigError(str(exc).replace("config key 'model.", "config key 'model.overrides.")) from None
    from training.datasets import dataset_labels

    labels = dataset_labels(cfg.dataset)
    if labels is not None:
        import dataclasses

        # one home for the class list: the data's classes (file, or a bag's metadata) decide
        # the model's labels
        model_cfg = dataclasses.replace(model_cfg, labels=labels)
    return model_cfg


def build_model(model_cfg: Any) -> nn.Module:
    from sphmask_core.model.spherical_mask import SphericalMask

    return SphericalMask(model_cfg)


def batch_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor field of a Batch dataclass to `device`."""
    if hasattr(batch, "to"):
        return batch.to(device)
    import dataclasses

    changes = {
        f.name: getattr(batch, f.name).to(device)
        for f in dataclasses.fields(batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)
    }
    return dataclasses.replace(batch, **changes)
