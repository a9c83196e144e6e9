"""Distributed data parallel on the CPU: two gloo processes == one process with the same data.

With B scenes per process and the loss a mean over scenes, two ranks of batch B average their
gradients into exactly the gradient of one process with batch 2B over the union of their
scenes (the DistributedSampler shares of one epoch permutation), so weights and losses must
agree up to float summation order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sphmask_core.config import ModelConfig
from test_resume import ToyModel, toy_collate, _cfg  # tests/training is on sys.path under pytest
from training.distributed import DistInfo
from training.trainer import Trainer

STEPS = 3


def _deterministic_toy(_cfg: object = None) -> ToyModel:
    torch.manual_seed(123)  # identical initial weights in every process and in the reference
    model = ToyModel()
    model.net[2].p = 0.0  # no dropout: the reference run cannot reproduce per-rank masks
    return model


def _worker(rank: int, world: int, init_file: str, tmp: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        cfg = _cfg(Path(tmp), "ddp", max_steps=STEPS, batch_size=2, accumulate=1)
        run_dir = Path(tmp) / "ddp"
        run_dir.mkdir(parents=True, exist_ok=True)
        trainer = Trainer(cfg, run_dir, DistInfo(rank, world, rank), model_factory=_deterministic_toy,
                          collate_fn=toy_collate, show_progress=False, model_cfg=ModelConfig())
        assert isinstance(trainer.ddp_model, torch.nn.parallel.DistributedDataParallel)
        trainer.fit()
        torch.save(
            {"state": trainer.model.state_dict(), "loss": [r["loss"] for r in trainer.history.rows["train"]]},
            Path(tmp) / f"rank{rank}.pt",
        )
        # the real model, full stage (query heads unused on a rank without queries must not hang)
        torch.manual_seed(0)
        real_cfg = _cfg(Path(tmp), "ddp_real", max_steps=1, batch_size=1, stage="full")
        (Path(tmp) / "ddp_real").mkdir(exist_ok=True)
        real = Trainer(real_cfg, Path(tmp) / "ddp_real", DistInfo(rank, world, rank), show_progress=False)
        real.fit()
        # parameters only: BN running statistics are rank 0's broadcast at each forward, then
        # updated by each rank's own batch (standard DDP; only rank 0's are saved)
        params = {k: v.detach() for k, v in real.model.named_parameters()}
        torch.save({"state": params, "loss": [r["loss"] for r in real.history.rows["train"]]},
                   Path(tmp) / f"real{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_single_process(tmp_path: Path) -> None:
    init_file = tmp_path / "dist_init"
    mp.spawn(_worker, args=(2, str(init_file), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # DDP keeps the replicas identical
    for k in r0["state"]:
        torch.testing.assert_close(r0["state"][k], r1["state"][k], rtol=0, atol=0)
    # only rank 0 writes the run directory
    assert (tmp_path / "ddp" / "last.pt").is_file()
    assert (tmp_path / "ddp" / "metrics.json").is_file()

    cfg = _cfg(tmp_path, "single", max_steps=STEPS, batch_size=4, accumulate=1)
    (tmp_path / "single").mkdir()
    single = Trainer(cfg, tmp_path / "single", model_factory=_deterministic_toy, collate_fn=toy_collate,
                     show_progress=False, model_cfg=ModelConfig())
    initial = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.fit()
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(r0["state"][k], v, rtol=1e-5, atol=1e-6)
        assert not torch.equal(initial[k], v)
    real0 = torch.load(tmp_path / "real0.pt", weights_only=True)
    real1 = torch.load(tmp_path / "real1.pt", weights_only=True)
    assert real0["loss"] and all(torch.isfinite(torch.tensor(real0["loss"] + real1["loss"])))
    for k in real0["state"]:
        torch.testing.assert_close(real0["state"][k], real1["state"][k], rtol=0, atol=0, msg=k)

    single_loss = [r["loss"] for r in single.history.rows["train"]]
    ddp_loss = [(a + b) / 2 for a, b in zip(r0["loss"], r1["loss"])]
    assert len(single_loss) == STEPS
    assert ddp_loss == pytest.approx(single_loss, rel=1e-5)
