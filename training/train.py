"""`sphmask-train CONFIG.yaml [key=value ...]` and `sphmask-train --resume RUN_DIR [key=value ...]`.

A run directory holds: config.yaml (the resolved config), train.log, last.pt (saved every
`save_every` iterations and at each epoch end), best.pt (best validation AP), metrics.json and
train_metrics.csv / val_metrics.csv (the metrics history), and TensorBoard events when
`torch.utils.tensorboard` is importable.

Exact resume (see training/trainer.py): a run stopped at any iteration and resumed trains on
the same batches with the same states as a run that never stopped.

Distributed: launch with `torchrun --nproc_per_node=N -m training.train CONFIG.yaml`; NCCL on
GPUs, gloo on CPUs, each process takes its DistributedSampler share, only rank 0 writes files.

Ctrl-C finishes the iteration in progress, saves last.pt and exits 0 with one line naming it
(a second Ctrl-C aborts at once). `--resume` of a run that already reached its end says so and
how to extend it (exit 2) instead of doing nothing.

Exit codes: 0 done or interrupted, 2 bad input (config key, dataset folder, checkpoint, a
finished run to resume), 3 the loss diverged.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from training.config import (
    ConfigError,
    TrainConfig,
    apply_overrides as apply_config_overrides,
    config_from_dict,
    load_train_config,
    read_config_dict,
    save_train_config,
)
from training.datasets import DatasetNotFoundError
from training.distributed import broadcast_object, init_distributed, is_distributed
from training.trainer import DivergedError, Progress, Trainer, TrainingInterrupted

LOG = logging.getLogger("sphmask.train")


# ---------------------------------------------------------------------------------- entry point


def _make_run_dir(cfg: TrainConfig, config_path: Path | None) -> Path:
    name = cfg.run_name or f"{config_path.stem if config_path else 'run'}_{time.strftime('%Y%m%d_%H%M%S')}"
    run_dir = Path(cfg.checkpoint_dir).expanduser() / name
    if (run_dir / "last.pt").exists():
        raise ConfigError(f"run directory {run_dir} already holds a run; use --resume {run_dir} or another run_name")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _setup_logging(run_dir: Path | None, is_main: bool, verbose: bool) -> list[logging.Handler]:
    LOG.setLevel(logging.DEBUG if verbose else logging.INFO)
    LOG.propagate = False
    handlers: list[logging.Handler] = []
    if not is_main:
        handlers.append(logging.NullHandler())
    else:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handlers.append(stream)
        if run_dir is not None:
            fh = logging.FileHandler(run_dir / "train.log")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            fh.setLevel(logging.DEBUG)
            handlers.append(fh)
    for h in handlers:
        LOG.addHandler(h)
    return handlers


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sphmask-train",
        description="Train a Spherical Mask model. Examples:\n"
        "  sphmask-train training/configs/synthetic_small_backbone.yaml run_name=bb\n"
        "  sphmask-train training/configs/synthetic_small_full.yaml init_from=runs/bb\n"
        "  sphmask-train --resume runs/bb schedule.epochs=80",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", help="training config YAML (not needed with --resume)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. optim.lr=3e-4")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    parser.add_argument("--verbose", action="store_true", help="log every metrics row")
    args = parser.parse_args(argv)
    # with --resume the first positional may already be an override
    if args.config and "=" in args.config:
        args.overrides = [args.config, *args.overrides]
        args.config = None
    if not args.resume and not args.config:
        parser.error("give a CONFIG.yaml or --resume RUN_DIR")
    return args


def run(args: argparse.Namespace) -> Progress:
    """Everything `main` does, raising instead of returning an exit code."""
    from sphmask_core.checkpoint import CheckpointError, resolve_checkpoint_path

    if args.resume:
        run_dir = Path(args.resume).expanduser()
        if not (run_dir / "config.yaml").is_file():
            raise CheckpointError(f"{run_dir} is not a run directory (no config.yaml)")
        base = read_config_dict(run_dir / "config.yaml")
        if args.config:
            base = read_config_dict(args.config)
        cfg = config_from_dict(apply_config_overrides(base, args.overrides))
        config_path = None
    else:
        config_path = Path(args.config)
        cfg = load_train_config(config_path, args.overrides)
        run_dir = None
    dist_info = init_distributed(cfg.device)
    if run_dir is None:
        run_dir = broadcast_object(_make_run_dir(cfg, config_path) if dist_info.is_main else None)
    handlers = _setup_logging(run_dir, dist_info.is_main, args.verbose)
    try:
        trainer = Trainer(cfg, run_dir, dist_info, show_progress=not args.no_progress)
        if args.resume:
            trainer.resume_from(run_dir / "last.pt")
            if trainer.finished():
                p = trainer.progress
                extend = []
                if p.epoch >= cfg.schedule.epochs:
                    extend.append(f"schedule.epochs={cfg.schedule.epochs + max(1, cfg.schedule.epochs // 2)}")
                if cfg.max_steps and p.global_step >= cfg.max_steps:
                    extend.append(f"max_steps={cfg.max_steps * 2}")
                raise ConfigError(
                    f"run {run_dir} already finished (epoch {p.epoch}/{cfg.schedule.epochs}, "
                    f"{p.global_step} iterations); nothing to train. To train longer: "
                    f"sphmask-train --resume {run_dir} {' '.join(extend)}"
                )
        elif cfg.init_from:
            trainer.init_weights_from(resolve_checkpoint_path(cfg.init_from))
        if dist_info.is_main:
            save_train_config(cfg, run_dir / "config.yaml")
            LOG.info(
                "run %s: %s stage, %d training scenes/epoch, %d iterations/epoch x %d epochs, device %s, %d process(es)",
                run_dir, cfg.stage, len(trainer.train_set), trainer.steps_per_epoch, cfg.schedule.epochs,
                trainer.device, dist_info.world_size,
            )
        progress = trainer.fit()
        if dist_info.is_main:
            LOG.info("finished at epoch %d (%d iterations); best AP %s", progress.epoch, progress.global_step,
                     "n/a" if progress.best_epoch < 0 else f"{progress.best_ap:.4f} (epoch {progress.best_epoch + 1})")
        return progress
    finally:
        for h in handlers:
            LOG.removeHandler(h)
            h.close()


def main(argv: list[str] | None = None) -> int:
    from sphmask_core.checkpoint import CheckpointError

    from sphmask_core.data.errors import DatasetError

    args = parse_args(argv)
    try:
        run(args)
    except (ConfigError, DatasetNotFoundError, DatasetError, CheckpointError) as exc:
        print(f"sphmask-train: error: {exc}", file=sys.stderr)
        return 2
    except DivergedError as exc:
        print(f"sphmask-train: training stopped: {exc}", file=sys.stderr)
        return 3
    except TrainingInterrupted as exc:
        print(f"sphmask-train: {exc}", file=sys.stderr)
        return 0
    finally:
        if is_distributed():
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
