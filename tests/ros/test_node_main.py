"""`sphmask-node` exit codes when start-up is cut short."""

from __future__ import annotations

import rclpy

import sphmask_ros.node as node_module


def test_ctrl_c_during_start_up_is_a_clean_stop(monkeypatch):
    def interrupted_constructor():
        rclpy.shutdown()  # what rclpy's SIGINT handler does to the context
        raise RuntimeError("Failed to publish: publisher's context is invalid")

    monkeypatch.setattr(node_module, "SphMaskNode", interrupted_constructor)
    assert node_module.main(["sphmask-node"]) == 0


def test_a_real_start_up_failure_exits_1_with_one_line(monkeypatch, capsys):
    def broken_constructor():
        raise ValueError("checkpoint /nope.pt does not exist")

    monkeypatch.setattr(node_module, "SphMaskNode", broken_constructor)
    assert node_module.main(["sphmask-node"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sphmask-node: cannot start: checkpoint /nope.pt does not exist"]


def test_ctrl_c_between_start_up_and_spin_is_a_clean_stop(monkeypatch):
    class Node:
        destroyed = False

        def destroy_node(self):
            Node.destroyed = True

    def node_then_interrupt():
        rclpy.shutdown()  # the signal lands right after the constructor returned
        return Node()

    monkeypatch.setattr(node_module, "SphMaskNode", node_then_interrupt)
    assert node_module.main(["sphmask-node"]) == 0
    assert Node.destroyed


def test_lifecycle_main_ctrl_c_before_spin_is_a_clean_stop(monkeypatch):
    import sphmask_ros.lifecycle_node as lifecycle_module
    from rclpy.lifecycle import TransitionCallbackReturn

    class Node:
        destroyed = False

        def trigger_configure(self):
            rclpy.shutdown()  # the signal lands during configure
            return TransitionCallbackReturn.FAILURE

        def trigger_activate(self):
            raise AssertionError("activate after a failed configure")

        def destroy_node(self):
            Node.destroyed = True

    monkeypatch.setattr(lifecycle_module, "SphMaskLifecycleNode", Node)
    assert lifecycle_module.main(["sphmask-lifecycle-node"]) == 0
    assert Node.destroyed
