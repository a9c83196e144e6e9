"""The repository is one ROS 2 package for colcon and one pip project, with names that coexist."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def test_colcon_discovers_exactly_one_package_with_its_dependencies(tmp_path):
    colcon = VENV_BIN / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this environment")
    (tmp_path / "src").mkdir()
    os.symlink(REPO, tmp_path / "src" / "sphmask")
    env = {**os.environ, "COLCON_HOME": str(tmp_path / "colcon_home")}
    listing = subprocess.run([str(colcon), "list"], cwd=tmp_path, env=env, text=True,
                             capture_output=True, check=True).stdout.strip().splitlines()
    assert len(listing) == 1, listing
    name, path, kind = listing[0].split("\t")
    assert (name, path, kind) == ("sphmask", "src/sphmask", "(ros.ament_cmake)")
    info = subprocess.run([str(colcon), "info", "sphmask"], cwd=tmp_path, env=env, text=True,
                          capture_output=True, check=True).stdout
    build = next(line for line in info.splitlines() if line.strip().startswith("build:"))
    run = next(line for line in info.splitlines() if line.strip().startswith("run:"))
    for dep in ("ament_cmake", "rosidl_default_generators", "std_msgs", "geometry_msgs"):
        assert dep in build.split(), dep
    for dep in ("rclpy", "sensor_msgs", "visualization_msgs", "geometry_msgs", "std_msgs",
                "nav_msgs", "diagnostic_msgs", "rosidl_default_runtime", "python3-torch"):
        assert dep in run.split(), dep


def test_generated_interfaces_and_our_packages_import_side_by_side():
    code = ("from sphmask.msg import InstanceArray, Instance, ClassMap, ProcessingTime; "
            "import sphmask_core, sphmask_ros, training; "
            "import sphmask.msg, sphmask_core as c; "
            "assert 'site-packages' in sphmask.msg.__file__; "
            "assert c.__file__.startswith(%r)" % str(REPO))
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_core_imports_no_ros_module():
    # The core holds the node's ROS-free code (sensor/: decoding, poses, parameter table) and reads
    # bags, but imports rosbags only inside the functions that read them.
    code = ("import sys, importlib, pkgutil, sphmask_core; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages("
            "sphmask_core.__path__, 'sphmask_core.')]; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('rclpy', 'sensor_msgs', 'std_msgs', 'geometry_msgs', 'nav_msgs', 'tf2_msgs', "
            "'rcl_interfaces', 'sphmask', 'rosbags')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_message_build_without_cmake_says_so_in_one_sentence(tmp_path):
    # A PATH with bash and coreutils but no cmake.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "cat", "sha256sum", "cut", "env"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bin_dir / tool)
    result = subprocess.run(["bash", str(REPO / "scripts" / "build_msgs.sh")],
                            env={"PATH": str(bin_dir)}, text=True, capture_output=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cmake" in lines[0] and "apt-get install" in lines[0], lines
