"""sphmask-demo end to end in a reduced form: node subprocess, playback, recorder, summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sphmask_ros.demo import main as demo_main


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_demo_reduced_run(tmp_path, capsys, fresh_ros_domain):
    # The shipped model, as the README's command runs it, on fewer and smaller frames.
    out = tmp_path / "demo_output"
    code = demo_main(["--frames", "3", "--points-per-frame", "6000", "--out", str(out),
                      "--rate", "2.0"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "3 played" in printed.out and "AP50" in printed.out and "p95" in printed.out
    summary = json.loads((out / "demo_run" / "summary.json").read_text())
    assert summary["frames_played"] == 3
    assert summary["frames_segmented"] + summary["frames_dropped"] == 3
    assert summary["frames_segmented"] >= 1
    # model card: demo AP50 0.917 on 12 frames; a few frames vary more
    assert summary["ap50"] is not None and summary["ap50"] > 0.6, summary
    assert summary["node_exit"] is not None and not _alive(summary["node_pid"])
    assert [p for p in os.listdir("/proc") if p.isdigit() and _child_of_us(int(p))] == []
    assert Path(summary["picture"]).is_file()
    assert (Path(summary["output_bag"]) / "metadata.yaml").is_file()


def _child_of_us(pid: int) -> bool:
    """True for a live process whose parent is this test process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]) == os.getpid() and fields[0] != "Z"
