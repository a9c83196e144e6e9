"""launch/sphmask.launch.py, loaded with small fake `launch` / `launch_ros` modules.

`launch` and `launch_ros` are not installable here, so the test injects stand-ins that record
what the launch file constructs, resolves the declared arguments the way launch does (defaults,
then command-line overrides) and checks which executables it would start and with what.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / "launch" / "sphmask.launch.py"
SHARE = "/opt/ros/share/sphmask"


class _Context:
    def __init__(self, configs: dict[str, str]) -> None:
        self.launch_configurations = configs


def _perform(value, context) -> str:
    return value if isinstance(value, str) else value.perform(context)


def _fake_modules() -> dict[str, types.ModuleType]:
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    subs = types.ModuleType("launch.substitutions")
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_subs = types.ModuleType("launch_ros.substitutions")

    class LaunchDescription:
        def __init__(self, entities=None):
            self.entities = list(entities or [])

    class DeclareLaunchArgument:
        def __init__(self, name, default_value=None, description=""):
            self.name, self.default_value, self.description = name, default_value, description

    class OpaqueFunction:
        def __init__(self, function):
            self.function = function

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context.launch_configurations[self.name]

    class PathJoinSubstitution:
        def __init__(self, parts):
            self.parts = parts

        def perform(self, context):
            return "/".join(_perform(p, context) for p in self.parts)

    class FindPackageShare:
        def __init__(self, package):
            self.package = package

        def perform(self, context):
            assert self.package == "sphmask"
            return SHARE

    class Node:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    launch.LaunchDescription = LaunchDescription
    actions.DeclareLaunchArgument = DeclareLaunchArgument
    actions.OpaqueFunction = OpaqueFunction
    subs.LaunchConfiguration = LaunchConfiguration
    subs.PathJoinSubstitution = PathJoinSubstitution
    ros_actions.Node = Node
    ros_subs.FindPackageShare = FindPackageShare
    launch.actions, launch.substitutions = actions, subs
    launch_ros.actions, launch_ros.substitutions = ros_actions, ros_subs
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": subs,
            "launch_ros": launch_ros, "launch_ros.actions": ros_actions,
            "launch_ros.substitutions": ros_subs}


@pytest.fixture
def launch_file(monkeypatch):
    for name, module in _fake_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("sphmask_launch_under_test", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(module, **overrides):
    """generate_launch_description + resolve arguments + the OpaqueFunction -> started nodes."""
    desc = module.generate_launch_description()
    declared = [e for e in desc.entities if type(e).__name__ == "DeclareLaunchArgument"]
    unknown = set(overrides) - {d.name for d in declared}
    assert not unknown, f"not declared: {unknown}"
    ctx = _Context({})
    for d in declared:
        ctx.launch_configurations[d.name] = _perform(d.default_value, ctx)
    ctx.launch_configurations.update(overrides)
    started = []
    for e in desc.entities:
        if type(e).__name__ == "OpaqueFunction":
            started += e.function(ctx)
    return declared, [n.kwargs for n in started]


def test_declared_arguments(launch_file):
    declared, _ = _run(launch_file)
    names = {d.name for d in declared}
    assert {"config_file", "namespace", "input_topics", "checkpoint", "device", "use_rviz"} <= names
    assert all(d.description for d in declared)


def test_defaults_start_only_the_node_with_the_shipped_params(launch_file):
    _, nodes = _run(launch_file)
    assert len(nodes) == 1
    node = nodes[0]
    assert (node["package"], node["executable"], node["name"]) == ("sphmask", "sphmask_node", "sphmask")
    assert node["namespace"] == ""
    config, overrides = node["parameters"]
    assert config == f"{SHARE}/config/sphmask.yaml"
    # nothing overrides the file when the arguments are left empty
    assert overrides == {"use_sim_time": False}
    assert node["remappings"] == []
    # large best-effort clouds need the shipped Fast DDS profile (config/fastdds.xml)
    assert node["additional_env"] == {"FASTDDS_DEFAULT_PROFILES_FILE": f"{SHARE}/config/fastdds.xml"}
    assert (ROOT / "config" / "fastdds.xml").is_file()
    # the file the launch points at exists in the source tree that gets installed to share/
    assert yaml.safe_load((ROOT / "config" / "sphmask.yaml").read_text())["/**"]["ros__parameters"]


def test_overrides_namespace_remaps_and_rviz(launch_file):
    _, nodes = _run(
        launch_file,
        namespace="perception",
        input_topics="/lidar/points, /cam/points",
        checkpoint="/models/x.pt",
        device="cuda:0",
        use_sim_time="True",
        remappings="/diagnostics:=/sphmask/diagnostics,~/markers:=viz",
        use_rviz="true",
        config_file="/tmp/my.yaml",
    )
    node, rviz = nodes
    assert node["namespace"] == "perception"
    config, overrides = node["parameters"]
    assert config == "/tmp/my.yaml"
    assert overrides == {"use_sim_time": True, "input_topics": ["/lidar/points", "/cam/points"],
                         "checkpoint": "/models/x.pt", "device": "cuda:0"}
    assert node["remappings"] == [("/diagnostics", "/sphmask/diagnostics"), ("~/markers", "viz")]
    assert (rviz["package"], rviz["executable"]) == ("rviz2", "rviz2")
    assert rviz["arguments"] == ["-d", f"{SHARE}/config/sphmask.rviz"]
    assert rviz["additional_env"] == node["additional_env"]


def test_empty_dds_profile_keeps_the_environment(launch_file):
    (node,) = _run(launch_file, dds_profile="")[1]
    assert node["additional_env"] == {}


def test_bad_arguments_are_refused(launch_file):
    with pytest.raises(ValueError, match="use_rviz"):
        _run(launch_file, use_rviz="maybe")
    with pytest.raises(ValueError, match="from:=to"):
        _run(launch_file, remappings="nonsense")


def test_rviz_config_shows_the_node_outputs():
    rviz = yaml.safe_load((ROOT / "config" / "sphmask.rviz").read_text())
    manager = rviz["Visualization Manager"]
    displays = {d["Class"]: [] for d in manager["Displays"]}
    for d in manager["Displays"]:
        displays[d["Class"]].append(d)
    clouds = displays["rviz_default_plugins/PointCloud2"]
    assert {c["Topic"]["Value"] for c in clouds} == {"/sphmask/labelled_cloud"}
    assert {c["Color Transformer"] for c in clouds} == {"RGB8", "Intensity"}
    assert [c.get("Channel Name") for c in clouds if c["Color Transformer"] == "Intensity"] == ["instance_id"]
    (markers,) = displays["rviz_default_plugins/MarkerArray"]
    assert markers["Topic"]["Value"] == "/sphmask/markers"
    assert set(markers["Namespaces"]) == {"bbox", "sphere", "label"}
    # reliable subscriptions match the node's reliable publishers
    assert all(d["Topic"]["Reliability Policy"] == "Reliable" for d in clouds + [markers])
    # the synthetic demo clouds are in "sensor"; the node's default fixed_frame "" keeps that frame
    assert manager["Global Options"]["Fixed Frame"] == "sensor"
    # the instance-coloured cloud is what a user sees first
    shown = [c["Color Transformer"] for c in clouds if c["Enabled"] and c["Value"]]
    assert shown == ["Intensity"]


def test_lifecycle_starts_the_lifecycle_executable(launch_file):
    (node,) = _run(launch_file, lifecycle="true")[1]
    assert (node["executable"], node["name"]) == ("sphmask_lifecycle_node", "sphmask")
    with pytest.raises(ValueError, match="lifecycle"):
        _run(launch_file, lifecycle="perhaps")


def test_namespace_remaps_rviz_topics_to_the_node(launch_file):
    node, rviz = _run(launch_file, namespace="/robot1/perception", use_rviz="true")[1]
    remaps = dict(rviz["remappings"])
    rv = yaml.safe_load((ROOT / "config" / "sphmask.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in rv["Visualization Manager"]["Displays"] if "Topic" in d}
    # every topic the RViz config shows is remapped to where the namespaced node publishes it
    assert {remaps[t] for t in topics} == {t.replace("/sphmask/", "/robot1/perception/sphmask/")
                                           for t in topics}
    assert _run(launch_file, use_rviz="true")[1][1]["remappings"] == []


def test_rviz_fixed_frame(launch_file, tmp_path):
    _, rviz = _run(launch_file, use_rviz="true", rviz_fixed_frame="odom")[1]
    assert rviz["arguments"][-2:] == ["-f", "odom"]
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    fixed_frame: map\n")
    _, rviz = _run(launch_file, use_rviz="true", config_file=str(params))[1]
    assert rviz["arguments"][-2:] == ["-f", "map"]  # the node's fixed frame by default
    _, rviz = _run(launch_file, use_rviz="true", config_file=str(params), rviz_fixed_frame="base")[1]
    assert rviz["arguments"][-2:] == ["-f", "base"]
