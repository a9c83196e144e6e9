"""The parameter table on a ROS node: descriptors, declaration, the on-set callback, rcl reading
config/sphmask.yaml (the table itself: tests/core/test_node_params.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# DDS on loopback with a domain of our own even if the session conftest did not set them
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy  # noqa: E402
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from sphmask_core.sensor import node_params as P  # noqa: E402
from sphmask_ros.params import declare_all, make_on_set_callback  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "config" / "sphmask.yaml"


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
