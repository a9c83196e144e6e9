"""Instances (core result) -> ROS messages: InstanceArray, RViz MarkerArray, labelled cloud.

Pure functions of their inputs (no node, no clock): the header passed in is copied onto every
output so results carry the input cloud's stamp and the frame the points are expressed in.

Marker scheme (one MarkerArray per processed cloud): the first marker is a DELETEALL in the
header's frame, so RViz clears the previous frame's objects even when this one has none; then,
per instance k (marker id = k in every namespace):
  * ns "bbox":   LINE_LIST, the 12 edges of the axis-aligned box;
  * ns "sphere": LINE_LIST, the spherical polygon: ray end points (centre + ray * sector mid
    direction) joined to their azimuth neighbours (wrapping round) and polar neighbours;
  * ns "label":  TEXT_VIEW_FACING "<class> <score>" above the box.
Colours come from a fixed palette indexed by the tracking id when the caller has one (the node
does: sphmask_ros.tracking), so an object keeps its colour from frame to frame; else by the
frame-local instance index.
"""

from __future__ import annotations

import array
from typing import Sequence

import numpy as np
import torch
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from sphmask.msg import ClassMap, Instance, InstanceArray
from sphmask_core.inference.instances import Instances
from sphmask_core.model.spherical import rays_to_polygon
from sphmask_ros import pointcloud2

# Tableau-like qualitative palette (RGB in [0, 1]); fixed so colours never depend on run order.
PALETTE: np.ndarray = np.array(
    [
        [0.122, 0.467, 0.706], [1.000, 0.498, 0.055], [0.173, 0.627, 0.173],
        [0.839, 0.153, 0.157], [0.580, 0.404, 0.741], [0.549, 0.337, 0.294],
        [0.890, 0.467, 0.761], [0.498, 0.498, 0.498], [0.737, 0.741, 0.133],
        [0.090, 0.745, 0.812], [0.682, 0.780, 0.910], [1.000, 0.733, 0.471],
        [0.596, 0.875, 0.541], [1.000, 0.596, 0.588], [0.773, 0.690, 0.835],
        [0.769, 0.612, 0.580], [0.969, 0.714, 0.824], [0.859, 0.859, 0.553],
        [0.620, 0.855, 0.898], [0.400, 0.400, 0.000],
    ],
    dtype=np.float32,
)  # (20, 3)

LINE_WIDTH = 0.02  # metres
TEXT_HEIGHT = 0.15  # metres

# Corner i of a box has bits (x, y, z) = (i & 1, i >> 1 & 1, i >> 2 & 1) choosing min/max;
# an edge joins two corners differing in one bit.
_BOX_EDGES = np.array(
    [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1],
    dtype=np.int64,
)  # (12, 2)


