"""Renders show what the node publishes: the renderer's default threshold is the node's."""

from sphmask_core.render import PUBLISH_THRESHOLD
from sphmask_core.sensor.node_params import NodeParams


def test_render_default_is_the_node_score_threshold() -> None:
    assert NodeParams().score_threshold == PUBLISH_THRESHOLD
