"""`python -m training.export RUN_OR_CKPT OUT.pt`: a deployable checkpoint from a training run.

Keeps the weights, the model config, the class names, the training config (so `sphmask-predict`
regenerates synthetic scenes with the same generator settings) and a short provenance record
(`metrics`: the run's validation history, epoch and step); drops the optimizer, scheduler and RNG
state, which only resuming needs and which triple the file. The result loads with
`Segmenter.from_checkpoint(OUT.pt)` like any checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sphmask_core.checkpoint import CheckpointError, build_model_from_checkpoint, save_checkpoint
from sphmask_core.data.scene import LabelSpec
from sphmask_core.checkpoint import resolve_checkpoint_path


def export(source: Path, out: Path) -> Path:
    ckpt_path = resolve_checkpoint_path(source)
    model, cfg, meta = build_model_from_checkpoint(ckpt_path)
    provenance = {
        "source": str(ckpt_path),
        "epoch": meta.get("epoch"),
        "step": meta.get("step"),
        "validation": (meta.get("metrics") or {}).get("val", []),
    }
    label_spec = meta.get("label_spec") or LabelSpec.to_dict(cfg.labels)
    extra = {"train_config": meta["train_config"]} if meta.get("train_config") else {}
    return save_checkpoint(out, model, cfg, meta["class_names"], label_spec, metrics=provenance, **extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="run directory (best.pt, else last.pt) or checkpoint file")
    parser.add_argument("out", type=Path, help="output .pt file")
    args = parser.parse_args(argv)
    try:
        out = export(args.source, args.out)
    except (CheckpointError, OSError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
