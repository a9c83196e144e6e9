"""The lifecycle node: transitions, a failing configure, and its main()."""

from __future__ import annotations

import rclpy
from rclpy.parameter import Parameter

from tests.ros.node_harness import TEST_MAX_POINTS, Graph, Probe, cloud_msg, scene_points


def test_lifecycle_transitions(context, checkpoint):
    from rclpy.lifecycle import TransitionCallbackReturn as R

    from sphmask_ros.lifecycle_node import SphMaskLifecycleNode

    params = {"checkpoint": str(checkpoint), "device": "cpu", "max_points": TEST_MAX_POINTS}
    node = SphMaskLifecycleNode(namespace="t_life", context=context,
                                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    probe = Probe(context, "t_life")
    g = Graph(context, node, probe)
    try:
        assert node.runtime is None  # unconfigured: nothing but parameters
        assert node.trigger_configure() == R.SUCCESS
        assert node.runtime.pipeline is not None and node.runtime._subs == []
        assert node.trigger_activate() == R.SUCCESS
        assert len(node.runtime._subs) == 1
        assert g.spin_until(g.connected, 15.0)
        xyz, rgb = scene_points(100, seed=10)
        g.send(cloud_msg(xyz, rgb, probe.stamp()))

        assert node.trigger_deactivate() == R.SUCCESS
        assert node.runtime.pipeline is None and node.runtime._subs == []
        stamp = probe.stamp()
        probe.pub.publish(cloud_msg(xyz, rgb, stamp))
        g.spin_until(lambda: False, 0.5)
        assert not any(m.header.stamp == stamp for m in probe.got["instances"])

        assert node.trigger_activate() == R.SUCCESS  # reloads the released model
        assert node.runtime.pipeline is not None
        assert g.spin_until(g.connected, 15.0)
        g.send(cloud_msg(xyz, rgb, probe.stamp()))
        assert node.trigger_deactivate() == R.SUCCESS
        assert node.trigger_cleanup() == R.SUCCESS
        assert node.runtime is None
        assert node.trigger_shutdown() == R.SUCCESS
    finally:
        g.close()


def test_lifecycle_configure_fails_on_bad_checkpoint(context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn as R

    from sphmask_ros.lifecycle_node import SphMaskLifecycleNode

    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    node = SphMaskLifecycleNode(namespace="t_life_bad", context=context,
                                parameter_overrides=[Parameter("checkpoint", value=str(bad))])
    try:
        assert node.trigger_configure() == R.FAILURE
        assert node.runtime is None
    finally:
        node.destroy_node()


def test_lifecycle_main_autostart_failure_exits_1(tmp_path, capsys):
    from sphmask_ros.lifecycle_node import main

    bad = tmp_path / "missing.pt"
    assert main(["sphmask-lifecycle-node", "--ros-args", "-p", f"checkpoint:={bad}",
                 "-r", "__ns:=/t_life_main"]) == 1
    assert "configure failed" in capsys.readouterr().err
    assert not rclpy.ok()
