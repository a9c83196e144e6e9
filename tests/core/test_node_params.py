"""The node's parameter table (sphmask_core.sensor.node_params): table, dataclass and
config/sphmask.yaml agree, validation, parameter files, and the settings derived from it
(declaring it on a ROS node: tests/ros/test_params.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from sphmask_core.sensor import node_params as P

CONFIG = Path(__file__).resolve().parents[2] / "config" / "sphmask.yaml"


def _yaml_type(value) -> P.ParamType:
    if isinstance(value, bool):
        return P.ParamType.BOOL
    if isinstance(value, int):
        return P.ParamType.INTEGER
    if isinstance(value, float):
        return P.ParamType.DOUBLE
    if isinstance(value, str):
        return P.ParamType.STRING
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return P.ParamType.STRING_ARRAY
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return P.ParamType.DOUBLE_ARRAY
    raise AssertionError(f"unsupported YAML value {value!r}")


def test_table_and_dataclass_agree():
    assert P.field_names() == [P.NodeParams.field_name(s.name) for s in P.PARAMS]
    defaults = P.NodeParams()
    for spec in P.PARAMS:
        value = getattr(defaults, P.NodeParams.field_name(spec.name))
        expected = tuple(spec.default) if isinstance(spec.default, list) else spec.default
        assert value == expected, spec.name
        assert P.validate(spec.name, spec.default) == (True, ""), spec.name
        assert spec.description


def test_yaml_matches_declared_parameters():
    tree = yaml.safe_load(CONFIG.read_text())
    flat = P._flatten(tree["/**"]["ros__parameters"])
    assert set(flat) == set(P.SPECS), set(flat) ^ set(P.SPECS)
    for name, value in flat.items():
        assert _yaml_type(value) == P.SPECS[name].type, name
        assert P.validate(name, value) == (True, ""), name
    # the shipped file is the table's defaults, so the file documents the real behaviour
    assert P.NodeParams.from_values(flat) == P.NodeParams()


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("score_threshold", 1.5, "outside"),
        ("score_threshold", 1, "must be a double"),
        ("nms_topk", 0, "outside"),
        ("nms_topk", 2.0, "must be a integer"),
        ("device", "gpu", "does not match"),
        ("pose_source", "gps", "must be one of"),
        ("crop.min", [0.0, 0.0], "exactly 3"),
        ("crop.max", [1.0, float("nan"), 1.0], "finite"),
        ("static_transform.quaternion", [0.0, 0.0, 0.5, 0.5], "unit quaternion"),
        ("input_topics", [""], "non-empty"),
        ("publish_labelled_cloud", 1, "must be a bool"),
        ("no_such_param", 1.0, "unknown"),
    ],
)
def test_validate_rejects_with_reason(name, value, fragment):
    ok, reason = P.validate(name, value)
    assert not ok
    assert fragment in reason


def test_validate_accepts_edges():
    assert P.validate("score_threshold", 0.0)[0]
    assert P.validate("score_threshold", 1.0)[0]
    assert P.validate("device", "cuda:1")[0]
    assert P.validate("static_transform.quaternion", [0.0, 0.0, 0.0, 1.0])[0]


def test_validate_update_cross_rules_and_read_only():
    current = P.NodeParams()
    assert P.validate_update(current, {"score_threshold": 0.5}) == (True, "")
    ok, reason = P.validate_update(current, {"crop.min": [0.0, 0.0, 0.0], "crop.max": [1.0, -1.0, 1.0]})
    assert not ok and "crop.min" in reason
    ok, reason = P.validate_update(current, {"latency_warn_ms": 3000.0})
    assert not ok and "latency_error_ms" in reason
    # raising both together is consistent
    assert P.validate_update(current, {"latency_warn_ms": 3000.0, "latency_error_ms": 4000.0})[0]
    ok, reason = P.validate_update(current, {"checkpoint": "/x.pt"})
    assert not ok and "read-only" in reason
    ok, reason = P.validate_update(current, {"accumulate.frames": 3})
    assert not ok and "fixed_frame" in reason


def test_from_values_rejects_inconsistent_set():
    with pytest.raises(ValueError, match="crop.min"):
        P.NodeParams.from_values({"crop.min": [1.0, 1.0, 1.0], "crop.max": [0.0, 2.0, 2.0]})


def test_load_node_params_reads_a_file_and_names_problems(tmp_path: Path) -> None:
    assert P.load_node_params(CONFIG) == P.NodeParams() == P.load_node_params(None)
    one = tmp_path / "one.yaml"
    one.write_text("sphmask:\n  ros__parameters:\n    accumulate:\n      frames: 2\n"
                   "    fixed_frame: map\n")
    params = P.load_node_params(one, {"score_threshold": 0.2})
    assert (params.accumulate_frames, params.fixed_frame, params.score_threshold) == (2, "map", 0.2)
    cases = [("missing.yaml", None, "cannot read parameter file"),
             ("bad.yaml", "a: [1", "not valid YAML"),
             ("none.yaml", "- 1\n", "no '/\\*\\*: ros__parameters' section"),
             ("two.yaml", "a:\n  ros__parameters: {}\nb:\n  ros__parameters: {}\n",
              "exactly one 'ros__parameters' section \\(found 2\\)"),
             ("typo.yaml", "/**:\n  ros__parameters:\n    scor_threshold: 0.2\n",
              "unknown node parameter 'scor_threshold'"),
             ("range.yaml", "/**:\n  ros__parameters:\n    score_threshold: 2.0\n", "outside")]
    for name, text, fragment in cases:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(ValueError, match=fragment):
            P.load_node_params(path)


def test_preprocess_config_from_parameters() -> None:
    default = P.preprocess_config(P.NodeParams())
    # the default box is "no crop"; tf_timeout is the pose tolerance
    assert default.crop_min is None and default.crop_max is None
    assert (default.fixed_frame, default.accumulate_frames, default.tolerance_s) == ("", 1, 0.5)
    cfg = P.preprocess_config(P.NodeParams.from_values({
        "fixed_frame": "map", "accumulate.frames": 3, "accumulate.seconds": 0.5,
        "crop.min": [-1.0, -2.0, -3.0], "crop.max": [1.0, 2.0, 3.0], "crop.max_range": 9.0,
        "input_voxel_size": 0.05, "max_points": 5000, "tf_timeout": 0.25}))
    assert (cfg.fixed_frame, cfg.accumulate_frames, cfg.accumulate_seconds) == ("map", 3, 0.5)
    assert cfg.crop_min == (-1.0, -2.0, -3.0) and cfg.crop_max == (1.0, 2.0, 3.0)
    assert (cfg.crop_max_range, cfg.input_voxel_size, cfg.max_points, cfg.tolerance_s) == \
        (9.0, 0.05, 5000, 0.25)
    cfg.validate()


def test_static_transform_quaternion_or_rpy() -> None:
    yaw90 = P.static_transform(P.NodeParams.from_values({
        "static_transform.xyz": [1.0, 0.0, 0.0], "static_transform.rpy": [0.0, 0.0, np.pi / 2]}))
    np.testing.assert_allclose(yaw90.apply(np.array([[1.0, 0.0, 0.0]])), [[1.0, 1.0, 0.0]],
                               atol=1e-12)
    s = np.sqrt(0.5)
    quat = P.static_transform(P.NodeParams.from_values({
        "static_transform.rpy": [1.0, 2.0, 3.0],  # ignored once a quaternion is given
        "static_transform.quaternion": [0.0, 0.0, s, s]}))
    np.testing.assert_allclose(quat.as_matrix(), P.static_transform(P.NodeParams.from_values({
        "static_transform.rpy": [0.0, 0.0, np.pi / 2]})).as_matrix(), atol=1e-12)
