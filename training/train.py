"""`sphmask-train CONFIG.yaml [key=value ...]` and `sphmask-train --resume RUN_DIR [key=value ...]`.

A run directory holds: config.yaml (the resolved config), train.log, last.pt (saved every
`save_every` iterations and at each epoch end), best.pt (best validation AP), metrics.json and
train_metrics.csv / val_metrics.csv (the metrics history), and TensorBoard events when
`torch.utils.tensorboard` is importable.

Exact resume: a checkpoint holds model, optimizer (+ gradients accumulated so far and the AMP
scaler), schedule, epoch, iteration within the epoch, RNG states and the metrics history; the
data of an iteration is a pure function of (seed, epoch, index) (see training/datasets.py), so a
run stopped at any iteration and resumed trains on the same batches with the same states as a
run that never stopped.

Distributed: launch with `torchrun --nproc_per_node=N -m training.train CONFIG.yaml`; NCCL on
GPUs, gloo on CPUs, each process takes its DistributedSampler share, only rank 0 writes files.

Exit codes: 0 done, 2 bad input (config key, dataset folder, checkpoint), 3 the loss diverged.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from training.config import (
    ConfigError,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_train_config,
    lr_at,
    read_config_dict,
    apply_overrides as apply_config_overrides,
    save_train_config,
)
from training.datasets import DatasetNotFoundError, EpochBatchSampler, SceneDataset, build_dataset, build_loader

LOG = logging.getLogger("sphmask.train")


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


# ---------------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> DistInfo:
    """Join the process group torchrun describes in the environment; single process otherwise.

    A group initialised by the caller (tests spawn processes themselves) is used as it is.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    use_cuda = torch.cuda.is_available() and device_pref != "cpu"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def resolve_device(pref: str, dist_info: DistInfo) -> torch.device:
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("config key 'device' asks for cuda but no CUDA device is available")
        return torch.device("cuda", dist_info.local_rank)
    return torch.device(pref)


def _broadcast_object(obj: Any) -> Any:
    if not _distributed():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _all_true(flag: bool, device: torch.device) -> bool:
    if not _distributed():
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def _barrier() -> None:
    if _distributed():
        import torch.distributed as dist

        dist.barrier()


# ---------------------------------------------------------------------------------- RNG states


def get_rng_state() -> dict[str, Any]:
    """All global RNG states as weights_only-loadable values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_state[0]), "state": [int(v) for v in py_state[1]]},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    npst = state["numpy"]
    np.random.set_state(
        ("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), None))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------- model glue


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


# ---------------------------------------------------------------------------------- metrics


class MetricsHistory:
    """Training / validation rows, kept in the checkpoint and mirrored to JSON and CSV files."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
        if rows:
            for kind in self.rows:
                self.rows[kind] = [dict(r) for r in rows.get(kind, [])]

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.rows[kind].append(row)

    def state(self) -> dict[str, list[dict[str, Any]]]:
        return {k: [dict(r) for r in v] for k, v in self.rows.items()}

    def write(self, run_dir: Path) -> None:
        tmp = run_dir / "metrics.json.tmp"
        tmp.write_text(json.dumps(self.rows, indent=1))
        os.replace(tmp, run_dir / "metrics.json")
        for kind, rows in self.rows.items():
            columns: list[str] = []
            for row in rows:
                columns.extend(k for k in row if k not in columns)
            with (run_dir / f"{kind}_metrics.csv").open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)


