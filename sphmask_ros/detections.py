"""Instances -> vision_msgs/Detection3DArray, the standard 3D detection message.

Published on ~/detections next to our InstanceArray so any vision_msgs consumer (trackers,
vision_msgs_rviz_plugins, planners) can use sphmask without learning our message. Per instance:
one Detection3D with the input's stamp and the output frame; `results` holds one hypothesis,
`class_id` = the class *name* (vision_msgs 4 uses strings; names are what its RViz plugin and
most consumers key on) with the final score and the box centre as its pose; `bbox` is the
axis-aligned box (identity orientation); `id` is the tracking id (vision_msgs 3.0 renamed
`tracking_id` to `id`), empty when tracking is unavailable. The masks have no place in
vision_msgs (removed in 3.0): they stay in InstanceArray, whose `instances[k]` is detection k.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import Header
from vision_msgs.msg import (
    BoundingBox3D,
    Detection3D,
    Detection3DArray,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
)

from sphmask_core.inference.instances import Instances

__all__ = ["instances_to_detections"]


def instances_to_detections(instances: Instances, header: Header,
                            track_ids: np.ndarray | None = None) -> Detection3DArray:
    """Detection3DArray of `instances` (order kept); track_ids: (K,) int or None."""
    boxes = instances.boxes.astype(np.float64)  # (K, 6)
    mid = 0.5 * (boxes[:, :3] + boxes[:, 3:])  # (K, 3)
    size = boxes[:, 3:] - boxes[:, :3]  # (K, 3)
    out = Detection3DArray()
    out.header = Header(stamp=header.stamp, frame_id=header.frame_id)
    detections = []
    for k in range(len(instances)):
        pose = Pose(position=Point(x=mid[k, 0], y=mid[k, 1], z=mid[k, 2]),
                    orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis = ObjectHypothesis(
            class_id=instances.class_names[int(instances.class_ids[k])],
            score=float(instances.scores[k]))
        hyp.pose.pose = pose
        det = Detection3D()
        det.header = Header(stamp=header.stamp, frame_id=header.frame_id)
        det.results = [hyp]
        det.bbox = BoundingBox3D(center=pose, size=Vector3(x=size[k, 0], y=size[k, 1], z=size[k, 2]))
        det.id = "" if track_ids is None else str(int(track_ids[k]))
        detections.append(det)
    out.detections = detections
    return out
