"""Fixtures of the bag-tool tests: a short synthetic bag per storage format, a random model."""

from __future__ import annotations

from pathlib import Path

import pytest

from sphmask_ros.bag.record import RecordConfig, record_synthetic

FRAMES = 3
POINTS = 2500


@pytest.fixture(scope="session")
def record_cfg() -> RecordConfig:
    return RecordConfig(seed=3, frames=FRAMES, rate=10.0, points_per_frame=POINTS)


@pytest.fixture(scope="session")
def synthetic_bags(tmp_path_factory: pytest.TempPathFactory, record_cfg: RecordConfig) -> dict[str, Path]:
    """{storage: bag path}, written once per session."""
    root = tmp_path_factory.mktemp("bags")
    out = {}
    for storage in ("mcap", "sqlite3"):
        cfg = RecordConfig(**{**record_cfg.__dict__, "storage": storage})
        out[storage] = record_synthetic(root / storage, cfg).path
    return out


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised small model (plumbing only: it finds no instances)."""
    import torch

    from sphmask_core.checkpoint import save_checkpoint
    from sphmask_core.config import load_model_config
    from sphmask_core.data.scene import SYNTHETIC_LABELS
    from sphmask_core.model.spherical_mask import SphericalMask

    cfg = load_model_config("small")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "random_small.pt"
    return save_checkpoint(path, SphericalMask(cfg), cfg, cfg.class_names, SYNTHETIC_LABELS)
