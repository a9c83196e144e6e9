"""ros_domain: a claimed domain is never one with live ROS nodes or one another claim holds."""

from __future__ import annotations

import rclpy

from sphmask_ros.ros_domain import claim_domain, graph_is_empty, participant_ids_in_use


def _free_pair() -> tuple[int, int]:
    a = claim_domain()
    b = claim_domain(skip=(a.domain_id,))
    ids = (a.domain_id, b.domain_id)
    a.release()
    b.release()
    return ids


def test_domain_with_a_live_node_is_not_claimed():
    busy, free = _free_pair()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=busy)
    node = rclpy.create_node("someone_elses_robot", context=context)
    try:
        assert not graph_is_empty(busy, probe_s=2.0)
        assert participant_ids_in_use(busy) and not participant_ids_in_use(free)
        # a probe far shorter than discovery: the discovery ports decide (a node probe of a
        # second once missed this node on a loaded machine: discovery took up to 3 s)
        claim = claim_domain(candidates=[busy, free], probe_s=0.001)
        assert claim.domain_id == free
        claim.release()
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert graph_is_empty(busy, probe_s=0.3) and not participant_ids_in_use(busy)


def test_domain_locked_by_another_claim_is_skipped_until_released():
    first, second = _free_pair()
    held = claim_domain(candidates=[first])
    try:
        other = claim_domain(candidates=[first, second])
        assert other.domain_id == second
        other.release()
    finally:
        held.release()
    again = claim_domain(candidates=[first])
    assert again.domain_id == first
    again.release()
