"""A bag made by record-synthetic -> `sphmask-bag export` (time-range splits) -> a few training
steps on the exported folder -> resume -> `sphmask-bag eval --classes` with the trained model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from sphmask_core.checkpoint import load_checkpoint
from sphmask_core.data.classes import load_classes
from sphmask_core.data.folder import list_folder_split, load_labelled_cloud
from sphmask_core.sensor.bag_reader import BagReader
from sphmask_core.sensor.pointcloud2 import decode_cloud
from sphmask_ros.bag.cli import main as bag_main
from sphmask_ros.bag.messages import to_rclpy
from training import train


def _params(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("/**:\n  ros__parameters:\n    input_voxel_size: 0.0\n    device: cpu\n    score_threshold: 0.1\n")
    return path


def test_export_train_resume_eval(synthetic_bags, tmp_path, capsys):
    frames = tmp_path / "frames"
    # 3 frames at 10 Hz: t = 0.0, 0.1, 0.2 s; the first two train, the last one (sqlite3 copy) validates
    assert bag_main(["export", str(synthetic_bags["mcap"]), str(frames / "train"), "--end", "0.15"]) == 0
    assert "wrote 2 labelled frame(s)" in capsys.readouterr().out
    assert bag_main(["export", str(synthetic_bags["sqlite3"]), str(frames / "val"), "--start", "0.15"]) == 0
    assert bag_main(["export", str(synthetic_bags["mcap"]), str(frames / "train")]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert bag_main(["export", str(synthetic_bags["mcap"]), str(tmp_path / "none"), "--start", "5"]) == 2

    classes_path = frames / "train" / "classes.yaml"
    classes = load_classes(classes_path)
    assert classes.labels.semantic_names[:2] == ("wall", "floor") and classes.labels.label_shift == 2
    # the exported frame is the bag's cloud, point for point, with its labels
    first = next(BagReader(synthetic_bags["mcap"]).messages(["/points"]))
    cloud = decode_cloud(to_rclpy(first))
    scene = load_labelled_cloud(frames / "train" / "frame_00000.npz", classes)
    np.testing.assert_array_equal(scene.xyz, cloud.xyz)
    sem = cloud.extras["semantic_id"]
    assert (scene.semantic == np.where(sem < 0, -100, sem)).all()
    assert [p.name for p in list_folder_split(frames, "train/*.npz")] == ["frame_00000.npz", "frame_00001.npz"]

    cfg = tmp_path / "bagtrain.yaml"
    cfg.write_text(yaml.safe_dump({
        "dataset": {"name": "folder", "root": str(frames), "train_split": "train", "val_split": "val",
                    "classes": str(classes_path), "augment": False},
        "model": {"name": "small", "overrides": {"aggregator": {"n_queries": 16}}},
        "schedule": {"epochs": 3, "step_epoch": 3}, "batch_size": 1, "num_workers": 0, "val_every": 1,
        "val_min_region_size": 10, "checkpoint_dir": str(tmp_path / "runs"), "run_name": "bag",
    }))
    run = tmp_path / "runs" / "bag"
    assert train.main([str(cfg), "max_steps=2", "--no-progress"]) == 0
    assert train.main(["--resume", str(run), "max_steps=3", "--no-progress"]) == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["rng"]["global_step"] == 3 and len(ckpt["metrics"]["val"]) == 1

    out = tmp_path / "ev"
    assert bag_main(["eval", str(synthetic_bags["mcap"]), "--checkpoint", str(run / "last.pt"), "--params",
                     str(_params(tmp_path)), "--out", str(out), "--classes", str(classes_path), "--renders", "0",
                     "--min-region-size", "10", "--no-progress"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["metrics"]["num_scenes"] == 3 and 0.0 <= (data["metrics"]["AP25"] or 0.0) <= 1.0
    # a classes file whose ids mean other classes is used as given: nothing matches the model's
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"classes": ["ground", "crate", "pallet"], "stuff": ["ground"]}))
    assert bag_main(["eval", str(synthetic_bags["mcap"]), "--checkpoint", str(run / "last.pt"), "--params",
                     str(_params(tmp_path)), "--out", str(tmp_path / "ev2"), "--classes", str(other),
                     "--renders", "0", "--min-region-size", "10", "--no-progress"]) == 0
    other_metrics = json.loads((tmp_path / "ev2" / "report.json").read_text())["metrics"]
    assert all(v.get("AP25") is None or np.isnan(v["AP25"]) for v in other_metrics["per_class"].values())


def test_node_pipeline_refuses_a_backbone_checkpoint(tmp_path):
    import pytest

    from sphmask_core.checkpoint import CheckpointError, config_from_checkpoint, save_checkpoint
    from sphmask_core.pretrained import default_checkpoint_path
    from sphmask_core.sensor.node_params import NodeParams
    from sphmask_ros.pipeline import Pipeline

    shipped = load_checkpoint(default_checkpoint_path())
    bb = tmp_path / "bb.pt"
    save_checkpoint(bb, shipped["model"], config_from_checkpoint(shipped), shipped["class_names"],
                    shipped["label_spec"], train_config={**shipped["train_config"], "stage": "backbone"})
    with pytest.raises(CheckpointError, match="backbone stage"):
        Pipeline.from_params(NodeParams(checkpoint=str(bb), device="cpu"), warmup=False)