def instance_colors(ids: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of each instance id (fixed palette, cycled). ids: (K,) int -> (K, 3)."""
    ids = np.asarray(ids, dtype=np.int64)
    return PALETTE[np.mod(ids, len(PALETTE))]


def _copy_header(header: Header) -> Header:
    return Header(stamp=header.stamp, frame_id=header.frame_id)


def _u32(values: np.ndarray) -> array.array:
    # array.array is what rosidl stores; handing it over directly skips per-element checks
    return array.array("I", np.ascontiguousarray(values, dtype=np.uint32).tobytes())


def _f32(values: np.ndarray) -> array.array:
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).tobytes())


def instances_to_msg(
    instances: Instances,
    header: Header,
    cloud_size: int,
    model_name: str,
    track_ids: np.ndarray | None = None,
) -> InstanceArray:
    """InstanceArray of `instances`; point_indices index the labelled cloud of `cloud_size` points.

    The labelled cloud is unorganised (height 1), so cloud_width = cloud_size. track_ids (K,)
    fill `tracking_id` (decimal strings); None leaves it empty.
    """
    if cloud_size != instances.n_points:
        raise ValueError(
            f"cloud_size ({cloud_size}) must equal the number of segmented points "
            f"({instances.n_points}): point_indices refer to that cloud")
    msg = InstanceArray()
    msg.header = _copy_header(header)
    msg.cloud_width = int(cloud_size)
    msg.cloud_height = 1
    msg.n_theta = int(instances.n_theta)
    msg.n_phi = int(instances.n_phi)
    msg.class_names = list(instances.class_names)
    msg.model_name = model_name
    boxes = instances.boxes.astype(np.float64)  # (K, 6)
    mid = 0.5 * (boxes[:, :3] + boxes[:, 3:])  # (K, 3)
    size = boxes[:, 3:] - boxes[:, :3]  # (K, 3)
    centers = instances.centers.astype(np.float64)  # (K, 3)
    out = []
    for k in range(len(instances)):
        inst = Instance()
        inst.id = k
        inst.tracking_id = "" if track_ids is None else str(int(track_ids[k]))
        inst.class_id = int(instances.class_ids[k])
        inst.class_name = instances.class_names[inst.class_id]
        inst.score = float(instances.scores[k])
        inst.class_probability = float(instances.class_probs[k])
        inst.iou_score = float(instances.iou_scores[k])
        inst.bbox_center = Pose()
        inst.bbox_center.position = Point(x=mid[k, 0], y=mid[k, 1], z=mid[k, 2])
        inst.bbox_center.orientation = Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)
        inst.bbox_size = Vector3(x=size[k, 0], y=size[k, 1], z=size[k, 2])
        inst.sphere_center = Point(x=centers[k, 0], y=centers[k, 1], z=centers[k, 2])
        inst.ray_lengths = _f32(instances.rays[k])
        inst.point_indices = _u32(instances.masks[k])
        inst.num_points = int(instances.masks[k].size)
        out.append(inst)
    msg.instances = out
    return msg


def class_map_msg(class_names: Sequence[str], header: Header, threshold: float) -> ClassMap:
    """ClassMap of the running model (class_ids 0..C-1)."""
    msg = ClassMap()
    msg.header = _copy_header(header)
    msg.class_ids = array.array("H", range(len(class_names)))
    msg.class_names = list(class_names)
    msg.threshold = float(threshold)
    return msg


def box_segments(boxes: np.ndarray) -> np.ndarray:
    """End points of the 12 edges of each axis-aligned box. boxes: (K, 6) -> (K, 24, 3)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    lo, hi = boxes[:, None, :3], boxes[:, None, 3:]  # (K, 1, 3)
    bits = ((np.arange(8)[:, None] >> np.arange(3)[None, :]) & 1).astype(bool)  # (8, 3)
    corners = np.where(bits[None], hi, lo)  # (K, 8, 3)
    return corners[:, _BOX_EDGES.reshape(-1)]  # (K, 24, 3)


def sphere_segments(centers: np.ndarray, rays: np.ndarray, n_theta: int, n_phi: int) -> np.ndarray:
    """End points of the spherical-polygon outline. -> (K, 2 * S, 3), S segments per instance.

    Ray end points are joined along azimuth (ring per polar bin, wrapping round) and along polar
    (meridian per azimuth bin, open at the poles).
    """
    ends = rays_to_polygon(
        torch.as_tensor(np.asarray(centers, dtype=np.float32)),
        torch.as_tensor(np.asarray(rays, dtype=np.float32)),
        n_theta, n_phi,
    ).numpy().astype(np.float64)  # (K, T*P, 3)
    grid = np.arange(n_theta * n_phi).reshape(n_theta, n_phi)  # (T, P) sector ids
    ring = np.stack([grid, np.roll(grid, -1, axis=1)], axis=-1).reshape(-1, 2)  # (T*P, 2)
    pairs = [ring] if n_phi > 1 else []
    if n_theta > 1:
        pairs.append(np.stack([grid[:-1], grid[1:]], axis=-1).reshape(-1, 2))  # ((T-1)*P, 2)
    if not pairs:
        return np.zeros((ends.shape[0], 0, 3))
    idx = np.concatenate(pairs).reshape(-1)  # (2S,)
    return ends[:, idx]


def _points(xyz: np.ndarray) -> list[Point]:
    return [Point(x=x, y=y, z=z) for x, y, z in xyz.tolist()]


def _line_marker(header: Header, ns: str, k: int, xyz: np.ndarray, rgb: np.ndarray) -> Marker:
    m = Marker()
    m.header = _copy_header(header)
    m.ns = ns
    m.id = k
    m.type = Marker.LINE_LIST
    m.action = Marker.ADD
    m.pose.orientation.w = 1.0
    m.scale.x = LINE_WIDTH
    m.color = ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=1.0)
    m.points = _points(xyz)
    return m


