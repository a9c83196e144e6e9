"""Exact resume: N iterations straight == N/2, stop, resume, N/2 more (weights, optimizer, history)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sphmask_core.config import ModelConfig
from training.config import config_from_dict
from training.datasets import EpochBatchSampler
from training.trainer import Trainer

TINY_SYNTHETIC = {"density": 30.0, "room_size_range": [3.0, 4.0], "n_objects_range": [2, 4], "n_viewpoints": 2}


@dataclass
class ToyBatch:
    feats: torch.Tensor  # (N, 6) xyz + rgb
    target: torch.Tensor  # (N,) float, semantic id
    offsets: torch.Tensor  # (B + 1,)


def toy_collate(scenes: list) -> ToyBatch:
    feats = [np.concatenate([s.xyz, s.rgb], axis=1) for s in scenes]
    counts = [0] + [len(f) for f in feats]
    return ToyBatch(
        feats=torch.from_numpy(np.concatenate(feats)).float(),
        target=torch.from_numpy(np.concatenate([np.maximum(s.semantic, 0) for s in scenes])).float(),
        offsets=torch.tensor(np.cumsum(counts), dtype=torch.int64),
    )


class ToyModel(nn.Module):
    """Point-wise MLP regression; dropout makes the result depend on the torch RNG state."""

    def __init__(self, _cfg: object = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward_train(self, batch: ToyBatch, stage: str = "full") -> dict[str, torch.Tensor]:
        err = (self.net(batch.feats).squeeze(1) - batch.target) ** 2  # (N,)
        off = batch.offsets
        per_scene = torch.stack([err[off[i] : off[i + 1]].mean() for i in range(len(off) - 1)])  # (B,)
        loss = per_scene.mean()
        return {"loss": loss, "loss_mse": loss.detach()}


def _cfg(tmp_path: Path, name: str, **extra: object) -> object:
    data = {
        "dataset": {"name": "synthetic", "train_seeds": [0, 8], "val_seeds": [50, 51], "augment": False,
                    "subsample": 0.5, "synthetic": TINY_SYNTHETIC},
        "batch_size": 2, "accumulate": 2, "val_every": 0, "num_workers": 0, "save_every": 0,
        "schedule": {"epochs": 3, "step_epoch": 1, "min_lr": 1e-5}, "optim": {"lr": 1e-2},
        "checkpoint_dir": str(tmp_path), "run_name": name, "log_every": 1, "device": "cpu", "seed": 7,
    }
    data.update(extra)
    return config_from_dict(data)


def _trainer(cfg: object, run_dir: Path) -> Trainer:
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, run_dir, model_factory=ToyModel, collate_fn=toy_collate, show_progress=False,
                   model_cfg=ModelConfig())


def test_sampler_order_is_reproducible_and_resumable() -> None:
    full = list(EpochBatchSampler(10, 3, epoch=2, seed=5))
    assert len(full) == 3 and all(len(b) == 3 for b in full)
    assert list(EpochBatchSampler(10, 3, epoch=2, seed=5, start_batch=1)) == full[1:]
    assert full != list(EpochBatchSampler(10, 3, epoch=3, seed=5))
    ranks = [list(EpochBatchSampler(10, 2, epoch=2, seed=5, world_size=2, rank=r)) for r in range(2)]
    single = list(EpochBatchSampler(10, 4, epoch=2, seed=5))
    for k, batch in enumerate(single):
        assert sorted(batch) == sorted(ranks[0][k] + ranks[1][k])


@pytest.mark.parametrize("stop_at", [3, 4, 5])  # mid-accumulation, end of epoch 0, mid epoch 1
def test_resume_matches_straight_run(tmp_path: Path, stop_at: int) -> None:
    total = 8  # 4 iterations per epoch (8 scenes, batch 2): crosses an epoch boundary
    straight = _trainer(_cfg(tmp_path, "straight", max_steps=total), tmp_path / "straight")
    initial = {k: v.clone() for k, v in straight.model.state_dict().items()}
    straight.fit()

    first = _trainer(_cfg(tmp_path, "resumed", max_steps=stop_at), tmp_path / "resumed")
    first.fit()
    assert (tmp_path / "resumed" / "last.pt").is_file()
    second = _trainer(_cfg(tmp_path, "resumed", max_steps=total), tmp_path / "resumed")
    second.resume_from(tmp_path / "resumed" / "last.pt")
    assert second.progress.global_step == stop_at
    second.fit()

    assert second.progress.global_step == straight.progress.global_step == total
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), second.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    sa, sb = straight.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    for k in sa:
        torch.testing.assert_close(sa[k]["exp_avg"], sb[k]["exp_avg"], rtol=0, atol=0)
    losses_a = [r["loss"] for r in straight.history.rows["train"]]
    losses_b = [r["loss"] for r in second.history.rows["train"]]
    assert losses_a == losses_b and len(losses_a) == total
    # training actually moved the weights, so equality above is not vacuous
    assert all(not torch.equal(initial[k], v) for k, v in straight.model.state_dict().items())


def test_resume_diverges_without_rng_restore(tmp_path: Path) -> None:
    """Guards the test above: dropping the RNG state must change the result."""
    straight = _trainer(_cfg(tmp_path, "s", max_steps=4), tmp_path / "s")
    straight.fit()
    first = _trainer(_cfg(tmp_path, "r", max_steps=2), tmp_path / "r")
    first.fit()
    second = _trainer(_cfg(tmp_path, "r", max_steps=4), tmp_path / "r")
    second.resume_from(tmp_path / "r" / "last.pt")
    torch.manual_seed(12345)  # clobber the restored RNG
    second.fit()
    w_a = straight.model.net[0].weight
    w_b = second.model.net[0].weight
    assert not torch.equal(w_a, w_b)
