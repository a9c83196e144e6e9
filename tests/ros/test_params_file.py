"""Parameter files at start-up: malformed ones are one line and exit 1, unknown keys warned."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy")

import sphmask_ros.node_main as node_main  # noqa: E402
from sphmask_core.sensor.node_params import SPECS  # noqa: E402
from sphmask_ros.params import declare_all  # noqa: E402
from sphmask_ros.params_file import params_file_problem, params_files, unknown_overrides  # noqa: E402


def test_params_files_only_inside_ros_args():
    argv = ["prog", "--params-file", "not_ros.yaml", "--ros-args", "--params-file", "a.yaml",
            "-p", "x:=1", "--params-file", "b.yaml", "--", "--params-file", "c.yaml"]
    assert params_files(argv) == ["a.yaml", "b.yaml"]


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read parameter file"),
    ("/**:\n  ros__parameters:\n    a: [1, 2\n", "is not valid YAML (line"),
    ("just a string\n", "has no '<node name or /**>: ros__parameters:' section"),
])
def test_bad_params_file_is_one_line_and_exit_1(tmp_path, capsys, content, expected):
    path = tmp_path / "p.yaml"
    if content is not None:
        path.write_text(content)
    argv = ["sphmask-node", "--ros-args", "--params-file", str(path)]
    assert expected in params_file_problem(argv) and str(path) in params_file_problem(argv)

    def never():
        raise AssertionError("the node must not be built")

    assert node_main.run_node("sphmask-node", never, argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sphmask-node: cannot start: ") and expected in err[0]


def test_good_params_file_passes(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("sphmask:\n  ros__parameters:\n    score_threshold: 0.5\n")
    assert params_file_problem(["x", "--ros-args", "--params-file", str(path)]) is None


def test_unknown_keys_for_our_node_are_warned_by_name(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("sphmask:\n  ros__parameters:\n    scor_threshold: 0.5\n    score_threshold: 0.5\n"
                    "    crop:\n      maxx: [1.0, 1.0, 1.0]\n"
                    "other_node:\n  ros__parameters:\n    not_ours: 1\n")
    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", "--params-file", str(path)])
    try:
        node = rclpy.create_node("sphmask", context=context)
        warnings: list[str] = []

        class Logger:
            def warning(self, msg, **kw):
                warnings.append(msg)

            def __getattr__(self, name):
                return lambda *a, **k: None

        node.get_logger = lambda: Logger()
        declare_all(node)
        assert unknown_overrides(node, list(SPECS)) == ["crop.maxx", "scor_threshold"]
        assert len(warnings) == 2
        assert "'crop.maxx'" in warnings[0] and "'scor_threshold'" in warnings[1]
        assert node.get_parameter("score_threshold").value == 0.5
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
