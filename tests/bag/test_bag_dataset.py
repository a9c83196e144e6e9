"""Training's `bag` dataset (sphmask_core/data/bag.py) on bags made by `record-synthetic`: windows
equal to the node's pre-processing, labels against the generator's ground truth, splits by time
range and by bag, every refusal, and training on a bag -> resume -> `sphmask-bag eval --classes`."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from sphmask_core.checkpoint import load_checkpoint
from sphmask_core.data.bag import BagSplit, load_bag_windows, majority_labels
from sphmask_core.data.classes import classes_from_bag_metadata
from sphmask_core.data.errors import DatasetError
from sphmask_core.data.scene import SYNTHETIC_LABELS, compact_ids
from sphmask_core.sensor.bag_reader import BagReader
from sphmask_core.sensor.node_params import NodeParams, preprocess_config
from sphmask_core.sensor.poses import PoseSource
from sphmask_core.sensor.preprocess import PreparedInput, Preprocessor
from sphmask_core.sensor.transforms import Transform
from sphmask_ros.bag.cli import main as bag_main
from sphmask_ros.bag.messages import to_rclpy
from sphmask_ros.bag.record import (
    EXTRINSIC_QUAT,
    EXTRINSIC_XYZ,
    RecordConfig,
    record_synthetic,
    synthetic_frames,
)
from training import train

POSED = {"fixed_frame": "map", "pose_source": "odometry", "odometry_topic": "/odom",
         "static_transform.xyz": list(EXTRINSIC_XYZ),
         "static_transform.quaternion": list(EXTRINSIC_QUAT)}


def _params(**values) -> NodeParams:
    return NodeParams.from_values(values)


def _windows(bags, params: NodeParams, start=0.0, end=None, **kw):
    split = BagSplit(tuple(Path(b) for b in bags), start, end)
    return load_bag_windows(split, "/points", params, log=kw.pop("log", lambda _l: None), **kw)


def _gt(frame) -> tuple[np.ndarray, np.ndarray]:
    """A generator frame's labels as the dataset must give them (stuff: no instance)."""
    sem = frame.semantic.astype(np.int64)
    ins = np.where(sem < SYNTHETIC_LABELS.label_shift, -100, frame.instance).astype(np.int64)
    return np.where(sem < 0, -100, sem), np.where(ins < 0, -100, ins)


def test_windows_are_the_generator_truth(synthetic_bags, record_cfg):
    """input_voxel_size 0: each window is the generator's points in the map frame, newest sweep
    first, with the generator's labels (an independent truth: no pre-processing involved)."""
    frames = synthetic_frames(record_cfg)
    scenes, classes = _windows([synthetic_bags["mcap"]],
                               _params(**POSED, input_voxel_size=0.0, **{"accumulate.frames": 2}))
    assert classes.labels == SYNTHETIC_LABELS  # from the bag's metadata
    assert len(scenes) == len(frames)
    for k, scene in enumerate(scenes):
        window = [frames[k], frames[k - 1]] if k else [frames[0]]
        xyz = np.concatenate([Transform.from_matrix(f.pose).apply(f.xyz.astype(np.float64))
                              for f in window])
        np.testing.assert_allclose(scene.xyz, xyz, atol=1e-4)
        sem, ins = (np.concatenate(parts) for parts in zip(*(_gt(f) for f in window)))
        np.testing.assert_array_equal(scene.semantic, sem)
        # one id per object across both sweeps, renumbered 0..K-1 per window
        np.testing.assert_array_equal(scene.instance, compact_ids(ins))
        assert scene.instance.max() == scene.n_instances - 1


