"""A ROS_DOMAIN_ID that no other ROS graph on this machine is using, for tests, demos and benches.

A fixed or pid-derived id can coincide with another test session, a demo, or a robot's live
graph on the same host; a player that waits for "a subscriber" then counts a stranger's and
starts before its own subscriber is there. `claim_domain` takes an id only when

- no other process of ours holds it: an exclusive `flock` on a file per id, held as long as the
  returned claim lives (released by the kernel even if the process dies), and
- no ROS graph uses it: no process on this host has bound the id's DDS discovery ports, and a
  probe node on loopback discovery sees no other node within `probe_s`.

`python -m sphmask_ros.ros_domain` prints a free id (for shell scripts; the lock ends with that
process, the graph check is what protects a script's later processes).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable

__all__ = ["DomainClaim", "claim_domain", "graph_is_empty", "participant_ids_in_use"]

# Fast DDS derives UDP ports from the id; ids up to 232 are valid on Linux. 0 is the default
# domain that robots use, so it is never taken.
FIRST_ID, LAST_ID = 1, 232


@dataclass
class DomainClaim:
    domain_id: int
    lock_file: IO[str] | None  # holds the flock; None once released

    def release(self) -> None:
        if self.lock_file is not None:
            self.lock_file.close()
            self.lock_file = None


def _lock_dir() -> Path:
    path = Path(tempfile.gettempdir()) / "sphmask_ros_domains"
    path.mkdir(mode=0o777, exist_ok=True)
    return path


def _try_lock(domain_id: int) -> IO[str] | None:
    f = open(_lock_dir() / f"{domain_id}.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


# RTPS well-known ports (the DDS interoperability spec, Fast DDS and Cyclone DDS alike): the
# participant with id p in domain d receives discovery traffic on unicast port
# 7400 + 250 d + 10 + 2 p, which it binds exclusively (that is how DDS picks free ids).
PORT_BASE, DOMAIN_GAIN, UNICAST_OFFSET, PARTICIPANT_GAIN = 7400, 250, 10, 2
MAX_PARTICIPANTS = 32  # ids are handed out lowest first: a graph always holds some of the first


def participant_ids_in_use(domain_id: int, max_participants: int = MAX_PARTICIPANTS) -> list[int]:
    """Participant ids of `domain_id` whose discovery port some process on this host has bound."""
    first = PORT_BASE + DOMAIN_GAIN * domain_id + UNICAST_OFFSET
    used = []
    for pid in range(max_participants):
        port = first + PARTICIPANT_GAIN * pid
        if port > 65535:
            break
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                used.append(pid)
        finally:
            sock.close()
    return used


def graph_is_empty(domain_id: int, probe_s: float = 0.5) -> bool:
    """True when no DDS participant on this host uses `domain_id` and no ROS node shows up in it
    within `probe_s`.

    The port check is exact and instant for participants on this host; the node probe covers
    the rest (a transport without UDP), but discovery of a running graph can take seconds under
    load (a probe of a second once missed a live node on a busy 2-core machine), so it alone is
    not enough.
    """
    if participant_ids_in_use(domain_id):
        return False
    import rclpy

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    try:
        node = rclpy.create_node("sphmask_domain_probe", context=context)
        try:
            deadline = time.monotonic() + probe_s
            while time.monotonic() < deadline:
                others = [n for n, ns in node.get_node_names_and_namespaces()
                          if n != "sphmask_domain_probe"]
                if others:
                    return False
                time.sleep(0.05)
            return True
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def claim_domain(probe_s: float = 0.5, skip: Iterable[int] = (),
                 candidates: Iterable[int] | None = None, max_tries: int = 40) -> DomainClaim:
    """Lock and return a domain id whose graph is empty (see module doc).

    By default the candidates are every valid id from a pid-derived start, so that parallel
    sessions rarely probe the same ones.
    """
    if candidates is None:
        span = LAST_ID - FIRST_ID + 1
        start = os.getpid() % span
        candidates = [FIRST_ID + (start + k) % span for k in range(span)]
    skipped = set(skip)
    tried = 0
    for domain_id in candidates:
        if domain_id in skipped:
            continue
        lock = _try_lock(domain_id)
        if lock is None:
            continue
        tried += 1
        if graph_is_empty(domain_id, probe_s):
            return DomainClaim(domain_id, lock)
        lock.close()
        if tried >= max_tries:
            break
    raise RuntimeError(f"no free ROS_DOMAIN_ID found ({tried} unlocked candidates probed): "
                       "every one is locked by another sphmask process or has ROS nodes in it")


def main() -> int:
    try:
        claim = claim_domain()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(claim.domain_id)
    claim.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
