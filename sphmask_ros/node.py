"""`SphMaskNode`: the sphmask ROS 2 node, and `main` (console script `sphmask-node`).

    sphmask-node --ros-args --params-file config/sphmask.yaml -r __ns:=/perception \
        -p input_topics:="['/lidar/points']"

Subscribes to `input_topics` (PointCloud2, best effort depth 1 by default) and publishes, per
processed cloud and stamped with that cloud's stamp: ~/instances (sphmask/InstanceArray),
~/detections (vision_msgs/Detection3DArray), ~/markers (MarkerArray), ~/labelled_cloud
(PointCloud2, only while subscribed), ~/instance_image (sensor_msgs/Image, organized input),
~/processing_time (sphmask/ProcessingTime); once: ~/class_map (transient local); periodically:
/diagnostics. The model is loaded and warmed up in the constructor, before any subscription
exists. Everything else is in `runtime.NodeRuntime` (shared with the lifecycle node).
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from rclpy.node import Node

from sphmask_core.sensor.node_params import NodeParams
from sphmask_ros.node_main import run_node
from sphmask_ros.params import declare_all
from sphmask_ros.runtime import NodeRuntime

NODE_NAME = "sphmask"


class SphMaskNode(Node):
    """Spherical Mask instance segmentation of PointCloud2 streams (see module doc).

    The constructor raises CheckpointError (unreadable checkpoint) or ValueError (invalid
    parameters) after destroying what it created.
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        try:
            declare_all(self)
            self.runtime = NodeRuntime(self, NodeParams.from_node(self))
            self.runtime.load_model()
            self.runtime.create_publishers()
            self.runtime.install_parameter_callbacks()
            self.runtime.start()
        except BaseException:
            runtime = getattr(self, "runtime", None)
            if runtime is not None:
                runtime.stop()
                runtime.release_model()
            super().destroy_node()
            raise

    def destroy_node(self) -> None:
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.stop()
            runtime.release_model()
        super().destroy_node()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the node until Ctrl-C; returns 1 (one error line on stderr) if it cannot start.

    `argv` is handed to rclpy, which parses `--ros-args --params-file ... -r ... -p ...` itself.
    """
    return run_node("sphmask-node", SphMaskNode, sys.argv if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
