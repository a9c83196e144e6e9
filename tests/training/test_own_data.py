"""Training on the user's own data: the classes file, the `folder` dataset (every format and
every refusal), train / resume / predict / eval on a folder, fine-tuning the shipped model onto
another class list, Ctrl-C, finished-run resume, predict's --out / empty-cloud / backbone refusals."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sphmask_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sphmask_core.data.classes import load_classes, map_labels, parse_classes
from sphmask_core.data.errors import DatasetError
from sphmask_core.data.folder import list_folder_split, load_labelled_cloud
from sphmask_core.data.ply import write_ply
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from sphmask_core.evaluation import cli as eval_cli
from training import predict, train
from training.trainer import TrainingInterrupted

CLASSES = {"classes": ["wall", "floor", "furniture", "opening"], "stuff": ["wall", "floor"], "ignore_id": 255}
# synthetic ids (SYNTHETIC_LABELS) -> the 4 classes above: door / window are "opening"
REMAP = np.array([0, 1, 2, 2, 2, 2, 2, 3, 3, 2, 2, 2])
TINY_GEN = SyntheticConfig(density=30.0, room_size_range=(3.0, 4.0), n_objects_range=(2, 4))
TINY = ["model.overrides.aggregator.n_queries=16", "batch_size=1", "num_workers=0", "save_every=1",
        "val_min_region_size=10", "dataset.augment=false", "val_every=0"]


def _train(*args: str) -> int:
    return train.main([*args, "--no-progress"])


def _labelled_arrays(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """xyz, rgb 0..255, semantic (file ids, 255 = unlabelled), instance (-1 = none)."""
    scene = generate_scene(seed, TINY_GEN)
    sem = np.where(scene.semantic >= 0, REMAP[np.maximum(scene.semantic, 0)], 255)
    sem[::97] = 255  # a few unlabelled points
    ins = np.where(scene.instance >= 0, scene.instance + 10, -1)  # ids need not start at 0
    return scene.xyz, np.round((scene.rgb + 1.0) * 127.5), sem, ins


def _write_classes(path: Path, data: dict = CLASSES) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _write_npz(path: Path, seed: int) -> None:
    xyz, rgb, sem, ins = _labelled_arrays(seed)
    np.savez(path, xyz=xyz, rgb=rgb, semantic_id=sem, instance_id=ins)


def _write_pcd(path: Path, xyz: np.ndarray, sem: np.ndarray, ins: np.ndarray) -> None:
    header = (
        "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z semantic_id instance_id\nSIZE 4 4 4 4 4\nTYPE F F F I I\n"
        f"COUNT 1 1 1 1 1\nWIDTH {len(xyz)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(xyz)}\nDATA ascii\n"
    )
    rows = "\n".join(f"{x:.6f} {y:.6f} {z:.6f} {s} {i}" for (x, y, z), s, i in zip(xyz, sem, ins))
    path.write_text(header + rows + "\n")


# --------------------------------------------------------------------------- classes file


def test_classes_file_and_label_mapping(tmp_path: Path) -> None:
    classes = load_classes(_write_classes(tmp_path / "c.yaml"))
    assert classes.labels.instance_names == ("furniture", "opening") and classes.labels.label_shift == 2
    sem, ins = map_labels(np.array([0, 2, 3, 255, 1]), np.array([5, 7, 7, 9, -1]), classes, "x")
    assert sem.tolist() == [0, 2, 3, -100, 1]
    assert ins.tolist() == [-100, 7, 7, -100, -100]  # stuff and unlabelled points carry no instance
    with pytest.raises(DatasetError, match="semantic id 4 is outside the classes file"):
        map_labels(np.array([4]), np.array([0]), classes, "x")
    for bad, msg in (
        ({"classes": ["a", "b"], "stuff": ["b"]}, "must be the first entries"),
        ({"classes": ["a", "b"], "stuff": ["c"]}, "not in 'classes'"),
        ({"classes": ["a", "b"], "ignore_id": 1}, "is a class id"),
        ({"classes": ["a"], "stuff": ["a"]}, "at least one instance class"),
        ({"classes": ["a", "b"], "colour": 1}, "unknown key 'colour'"),
        ({"classes": []}, "non-empty list"),
    ):
        with pytest.raises(DatasetError, match=msg):
            parse_classes(bad, "c.yaml")
    with pytest.raises(DatasetError, match="classes file not found"):
        load_classes(tmp_path / "absent.yaml")


# --------------------------------------------------------------------------- folder dataset


def test_every_format_loads_the_same_scene(tmp_path: Path) -> None:
    classes = load_classes(_write_classes(tmp_path / "c.yaml"))
    xyz, rgb, sem, ins = _labelled_arrays(3)
    xyz, rgb, sem, ins = xyz[:800], rgb[:800], sem[:800], ins[:800]
    np.savez(tmp_path / "a.npz", xyz=xyz, rgb=rgb, semantic_id=sem, instance_id=ins)
    rec = np.zeros(len(xyz), [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                              ("blue", "u1"), ("semantic_id", "i4"), ("instance_id", "i4")])
    for k, c in enumerate("xyz"):
        rec[c] = xyz[:, k]
    for k, c in enumerate(("red", "green", "blue")):
        rec[c] = rgb[:, k]
    rec["semantic_id"], rec["instance_id"] = sem, ins
    write_ply(tmp_path / "b.ply", rec)
    np.save(tmp_path / "c.npy", rec)
    _write_pcd(tmp_path / "d.pcd", xyz, sem, ins)
    files = list_folder_split(tmp_path, "*.np*,b.ply,d.pcd")
    assert [f.name for f in files] == ["a.npz", "b.ply", "c.npy", "d.pcd"]
    scenes = [load_labelled_cloud(f, classes) for f in files]
    want_sem = np.where(sem == 255, -100, sem)
    for s in scenes:
        np.testing.assert_allclose(s.xyz, xyz, atol=1e-5)
        assert s.semantic.tolist() == want_sem.tolist()
        # instance ids renumbered 0..K-1; the partition of points is the file's
        thing = (ins >= 0) & (sem >= 2) & (sem != 255)
        assert ((s.instance >= 0) == thing).all()
        assert len(np.unique(s.instance[thing])) == len(np.unique(ins[thing]))
    np.testing.assert_allclose(scenes[0].rgb, rgb / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_allclose(scenes[1].rgb, scenes[0].rgb, atol=1e-6)
    assert not scenes[3].rgb.any()  # the PCD has no colour


def test_folder_refusals(tmp_path: Path) -> None:
    classes = load_classes(_write_classes(tmp_path / "c.yaml"))
    np.savez(tmp_path / "nolabels.npz", xyz=np.zeros((5, 3)))
    with pytest.raises(DatasetError, match="nolabels.npz: cloud has no labels"):
        load_labelled_cloud(tmp_path / "nolabels.npz", classes)
    np.save(tmp_path / "plain.npy", np.zeros((5, 6)))
    with pytest.raises(DatasetError, match="plain.npy: cloud has no labels"):
        load_labelled_cloud(tmp_path / "plain.npy", classes)
    np.savez(tmp_path / "outside.npz", xyz=np.zeros((5, 3)), semantic_id=np.array([0, 1, 2, 7, 0]),
             instance_id=np.zeros(5))
    with pytest.raises(DatasetError, match="outside.npz: semantic id 7 is outside the classes file"):
        load_labelled_cloud(tmp_path / "outside.npz", classes)
    np.savez(tmp_path / "empty.npz", xyz=np.zeros((0, 3)), semantic_id=np.zeros(0), instance_id=np.zeros(0))
    with pytest.raises(DatasetError, match="empty.npz: cloud has no"):
        load_labelled_cloud(tmp_path / "empty.npz", classes)
    nan = np.full((3, 3), np.nan)
    np.savez(tmp_path / "nan.npz", xyz=nan, semantic_id=np.zeros(3), instance_id=np.zeros(3))
    with pytest.raises(DatasetError, match="nan.npz: cloud has no"):
        load_labelled_cloud(tmp_path / "nan.npz", classes)
    with pytest.raises(DatasetError, match="does not exist"):
        list_folder_split(tmp_path, "absent.ply")
    with pytest.raises(DatasetError, match="matches no"):
        list_folder_split(tmp_path, "train/*.ply")
    # through sphmask-train: exit 2 and one line naming the file
    cfg = tmp_path / "t.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": {"name": "folder", "root": str(tmp_path), "train_split": "outside.npz",
                                               "classes": str(tmp_path / "c.yaml")}}))
    assert _train(str(cfg), f"checkpoint_dir={tmp_path / 'runs'}", *TINY, "max_steps=1") == 2
    cfg.write_text(yaml.safe_dump({"dataset": {"name": "folder", "root": str(tmp_path)}}))
    assert _train(str(cfg), f"checkpoint_dir={tmp_path / 'runs'}", *TINY) == 2


# --------------------------------------------------------------------------- end to end


def test_train_resume_predict_eval_on_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "val").mkdir()
    for seed in (0, 1):
        _write_npz(data / "train" / f"scan{seed}.npz", seed)
    _write_npz(data / "val" / "scan9.npz", 9)
    classes = _write_classes(tmp_path / "classes.yaml")
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(yaml.safe_dump({
        "dataset": {"name": "folder", "root": str(data), "train_split": "train", "val_split": "val/*.npz",
                    "classes": str(classes)},
        "model": {"name": "small"}, "stage": "full", "schedule": {"epochs": 4, "step_epoch": 4},
        "checkpoint_dir": str(tmp_path / "runs"), "run_name": "mine",
    }))
    run = tmp_path / "runs" / "mine"
    assert _train(str(cfg), *TINY, "max_steps=2") == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["class_names"] == ["furniture", "opening"] and ckpt["label_spec"]["label_shift"] == 2
    assert (ckpt["epoch"], ckpt["step"]) == (1, 0)
    assert any((run / "tensorboard").iterdir()) and (run / "train_metrics.csv").is_file()

    capsys.readouterr()
    assert _train("--resume", str(run)) == 2  # max_steps=2 already reached
    err = capsys.readouterr().err.strip().splitlines()[-1]  # above it: the log's "resumed from" line
    assert err.startswith("sphmask-train: error: run") and "already finished" in err
    assert err.endswith(f"sphmask-train --resume {run} max_steps=4")
    assert _train("--resume", str(run), "max_steps=3") == 0
    assert load_checkpoint(run / "last.pt")["rng"]["global_step"] == 3

    out = tmp_path / "pred"
    args = ["--checkpoint", str(run / "last.pt"), "--dataset", "folder", "--root", str(data), "--split", "val",
            "--classes", str(classes), "--out", str(out), "--device", "cpu", "--no-render", "--min-region-size", "10"]
    assert predict.main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scenes"] == 1 and 0.0 <= metrics["AP"] <= 1.0
    # sphmask-eval with the same classes file reproduces predict's numbers
    res_json = tmp_path / "eval.json"
    assert eval_cli.main(["scannet", "--gt", str(out / "gt"), "--pred", str(out / "pred"), "--classes", str(classes),
                          "--min-region-size", "10", "--json", str(res_json)]) == 0
    assert json.loads(res_json.read_text())["AP"] == pytest.approx(metrics["AP"], nan_ok=True)

    # --out exists: refused, then replaced with --overwrite
    capsys.readouterr()
    assert predict.main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    (out / "pred" / "stale.txt").write_text("x")
    assert predict.main([*args, "--overwrite"]) == 0
    assert not (out / "pred" / "stale.txt").exists()
    # a classes file that is not the model's is refused
    other = _write_classes(tmp_path / "other.yaml", {"classes": ["ground", "box"], "stuff": ["ground"]})
    assert predict.main([*args[:-9], "--classes", str(other), "--out", str(tmp_path / "p2"), "--device", "cpu"]) == 2


def test_finetune_shipped_model_onto_other_classes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from sphmask_core.pretrained import default_checkpoint_path

    data = tmp_path / "data"
    data.mkdir()
    _write_npz(data / "a.npz", 4)
    classes = _write_classes(tmp_path / "classes.yaml")
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(yaml.safe_dump({
        "dataset": {"name": "folder", "root": str(data), "train_split": "*.npz", "classes": str(classes)},
        "model": {"name": "small"}, "init_from": str(default_checkpoint_path()),
        "checkpoint_dir": str(tmp_path / "runs"), "run_name": "ft", "optim": {"lr": 1e-9}, "schedule": {"min_lr": 0.0},
    }))
    assert _train(str(cfg), "batch_size=1", "num_workers=0", "val_every=0", "max_steps=1",
                  "dataset.augment=false") == 0
    line = [ln.split(" ", 1)[1] for ln in capsys.readouterr().err.splitlines() if "fine-tuning" in ln]
    assert line == ["fine-tuning from 12 to 4 classes: re-initialised pointwise_heads.semantic.3, "
                    "query_heads.class_head.6"]
    shipped = load_checkpoint(default_checkpoint_path())["model"]
    tuned = load_checkpoint(tmp_path / "runs" / "ft" / "last.pt")
    assert tuned["model"]["pointwise_heads.semantic.3.weight"].shape == (4, 16)  # the semantic head follows
    assert tuned["model"]["query_heads.class_head.6.weight"].shape[0] == 3  # 2 instance classes + no-object
    # everything else started from the shipped weights (lr 1e-9: one step moves them by ~1e-9)
    rest = [k for k in shipped if not k.startswith(("pointwise_heads.semantic.3", "query_heads.class_head.6"))
            and shipped[k].is_floating_point() and "running_" not in k]  # BatchNorm statistics move
    assert rest and all(torch.allclose(shipped[k], tuned["model"][k], atol=1e-5) for k in rest)


# --------------------------------------------------------------------------- ergonomics


def test_ctrl_c_saves_last_and_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    from tests.training.test_resume import ToyModel, _cfg, toy_collate
    from training.trainer import Trainer

    calls = {"n": 0}

    def collate_then_interrupt(scenes: list) -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # during the second iteration
            os.kill(os.getpid(), signal.SIGINT)
        return toy_collate(scenes)

    cfg = _cfg(tmp_path, "int")
    tr = Trainer(cfg, tmp_path / "int", model_factory=ToyModel, collate_fn=collate_then_interrupt, show_progress=False)
    # the default handler, or SIG_IGN when the suite runs in a background job
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as info:
        tr.fit()
    assert info.value.checkpoint == tmp_path / "int" / "last.pt"
    saved = load_checkpoint(tmp_path / "int" / "last.pt")
    assert (saved["epoch"], saved["step"]) == (0, 2)  # the iteration in progress was completed, then saved
    assert signal.getsignal(signal.SIGINT) == before  # handler restored

    def interrupted_run(_args: object) -> None:
        raise info.value

    monkeypatch.setattr(train, "run", interrupted_run)
    assert train.main([str(tmp_path / "any.yaml")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "saved" in err[0] and str(tmp_path / "int" / "last.pt") in err[0]


def test_ctrl_c_handler_is_removed_when_the_one_before_was_not_set_from_python(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.training.test_resume import ToyModel, _cfg, toy_collate
    from training.trainer import Trainer

    real_signal = signal.signal

    def foreign_previous(signum: int, handler: object) -> object:
        # signal.signal answers None when the handler in place was installed by C code
        real_signal(signum, handler)
        return None

    tr = Trainer(_cfg(tmp_path, "foreign"), tmp_path / "foreign", model_factory=ToyModel,
                 collate_fn=toy_collate, show_progress=False)
    original = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(signal, "signal", foreign_previous)
    try:
        tr.fit()
        left = signal.getsignal(signal.SIGINT)
    finally:
        real_signal(signal.SIGINT, original)
    assert left == signal.SIG_DFL  # not the finished trainer's deferred-stop handler


def test_predict_reports_empty_cloud_and_refuses_backbone_checkpoint(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from sphmask_core.inference.segmenter import Segmenter
    from sphmask_core.pretrained import default_checkpoint_path

    clouds = tmp_path / "clouds"
    clouds.mkdir()
    xyz, rgb, _, _ = _labelled_arrays(5)
    np.save(clouds / "room.npy", np.concatenate([xyz, rgb], axis=1))
    np.save(clouds / "hollow.npy", np.full((4, 3), np.nan))
    out = tmp_path / "out"
    assert predict.main(["--input", str(clouds), "--out", str(out), "--device", "cpu", "--no-render"]) == 0
    captured = capsys.readouterr()
    assert "hollow.npy: empty cloud" in captured.err and "skipped 1 empty cloud(s): hollow.npy" in captured.out
    assert (out / "pred" / "room.txt").is_file() and not (out / "pred" / "hollow.txt").exists()

    shipped = load_checkpoint(default_checkpoint_path())
    from sphmask_core.checkpoint import config_from_checkpoint

    bb = tmp_path / "bb.pt"
    save_checkpoint(bb, shipped["model"], config_from_checkpoint(shipped), shipped["class_names"],
                    shipped["label_spec"], train_config={**shipped["train_config"], "stage": "backbone"})
    with pytest.raises(CheckpointError, match="backbone stage: its query heads are untrained"):
        Segmenter.from_checkpoint(bb, device="cpu")  # what the node and sphmask-export build with
    assert predict.main(["--checkpoint", str(bb), "--input", str(clouds), "--out", str(tmp_path / "o2")]) == 2
    assert "backbone stage" in capsys.readouterr().err
