"""`SphMaskNode`: the sphmask ROS 2 node, and `main` (console script `sphmask-node`).

    sphmask-node --ros-args --params-file config/sphmask.yaml -r __ns:=/perception \
        -p input_topics:="['/lidar/points']"

Subscribes to `input_topics` (PointCloud2, best effort depth 1 by default) and publishes, per
processed cloud and stamped with that cloud's stamp: ~/instances (sphmask/InstanceArray),
~/markers (MarkerArray), ~/labelled_cloud (PointCloud2, only while subscribed),
~/processing_time (sphmask/ProcessingTime); once: ~/class_map (transient local); periodically:
/diagnostics. The model is loaded and warmed up in the constructor, before any subscription
exists. Everything else is in `runtime.NodeRuntime` (shared with the lifecycle node).
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from sphmask_ros.params import NodeParams, declare_all
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


def _teardown(executor: SingleThreadedExecutor | None, node: SphMaskNode) -> None:
    """Remove and destroy the node. After Ctrl-C the context may already be shut down, and rcl
    then refuses some handle operations; that must not turn a clean stop into a crash."""
    try:
        if executor is not None:
            executor.remove_node(node)
        node.destroy_node()
    except Exception as exc:  # noqa: BLE001 - report and finish the shutdown
        print(f"sphmask-node: while shutting down: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the node until Ctrl-C; returns 1 (one error line on stderr) if it cannot start.

    `argv` is handed to rclpy, which parses `--ros-args --params-file ... -r ... -p ...` itself.
    """
    args = list(sys.argv if argv is None else argv)
    try:
        with rclpy.init(args=args):
            try:
                node = SphMaskNode()
            except Exception as exc:  # noqa: BLE001 - start-up failures: one line, exit 1
                if not rclpy.ok():
                    # Ctrl-C during start-up: rclpy's handler shut the context down under the
                    # constructor (e.g. mid-publish); that is a requested stop, not a failure
                    return 0
                print(f"sphmask-node: cannot start: {exc}", file=sys.stderr)
                return 1
            executor = None
            try:
                executor = SingleThreadedExecutor()
                executor.add_node(node)
                executor.spin()
            except Exception:
                # Ctrl-C between start-up and spin shuts the context down under the executor's
                # set-up (rcl refuses new handles): a requested stop; anything else is a crash
                if rclpy.ok():
                    raise
            finally:
                _teardown(executor, node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
