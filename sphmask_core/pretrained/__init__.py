"""The shipped default model: a small Spherical Mask trained on synthetic rooms."""

from __future__ import annotations

from pathlib import Path

DEFAULT_CHECKPOINT_NAME = "sphmask_small_synthetic.pt"


def default_checkpoint_path() -> Path:
    """Path of the shipped default checkpoint; FileNotFoundError (naming the path) if it is absent."""
    path = Path(__file__).resolve().parent / DEFAULT_CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"the default sphmask checkpoint is not installed ({path} does not exist); "
            "train one with `sphmask-train` or pass a checkpoint path explicitly"
        )
    return path


__all__ = ["DEFAULT_CHECKPOINT_NAME", "default_checkpoint_path"]
