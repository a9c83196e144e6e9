"""Every parameter of the sphmask node, declared in one table (no ROS import).

The table (`PARAMS`) is the single source of truth for names, defaults, types, descriptions,
ranges/choices and whether a parameter may change at run time. It lives in the core because the
node is not its only reader: `sphmask-bag eval` and training on recorded bags
(`dataset.name: bag`) read the same parameter file (`load_node_params`) and turn it into the
same pre-processing settings (`preprocess_config`) and sensor extrinsic (`static_transform`).
`sphmask_ros.params` turns the table into `ParameterDescriptor`s on a node; `NodeParams.from_node`
reads the values into a plain dataclass, and `validate` / `validate_update` back the node's
on-set-parameters callback so that invalid run-time changes are refused with a reason instead of
reaching the pipeline.

Run-time changeable (read_only=False): thresholds, NMS settings, crop box, voxel size, point cap,
accumulation window, labelled-cloud switch and latency limits. Everything that shapes the ROS
graph or the loaded model (topics, QoS, checkpoint, device, frames, pose source) is read-only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from enum import IntEnum
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from scipy.spatial.transform import Rotation

from sphmask_core.sensor.preprocess import PreprocessConfig
from sphmask_core.sensor.transforms import Transform

_BIG = 1.0e4  # metres; the crop box default ("no crop") and the bound of its coordinates


class ParamType(IntEnum):
    """rcl_interfaces/ParameterType codes of the types the node uses (a ROS test checks them)."""

    BOOL = 1
    INTEGER = 2
    DOUBLE = 3
    STRING = 4
    DOUBLE_ARRAY = 8
    STRING_ARRAY = 9


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: the row of the table."""

    name: str
    default: Any
    type: ParamType
    description: str
    range: tuple[float, float] | None = None  # inclusive; numbers, or each element of a number array
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    length: int | None = None  # required array length (float arrays such as xyz)
    pattern: str | None = None  # full-match regex for strings (checked when choices is None)


_D = ParamType.DOUBLE
_I = ParamType.INTEGER
_S = ParamType.STRING
_B = ParamType.BOOL
_SA = ParamType.STRING_ARRAY
_DA = ParamType.DOUBLE_ARRAY

