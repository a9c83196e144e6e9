"""The instance image of an organized cloud: one instance id per input pixel.

Depth cameras (and organized lidar drivers) publish clouds of height > 1, one point per pixel,
row-major. The node segments only their finite points, so ~/labelled_cloud and
`Instance.point_indices` index a 1 x N cloud. For such input the node also publishes
~/instance_image, a sensor_msgs/Image with the input cloud's header (stamp and camera frame),
height x width of the input, encoding `32SC1` (int32 in host byte order, `is_bigendian` says
which): pixel (row, col) holds `k`, the index of `InstanceArray.instances[k]` (the same value
as the labelled cloud's `instance_id`), or -1 where no instance is (no return, NaN, cropped
away, or no instance). With accumulation only the current cloud's points are painted; points
of earlier sweeps have no pixel here. The stable id of pixel value k is
`instances[k].tracking_id`.
"""

from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

__all__ = ["instance_image", "instance_image_msg", "NO_INSTANCE"]

NO_INSTANCE = -1


def instance_image(point_instance: np.ndarray, point_sweep: np.ndarray,
                   point_raw_index: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) int32 image: point_instance (P,) painted at the raw index of each current-sweep
    point (point_sweep == 0); point_raw_index (P,) is row * width + col of the input cloud."""
    img = np.full(height * width, NO_INSTANCE, dtype=np.int32)  # (H * W,)
    current = point_sweep == 0  # (P,)
    idx = point_raw_index[current]
    if idx.size and (idx.min() < 0 or idx.max() >= img.size):
        raise ValueError(f"raw point index outside the {height} x {width} input")
    img[idx] = point_instance[current]
    return img.reshape(height, width)


def instance_image_msg(image: np.ndarray, header: Header) -> Image:
    """sensor_msgs/Image (32SC1) of an (H, W) int32 instance image, with `header`."""
    img = np.ascontiguousarray(image, dtype=np.int32)
    msg = Image()
    msg.header = Header(stamp=header.stamp, frame_id=header.frame_id)
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = "32SC1"
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = 4 * msg.width
    msg.data = img.tobytes()
    return msg