def open_tensorboard(run_dir: Path) -> Any:
    """A SummaryWriter when TensorBoard is installed, else None (with a one-line notice)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        LOG.info("TensorBoard is not installed; metrics go to metrics.json and *_metrics.csv only")
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


# ---------------------------------------------------------------------------------- trainer


@dataclass
class Progress:
    epoch: int = 0  # current epoch
    step: int = 0  # iterations done in the current epoch
    global_step: int = 0  # iterations done in the run
    best_ap: float = -math.inf
    best_epoch: int = -1


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or a run directory (its best.pt, else last.pt)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        from sphmask_core.checkpoint import CheckpointError

        raise CheckpointError(f"run directory {p} holds neither best.pt nor last.pt")
    return p


class Trainer:
    """One training run: builds data, model and optimizer, trains, validates, checkpoints."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        dist_info: DistInfo | None = None,
        model_factory: Callable[[Any], nn.Module] | None = None,
        validate_fn: Callable[["Trainer"], dict[str, float]] | None = None,
        collate_fn: Callable | None = None,
        show_progress: bool = True,
        model_cfg: Any | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = dist_info or DistInfo()
        self.device = resolve_device(cfg.device, self.dist)
        self.show_progress = show_progress and self.dist.is_main
        self.collate_fn = collate_fn
        self.validate_fn = validate_fn or validate_model
        self.model_cfg = model_cfg if model_cfg is not None else build_model_config(cfg)
        voxel = getattr(self.model_cfg, "voxel_size", None)
        self.train_set: SceneDataset = build_dataset(cfg.dataset, train=True, seed=cfg.seed, voxel_size=voxel)
        self.val_set: SceneDataset | None = (
            build_dataset(cfg.dataset, train=False, seed=cfg.seed) if cfg.val_every > 0 else None
        )
        seed_everything(cfg.seed + self.dist.rank)
        self.model = (model_factory or build_model)(self.model_cfg).to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.optim.lr,
            betas=tuple(cfg.optim.betas),
            weight_decay=cfg.optim.weight_decay,
        )
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        if cfg.amp and not self.use_amp:
            LOG.info("amp=true needs a CUDA device; training in fp32 on %s", self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ddp_model: nn.Module = self.model
        if _distributed():
            from torch.nn.parallel import DistributedDataParallel

            self.ddp_model = DistributedDataParallel(
                TrainForward(self.model),
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                # the backbone stage leaves the query heads without gradients
                find_unused_parameters=True,
            )
        self.progress = Progress()
        self.history = MetricsHistory()
        self.tb = None
        self.steps_per_epoch = EpochBatchSampler(
            len(self.train_set), cfg.batch_size, 0, cfg.seed, True, cfg.drop_last, self.dist.world_size, self.dist.rank
        ).num_batches()
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"the training split has {len(self.train_set)} scenes per epoch, fewer than "
                f"batch_size={cfg.batch_size} x {self.dist.world_size} process(es); lower batch_size"
            )

    # ------------------------------------------------------------------ checkpoints

    def _class_names(self) -> list[str]:
        return list(self.model_cfg.class_names)

    def training_state(self) -> dict[str, Any]:
        pending = {
            name: p.grad.detach().cpu().clone()
            for name, p in self.model.named_parameters()
            if p.grad is not None
        }
        return {
            "optimizer": {
                "state": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "pending_grads": pending,
            },
            "scheduler": {
                "kind": "constant_then_cosine",
                "base_lr": self.cfg.optim.lr,
                "step_epoch": self.cfg.schedule.step_epoch,
                "epochs": self.cfg.schedule.epochs,
                "min_lr": self.cfg.schedule.min_lr,
                "last_lr": self.optimizer.param_groups[0]["lr"],
            },
            "epoch": self.progress.epoch,
            "step": self.progress.step,
            "rng": {
                "global": get_rng_state(),
                "global_step": self.progress.global_step,
                "best_ap": self.progress.best_ap,
                "best_epoch": self.progress.best_epoch,
            },
            "train_config": config_to_dict(self.cfg),
            "metrics": self.history.state(),
        }

    def save(self, name: str) -> Path | None:
        if not self.dist.is_main:
            return None
        from sphmask_core.checkpoint import save_checkpoint

        return save_checkpoint(
            self.run_dir / name, self.model, self.model_cfg, self._class_names(), self.model_cfg.labels,
            **self.training_state(),
        )

    def resume_from(self, path: Path) -> None:
        """Restore everything a checkpoint holds; the model config must be the same."""
        from sphmask_core.checkpoint import CheckpointError, load_checkpoint, load_model_weights

        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt["model_config"] != self.model_cfg.to_dict():
            key = _first_difference(ckpt["model_config"], self.model_cfg.to_dict())
            raise CheckpointError(
                f"checkpoint {path} was trained with a different model config (first difference at '{key}')"
            )
        missing = [k for k in ("optimizer", "epoch", "step", "rng") if k not in ckpt]
        if missing:
            raise CheckpointError(f"checkpoint {path} has no training state ({missing}); use init_from instead")
        load_model_weights(self.model, ckpt["model"], path)
        opt = ckpt["optimizer"]
        try:
            self.optimizer.load_state_dict(opt["state"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"optimizer state in {path} does not fit this model: {exc}") from None
        self.scaler.load_state_dict(opt["scaler"])
        params = dict(self.model.named_parameters())
        for name, grad in opt.get("pending_grads", {}).items():
            params[name].grad = grad.to(self.device)
        rng = ckpt["rng"]
        set_rng_state(rng["global"])
        self.progress = Progress(
            epoch=int(ckpt["epoch"]),
            step=int(ckpt["step"]),
            global_step=int(rng["global_step"]),
            best_ap=float(rng["best_ap"]),
            best_epoch=int(rng["best_epoch"]),
        )
        self.history = MetricsHistory(ckpt.get("metrics"))
        LOG.info("resumed from %s at epoch %d, iteration %d", path, self.progress.epoch, self.progress.step)

    def init_weights_from(self, path: Path) -> None:
        """Copy the weights whose names and shapes match (stage 2 from stage 1, fine-tuning)."""
        from sphmask_core.checkpoint import CheckpointError, load_checkpoint

        ckpt = load_checkpoint(path, map_location="cpu")
        own = self.model.state_dict()
        state = ckpt["model"]
        usable = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
        wrong = sorted(k for k in state if k in own and tuple(own[k].shape) != tuple(state[k].shape))
        if not usable:
            raise CheckpointError(f"checkpoint {path} shares no weights with this model config")
        own.update(usable)
        self.model.load_state_dict(own)
        LOG.info(
            "initialised %d/%d tensors from %s (%d with another shape, %d not in the checkpoint)",
            len(usable), len(own), path, len(wrong), len(set(own) - set(state)),
        )

    # ------------------------------------------------------------------ training

    def set_lr(self, fractional_epoch: float) -> float:
        lr = lr_at(self.cfg.schedule, self.cfg.optim.lr, fractional_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _optimizer_step(self) -> None:
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def train_iteration(self, batch: Any, is_update: bool) -> dict[str, float]:
        """Forward + backward of one batch; an optimizer update when `is_update`.

        `batch` is None when augmentation dropped every scene of it: nothing to learn from, but
        the iteration still counts (the data order stays a function of the position in the run).
        """
        self.ddp_model.train()
        if not _all_true(batch is not None, self.device):
            # every process must take part in DDP's gradient all-reduce or none may
            if is_update:
                self._optimizer_step()
            return {}
        batch = batch_to(batch, self.device)
        sync = nullcontext() if (is_update or not _distributed()) else self.ddp_model.no_sync()
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else nullcontext()
        with sync:
            with autocast:
                out = _forward_train(self.ddp_model, batch, self.cfg.stage)
            loss = out["loss"]
            finite = _all_true(bool(torch.isfinite(loss.detach()).all()), self.device)
            if not finite:
                terms = {k: float(v) for k, v in out.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
                raise DivergedError(
                    f"loss became {float(loss)} at epoch {self.progress.epoch} iteration {self.progress.step} "
                    f"(terms: {_fmt_terms(terms)}); last good checkpoint: {self.run_dir / 'last.pt'}"
                )
            self.scaler.scale(loss / self.cfg.accumulate).backward()
        if is_update:
            self._optimizer_step()
        return {k: float(v.detach()) for k, v in out.items() if isinstance(v, torch.Tensor) and v.numel() == 1}

    def fit(self) -> Progress:
        cfg = self.cfg
        if self.dist.is_main:
            self.tb = open_tensorboard(self.run_dir)
        p = self.progress
        try:
            while p.epoch < cfg.schedule.epochs:
                if cfg.max_steps and p.global_step >= cfg.max_steps:
                    break
                stopped = self._train_epoch()
                if stopped:
                    break
                self._end_of_epoch()
            if cfg.max_steps and p.global_step >= cfg.max_steps:
                LOG.info("max_steps=%d reached at epoch %d iteration %d", cfg.max_steps, p.epoch, p.step)
        finally:
            if self.tb is not None:
                self.tb.close()
        return p

    def _train_epoch(self) -> bool:
        """Train the rest of the current epoch; True when max_steps stopped the run."""
        cfg, p = self.cfg, self.progress
        sampler = EpochBatchSampler(
            len(self.train_set), cfg.batch_size, p.epoch, cfg.seed, True, cfg.drop_last,
            self.dist.world_size, self.dist.rank, start_batch=p.step,
        )
        loader = build_loader(self.train_set, sampler, cfg.num_workers, self.collate_fn)
        bar = _progress_bar(self.show_progress, total=self.steps_per_epoch, initial=p.step, epoch=p.epoch,
                            epochs=cfg.schedule.epochs)
        t_last = time.perf_counter()
        window: list[dict[str, float]] = []
        try:
            for batch in loader:
                lr = self.set_lr(p.epoch + p.step / self.steps_per_epoch)
                last_of_epoch = p.step + 1 == self.steps_per_epoch
                is_update = (p.step + 1) % cfg.accumulate == 0 or last_of_epoch
                terms = self.train_iteration(batch, is_update)
                p.step += 1
                p.global_step += 1
                now = time.perf_counter()
                terms["sec_per_iter"] = now - t_last
                t_last = now
                if "loss" in terms:
                    window.append(terms)
                if bar is not None:
                    bar.update(1)
                    if "loss" in terms:
                        bar.set_postfix(loss=f"{terms['loss']:.3f}", lr=f"{lr:.2e}")
                if window and (p.global_step % cfg.log_every == 0 or last_of_epoch):
                    self._log_train(window, lr)
                    window = []
                # at an epoch's end the epoch is completed first (validation, checkpoint)
                if cfg.max_steps and p.global_step >= cfg.max_steps and not last_of_epoch:
                    if window:
                        self._log_train(window, lr)
                    self.save("last.pt")
                    return True
                if cfg.save_every and p.step % cfg.save_every == 0 and not last_of_epoch:
                    self.save("last.pt")
        finally:
            if bar is not None:
                bar.close()
        return False

    def _log_train(self, window: list[dict[str, float]], lr: float) -> None:
        p = self.progress
        mean = {k: float(np.mean([w[k] for w in window if k in w])) for k in window[-1]}
        row = {"epoch": p.epoch, "step": p.step, "global_step": p.global_step, "lr": lr, **mean}
        self.history.add("train", row)
        if self.dist.is_main:
            self.history.write(self.run_dir)
            LOG.debug("train %s", _fmt_terms(row))
            if self.tb is not None:
                for k, v in mean.items():
                    self.tb.add_scalar(f"train/{k}", v, p.global_step)
                self.tb.add_scalar("train/lr", lr, p.global_step)

    def _end_of_epoch(self) -> None:
        cfg, p = self.cfg, self.progress
        finished = p.epoch
        last_train = self.history.rows["train"][-1] if self.history.rows["train"] else {}
        LOG.info("epoch %d/%d done: loss %.4f", finished + 1, cfg.schedule.epochs, last_train.get("loss", float("nan")))
        metrics = None
        if cfg.val_every and (finished + 1) % cfg.val_every == 0 and self.val_set is not None:
            metrics = self._validate()
        p.epoch += 1
        p.step = 0
        improved = False
        if metrics is not None:
            ap = metrics["AP"]
            if not math.isnan(ap) and ap > p.best_ap:
                p.best_ap, p.best_epoch = ap, finished
                improved = True
        self.save("last.pt")
        if improved and self.dist.is_main:
            self.save("best.pt")
            LOG.info("new best AP %.4f at epoch %d -> best.pt", p.best_ap, finished + 1)
        _barrier()

    def _validate(self) -> dict[str, float] | None:
        metrics = None
        if self.dist.is_main:
            t0 = time.perf_counter()
            metrics = self.validate_fn(self)
            row = {"epoch": self.progress.epoch, "global_step": self.progress.global_step,
                   "seconds": time.perf_counter() - t0, **metrics}
            self.history.add("val", row)
            self.history.write(self.run_dir)
            LOG.info("validation epoch %d: %s", self.progress.epoch + 1, _fmt_terms(metrics))
            if self.tb is not None:
                for k, v in metrics.items():
                    self.tb.add_scalar(f"val/{k}", v, self.progress.global_step)
        return _broadcast_object(metrics)


class TrainForward(nn.Module):
    """Makes `forward_train` the forward of a module, which is the call DDP synchronises."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, stage: str) -> dict[str, torch.Tensor]:
        return self.model.forward_train(batch, stage=stage)


def _forward_train(model: nn.Module, batch: Any, stage: str) -> dict[str, torch.Tensor]:
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model(batch, stage=stage)
    return model.forward_train(batch, stage=stage)


def _fmt_terms(terms: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in terms.items())


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{prefix}{key}"
            if a[key] != b[key]:
                return _first_difference(a[key], b[key], f"{prefix}{key}.")
    return prefix.rstrip(".") or "<root>"


def _progress_bar(enabled: bool, total: int, initial: int, epoch: int, epochs: int) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{epochs}", unit="it", leave=False,
                dynamic_ncols=True)


# ---------------------------------------------------------------------------------- validation


def validate_model(trainer: Trainer) -> dict[str, float]:
    """Benchmark-exact AP / AP50 / AP25 of the current model on the validation split.

    Inference goes through `Segmenter` with the in-memory model, so validation sees exactly the
    post-processing (NMS, superpoint refinement, size filters) that deployment uses.
    """
    from sphmask_core.evaluation.scannet_eval import ScanNetEvaluator, gt_ids_from_labels, pred_instances_from_masks
    from sphmask_core.inference.segmenter import Segmenter

    cfg = trainer.cfg
    labels = trainer.model_cfg.labels
    names = list(labels.instance_names)
    evaluator = ScanNetEvaluator(names, list(range(1, len(names) + 1)), min_region_size=cfg.val_min_region_size)
    n = len(trainer.val_set)
    if cfg.val_max_scenes:
        n = min(n, cfg.val_max_scenes)
    segmenter = Segmenter(trainer.model, trainer.model_cfg, device=trainer.device)
    try:
        for i in range(n):
            scene = trainer.val_set[i]
            inst = segmenter(scene.xyz, scene.rgb, scene.superpoint)
            gt = gt_ids_from_labels(scene.semantic, scene.instance, labels.label_shift)
            evaluator.add_scene(gt, pred_instances_from_masks(inst.masks, inst.class_ids, inst.scores, len(scene.xyz)))
    finally:
        trainer.model.train()
    res = evaluator.result()
    return {"AP": res["AP"], "AP50": res["AP50"], "AP25": res["AP25"]}


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


def run(args: argparse.Namespace, model_factory: Callable | None = None) -> Progress:
    """Everything `main` does, raising instead of returning an exit code."""
    from sphmask_core.checkpoint import CheckpointError

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
        run_dir = _broadcast_object(_make_run_dir(cfg, config_path) if dist_info.is_main else None)
    handlers = _setup_logging(run_dir, dist_info.is_main, args.verbose)
    try:
        trainer = Trainer(cfg, run_dir, dist_info, model_factory=model_factory, show_progress=not args.no_progress)
        if args.resume:
            trainer.resume_from(run_dir / "last.pt")
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
    finally:
        if _distributed():
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
