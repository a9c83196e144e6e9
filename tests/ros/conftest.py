"""Fixtures of the ROS tests: a random small checkpoint and one rclpy context per module."""

from __future__ import annotations

from pathlib import Path

import pytest
import rclpy
import torch


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised small model: real loading/warm-up, plumbing tests only."""
    from sphmask_core.checkpoint import save_checkpoint
    from sphmask_core.config import load_model_config
    from sphmask_core.data.scene import SYNTHETIC_LABELS
    from sphmask_core.model.spherical_mask import SphericalMask

    torch.manual_seed(0)
    cfg = load_model_config("small")
    path = tmp_path_factory.mktemp("ckpt") / "random_small.pt"
    save_checkpoint(path, SphericalMask(cfg), cfg, cfg.class_names, SYNTHETIC_LABELS)
    return path


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)
