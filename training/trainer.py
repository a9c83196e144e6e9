"""`Trainer`: one training run (data, model, optimizer, schedule, checkpoints, validation).

Exact resume: a checkpoint holds model, optimizer (+ gradients accumulated so far and the AMP
scaler), schedule, epoch, iteration within the epoch, RNG states and the metrics history; the
data of an iteration is a pure function of (seed, epoch, index) (see training/datasets.py), so a
run stopped at any iteration and resumed trains on the same batches with the same states as a
run that never stopped.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from training.config import ConfigError, TrainConfig, config_to_dict, lr_at
from training.datasets import EpochBatchSampler, SceneDataset, build_dataset, build_loader
from training.distributed import DistInfo, all_true, barrier, broadcast_object, is_distributed, resolve_device
from training.metrics import MetricsHistory, open_tensorboard
from training.model_setup import batch_to, build_model, build_model_config
from training.rng import get_rng_state, seed_everything, set_rng_state
from training.validation import validate_model

LOG = logging.getLogger("sphmask.train")


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(Exception):
    """Ctrl-C (SIGINT) stopped the run after the iteration in progress; last.pt holds it."""

    def __init__(self, checkpoint: Path, progress: "Progress") -> None:
        self.checkpoint = checkpoint
        self.progress = progress
        super().__init__(
            f"interrupted at epoch {progress.epoch + 1} iteration {progress.step}; saved {checkpoint} "
            f"(continue with: sphmask-train --resume {checkpoint.parent})"
        )


@dataclass
class Progress:
    epoch: int = 0  # current epoch
    step: int = 0  # iterations done in the current epoch
    global_step: int = 0  # iterations done in the run
    best_ap: float = -math.inf
    best_epoch: int = -1


class Trainer:
    """One training run: builds data, model and optimizer, trains, validates, checkpoints."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        dist_info: DistInfo | None = None,
        model_factory: Callable[[Any], nn.Module] | None = None,
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
        self.model_cfg = model_cfg if model_cfg is not None else build_model_config(cfg)
        voxel = getattr(self.model_cfg, "voxel_size", None)
        self.train_set: SceneDataset = build_dataset(cfg.dataset, train=True, seed=cfg.seed, voxel_size=voxel)
        self.val_set: SceneDataset | None = (
            build_dataset(cfg.dataset, train=False, seed=cfg.seed) if cfg.val_every > 0 else None
        )
        seed_everything(cfg.seed + self.dist.rank)
        self.model_factory = model_factory or build_model
        self.model = self.model_factory(self.model_cfg).to(self.device)
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
        if is_distributed():
            from torch.nn.parallel import DistributedDataParallel

            self.ddp_model = DistributedDataParallel(
                TrainForward(self.model),
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                # the backbone stage leaves the query heads without gradients
                find_unused_parameters=True,
            )
        self.progress = Progress()
        self._interrupted = False  # set by Ctrl-C during fit()
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
        """Copy the weights whose names and shapes match (stage 2 from stage 1, fine-tuning).

        When the checkpoint's class list differs from this run's, the class-dependent layers
        (point-wise semantic head, query class head) keep their fresh initialisation even where
        the shapes happen to agree, and one line names them.
        """
        from sphmask_core.checkpoint import CheckpointError, load_checkpoint

        ckpt = load_checkpoint(path, map_location="cpu")
        own = self.model.state_dict()
        state = ckpt["model"]
        reinit: set[str] = set()
        theirs = ckpt.get("label_spec") or {}
        if list(theirs.get("semantic_names", [])) != list(self.model_cfg.labels.semantic_names) or int(
            theirs.get("label_shift", -1)
        ) != self.model_cfg.labels.label_shift:
            reinit = class_dependent_keys(self.model_cfg, self.model_factory) & set(own)
            LOG.info(
                "fine-tuning from %d to %d classes: re-initialised %s",
                len(theirs.get("semantic_names", [])), self.model_cfg.labels.n_semantic,
                ", ".join(sorted({k.rsplit(".", 1)[0] for k in reinit})) or "nothing",
            )
        usable = {
            k: v for k, v in state.items()
            if k in own and k not in reinit and tuple(own[k].shape) == tuple(v.shape)
        }
        wrong = sorted(k for k in state if k in own and k not in reinit and tuple(own[k].shape) != tuple(state[k].shape))
        if not usable:
            raise CheckpointError(f"checkpoint {path} shares no weights with this model config")
        own.update(usable)
        self.model.load_state_dict(own)
        LOG.info(
            "initialised %d/%d tensors from %s (%d class-dependent re-initialised, %d with another shape, "
            "%d not in the checkpoint)",
            len(usable), len(own), path, len(reinit), len(wrong), len(set(own) - set(state)),
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
        if not all_true(batch is not None, self.device):
            # every process must take part in DDP's gradient all-reduce or none may
            if is_update:
                self._optimizer_step()
            return {}
        batch = batch_to(batch, self.device)
        sync = nullcontext() if (is_update or not is_distributed()) else self.ddp_model.no_sync()
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else nullcontext()
        with sync:
            with autocast:
                out = _forward_train(self.ddp_model, batch, self.cfg.stage)
            loss = out["loss"]
            finite = all_true(bool(torch.isfinite(loss.detach()).all()), self.device)
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

    def finished(self) -> bool:
        """The run has reached its `schedule.epochs` or its `max_steps`."""
        p, cfg = self.progress, self.cfg
        return p.epoch >= cfg.schedule.epochs or bool(cfg.max_steps and p.global_step >= cfg.max_steps)

    def _on_sigint(self, _signum: int, _frame: Any) -> None:
        if self._interrupted:  # a second Ctrl-C: stop now, without saving
            raise KeyboardInterrupt
        self._interrupted = True
        if self.dist.is_main:
            LOG.info("Ctrl-C: stopping after this iteration and saving last.pt (Ctrl-C again to abort)")

    def _stop_requested(self) -> bool:
        # every DDP process must stop at the same iteration
        return not all_true(not self._interrupted, self.device)

    def fit(self) -> Progress:
        """Train to the end; raises TrainingInterrupted (after saving last.pt) on Ctrl-C."""
        import signal
        import threading

        cfg = self.cfg
        if self.dist.is_main:
            self.tb = open_tensorboard(self.run_dir)
        p = self.progress
        self._interrupted = False
        # SIGINT is deferred to an iteration boundary so that last.pt is a consistent state
        installed, previous = False, None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
            installed = True
        try:
            while p.epoch < cfg.schedule.epochs:
                if cfg.max_steps and p.global_step >= cfg.max_steps:
                    break
                stopped = self._train_epoch()
                if stopped == "interrupted":
                    barrier()
                    raise TrainingInterrupted(self.run_dir / "last.pt", p)
                if stopped:
                    break
                self._end_of_epoch()
            if cfg.max_steps and p.global_step >= cfg.max_steps:
                LOG.info("max_steps=%d reached at epoch %d iteration %d", cfg.max_steps, p.epoch, p.step)
        finally:
            if installed:
                # None: the handler before was set outside Python; the default is the closest
                signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
            if self.tb is not None:
                self.tb.close()
        return p

    def _train_epoch(self) -> bool | str:
        """Train the rest of the current epoch; True when max_steps stopped the run,
        "interrupted" when Ctrl-C did (last.pt saved)."""
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
                if self._stop_requested():
                    if window:
                        self._log_train(window, lr)
                    if last_of_epoch:
                        self._end_of_epoch()
                    else:
                        self.save("last.pt")
                    return "interrupted"
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
        barrier()

    def _validate(self) -> dict[str, float] | None:
        metrics = None
        if self.dist.is_main:
            t0 = time.perf_counter()
            metrics = validate_model(self)
            row = {"epoch": self.progress.epoch, "global_step": self.progress.global_step,
                   "seconds": time.perf_counter() - t0, **metrics}
            self.history.add("val", row)
            self.history.write(self.run_dir)
            LOG.info("validation epoch %d: %s", self.progress.epoch + 1, _fmt_terms(metrics))
            if self.tb is not None:
                for k, v in metrics.items():
                    self.tb.add_scalar(f"val/{k}", v, self.progress.global_step)
        return broadcast_object(metrics)


def class_dependent_keys(model_cfg: Any, factory: Callable[[Any], nn.Module] = build_model) -> set[str]:
    """State-dict keys whose shape follows the class list: found by building the model once
    more with one extra stuff and one extra instance class and comparing shapes."""
    import dataclasses

    from sphmask_core.data.scene import LabelSpec

    labels = model_cfg.labels
    names = list(labels.semantic_names)
    probe = LabelSpec(
        semantic_names=tuple(["__stuff__", *names[: labels.label_shift], *names[labels.label_shift :], "__thing__"]),
        label_shift=labels.label_shift + 1,
    )
    a = factory(model_cfg).state_dict()
    b = factory(dataclasses.replace(model_cfg, labels=probe)).state_dict()
    return {k for k in a if k in b and tuple(a[k].shape) != tuple(b[k].shape)}


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
