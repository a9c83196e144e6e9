"""Parameter table, descriptors, validation and config/sphmask.yaml consistency."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

# DDS on loopback with a domain of our own even if the session conftest did not set them
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy  # noqa: E402
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from sphmask_core.sensor import node_params as P  # noqa: E402
from sphmask_ros.params import declare_all, make_on_set_callback  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "config" / "sphmask.yaml"


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _yaml_type(value) -> int:
    if isinstance(value, bool):
        return ParameterType.PARAMETER_BOOL
    if isinstance(value, int):
        return ParameterType.PARAMETER_INTEGER
    if isinstance(value, float):
        return ParameterType.PARAMETER_DOUBLE
    if isinstance(value, str):
        return ParameterType.PARAMETER_STRING
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ParameterType.PARAMETER_STRING_ARRAY
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return ParameterType.PARAMETER_DOUBLE_ARRAY
    raise AssertionError(f"unsupported YAML value {value!r}")


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


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
    flat = _flatten(tree["/**"]["ros__parameters"])
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


def test_declare_all_on_a_node_with_descriptors_and_callback(context):
    node = Node("params_probe", context=context,
                parameter_overrides=[Parameter("score_threshold", value=0.3),
                                     Parameter("input_topics", value=["a", "b"])])
    try:
        declare_all(node)
        params = P.NodeParams.from_node(node)
        assert params.score_threshold == 0.3
        assert params.input_topics == ("a", "b")
        assert params.crop_min == (-1.0e4, -1.0e4, -1.0e4)
        desc = node.describe_parameter("score_threshold")
        assert desc.floating_point_range[0].to_value == 1.0
        assert node.describe_parameter("nms_topk").integer_range[0].from_value == 1
        assert node.describe_parameter("checkpoint").read_only
        assert "best_effort" in node.describe_parameter("qos.input_reliability").description

        state = {"params": params}
        node.add_on_set_parameters_callback(make_on_set_callback(lambda: state["params"]))
        ok = node.set_parameters([Parameter("score_threshold", value=0.7)])[0]
        assert ok.successful
        bad = node.set_parameters([Parameter("pose_source", value="gps")])[0]
        assert not bad.successful  # read-only (rclpy) or our validation: either way refused
        bad = node.set_parameters([Parameter("crop.max", value=[-2e4, 1.0, 1.0])])[0]
        assert not bad.successful and "outside" in bad.reason
        bad = node.set_parameters([Parameter("latency_warn_ms", value=5000.0)])[0]
        assert not bad.successful and "latency_error_ms" in bad.reason
        assert node.get_parameter("score_threshold").value == 0.7
        assert node.get_parameter("latency_warn_ms").value == 500.0
    finally:
        node.destroy_node()


def test_declare_all_rejects_bad_start_value(context):
    node = Node("params_bad", context=context,
                parameter_overrides=[Parameter("device", value="tpu")])
    try:
        with pytest.raises(ValueError, match="device"):
            declare_all(node)
    finally:
        node.destroy_node()


def test_params_file_parsed_by_rcl():
    """The shipped YAML goes through rcl's own parser (--params-file) and declares cleanly."""
    ctx = rclpy.Context()
    rclpy.init(args=["prog", "--ros-args", "--params-file", str(CONFIG),
                     "-p", "score_threshold:=0.25"], context=ctx)
    try:
        node = Node("sphmask", context=ctx)
        try:
            declare_all(node)
            params = P.NodeParams.from_node(node)
            assert params.score_threshold == 0.25
            assert params.class_name_override == []
            assert params.static_transform_quaternion == (0.0, 0.0, 0.0, 0.0)
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_core_type_codes_are_rcl_parameter_types() -> None:
    # the core table spells rcl_interfaces' codes itself (it imports no ROS); they must agree
    assert {t.name: int(t) for t in P.ParamType} == {
        "BOOL": ParameterType.PARAMETER_BOOL, "INTEGER": ParameterType.PARAMETER_INTEGER,
        "DOUBLE": ParameterType.PARAMETER_DOUBLE, "STRING": ParameterType.PARAMETER_STRING,
        "DOUBLE_ARRAY": ParameterType.PARAMETER_DOUBLE_ARRAY,
        "STRING_ARRAY": ParameterType.PARAMETER_STRING_ARRAY,
    }