def test_voxelised_window_is_the_node_preprocessor_output(synthetic_bags, record_cfg):
    """With thinning, the sample is what the node's Preprocessor gives its model for the same
    bag (fed here with rclpy messages, as the node receives them) and each model point has the
    majority label of the generator points in its voxel."""
    values = {**POSED, "input_voxel_size": 0.05, "accumulate.frames": 2}
    params = _params(**values)
    scenes, _ = _windows([synthetic_bags["mcap"]], params)
    poses = PoseSource(params)
    node = Preprocessor(preprocess_config(params), transforms=poses)
    frames = synthetic_frames(record_cfg)
    outs: list[PreparedInput] = []
    for msg in BagReader(synthetic_bags["mcap"]).messages(["/odom", "/points"]):
        if msg.topic == "/odom":
            poses.add_odometry(to_rclpy(msg))
        else:
            outs.append(node.process_msg(to_rclpy(msg)))
    assert len(outs) == len(scenes) == 3
    for k, (scene, out) in enumerate(zip(scenes, outs)):
        np.testing.assert_array_equal(scene.xyz, out.xyz)
        np.testing.assert_array_equal(scene.rgb, out.rgb)
        assert scene.n_points < out.points_xyz.shape[0]  # the grid did merge points
        window = [frames[k], frames[k - 1]] if k else [frames[0]]
        sem, ins = (np.concatenate(parts) for parts in zip(*(_gt(f) for f in window)))
        cells = np.floor(out.points_xyz.astype(np.float64) / 0.05).astype(np.int64)
        votes: dict[tuple, Counter] = {}
        for cell, s, i in zip(map(tuple, cells), sem, ins):
            votes.setdefault(cell, Counter())[(s, i)] += 1
        model_cells = np.floor(out.xyz.astype(np.float64) / 0.05).astype(np.int64)
        want = [max(votes[tuple(c)].items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
                for c in model_cells]
        np.testing.assert_array_equal(scene.semantic, [w[0] for w in want])
        np.testing.assert_array_equal(scene.instance, compact_ids(np.array([w[1] for w in want])))


def test_majority_labels_hand_example():
    to_model = np.array([0, 0, 0, 1, 1, 2, 2])
    sem = np.array([3, 3, 4, 5, 6, 7, 7])
    ins = np.array([1, 1, 2, 0, 9, 4, 4])
    s, i = majority_labels(to_model, 4, sem, ins)
    # voxel 1 is a tie: the smaller pair (5, 0) wins; voxel 3 has no point
    np.testing.assert_array_equal(s, [3, 5, 7, -100])
    np.testing.assert_array_equal(i, [1, 0, 4, -100])


def test_time_range_and_bag_splits(synthetic_bags, record_cfg):
    params = _params(**POSED, input_voxel_size=0.0, **{"accumulate.frames": 2})
    n = [len(f.xyz) for f in synthetic_frames(record_cfg)]  # frames at 0.0, 0.1, 0.2 s
    train, _ = _windows([synthetic_bags["mcap"]], params, 0.0, 0.15)
    val, _ = _windows([synthetic_bags["mcap"]], params, 0.15, None)
    assert [s.name for s in train] == ["mcap_00000", "mcap_00001"]
    assert [s.name for s in val] == ["mcap_00002"]
    # the validation window holds no sweep from the training range
    assert val[0].n_points == n[2] and train[1].n_points == n[1] + n[0]
    both, _ = _windows([synthetic_bags["mcap"], synthetic_bags["sqlite3"]], params)
    assert [s.name for s in both] == [f"{b}_{k:05d}" for b in ("mcap", "sqlite3") for k in range(3)]
    np.testing.assert_array_equal(both[0].xyz, both[3].xyz)  # same recording in both formats


def _unlabelled_bag(path: Path) -> Path:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from sphmask_ros.bag.writer import BagWriter, make_qos
    from sphmask_ros.pointcloud2 import encode_cloud

    with BagWriter(path, "mcap") as bag:
        bag.add_topic("/points", "sensor_msgs/msg/PointCloud2", [make_qos()])
        xyz = np.random.default_rng(0).uniform(0, 2, (300, 3)).astype(np.float32)
        bag.write_rclpy("/points", 10, encode_cloud(Header(stamp=Time(sec=0), frame_id="s"),
                                                    {"xyz": xyz, "ring": np.zeros(300, np.uint16)}))
    return path


def test_refusals_name_the_problem(synthetic_bags, tmp_path):
    plain = _params(input_voxel_size=0.0)
    with pytest.raises(DatasetError, match="bag not found"):
        _windows([tmp_path / "nope"], plain)
    with pytest.raises(DatasetError, match="topic '/lidar' is not in bag"):
        load_bag_windows(BagSplit((synthetic_bags["mcap"],)), "/lidar", plain, log=lambda _l: None)
    classes = classes_from_bag_metadata(BagReader(synthetic_bags["mcap"]).custom_data, "bag")
    with pytest.raises(DatasetError, match=r"no semantic_id / instance_id field.*\['ring'\]"):
        _windows([_unlabelled_bag(tmp_path / "plain")], plain, classes=classes)
    with pytest.raises(DatasetError, match="names no classes"):
        _windows([tmp_path / "plain"], plain)
    with pytest.raises(DatasetError, match=r"empty split: no cloud on '/points' with points in \[5 s"):
        _windows([synthetic_bags["mcap"]], plain, 5.0, None)
    # pose_source tf, but the bag (recorded without --tf) has only base_link -> sensor: no map
    tf = _params(fixed_frame="map", pose_source="tf", input_voxel_size=0.0)
    with pytest.raises(DatasetError, match="no cloud in .* has a pose: .*'map'"):
        _windows([synthetic_bags["mcap"]], tf)
    odom = _params(fixed_frame="map", pose_source="odometry", odometry_topic="/wheel_odom")
    with pytest.raises(DatasetError, match="topic '/wheel_odom' is not in bag"):
        _windows([synthetic_bags["mcap"]], odom)
    with pytest.raises(ValueError, match="empty"):
        _windows([synthetic_bags["mcap"]], plain, 1.0, 0.5)


def test_truncated_bag_gives_its_intact_windows(tmp_path):
    bag = record_synthetic(tmp_path / "cut", RecordConfig(seed=1, frames=4, points_per_frame=4000,
                                                          storage="sqlite3")).path
    (db,) = bag.glob("*.db3")
    os.truncate(db, int(db.stat().st_size * 0.6))
    lines: list[str] = []
    scenes, _ = _windows([bag], _params(input_voxel_size=0.0), log=lines.append)
    assert 0 < len(scenes) < 4
    assert len(lines) == 1 and "damaged" in lines[0] and "intact" in lines[0]


def test_train_resume_eval_on_a_bag(synthetic_bags, tmp_path, capsys):
    """A few training steps on a record-synthetic bag (train: its first 0.15 s, validation: the
    rest of the sqlite3 copy), resume, and `sphmask-bag eval --classes` with the trained model."""
    params = tmp_path / "params.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n    device: cpu\n    score_threshold: 0.1\n"
        "    fixed_frame: map\n    pose_source: odometry\n    odometry_topic: /odom\n"
        "    input_voxel_size: 0.02\n    accumulate:\n      frames: 2\n"
        f"    static_transform:\n      xyz: {list(EXTRINSIC_XYZ)}\n"
        f"      quaternion: {list(EXTRINSIC_QUAT)}\n")
    classes_path = tmp_path / "classes.yaml"
    classes = classes_from_bag_metadata(BagReader(synthetic_bags["mcap"]).custom_data, "bag")
    classes_path.write_text(yaml.safe_dump(classes.to_dict()))
    cfg = tmp_path / "bagtrain.yaml"
    cfg.write_text(yaml.safe_dump({
        "dataset": {"name": "bag", "train_bags": [str(synthetic_bags["mcap"])],
                    "train_range": [0.0, 0.15], "val_bags": [str(synthetic_bags["sqlite3"])],
                    "val_range": [0.15, None], "params_file": str(params),
                    "classes": str(classes_path), "augment": False},
        "model": {"name": "small", "overrides": {"aggregator": {"n_queries": 16}}},
        "schedule": {"epochs": 3, "step_epoch": 3}, "batch_size": 1, "num_workers": 0,
        "val_every": 1, "val_min_region_size": 10, "checkpoint_dir": str(tmp_path / "runs"),
        "run_name": "bag",
    }))
    run = tmp_path / "runs" / "bag"
    assert train.main([str(cfg), "max_steps=2", "--no-progress"]) == 0
    assert train.main(["--resume", str(run), "max_steps=3", "--no-progress"]) == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["rng"]["global_step"] == 3 and len(ckpt["metrics"]["val"]) == 1
    assert ckpt["label_spec"]["semantic_names"] == list(SYNTHETIC_LABELS.semantic_names)

    out = tmp_path / "ev"
    assert bag_main(["eval", str(synthetic_bags["mcap"]), "--checkpoint", str(run / "last.pt"),
                     "--params", str(params), "--out", str(out), "--classes", str(classes_path),
                     "--renders", "0", "--min-region-size", "10", "--no-progress"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["metrics"]["num_scenes"] == 3 and 0.0 <= (data["metrics"]["AP25"] or 0.0) <= 1.0

    # a bag the config names that is not there: one line, exit 2
    capsys.readouterr()
    assert train.main([str(cfg), "dataset.train_bags=[missing_bag]", "run_name=bad",
                       "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing_bag: bag not found" in err[0]
