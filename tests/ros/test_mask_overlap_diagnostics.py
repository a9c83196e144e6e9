"""The overlap of published masks in the node's diagnostics (duplicates that survived NMS)."""

from __future__ import annotations

import numpy as np
from std_msgs.msg import Header

from sphmask_core.inference.nms import max_overlap
from sphmask_ros.diagnostics import RuntimeStats, diagnostic_array


def _values(stats: RuntimeStats) -> dict[str, str]:
    arr = diagnostic_array(Header(frame_id=""), "sphmask", stats.snapshot(dropped=0), "cpu", "m", 1e3, 2e3)
    return {kv.key: kv.value for kv in arr.status[0].values}


def test_last_and_max_mask_overlap_are_reported() -> None:
    stats = RuntimeStats()
    assert _values(stats)["published_mask_overlap_iou"] == "n/a"
    # a duplicate pair: {0..9} and {2..9} share 8 of 10 points
    stats.record_frame({}, 1.0, 5.0, mask_overlap=max_overlap([np.arange(10), np.arange(2, 10)]))
    stats.record_frame({}, 1.0, 5.0, mask_overlap=max_overlap([np.arange(10), np.arange(10, 20)]))
    values = _values(stats)
    assert values["published_mask_overlap_iou"] == "0.00"
    assert values["max_published_mask_overlap_iou"] == "0.80"
    stats.record_frame({}, 1.0, 5.0)  # a caller without the figure leaves it as it was
    assert _values(stats)["published_mask_overlap_iou"] == "0.00"
