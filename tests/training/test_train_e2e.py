"""End to end on the CPU: both training stages on tiny generated rooms, resume, validation with
the benchmark evaluator, sphmask-predict, and the command-line error paths (exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sphmask_core.checkpoint import load_checkpoint
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from training import predict, train, trainer

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
TINY = [
    "dataset.synthetic={density: 30.0, room_size_range: [3.0, 4.0], n_objects_range: [2, 4]}",
    "dataset.train_seeds=[0, 2]",
    "dataset.val_seeds=[900, 901]",
    "dataset.augment_cfg.min_points=100",
    "batch_size=2",
    "num_workers=0",
    "save_every=1",
    "val_min_region_size=10",
]


def _train(tmp_path: Path, *args: str) -> int:
    return train.main([*args, f"checkpoint_dir={tmp_path}", "--no-progress"])


def test_two_stages_resume_validate_predict(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = _train(tmp_path, str(CONFIGS / "synthetic_small_backbone.yaml"), *TINY, "run_name=bb", "max_steps=2")
    assert rc == 0
    bb = load_checkpoint(tmp_path / "bb" / "last.pt")
    assert (bb["epoch"], bb["step"]) == (2, 0)  # 2 scenes / batch 2 = one iteration per epoch
    rows = json.loads((tmp_path / "bb" / "metrics.json").read_text())["train"]
    assert [r["epoch"] for r in rows] == [0, 1] and all(np.isfinite(r["loss"]) for r in rows)
    assert (tmp_path / "bb" / "train_metrics.csv").read_text().startswith("epoch,step,global_step,lr")
    assert (tmp_path / "bb" / "config.yaml").is_file() and (tmp_path / "bb" / "train.log").is_file()

    # stage B from stage A's weights, one scene per iteration, stopped after one (mid-epoch)
    full_args = [*TINY, "batch_size=1", "run_name=full", f"init_from={tmp_path / 'bb'}", "val_every=1",
                 "val_max_scenes=1"]
    rc = _train(tmp_path, str(CONFIGS / "synthetic_small_full.yaml"), *full_args, "max_steps=1")
    assert rc == 0
    mid = load_checkpoint(tmp_path / "full" / "last.pt")
    assert (mid["epoch"], mid["step"]) == (0, 1)
    # stage A weights were the starting point: an untouched tensor still equals the stage A one
    same = [k for k in bb["model"] if torch.equal(bb["model"][k], mid["model"][k])]
    assert same, "init_from loaded nothing"

    # resume finishes the epoch, validates and keeps best.pt
    rc = _train(tmp_path, "--resume", str(tmp_path / "full"), "max_steps=2")
    assert rc == 0
    end = load_checkpoint(tmp_path / "full" / "last.pt")
    assert (end["epoch"], end["step"]) == (1, 0)
    val = json.loads((tmp_path / "full" / "metrics.json").read_text())["val"]
    assert len(val) == 1 and 0.0 <= val[0]["AP"] <= 1.0 and 0.0 <= val[0]["AP25"] <= 1.0
    assert (tmp_path / "full" / "best.pt").is_file()
    assert [r["global_step"] for r in end["metrics"]["train"]] == [1, 2]

    # sphmask-predict on a folder of clouds (.npy with colour, .txt without)
    clouds = tmp_path / "clouds"
    clouds.mkdir()
    scene = generate_scene(77, SyntheticConfig(density=30.0, room_size_range=(3.0, 4.0), n_objects_range=(2, 4)))
    np.save(clouds / "room.npy", np.concatenate([scene.xyz, (scene.rgb + 1.0) * 127.5], axis=1))
    np.savetxt(clouds / "bare.txt", scene.xyz[::2])
    out = tmp_path / "pred"
    assert predict.main(["--checkpoint", str(tmp_path / "full"), "--input", str(clouds), "--out", str(out),
                         "--device", "cpu"]) == 0
    for name in ("room", "bare"):
        assert (out / "pred" / f"{name}.txt").is_file()
        assert (out / "render" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "label_ids" in (out / "classes.yaml").read_text()

    # and on the synthetic validation split, with GT files and the evaluator's numbers
    out2 = tmp_path / "pred_val"
    assert predict.main(["--checkpoint", str(tmp_path / "full" / "best.pt"), "--dataset", "synthetic",
                         "--out", str(out2), "--device", "cpu", "--no-render", "--min-region-size", "10"]) == 0
    metrics = json.loads((out2 / "metrics.json").read_text())
    assert metrics["scenes"] == 1 and 0.0 <= metrics["AP"] <= 1.0
    assert len((out2 / "gt" / "synthetic_000900.txt").read_text().split()) == len(generate_scene(
        900, SyntheticConfig(density=30.0, room_size_range=(3.0, 4.0), n_objects_range=(2, 4))).xyz)


def test_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = str(CONFIGS / "synthetic_small_backbone.yaml")
    assert _train(tmp_path, cfg, "optim.learning_rate=1") == 2
    assert "unknown config key 'optim.learning_rate'" in capsys.readouterr().err
    assert _train(tmp_path, cfg, "dataset.name=scannet", f"dataset.root={tmp_path / 'nowhere'}") == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert _train(tmp_path, cfg, *TINY, "run_name=x", f"init_from={tmp_path / 'missing.pt'}") == 2
    assert "checkpoint file not found" in capsys.readouterr().err
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert _train(tmp_path, cfg, *TINY, "run_name=y", f"init_from={bogus}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bogus.pt" in err
    assert predict.main(["--checkpoint", str(bogus), "--input", str(tmp_path), "--out", str(tmp_path / "o")]) == 2


class _Exploding(nn.Module):
    """Finite loss for two iterations, NaN afterwards."""

    def __init__(self, _cfg: object = None) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)
        self.calls = 0

    def forward_train(self, batch: object, stage: str = "full") -> dict[str, torch.Tensor]:
        self.calls += 1
        loss = self.lin(batch.xyz).pow(2).mean()
        if self.calls > 2:
            loss = loss * float("nan")
        return {"loss": loss}


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(trainer, "build_model", _Exploding)
    cfg = str(CONFIGS / "synthetic_small_backbone.yaml")
    rc = _train(tmp_path, cfg, *TINY, "dataset.train_seeds=[0, 8]", "run_name=nan", "dataset.augment=false")
    assert rc == 3
    err = capsys.readouterr().err
    assert "loss became nan" in err and "last.pt" in err
    ckpt = load_checkpoint(tmp_path / "nan" / "last.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (0, 2)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_resume_with_another_model_config_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(trainer, "build_model", _Exploding)
    cfg = str(CONFIGS / "synthetic_small_backbone.yaml")
    assert _train(tmp_path, cfg, *TINY, "run_name=r", "dataset.augment=false", "max_steps=1") == 0
    capsys.readouterr()
    rc = _train(tmp_path, "--resume", str(tmp_path / "r"), "model.overrides.heads.n_theta=6")
    assert rc == 2
    err = capsys.readouterr().err
    assert "different model config" in err and "heads" in err
    # a fresh run must not silently reuse a run directory
    assert _train(tmp_path, cfg, *TINY, "run_name=r", "dataset.augment=false") == 2
    assert "--resume" in capsys.readouterr().err


def test_real_dataset_splits(tmp_path: Path) -> None:
    """The training datasets over ScanNet / STPLS3D / S3DIS files written in their real layouts."""
    from sphmask_core.data.scannet import save_pth_arrays
    from training.config import DatasetConfig
    from training.datasets import DatasetNotFoundError, build_dataset

    rng = np.random.default_rng(0)
    n = 50
    xyz = rng.uniform(0, 2, (n, 3)).astype(np.float64)
    rgb = rng.uniform(-1, 1, (n, 3))
    sem = np.where(np.arange(n) < 25, 1.0, 4.0)  # floor, then one chair
    inst = np.where(np.arange(n) < 25, -100.0, 0.0)
    for split in ("train", "val"):
        save_pth_arrays(tmp_path / "scannet" / split / f"scene000{split == 'val'}_00_inst_nostuff.pth", (xyz, rgb, sem, inst))
        save_pth_arrays(tmp_path / "stpls3d" / split / f"5_points_GTv3_0_{split}_inst_nostuff.pth",
                        (xyz.astype(np.float32), rgb.astype(np.float32), sem - 1.0, inst))
    save_pth_arrays(tmp_path / "s3dis" / "preprocess" / "Area_5_office_1_inst_nostuff.pth",
                    (xyz.astype(np.float32), rng.uniform(0, 255, (n, 3)).astype(np.float32),
                     np.full(n, 8, np.int32), np.zeros(n, np.int32)))
    for name, split in (("scannet", "val"), ("stpls3d", "val"), ("s3dis", "Area_5")):
        cfg = DatasetConfig(name=name, root=str(tmp_path / name), val_split=split, train_split=split)
        val = build_dataset(cfg, train=False)
        assert len(val) == 1 and len(val[0].xyz) == n
        train_set = build_dataset(DatasetConfig(name=name, root=str(tmp_path / name), train_split=split,
                                                augment=False, subsample=0.5, repeat=3), train=True)
        assert len(train_set) == 3
        assert len(train_set[(0, 2)].scene.xyz) == 25
    with pytest.raises(DatasetNotFoundError, match="split"):
        build_dataset(DatasetConfig(name="scannet", root=str(tmp_path / "scannet"), val_split="test"), train=False)
