"""Bag messages as rclpy messages: the same CDR bytes the live node would receive.

Reading the bag itself is ROS-free (`sphmask_core.sensor.bag_reader.BagReader`); this module adds
the one step that needs rclpy, `rclpy.serialization.deserialize_message` into the installed
message class, so offline tools feed the node's code exactly what a subscription delivers.
"""

from __future__ import annotations

import importlib
from typing import Any

from sphmask_core.sensor.bag_reader import BagError, BagMessage

__all__ = ["UnknownMessageTypeError", "rclpy_message_class", "to_rclpy"]


class UnknownMessageTypeError(BagError):
    """A message type with no Python (rclpy) definition available here."""


def rclpy_message_class(msgtype: str) -> type:
    """'pkg/msg/Name' -> the rclpy message class; UnknownMessageTypeError when not installed."""
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        raise UnknownMessageTypeError(f"'{msgtype}' is not a ROS 2 message type name (pkg/msg/Name)")
    pkg, sub, name = parts
    try:
        module = importlib.import_module(f"{pkg}.{sub}")
        return getattr(module, name)
    except (ImportError, AttributeError):
        raise UnknownMessageTypeError(
            f"message type '{msgtype}' has no Python definition installed here") from None


def to_rclpy(message: BagMessage) -> Any:
    """The rclpy message of a bag message (same CDR bytes the live node would receive)."""
    from rclpy.serialization import deserialize_message

    return deserialize_message(message.data, rclpy_message_class(message.msgtype))
