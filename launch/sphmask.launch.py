"""Launch the sphmask node (and optionally RViz).

    ros2 launch sphmask sphmask.launch.py
    ros2 launch sphmask sphmask.launch.py namespace:=perception input_topics:=/lidar/points \
        checkpoint:=/models/my.pt device:=cuda use_rviz:=true

Arguments (empty = keep the value of the parameter file):
  config_file   parameter file (default: share/sphmask/config/sphmask.yaml)
  namespace     namespace of the node (outputs become /<ns>/sphmask/instances, ...); RViz's
                topics are remapped to match
  lifecycle     true: start sphmask_lifecycle_node instead (it configures and activates itself)
  input_topics  comma-separated PointCloud2 topics (overrides `input_topics`)
  checkpoint    checkpoint path (overrides `checkpoint`)
  device        auto | cpu | cuda | cuda:N (overrides `device`)
  use_sim_time  true when clouds come from a bag played with a /clock
  remappings    extra remaps "from:=to,from2:=to2" (e.g. /diagnostics:=/sphmask/diagnostics)
  use_rviz      also start rviz2 with share/sphmask/config/sphmask.rviz
  rviz_fixed_frame  RViz's Fixed Frame; empty = the parameter file's fixed_frame, else the
                rviz config's ("sensor")
  dds_profile   Fast DDS profile of the started processes (default:
                share/sphmask/config/fastdds.xml, a shared-memory segment big enough for
                multi-MB clouds); empty = keep the environment's FASTDDS_DEFAULT_PROFILES_FILE.
                The camera / lidar driver publishing the clouds needs it too (README).
"""

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _as_bool(name, text):
    value = text.strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"launch argument '{name}' must be true or false, got '{text}'")
    return value in _TRUE


def _split(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _remappings(text):
    pairs = []
    for item in _split(text):
        source, sep, target = item.partition(":=")
        if not sep or not source or not target:
            raise ValueError(f"launch argument 'remappings': '{item}' is not of the form from:=to")
        pairs.append((source, target))
    return pairs


# the node's output topics RViz shows (config/sphmask.rviz names them /sphmask/<topic>)
_RVIZ_TOPICS = ("labelled_cloud", "markers", "instances", "detections", "instance_image")


def _rviz_remappings(namespace):
    ns = namespace.strip("/")
    if not ns:
        return []
    return [(f"/sphmask/{t}", f"/{ns}/sphmask/{t}") for t in _RVIZ_TOPICS]


def _file_fixed_frame(path):
    """fixed_frame of the parameter file's sphmask section ('' when absent or unreadable:
    the node reports a bad file itself)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return ""
    if not isinstance(doc, dict):
        return ""
    for key in ("/**", "sphmask", "/sphmask"):
        section = doc.get(key)
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            return str(section["ros__parameters"].get("fixed_frame", "") or "")
    return ""


def _setup(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {"use_sim_time": _as_bool("use_sim_time", arg("use_sim_time"))}
    topics = _split(arg("input_topics"))
    if topics:
        overrides["input_topics"] = topics
    for name in ("checkpoint", "device"):
        if arg(name):
            overrides[name] = arg(name)
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": arg("dds_profile")} if arg("dds_profile") else {}
    lifecycle = _as_bool("lifecycle", arg("lifecycle"))
    actions = [
        Node(
            package="sphmask",
            executable="sphmask_lifecycle_node" if lifecycle else "sphmask_node",
            name="sphmask",
            namespace=arg("namespace"),
            parameters=[arg("config_file"), overrides],
            remappings=_remappings(arg("remappings")),
            output="screen",
            emulate_tty=True,
            additional_env=env,
        )
    ]
    if _as_bool("use_rviz", arg("use_rviz")):
        fixed = arg("rviz_fixed_frame") or _file_fixed_frame(arg("config_file"))
        rviz_args = ["-d", arg("rviz_config")] + (["-f", fixed] if fixed else [])
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="sphmask_rviz",
                arguments=rviz_args,
                remappings=_rviz_remappings(arg("namespace")),
                output="screen",
                additional_env=env,
            )
        )
    return actions


def generate_launch_description():
    share = FindPackageShare("sphmask")
    return LaunchDescription([
        DeclareLaunchArgument(
            "config_file", default_value=PathJoinSubstitution([share, "config", "sphmask.yaml"]),
            description="node parameter file"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument(
            "input_topics", default_value="",
            description="comma-separated PointCloud2 topics; empty = from the parameter file"),
        DeclareLaunchArgument(
            "checkpoint", default_value="",
            description="checkpoint path; empty = from the parameter file (shipped model)"),
        DeclareLaunchArgument(
            "device", default_value="", description="auto | cpu | cuda | cuda:N; empty = file"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock"),
        DeclareLaunchArgument(
            "remappings", default_value="", description="extra remaps: from:=to,from2:=to2"),
        DeclareLaunchArgument(
            "lifecycle", default_value="false",
            description="start the lifecycle node (sphmask_lifecycle_node) instead"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="start rviz2"),
        DeclareLaunchArgument(
            "rviz_fixed_frame", default_value="",
            description="RViz Fixed Frame; empty = the parameter file's fixed_frame, else "
                        "the rviz config's"),
        DeclareLaunchArgument(
            "rviz_config", default_value=PathJoinSubstitution([share, "config", "sphmask.rviz"]),
            description="RViz configuration"),
        DeclareLaunchArgument(
            "dds_profile", default_value=PathJoinSubstitution([share, "config", "fastdds.xml"]),
            description="Fast DDS profile (FASTDDS_DEFAULT_PROFILES_FILE) of the started "
                        "processes; empty = keep the environment's"),
        OpaqueFunction(function=_setup),
    ])