PARAMS: tuple[ParamSpec, ...] = (
    # --- graph and model (fixed once the node runs)
    ParamSpec("input_topics", ["points"], _SA,
              "PointCloud2 topics to segment (each subscribed with the input QoS); relative names "
              "resolve in the node's namespace.", read_only=True),
    ParamSpec("checkpoint", "", _S,
              "Path of a sphmask checkpoint (.pt); empty = the shipped default model.",
              read_only=True),
    ParamSpec("device", "auto", _S,
              "Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N.",
              read_only=True, pattern=r"auto|cpu|cuda(:\d+)?"),
    ParamSpec("torch_threads", 1, _I,
              "Torch intra-op CPU threads, set once at start; 0 = torch's default (one per core). "
              "Default 1: on 2 shared cores a second thread made the sparse convolutions slower.",
              read_only=True, range=(0, 256)),
    ParamSpec("class_names", [""], _SA,
              "Override of the model's instance class names (same length as the model's); "
              "[''] or [] = names stored in the checkpoint.", read_only=True),
    # --- post-processing (run time)
    ParamSpec("score_threshold", 0.4, _D,
              "Minimum final instance score (after NMS) to publish an instance.", range=(0.0, 1.0)),
    ParamSpec("nms_sigma", 2.0, _D,
              "Gaussian sigma of matrix NMS (larger = stronger decay of overlapping masks).",
              range=(0.01, 100.0)),
    ParamSpec("nms_topk", 200, _I,
              "Maximum number of instances kept after matrix NMS.", range=(1, 10000)),
    ParamSpec("min_points", 50, _I,
              "Instances covering fewer model points (after input_voxel_size thinning) are dropped.",
              range=(0, 10_000_000)),
    # --- frames and poses (fixed)
    ParamSpec("fixed_frame", "", _S,
              "Frame the output is expressed in and clouds are accumulated in; empty = the input "
              "cloud's own frame (no pose needed, no accumulation across sensor motion).",
              read_only=True),
    ParamSpec("pose_source", "static", _S,
              "How the pose fixed_frame <- cloud frame is obtained when fixed_frame is set: "
              "static (static_transform.*), odometry (nav_msgs/Odometry on odometry_topic, "
              "composed with static_transform as the sensor extrinsic), or tf (/tf and /tf_static).",
              read_only=True, choices=("static", "odometry", "tf")),
    ParamSpec("odometry_topic", "odom", _S,
              "nav_msgs/Odometry topic giving fixed_frame <- base poses (pose_source odometry).",
              read_only=True),
    ParamSpec("static_transform.xyz", [0.0, 0.0, 0.0], _DA,
              "Translation (m) of the static transform parent <- cloud frame.", read_only=True,
              length=3, range=(-_BIG, _BIG)),
    ParamSpec("static_transform.rpy", [0.0, 0.0, 0.0], _DA,
              "Rotation (roll, pitch, yaw in rad, fixed axes x-y-z) of the static transform; "
              "ignored when static_transform.quaternion is set.", read_only=True, length=3,
              range=(-2.0 * math.pi, 2.0 * math.pi)),
    ParamSpec("static_transform.quaternion", [0.0, 0.0, 0.0, 0.0], _DA,
              "Rotation as quaternion x, y, z, w; all zeros = use static_transform.rpy.",
              read_only=True, length=4, range=(-1.0, 1.0)),
    ParamSpec("tf_timeout", 0.5, _D,
              "Seconds a cloud may wait for its pose (and the largest pose extrapolation) before "
              "it is skipped.", read_only=True, range=(0.0, 10.0)),
    # --- pre-processing (run time)
    ParamSpec("accumulate.frames", 1, _I,
              "Number of clouds (the newest included) merged in fixed_frame before inference.",
              range=(1, 100)),
    ParamSpec("accumulate.seconds", 0.0, _D,
              "Drop accumulated clouds older than this (relative to the newest); 0 = no limit.",
              range=(0.0, 60.0)),
    ParamSpec("input_voxel_size", 0.02, _D,
              "Edge (m) of the grid the input is thinned on before inference (one point per "
              "cell, mean xyz and rgb); 0 = none. Not the model's voxel size: the model re-voxelises "
              "at its own, and a grid at or above it discards detail (warned at start).",
              range=(0.0, 1.0)),
    ParamSpec("crop.min", [-_BIG, -_BIG, -_BIG], _DA,
              "Lower corner (x, y, z, m) of the crop box in the output frame.", length=3,
              range=(-_BIG, _BIG)),
    ParamSpec("crop.max", [_BIG, _BIG, _BIG], _DA,
              "Upper corner (x, y, z, m) of the crop box in the output frame.", length=3,
              range=(-_BIG, _BIG)),
    ParamSpec("crop.max_range", 200.0, _D,
              "Drop points farther than this (m) from the sensor origin (counted as "
              "beyond_range in /diagnostics); 0 = no limit, which lets one stray point "
              "kilometres away stretch the model's voxel grid past its size and cost the frame.",
              range=(0.0, _BIG)),
    ParamSpec("max_points", 300_000, _I,
              "Cap on the points given to the model (random subset, warned); bounds memory.",
              range=(1000, 20_000_000)),
    # --- tracking (run time)
    ParamSpec("tracking.max_age", 5, _I,
              "Results a track survives unmatched before its id is retired (an object gone "
              "longer gets a new id when it returns).", range=(0, 1000)),
    ParamSpec("tracking.max_distance", 0.5, _D,
              "Box centres closer than this (m, output frame) keep their track id even without "
              "mask overlap; 0 = associate by overlap only.", range=(0.0, 100.0)),
    # --- QoS (fixed)
    ParamSpec("qos.input_reliability", "best_effort", _S,
              "Reliability of the input subscriptions (best_effort matches every sensor driver).",
              read_only=True, choices=("best_effort", "reliable")),
    ParamSpec("qos.input_depth", 1, _I,
              "History depth of the input subscriptions (1 = newest cloud only).",
              read_only=True, range=(1, 100)),
    # --- outputs and monitoring
    ParamSpec("publish_labelled_cloud", True, _B,
              "Publish ~/labelled_cloud (built only while it has subscribers)."),
    ParamSpec("latency_warn_ms", 500.0, _D,
              "Diagnostics WARN when the last end-to-end latency exceeds this.",
              range=(0.0, 1.0e6)),
    ParamSpec("latency_error_ms", 2000.0, _D,
              "Diagnostics ERROR when the last end-to-end latency exceeds this.",
              range=(0.0, 1.0e6)),
    ParamSpec("diagnostics_period", 1.0, _D,
              "Seconds between /diagnostics messages.", read_only=True, range=(0.05, 60.0)),
)

SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMS}

_TYPE_NAMES = {_D: "double", _I: "integer", _S: "string", _B: "bool",
               _SA: "string array", _DA: "double array"}


