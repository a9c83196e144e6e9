"""`run_node`: the one `main` behind `sphmask-node` and `sphmask-lifecycle-node`.

Exit codes: 0 after Ctrl-C (wherever it lands: in the constructor, between start-up and spin,
while spinning), 1 with one line on stderr when the node cannot start (a missing or malformed
`--params-file` included).

A Ctrl-C during start-up makes rclpy's signal handler shut the context down under whatever is
running (a publish in the constructor, the executor's set-up); the resulting exception is a
requested stop, not a failure, which is why `rclpy.ok()` decides how an error is read.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from sphmask_ros.params_file import params_file_problem

__all__ = ["run_node"]


def _teardown(prog: str, executor: SingleThreadedExecutor | None, node: Any) -> None:
    """Remove and destroy the node. After Ctrl-C the context may already be shut down, and rcl
    then refuses some handle operations; that must not turn a clean stop into a crash."""
    try:
        if executor is not None:
            executor.remove_node(node)
        node.destroy_node()
    except Exception as exc:  # noqa: BLE001 - report and finish the shutdown
        print(f"{prog}: while shutting down: {exc}", file=sys.stderr)


def run_node(prog: str, make_node: Callable[[], Any], argv: Sequence[str],
             start: Callable[[Any], str | None] | None = None) -> int:
    """Initialise rclpy with `argv`, build the node, run `start(node)` (None = started, else the
    reason it could not start), spin until Ctrl-C, tear down. See the module doc for exit codes."""
    problem = params_file_problem(argv)
    if problem is not None:  # rcl would refuse it inside init with a multi-line traceback
        print(f"{prog}: cannot start: {problem}", file=sys.stderr)
        return 1
    try:
        with rclpy.init(args=list(argv)):
            try:
                node = make_node()
            except Exception as exc:  # noqa: BLE001 - start-up failures: one line, exit 1
                if not rclpy.ok():
                    return 0
                print(f"{prog}: cannot start: {exc}", file=sys.stderr)
                return 1
            executor = None
            try:
                failure = start(node) if start is not None else None
                if failure is not None:
                    if not rclpy.ok():
                        return 0
                    print(f"{prog}: cannot start: {failure}", file=sys.stderr)
                    return 1
                executor = SingleThreadedExecutor()
                executor.add_node(node)
                executor.spin()
            except Exception:
                if rclpy.ok():
                    raise
            finally:
                _teardown(prog, executor, node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
