"""Multi-MB best-effort clouds from another process reach the node (issues 14 and 15).

A driver stand-in (tests/ros/cloud_publisher.py) publishes 640 x 480 organized and 300k-point
clouds (4.9 / 4.8 MB) at 10 Hz with sensor QoS from its own process; with the Fast DDS profile
of config/fastdds.xml (set for the suite by tests/conftest.py, inherited by the child) at least
95 % must arrive. Without the profile in the publisher most of them are lost, and the node's
diagnostics must say so (clouds lost in transport, WARN) instead of staying silent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from tests.ros.node_harness import Graph, OracleSegmenter, Probe, make_node

PUBLISHER = Path(__file__).with_name("cloud_publisher.py")
ROOT = Path(__file__).resolve().parents[2]
COUNT, RATE = 20, 10.0


@pytest.fixture(scope="module")
def graph(context, checkpoint):
    # Only delivery to the callback is measured: a crop that leaves nothing keeps the worker
    # (same process, same GIL) from competing with the executor on a loaded 2-core machine.
    node = make_node(context, checkpoint, "t_large", publish_labelled_cloud=False,
                     max_points=2000, **{"crop.max_range": 0.01})
    node.runtime.pipeline.segmenter = OracleSegmenter(node.runtime.pipeline.segmenter)
    g = Graph(context, node, Probe(context, "t_large"))
    yield g
    g.close()


def _stream(graph, height: int, width: int, env: dict[str, str]) -> tuple[int, int, int, int]:
    """(sent, received by the node's callback, published as the node saw it from the sequence
    numbers, reported lost by DDS) for one publisher run."""
    topic = graph.node.runtime._subs[0].topic_name
    before = graph.node.runtime.stats.snapshot(0).topics.get(topic)
    proc = subprocess.Popen([sys.executable, str(PUBLISHER), topic, str(height), str(width),
                             str(COUNT), str(RATE)], env=env, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        assert graph.spin_until(lambda: graph.node.count_publishers(topic) >= 1, 20.0)
        graph.spin_until(lambda: False, 0.3)  # the reader's side of the match settles
        proc.stdin.write("go\n")
        proc.stdin.flush()
        graph.spin_until(lambda: proc.poll() is not None, 60.0)
        graph.spin_until(lambda: False, 0.5)  # the last clouds still in flight
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    sent = json.loads(out.strip().splitlines()[-1])["sent"]
    after = graph.node.runtime.stats.snapshot(0).topics[topic]
    delta = [getattr(after, k) - (getattr(before, k) if before else 0)
             for k in ("received", "published", "lost")]
    return (sent, *delta)


def _child_env(with_profile: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    if not with_profile:
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    return env


@pytest.mark.parametrize("height,width", [(480, 640), (1, 300_000)], ids=["640x480", "300k"])
def test_multi_mb_best_effort_clouds_from_another_process_arrive(graph, height, width):
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("config/fastdds.xml")
    sent, received, published, lost = _stream(graph, height, width, _child_env(with_profile=True))
    # DDS delivered >= 95 % of the clouds whole: published (the publisher's sequence numbers,
    # as the node saw them) minus lost. Clouds the reader held but the busy executor (2 shared
    # cores) let the next one replace before the callback took them were delivered, not lost;
    # at least half must still reach the callback itself (without the profile: 1-4 of 30).
    counts = f"sent {sent}, published {published}, lost {lost}, received {received}"
    assert published - lost >= 0.95 * sent, f"{height}x{width}: {counts}"
    assert received >= 0.5 * sent, f"only {received} of {sent} reached the callback"


def test_transport_loss_without_the_profile_shows_in_diagnostics(graph):
    topic = graph.node.runtime._subs[0].topic_name
    n_diag = len(graph.probe.got["diag"])
    sent, received, published, lost = _stream(graph, 1, 300_000, _child_env(with_profile=False))
    assert lost > 0.5 * sent  # the default 512 KB shared-memory segment cannot carry 4.8 MB
    assert received < sent
    assert graph.spin_until(lambda: len(graph.probe.got["diag"]) > n_diag + 1, 5.0)
    values = {kv.key: kv.value for kv in graph.probe.got["diag"][-1].status[0].values}
    assert int(values[f"input[{topic}].lost_in_transport"]) == \
        graph.node.runtime.stats.snapshot(0).topics[topic].lost
    warned = [d.status[0] for d in graph.probe.got["diag"][n_diag:]
              if d.status[0].level == DiagnosticStatus.WARN]
    assert any("lost in transport" in s.message for s in warned)