def _type_ok(spec: ParamSpec, value: Any) -> bool:
    if spec.type == _D:
        return isinstance(value, float)
    if spec.type == _I:
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.type == _S:
        return isinstance(value, str)
    if spec.type == _B:
        return isinstance(value, bool)
    if spec.type == _SA:
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    if spec.type == _DA:
        # rclpy hands double arrays over as array.array('d') or lists
        return hasattr(value, "__len__") and all(
            isinstance(v, float) for v in value)
    return False


def validate(name: str, value: Any) -> tuple[bool, str]:
    """Check one parameter value on its own: known name, type, range, choices, length.

    Returns (True, "") or (False, reason). Cross-parameter rules live in `validate_update`.
    """
    spec = SPECS.get(name)
    if spec is None:
        return False, f"unknown parameter '{name}'"
    if not _type_ok(spec, value):
        return False, (f"'{name}' must be a {_TYPE_NAMES[spec.type]}, "
                       f"got {type(value).__name__} {value!r}")
    values: Sequence[Any] = value if spec.type in (_SA, _DA) else [value]
    if spec.length is not None and len(values) != spec.length:
        return False, f"'{name}' needs exactly {spec.length} values, got {len(values)}"
    if spec.type in (_D, _I, _DA):
        for v in values:
            if not math.isfinite(float(v)):
                return False, f"'{name}' must be finite, got {v}"
            if spec.range is not None and not spec.range[0] <= v <= spec.range[1]:
                return False, (f"'{name}' = {v} is outside "
                               f"[{spec.range[0]}, {spec.range[1]}]")
    if spec.choices is not None and value not in spec.choices:
        return False, f"'{name}' must be one of {', '.join(spec.choices)}, got '{value}'"
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        return False, f"'{name}' = '{value}' does not match {spec.pattern}"
    if name == "input_topics":
        if len(values) == 0 or any(not v for v in values):
            return False, "'input_topics' needs at least one non-empty topic name"
    if name == "static_transform.quaternion":
        norm = math.sqrt(sum(v * v for v in values))
        if norm != 0.0 and abs(norm - 1.0) > 1e-3:
            return False, f"'{name}' must be a unit quaternion (or all zeros), norm is {norm:.4f}"
    return True, ""


def _to_python(spec: ParamSpec, value: Any) -> Any:
    if spec.type == _DA:
        return tuple(float(v) for v in value)
    if spec.type == _SA:
        return tuple(str(v) for v in value)
    return value


@dataclass(frozen=True)
class NodeParams:
    """The node's parameter values (field = parameter name with '.' replaced by '_')."""

    input_topics: tuple[str, ...] = ("points",)
    checkpoint: str = ""
    device: str = "auto"
    torch_threads: int = 1
    class_names: tuple[str, ...] = ("",)
    score_threshold: float = 0.4
    nms_sigma: float = 2.0
    nms_topk: int = 200
    min_points: int = 50
    fixed_frame: str = ""
    pose_source: str = "static"
    odometry_topic: str = "odom"
    static_transform_xyz: tuple[float, ...] = (0.0, 0.0, 0.0)
    static_transform_rpy: tuple[float, ...] = (0.0, 0.0, 0.0)
    static_transform_quaternion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    tf_timeout: float = 0.5
    accumulate_frames: int = 1
    accumulate_seconds: float = 0.0
    input_voxel_size: float = 0.02
    crop_min: tuple[float, ...] = (-_BIG, -_BIG, -_BIG)
    crop_max: tuple[float, ...] = (_BIG, _BIG, _BIG)
    crop_max_range: float = 200.0
    max_points: int = 300_000
    tracking_max_age: int = 5
    tracking_max_distance: float = 0.5
    qos_input_reliability: str = "best_effort"
    qos_input_depth: int = 1
    publish_labelled_cloud: bool = True
    latency_warn_ms: float = 500.0
    latency_error_ms: float = 2000.0
    diagnostics_period: float = 1.0

    @staticmethod
    def field_name(param_name: str) -> str:
        return param_name.replace(".", "_")

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "NodeParams":
        """Build from {parameter name: value}; names not given keep the table defaults."""
        kwargs = {}
        for spec in PARAMS:
            value = values.get(spec.name, spec.default)
            kwargs[cls.field_name(spec.name)] = _to_python(spec, value)
        params = cls(**kwargs)
        problem = params.consistency_problem()
        if problem:
            raise ValueError(problem)
        return params

    @classmethod
    def from_node(cls, node: Any) -> "NodeParams":
        """Read every declared parameter of `node` (after `declare_all`)."""
        return cls.from_values({spec.name: node.get_parameter(spec.name).value for spec in PARAMS})

    def updated(self, changes: Mapping[str, Any]) -> "NodeParams":
        """Copy with {parameter name: value} applied (no validation; see `validate_update`)."""
        kwargs = {self.field_name(n): _to_python(SPECS[n], v) for n, v in changes.items()}
        return replace(self, **kwargs)

    def consistency_problem(self) -> str:
        """Cross-parameter rule that is violated, or '' when the set is consistent."""
        if any(lo >= hi for lo, hi in zip(self.crop_min, self.crop_max)):
            return f"crop.min {list(self.crop_min)} must be below crop.max {list(self.crop_max)} on every axis"
        if self.latency_warn_ms > self.latency_error_ms:
            return (f"latency_warn_ms ({self.latency_warn_ms}) must not exceed "
                    f"latency_error_ms ({self.latency_error_ms})")
        if self.accumulate_frames > 1 and not self.fixed_frame:
            return "accumulate.frames > 1 needs fixed_frame (clouds are merged in a fixed frame)"
        return ""

    @property
    def class_name_override(self) -> list[str]:
        """Override names, or [] when the checkpoint's names are used."""
        return [n for n in self.class_names if n]