def instances_to_markers(instances: Instances, header: Header,
                         track_ids: np.ndarray | None = None) -> MarkerArray:
    """MarkerArray: DELETEALL, then per instance a box, a spherical polygon and a label.

    Colours are keyed by track_ids (K,) when given, so an object keeps its colour across
    frames; else by the frame-local index."""
    clear = Marker()
    clear.header = _copy_header(header)
    clear.action = Marker.DELETEALL
    markers = [clear]
    k_count = len(instances)
    if k_count == 0:
        return MarkerArray(markers=markers)
    colors = instance_colors(np.arange(k_count) if track_ids is None else track_ids)  # (K, 3)
    boxes = box_segments(instances.boxes)  # (K, 24, 3)
    spheres = sphere_segments(instances.centers, instances.rays, instances.n_theta, instances.n_phi)
    for k in range(k_count):
        markers.append(_line_marker(header, "bbox", k, boxes[k], colors[k]))
        markers.append(_line_marker(header, "sphere", k, spheres[k], colors[k]))
        text = Marker()
        text.header = _copy_header(header)
        text.ns = "label"
        text.id = k
        text.type = Marker.TEXT_VIEW_FACING
        text.action = Marker.ADD
        box = instances.boxes[k].astype(np.float64)
        text.pose.position = Point(x=0.5 * (box[0] + box[3]), y=0.5 * (box[1] + box[4]),
                                   z=box[5] + TEXT_HEIGHT)
        text.pose.orientation.w = 1.0
        text.scale.z = TEXT_HEIGHT
        text.color = ColorRGBA(r=float(colors[k, 0]), g=float(colors[k, 1]),
                               b=float(colors[k, 2]), a=1.0)
        name = instances.class_names[int(instances.class_ids[k])]
        text.text = f"{name} {float(instances.scores[k]):.2f}"
        markers.append(text)
    return MarkerArray(markers=markers)


def labelled_cloud(
    instances: Instances,
    header: Header,
    xyz: np.ndarray,
    rgb: np.ndarray | None,
) -> PointCloud2:
    """The segmented points with per-point labels: x y z [rgb] instance_id class_id score.

    `xyz` (N, 3) are the points `instances` was computed on (N = instances.n_points), so the
    InstanceArray's point_indices index this cloud. instance_id/class_id are -1 and score 0 for
    points of no instance. rgb in [-1, 1] (Scene convention) or None for colour-free input.
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape != (instances.n_points, 3):
        raise ValueError(f"xyz must have shape ({instances.n_points}, 3), got {xyz.shape}")
    inst = instances.point_instance  # (N,) -1 = none
    has = inst >= 0  # (N,)
    safe = np.where(has, inst, 0)  # (N,) valid index for the gathers below
    if len(instances):
        class_id = np.where(has, instances.class_ids[safe], -1)  # (N,)
        score = np.where(has, instances.scores[safe], 0.0).astype(np.float32)  # (N,)
    else:
        class_id = np.full(inst.shape, -1, dtype=np.int64)
        score = np.zeros(inst.shape, dtype=np.float32)
    return pointcloud2.labelled_cloud(_copy_header(header), xyz, rgb, inst, class_id, score)
