"""ModelConfig: shipped YAMLs, dict/YAML round trip, unknown keys and bad values rejected."""

from __future__ import annotations

import math

import pytest
import yaml

from sphmask_core.config import (
    AggregatorConfig,
    ModelConfig,
    QueryHeadConfig,
    TestConfig,
    apply_overrides,
    load_model_config,
)
from sphmask_core.data.scene import SCANNET_LABELS, SYNTHETIC_LABELS


def test_shipped_configs_load_with_expected_values() -> None:
    full = load_model_config("full_scannet")
    assert full.labels == SCANNET_LABELS and full.n_classes == 18
    assert full.voxel_size == 0.02 and full.in_channels == 6
    assert full.backbone.channels == [32, 64, 96, 128, 160, 192, 224]
    assert (full.aggregator.n_sample_pa1, full.aggregator.n_queries) == (2048, 256)
    assert full.test.topk_candidates == 90 and full.test.nms_topk == 200 and not full.test.rotate
    assert math.isclose(full.test.rotation_angle, 0.35 * math.pi)
    small = load_model_config("small")
    assert small.labels == SYNTHETIC_LABELS and small.n_classes == 10
    assert small.class_names[0] == "cabinet"
    assert small.voxel_scale * small.voxel_size == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["small", "full_scannet"])
def test_yaml_round_trip(tmp_path, name: str) -> None:
    cfg = load_model_config(name)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    again = load_model_config(path)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    # tuples survive as tuples, label sets as LabelSpec
    assert isinstance(again.aggregator.mlp_pa1, tuple)
    assert again.labels.instance_names == cfg.labels.instance_names


def test_defaults_are_the_full_model_and_partial_dicts_fill_defaults() -> None:
    cfg = ModelConfig.from_dict({"aggregator": {"n_queries": 128}})
    assert cfg.aggregator.n_queries == 128
    assert cfg.aggregator.n_sample_pa1 == AggregatorConfig().n_sample_pa1
    assert cfg.heads == QueryHeadConfig()


@pytest.mark.parametrize(
    "data, key",
    [
        ({"bogus": 1}, "model.bogus"),
        ({"aggregator": {"n_querys": 3}}, "model.aggregator.n_querys"),
        ({"test": {"nms_sigma": 2.0, "typo": True}}, "model.test.typo"),
        ({"labels": {"semantic_names": ["a", "b"], "label_shift": 1, "extra": 0}}, "model.labels.extra"),
    ],
)
def test_unknown_key_names_the_key(data: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"aggregator": {"n_queries": "many"}}, "model.aggregator.n_queries"),
        ({"test": {"rotate": 1}}, "model.test.rotate"),
        ({"aggregator": {"n_queries": 4096}}, "n_queries"),
        ({"heads": {"n_theta": 7}}, "n_theta"),
        ({"backbone": {"in_channels": 4, "voxel_size": 0.02}}, "in_channels"),
        ({"backbone": {"voxel_size": 0.05}, "loss": {"voxel_scale": 50.0}}, "voxel_scale"),
        ({"labels": "nyu"}, "unknown label set"),
        ({"voxel_units": "some"}, "voxel_units"),
        ({"test": {"filter_bg_thresh": 1.5}}, "filter_bg_thresh"),
    ],
)
def test_bad_values_raise(data: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ModelConfig.from_dict(data)


def test_load_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no model config named 'tiny'"):
        load_model_config("tiny")
    with pytest.raises(FileNotFoundError):
        load_model_config(tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_model_config(bad)


def test_apply_overrides() -> None:
    cfg = load_model_config("small")
    new = apply_overrides(cfg, {"aggregator.n_queries": 32, "test.rotate": True})
    assert new.aggregator.n_queries == 32 and new.test.rotate
    assert cfg.aggregator.n_queries != 32  # original untouched
    with pytest.raises(ValueError, match="model.aggregator.nope"):
        apply_overrides(cfg, {"aggregator.nope": 1})


def test_test_config_validation() -> None:
    with pytest.raises(ValueError, match="nms_topk"):
        TestConfig(nms_topk=0)
    assert TestConfig(nms_topk=-1).nms_topk == -1


def test_model_yaml_exponent_floats_and_derived_voxel_scale(tmp_path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("backbone:\n  bn_eps: 1e-5\n  voxel_size: 0.05\n")
    cfg = load_model_config(path)
    assert cfg.backbone.bn_eps == 1e-5 and cfg.voxel_scale == pytest.approx(20.0)
    # an explicit voxel_scale (older checkpoints) must agree with the voxel size
    assert ModelConfig.from_dict({"backbone": {"voxel_size": 0.05}, "loss": {"voxel_scale": 20.0}}).voxel_scale == 20.0
    with pytest.raises(ValueError, match="model.loss.voxel_scale"):
        ModelConfig.from_dict({"backbone": {"voxel_size": 0.05}, "loss": {"voxel_scale": 50.0}})


def test_model_and_training_configs_share_one_converter() -> None:
    # the same wrong type is refused by both loaders with the same wording
    from training.config import ConfigError, config_from_dict

    with pytest.raises(ValueError, match="'model.aggregator.n_queries' expects an integer"):
        ModelConfig.from_dict({"aggregator": {"n_queries": "many"}})
    with pytest.raises(ConfigError, match="'batch_size' expects an integer"):
        config_from_dict({"batch_size": "many"})