def validate_update(current: NodeParams, changes: Mapping[str, Any]) -> tuple[bool, str]:
    """Check a run-time change of several parameters at once (what on-set-parameters receives).

    Rejects unknown names, read-only parameters, invalid single values and sets that break a
    cross-parameter rule (e.g. crop.min >= crop.max).
    """
    for name, value in changes.items():
        spec = SPECS.get(name)
        if spec is not None and spec.read_only:
            return False, f"'{name}' is read-only at run time (restart the node to change it)"
        ok, reason = validate(name, value)
        if not ok:
            return False, reason
    problem = current.updated(changes).consistency_problem()
    if problem:
        return False, problem
    return True, ""


def field_names() -> list[str]:
    """Dataclass field names, in table order (used by tests to keep table and dataclass in sync)."""
    return [f.name for f in fields(NodeParams)]


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load_node_params(path: str | Path | None, overrides: dict[str, Any] | None = None) -> NodeParams:
    """NodeParams from a ROS 2 parameter file (`/**:` or a single node's `ros__parameters`).

    None = the table defaults. Unknown names and invalid values raise ValueError naming them,
    as the node would refuse them at start-up.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ValueError(f"cannot read parameter file '{path}': {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"parameter file '{path}' is not valid YAML: {exc}") from None
        if not isinstance(doc, dict):
            raise ValueError(f"parameter file '{path}' has no '/**: ros__parameters' section")
        sections = [v["ros__parameters"] for k, v in doc.items()
                    if isinstance(v, dict) and isinstance(v.get("ros__parameters"), dict)]
        wild = doc.get("/**")
        if isinstance(wild, dict) and isinstance(wild.get("ros__parameters"), dict):
            sections = [wild["ros__parameters"]]
        if len(sections) != 1:
            raise ValueError(f"parameter file '{path}' needs exactly one 'ros__parameters' section "
                             f"(found {len(sections)})")
        values = _flatten(sections[0])
    values.update(overrides or {})
    known = {spec.name for spec in PARAMS}
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"unknown node parameter '{name}' in {path}")
        ok, reason = validate(name, value)
        if not ok:
            raise ValueError(f"invalid node parameter in {path}: {reason}")
    return NodeParams.from_values(values)


def preprocess_config(params: NodeParams) -> PreprocessConfig:
    """The preprocessor's settings from the node parameters (the node, `sphmask-bag eval` and
    training on bags all take them from here)."""
    no_crop = (all(v <= -_BIG for v in params.crop_min)
               and all(v >= _BIG for v in params.crop_max))
    return PreprocessConfig(
        fixed_frame=params.fixed_frame,
        accumulate_frames=params.accumulate_frames,
        accumulate_seconds=params.accumulate_seconds,
        tolerance_s=params.tf_timeout,
        crop_min=None if no_crop else tuple(params.crop_min),
        crop_max=None if no_crop else tuple(params.crop_max),
        crop_max_range=params.crop_max_range,
        input_voxel_size=params.input_voxel_size,
        max_points=params.max_points,
    )


def static_transform(params: NodeParams) -> Transform:
    """The static_transform.* parameters (quaternion when non-zero, else roll-pitch-yaw)."""
    quat = params.static_transform_quaternion
    if any(quat):
        return Transform.from_xyz_quat(params.static_transform_xyz, quat)
    q = Rotation.from_euler("xyz", params.static_transform_rpy).as_quat()  # x, y, z, w
    return Transform.from_xyz_quat(params.static_transform_xyz, q)
