"""tf2_msgs and vision_msgs: importable here (the real packages or our stand-ins from
fallback_msgs/), with the real packages' type hashes and CDR bytes.

The hashes are the published ones of ROS 2 (tf2_msgs/msg/TFMessage as listed by `ros2 topic
info --verbose` on Jazzy/Kilted; vision_msgs 4.x Detection3DArray), so a stand-in that drifted in
any field name or type fails here. The CDR comparison uses rosbags' own tf2_msgs definition.
"""

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
from geometry_msgs.msg import TransformStamped  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

REAL_HASHES = {
    "tf2_msgs/msg/TFMessage":
        "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
    "vision_msgs/msg/Detection3DArray":
        "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
}


def _installed_hash(type_name: str) -> str:
    """The hash rosidl wrote next to the installed definition (share/<pkg>/msg/<Name>.json)."""
    pkg, _, name = type_name.split("/")
    from ament_index_python.packages import get_package_share_directory

    try:
        share = Path(get_package_share_directory(pkg))
    except Exception:  # not in the ament index: the venv prefix
        share = Path(sys.prefix) / "share" / pkg
    desc = json.loads((share / "msg" / f"{name}.json").read_text())
    return next(h["hash_string"] for h in desc["type_hashes"] if h["type_name"] == type_name)


@pytest.mark.parametrize("type_name", sorted(REAL_HASHES))
def test_type_hash_is_the_real_one(type_name: str) -> None:
    assert _installed_hash(type_name) == REAL_HASHES[type_name]


def test_rosbags_agrees_on_the_tf_hash() -> None:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    assert store.hash_rihs01("tf2_msgs/msg/TFMessage") == REAL_HASHES["tf2_msgs/msg/TFMessage"]


def test_tf_message_cdr_matches_rosbags() -> None:
    from rosbags.typesys import Stores, get_typestore
    from tf2_msgs.msg import TFMessage

    msg = TFMessage()
    for k, child in enumerate(["base", "lidar"]):
        t = TransformStamped()
        t.header.frame_id = "odom" if k == 0 else "base"
        t.header.stamp.sec, t.header.stamp.nanosec = 12, 345 + k
        t.child_frame_id = child
        t.transform.translation.x, t.transform.translation.z = 1.5 * k, -0.25
        t.transform.rotation.z, t.transform.rotation.w = 0.6, 0.8
        msg.transforms.append(t)
    data = serialize_message(msg)
    store = get_typestore(Stores.ROS2_KILTED)
    decoded = store.deserialize_cdr(data, "tf2_msgs/msg/TFMessage")
    assert [t.child_frame_id for t in decoded.transforms] == ["base", "lidar"]
    assert decoded.transforms[1].header.stamp.nanosec == 346
    assert decoded.transforms[1].transform.translation.x == 1.5
    # the other way round; bytes are compared by length only: rclpy leaves CDR alignment
    # padding uninitialised
    back = bytes(store.serialize_cdr(decoded, "tf2_msgs/msg/TFMessage"))
    assert len(back) == len(data)
    assert deserialize_message(back, TFMessage) == msg


def test_detection3d_fields_are_the_vision_msgs_4_layout() -> None:
    from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

    assert list(Detection3DArray.get_fields_and_field_types()) == ["header", "detections"]
    assert Detection3D.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
        "bbox": "vision_msgs/BoundingBox3D",
        "id": "string",
    }
    assert ObjectHypothesisWithPose.get_fields_and_field_types() == {
        "hypothesis": "vision_msgs/ObjectHypothesis",
        "pose": "geometry_msgs/PoseWithCovariance",
    }
