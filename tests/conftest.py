"""Test-session settings shared by every test.

DDS must never leave loopback, and concurrent test sessions must not hear each other: set the
discovery range and a domain id of this session's own before any test initialises rclpy.
"""

import os

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Shared-memory segment big enough for multi-MB best-effort clouds (config/fastdds.xml).
os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "fastdds.xml")

from sphmask_ros.ros_domain import claim_domain  # noqa: E402  (after the discovery range)

# A domain no other ROS graph on the machine uses, locked for the whole session.
_SESSION_DOMAIN = claim_domain()
os.environ["ROS_DOMAIN_ID"] = str(_SESSION_DOMAIN.domain_id)
# Tests start child processes (nodes, DDP workers) beside the test process on 2 cores: one
# intra-op thread each avoids oversubscription, which slows small torch ops 50x or more.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def fresh_ros_domain(monkeypatch: pytest.MonkeyPatch):
    """A domain of the test's own, empty when it starts: nothing an earlier test left running
    (or another graph on the machine) can count as a subscriber. Child processes inherit it."""
    claim = claim_domain(skip=(_SESSION_DOMAIN.domain_id,))
    monkeypatch.setenv("ROS_DOMAIN_ID", str(claim.domain_id))
    yield claim.domain_id
    claim.release()
