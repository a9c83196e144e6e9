"""`sphmask-node`'s main(): exit codes when start-up fails or is cut short, and a clean stop on
Ctrl-C of a node started from the shipped params file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import rclpy

import sphmask_ros.node as node_module
from tests.ros.node_harness import TEST_MAX_POINTS


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
    from rclpy.lifecycle import TransitionCallbackReturn

    import sphmask_ros.lifecycle_node as lifecycle_module

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


def _node_cmd(*ros_args: str) -> list[str]:
    return [sys.executable, "-m", "sphmask_ros.node", "--ros-args", *ros_args]


def test_main_unreadable_checkpoint_exits_1_with_one_line(tmp_path, capsys):
    from sphmask_ros.node import main

    bad = tmp_path / "truncated.pt"
    bad.write_bytes(b"\x80\x02 truncated")
    # in-process: main() initialises (and on return shuts down) rclpy's default context
    assert main(["sphmask-node", "--ros-args", "-p", f"checkpoint:={bad}",
                 "-r", "__ns:=/t_main_bad"]) == 1
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("sphmask-node: cannot start")]
    assert len(errors) == 1 and "truncated.pt" in errors[0]
    assert "Traceback" not in err
    assert not rclpy.ok()  # the default context was shut down again



def test_main_runs_params_file_and_stops_cleanly_on_sigint(checkpoint, tmp_path):
    import signal

    cfg = Path(__file__).resolve().parents[2] / "config" / "sphmask.yaml"
    proc = subprocess.Popen(
        _node_cmd("--params-file", str(cfg), "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu",
                  "-p", f"max_points:={TEST_MAX_POINTS}", "-r", "__ns:=/t_sigint"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        import select

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # bounded: a node that stops printing must fail the test, not hang the suite
            if not select.select([proc.stdout], [], [], 1.0)[0]:
                continue
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "listening to" in line:
                break
        assert any("/t_sigint/points" in ln for ln in lines), "".join(lines)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, "".join(lines) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
