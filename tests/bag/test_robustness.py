"""Damaged bags, missing topics, unknown types, existing outputs, interrupted writing."""

from __future__ import annotations

import os

import pytest

from sphmask_core.sensor.bag_reader import BagReader
from sphmask_ros.bag.cli import main as bag_main
from sphmask_ros.bag.messages import UnknownMessageTypeError
from sphmask_ros.bag.record import RecordConfig, record_synthetic
from sphmask_ros.bag.writer import BagWriter


@pytest.mark.parametrize("storage,suffix", [("mcap", ".mcap"), ("sqlite3", ".db3")])
def test_truncated_bag_is_read_up_to_the_damage(storage, suffix, tmp_path, capsys):
    # mcap stores messages in 1 MiB chunks: 4 frames of 15k points make two, the cut hits the second
    bag = record_synthetic(tmp_path / storage, RecordConfig(frames=4, points_per_frame=15000,
                                                            storage=storage)).path
    intact = [(m.topic, m.log_time_ns, m.data) for m in BagReader(bag).messages()]
    (storage_file,) = bag.glob(f"*{suffix}")
    os.truncate(storage_file, int(storage_file.stat().st_size * 0.8))
    reader = BagReader(bag)
    got = [(m.topic, m.log_time_ns, m.data) for m in reader.messages()]
    assert 0 < len(got) < len(intact)
    assert got == intact[: len(got)]  # the intact head, in order, byte for byte
    assert any("damaged" in w for w in reader.warnings)
    assert bag_main(["info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "/points" in out


def test_missing_topic_is_one_line_exit_2(synthetic_bags, tmp_path, capsys):
    code = bag_main(["eval", str(synthetic_bags["mcap"]), "--topic", "/lidar", "--out",
                     str(tmp_path / "e"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'/lidar'" in err and "Traceback" not in err
    assert not (tmp_path / "e").exists()
    assert bag_main(["info", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_type_is_named():
    from sphmask_ros.bag.messages import rclpy_message_class

    with pytest.raises(UnknownMessageTypeError, match="pcl_msgs/msg/PolygonMesh"):
        rclpy_message_class("pcl_msgs/msg/PolygonMesh")


def test_existing_output_refused_unless_overwrite(tmp_path, capsys):
    args = ["record-synthetic", str(tmp_path / "b"), "--frames", "1", "--points-per-frame", "500"]
    assert bag_main(args) == 0
    assert bag_main(args) == 2 and "--overwrite" in capsys.readouterr().err
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "thesis.tex").write_text("x")
    assert bag_main(["record-synthetic", str(tmp_path / "keep"), "--overwrite", "--frames", "1"]) == 2
    assert (tmp_path / "keep" / "thesis.tex").is_file()  # not ours: never deleted
    assert bag_main(args + ["--overwrite", "--storage", "sqlite3"]) == 0
    assert list((tmp_path / "b").glob("*.db3"))


def test_interrupted_writer_leaves_a_readable_bag(tmp_path):
    from std_msgs.msg import String

    from sphmask_ros.bag.writer import make_qos

    path = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        with BagWriter(path, "mcap") as bag:
            bag.add_topic("/chatter", "std_msgs/msg/String", [make_qos()])
            for i in range(5):
                bag.write_rclpy("/chatter", 1000 + i, String(data=f"m{i}"))
            raise KeyboardInterrupt
    reader = BagReader(path)
    assert not reader.warnings and reader.topics["/chatter"].count == 5
    from sphmask_ros.bag.messages import to_rclpy

    assert [to_rclpy(m).data for m in reader.messages()] == [f"m{i}" for i in range(5)]
