"""TrainConfig loading, overrides, validation and the learning-rate schedule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from training.config import (
    ConfigError,
    ScheduleConfig,
    TrainConfig,
    config_to_dict,
    load_train_config,
    lr_at,
    parse_override,
    save_train_config,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "training" / "configs"


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_load_with_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, {"optim": {"lr": "1e-3"}, "dataset": {"train_seeds": [0, 8]}, "stage": "backbone"})
    cfg = load_train_config(path, ["optim.lr=3e-4", "schedule.epochs=7", "dataset.val_seeds=[5, 9]",
                                   "model.overrides.backbone.channels=8", "amp=true"])
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.schedule.epochs == 7
    assert cfg.dataset.train_seeds == [0, 8]
    assert cfg.dataset.val_seeds == [5, 9]
    assert cfg.model.overrides == {"backbone": {"channels": 8}}
    assert cfg.amp is True and cfg.stage == "backbone"


def test_yaml_exponent_floats_are_numbers(tmp_path: Path) -> None:
    # as people write them: YAML 1.1 alone reads `1e-6` (no dot) as a string
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 7.5e-4\nschedule:\n  min_lr: 1e-6\n")
    cfg = load_train_config(path)
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == pytest.approx(7.5e-4)
    assert isinstance(cfg.schedule.min_lr, float) and cfg.schedule.min_lr == pytest.approx(1e-6)
    # a quoted string stays a string, and a number field refuses it
    path.write_text("optim:\n  lr: '1e-3'\n")
    with pytest.raises(ConfigError, match="'optim.lr' expects a number"):
        load_train_config(path)


@pytest.mark.parametrize(
    "data, overrides, message",
    [
        ({"optimizer": {"lr": 1}}, [], "unknown config key 'optimizer'"),
        ({"optim": {"learning_rate": 1}}, [], "unknown config key 'optim.learning_rate'"),
        ({}, ["schedule.epoch=3"], "unknown config key 'schedule.epoch'"),
        ({}, ["batch_size=two"], "'batch_size' expects an integer"),
        ({}, ["batch_size=0"], "'batch_size' must be >= 1"),
        ({}, ["stage=both"], "'stage' must be one of"),
        ({}, ["dataset.name=kitti"], "'dataset.name' must be one of"),
        ({}, ["dataset.name=scannet"], "'dataset.root' is required"),
        ({}, ["dataset.train_seeds=[4, 2]"], "train_seeds"),
        ({}, ["schedule.step_epoch=-1"], "step_epoch"),
        ({}, ["schedule.min_lr=0.1", "optim.lr=0.01"], "min_lr"),
        ({}, ["amp=1"], "'amp' expects true/false"),
        ({}, ["optim"], "key=value"),
        ({"optim": 3}, [], "section 'optim' must be a mapping"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, data: dict, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_train_config(_write(tmp_path, data), overrides)


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "nope.yaml")


def test_save_roundtrip(tmp_path: Path) -> None:
    cfg = load_train_config(_write(tmp_path, {"seed": 3}), ["model.overrides.voxel_size=0.05"])
    save_train_config(cfg, tmp_path / "saved.yaml")
    again = load_train_config(tmp_path / "saved.yaml")
    assert config_to_dict(again) == config_to_dict(cfg)


def test_parse_override_values() -> None:
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("x=1e-3") == ("x", 1e-3)
    assert parse_override("name=abc") == ("name", "abc")
    assert parse_override("flag=false") == ("flag", False)


def test_lr_schedule_constant_then_cosine() -> None:
    s = ScheduleConfig(epochs=10, step_epoch=4, min_lr=1e-6)
    assert lr_at(s, 1e-3, 0.0) == 1e-3
    assert lr_at(s, 1e-3, 3.999) == 1e-3
    assert lr_at(s, 1e-3, 4.0) == pytest.approx(1e-3)
    # halfway through the cosine part the rate is the mean of base and floor
    assert lr_at(s, 1e-3, 7.0) == pytest.approx((1e-3 + 1e-6) / 2)
    assert lr_at(s, 1e-3, 10.0) == pytest.approx(1e-6)
    expected = 1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * 1.5 / 6))
    assert lr_at(s, 1e-3, 5.5) == pytest.approx(expected)
    values = [lr_at(s, 1e-3, e / 10) for e in range(0, 101)]
    assert all(b <= a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path, tmp_path: Path) -> None:
    text = path.read_text()
    assert text.lstrip().startswith("#"), "each shipped config documents what it reproduces"
    cfg = load_train_config(path)
    assert isinstance(cfg, TrainConfig)
    if cfg.dataset.name in ("folder", "bag"):
        # the example points at the user's data: give it a classes file of its own
        classes = tmp_path / "classes.yaml"
        classes.write_text("classes: [floor, wall, box, barrel]\nstuff: [floor, wall]\nignore_id: -1\n")
        cfg = load_train_config(path, [f"dataset.classes={classes}"])
    # ... and builds its model (a model override in the wrong place fails only here)
    from training.model_setup import build_model, build_model_config

    model_cfg = build_model_config(cfg)
    model = build_model(model_cfg)
    assert model.cfg.voxel_scale == pytest.approx(1.0 / model_cfg.voxel_size)


def test_stpls3d_config_has_its_voxel_and_labels() -> None:
    from training.model_setup import build_model_config

    cfg = build_model_config(load_train_config(CONFIG_DIR / "stpls3d.yaml"))
    assert cfg.voxel_scale == pytest.approx(3.0) and cfg.n_classes == 14
    # ISBNet's STPLS3D model: radius 0.2 / 0.4 m x radius_scale 10, neighbour 16 (x2 after pa1)
    a = cfg.aggregator
    assert (a.radius_pa1, a.radius_pa2) == (2.0, 4.0)
    assert (a.k_pa1, a.k_post_pa1, a.k_pa2, a.k_post_pa2) == (16, 32, 16, 16)
    assert (cfg.backbone.base_channels, cfg.heads.dec_dim, a.query_dim) == (16, 64, 64)
    w = cfg.loss.semantic_weights
    assert len(w) == cfg.labels.n_semantic == 15 and (w[0], w[10]) == (1.0, 114.4)  # ground, motorcycle


def test_shipped_paper_hyperparameters() -> None:
    full = load_train_config(CONFIG_DIR / "scannetv2_full.yaml")
    assert (full.batch_size, full.accumulate) == (12, 16)
    assert full.optim.lr == pytest.approx(7.5e-4) and full.optim.weight_decay == pytest.approx(1e-4)
    assert (full.schedule.epochs, full.schedule.step_epoch) == (300, 50)
    assert full.stage == "full"
    backbone = load_train_config(CONFIG_DIR / "scannetv2_backbone.yaml")
    assert backbone.stage == "backbone" and backbone.schedule.epochs == 100


def test_s3dis_config_takes_isbnet_s3dis_test_settings() -> None:
    from training.model_setup import build_model_config

    test = build_model_config(load_train_config(CONFIG_DIR / "s3dis_area5.yaml")).test
    assert (test.filter_bg_thresh, test.npoint_thresh, test.nms, test.nms_iou_threshold) == (0.4, 400, "greedy", 0.2)
    assert test.nms_topk == -1
    assert test.x4_split
