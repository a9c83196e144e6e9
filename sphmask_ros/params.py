"""The node's parameters on a ROS node: descriptors, declaration, the on-set callback.

The table itself (names, defaults, types, ranges, descriptions) and its validation are ROS-free
and live in `sphmask_core.sensor.node_params`, so offline tools and training read the same
parameter file the node does. This module turns each row into a `ParameterDescriptor`,
declares them all on a node, and wraps `validate_update` as rclpy's on-set-parameters callback.
"""

from __future__ import annotations

from typing import Any, Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from sphmask_core.sensor.node_params import (
    PARAMS,
    SPECS,
    NodeParams,
    ParamSpec,
    ParamType,
    validate,
    validate_update,
)

__all__ = ["descriptor", "declare_all", "make_on_set_callback"]


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """ParameterDescriptor of one table row (description, type, range, read_only)."""
    extra = ""
    if spec.choices is not None:
        extra = " Choices: " + ", ".join(spec.choices) + "."
    desc = ParameterDescriptor(
        name=spec.name,
        type=int(spec.type),
        description=spec.description + extra,
        read_only=spec.read_only,
    )
    # rclpy applies the range descriptors only to scalar numbers
    if spec.range is not None and spec.type == ParamType.DOUBLE:
        desc.floating_point_range = [
            FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]), step=0.0)
        ]
    elif spec.range is not None and spec.type == ParamType.INTEGER:
        desc.integer_range = [
            IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=0)
        ]
    if spec.choices is not None:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    elif spec.length is not None:
        desc.additional_constraints = f"exactly {spec.length} values"
    return desc


def declare_all(node: Any) -> None:
    """Declare every parameter of `PARAMS` on `node` (values from --params-file override defaults).

    Raises rclpy's InvalidParameterValueException / InvalidParameterTypeException when a value
    given at start-up violates its descriptor, and ValueError when it fails `validate`.
    Parameters given to the node (file, -p) that are not in the table are warned about by name.
    """
    node.declare_parameters(
        namespace="",
        parameters=[(spec.name, spec.default, descriptor(spec)) for spec in PARAMS],
    )
    for spec in PARAMS:
        ok, reason = validate(spec.name, node.get_parameter(spec.name).value)
        if not ok:
            raise ValueError(f"invalid start-up value of parameter '{spec.name}': {reason}")
    from sphmask_ros.params_file import unknown_overrides

    for name in unknown_overrides(node, list(SPECS)):
        node.get_logger().warning(f"ignoring unknown parameter '{name}' (not a sphmask node "
                                  f"parameter; misspelt?)")


def make_on_set_callback(get_current: Callable[[], NodeParams]) -> Callable[[list], Any]:
    """on-set-parameters callback validating a batch of rclpy Parameters against `get_current()`.

    Parameters not in the table (e.g. use_sim_time) are passed through untouched.
    """
    from rcl_interfaces.msg import SetParametersResult

    def on_set(parameters: list) -> SetParametersResult:
        ours = {p.name: p.value for p in parameters if p.name in SPECS}
        if not ours:
            return SetParametersResult(successful=True)
        ok, reason = validate_update(get_current(), ours)
        return SetParametersResult(successful=ok, reason=reason)

    return on_set
