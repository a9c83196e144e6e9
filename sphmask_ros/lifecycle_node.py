"""`SphMaskLifecycleNode`: the managed (lifecycle) variant of the sphmask node.

Transitions (the processing itself is `runtime.NodeRuntime`, shared with `SphMaskNode`):

* __init__      declare the parameters (nothing else is created);
* configure     read the parameters, load + warm up the model, create the (lifecycle) publishers;
* activate      load the model again if a deactivate released it, create the subscriptions,
                the worker thread and the diagnostics timer, publish ~/class_map;
* deactivate    drop subscriptions, timer and worker, release the model (`del` +
                `torch.cuda.empty_cache()` on CUDA) so an inactive node holds no GPU memory;
* cleanup       destroy the publishers and forget the model: back to unconfigured;
* shutdown      whatever is left, from any state.

`main()` (console script `sphmask-lifecycle-node`) triggers configure and activate itself unless
`--no-autostart` is given (then a lifecycle manager drives it).
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from sphmask_core.sensor.node_params import NodeParams
from sphmask_ros.node_main import run_node
from sphmask_ros.params import declare_all
from sphmask_ros.runtime import NodeRuntime

NODE_NAME = "sphmask"


class SphMaskLifecycleNode(LifecycleNode):
    """Managed sphmask node (see module doc)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_all(self)
        self.runtime: NodeRuntime | None = None

    def _fail(self, what: str, exc: BaseException) -> TransitionCallbackReturn:
        self.get_logger().error(f"{what} failed: {type(exc).__name__}: {exc}")
        return TransitionCallbackReturn.FAILURE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            runtime = NodeRuntime(self, NodeParams.from_node(self),
                                  create_publisher=self.create_lifecycle_publisher)
            runtime.load_model()
        except Exception as exc:  # noqa: BLE001 - a failed transition, not a crash
            return self._fail("configure", exc)
        runtime.create_publishers()
        runtime.install_parameter_callbacks()
        self.runtime = runtime
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.runtime is not None
        try:
            self.runtime.load_model()  # no-op unless deactivate released it
        except Exception as exc:  # noqa: BLE001
            return self._fail("activate", exc)
        # enables the lifecycle publishers before anything is published
        result = super().on_activate(state)
        self.runtime.start()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.runtime is not None
        self.runtime.stop()
        self.runtime.release_model()
        return super().on_deactivate(state)

    def _teardown(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
            self.runtime.release_model()
            self.runtime.destroy_publishers(self.destroy_lifecycle_publisher)
            self.runtime.remove_parameter_callbacks()
            self.runtime = None

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._teardown()
        super().destroy_node()


def _autostart(node: SphMaskLifecycleNode) -> str | None:
    """configure + activate; the failed transition's name, or None."""
    for name, trigger in (("configure", node.trigger_configure), ("activate", node.trigger_activate)):
        if trigger() != TransitionCallbackReturn.SUCCESS:
            return f"{name} failed (see the log)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the lifecycle node; configure + activate itself unless --no-autostart.

    Returns 1 (one error line on stderr) when autostart's configure or activate fails.
    """
    args = list(sys.argv if argv is None else argv)
    autostart = "--no-autostart" not in args
    args = [a for a in args if a != "--no-autostart"]
    return run_node("sphmask-lifecycle-node", SphMaskLifecycleNode, args,
                    start=_autostart if autostart else None)


if __name__ == "__main__":
    sys.exit(main())
