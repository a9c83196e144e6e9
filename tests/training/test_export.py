"""training.export: a slim deployable checkpoint that predicts exactly like the training one."""

from __future__ import annotations

import torch

from sphmask_core.checkpoint import build_model_from_checkpoint, load_checkpoint, save_checkpoint
from sphmask_core.config import load_model_config
from sphmask_core.model.spherical_mask import SphericalMask
from training.export import main


def test_export_drops_training_state_and_keeps_weights(tmp_path):
    torch.manual_seed(0)
    cfg = load_model_config("small")
    model = SphericalMask(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()  # non-empty optimizer state
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "last.pt", model, cfg, cfg.class_names, cfg.labels,
                    optimizer=opt.state_dict(), epoch=7, step=3,
                    train_config={"dataset": {"name": "synthetic", "synthetic": {"density": 400.0}}},
                    metrics={"train": [], "val": [{"epoch": 6, "AP": 0.5}]})
    out = tmp_path / "deploy.pt"
    assert main([str(run), str(out)]) == 0
    slim = load_checkpoint(out)
    assert "optimizer" not in slim and slim["metrics"]["epoch"] == 7
    assert slim["train_config"]["dataset"]["synthetic"] == {"density": 400.0}
    assert slim["metrics"]["validation"] == [{"epoch": 6, "AP": 0.5}]
    assert out.stat().st_size < (run / "last.pt").stat().st_size
    exported, _, _ = build_model_from_checkpoint(out)
    for (name, a), (_, b) in zip(model.state_dict().items(), exported.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_export_of_a_missing_run_fails_with_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nothing"), str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("export:")
