"""Our message definitions for tools that do not go through rosidl.

The offline bag tools (rosbags) need the same `sphmask/msg/*` definitions that rosidl compiled for
the live node. Both read the one set of `.msg` files, so the two cannot drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "sphmask"
MESSAGE_NAMES = ("Instance", "InstanceArray", "ClassMap", "ProcessingTime")


def msg_dir() -> Path:
    """The folder holding our `.msg` files: the source tree's `msg/`, else the installed share."""
    candidates = [Path(__file__).resolve().parent.parent / "msg",
                  Path(sys.prefix) / "share" / PACKAGE / "msg"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "msg")
    except Exception:  # ament index absent or package not registered: the other places remain
        pass
    for folder in candidates:
        if all((folder / f"{name}.msg").is_file() for name in MESSAGE_NAMES):
            return folder
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} .msg files (looked in: {', '.join(map(str, candidates))})")


def message_definitions() -> dict[str, str]:
    """`{'sphmask/msg/Instance': text, ...}` read from the `.msg` files."""
    folder = msg_dir()
    return {f"{PACKAGE}/msg/{name}": (folder / f"{name}.msg").read_text()
            for name in MESSAGE_NAMES}


def make_typestore():
    """The core's rosbags typestore (ROS 2 Kilted) with our messages registered."""
    from rosbags.typesys import get_types_from_msg

    from sphmask_core.sensor.bag_reader import ros2_typestore

    store = ros2_typestore()
    types: dict = {}
    for name, text in message_definitions().items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
