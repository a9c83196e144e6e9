"""Test-session settings shared by every test.

DDS must never leave loopback, and concurrent test sessions must not hear each other: set the
discovery range and a domain id of this session's own before any test initialises rclpy.
"""

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# 1..100 keeps clear of the default domain 0; the pid separates parallel sessions.
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
# Tests start child processes (nodes, DDP workers) beside the test process on 2 cores: one
# intra-op thread each avoids oversubscription, which slows small torch ops 50x or more.
os.environ.setdefault("OMP_NUM_THREADS", "1")
