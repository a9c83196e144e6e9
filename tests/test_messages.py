"""Our interfaces: DDS round trip, CDR round trip, and agreement with the offline typestore."""

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from sphmask.msg import ClassMap, Instance, InstanceArray, ProcessingTime  # noqa: E402
from sphmask_ros.interfaces import make_typestore, message_definitions  # noqa: E402


def make_array(n_instances: int = 3) -> InstanceArray:
    rng = np.random.default_rng(7)
    msg = InstanceArray()
    msg.header = Header(frame_id="map")
    msg.header.stamp.sec = 1_700_000_123
    msg.header.stamp.nanosec = 456_789
    msg.cloud_width, msg.cloud_height = 1234, 1
    msg.n_theta, msg.n_phi = 5, 5
    msg.class_names = ["cabinet", "bed", "chair"]
    msg.model_name = "sphmask_small_synthetic"
    for k in range(n_instances):
        inst = Instance()
        inst.id = k
        inst.tracking_id = f"track-{k}" if k % 2 else ""
        inst.class_id = k % 3
        inst.class_name = msg.class_names[k % 3]
        inst.score, inst.class_probability, inst.iou_score = 0.5 + 0.1 * k, 0.9, 0.75 - 0.05 * k
        inst.bbox_center = Pose(position=Point(x=1.0 * k, y=-2.0, z=0.5),
                                orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
        inst.bbox_size = Vector3(x=0.5, y=0.6 + k, z=0.7)
        inst.sphere_center = Point(x=1.0 * k, y=-2.0, z=0.45)
        inst.ray_lengths = rng.uniform(0.01, 2.0, 25).astype(np.float32).tolist()
        idx = np.sort(rng.choice(1234, size=50 + 10 * k, replace=False)).astype(np.uint32)
        inst.point_indices = idx.tolist()
        inst.num_points = len(idx)
        msg.instances.append(inst)
    return msg


def assert_arrays_equal(a: InstanceArray, b: InstanceArray) -> None:
    assert (a.header.stamp.sec, a.header.stamp.nanosec, a.header.frame_id) == \
        (b.header.stamp.sec, b.header.stamp.nanosec, b.header.frame_id)
    assert (a.cloud_width, a.cloud_height, a.n_theta, a.n_phi) == \
        (b.cloud_width, b.cloud_height, b.n_theta, b.n_phi)
    assert list(a.class_names) == list(b.class_names) and a.model_name == b.model_name
    assert len(a.instances) == len(b.instances)
    for x, y in zip(a.instances, b.instances):
        for field in ("id", "tracking_id", "class_id", "class_name", "num_points"):
            assert getattr(x, field) == getattr(y, field), field
        for field in ("score", "class_probability", "iou_score"):
            assert getattr(x, field) == pytest.approx(getattr(y, field), abs=1e-7), field
        assert x.bbox_center == y.bbox_center and x.bbox_size == y.bbox_size
        assert x.sphere_center == y.sphere_center
        np.testing.assert_array_equal(np.asarray(x.ray_lengths), np.asarray(y.ray_lengths))
        np.testing.assert_array_equal(np.asarray(x.point_indices), np.asarray(y.point_indices))


def test_serialization_round_trip():
    msg = make_array()
    back = deserialize_message(serialize_message(msg), InstanceArray)
    assert_arrays_equal(msg, back)
    for other in (ClassMap(class_ids=[0, 1], class_names=["a", "b"], threshold=0.25),
                  ProcessingTime(stage_names=["decode"], stage_ms=[1.5], total_ms=1.5,
                                 latency_ms=3.0, dropped_frames=4)):
        assert deserialize_message(serialize_message(other), type(other)) == other


def test_publish_subscribe_round_trip_over_dds():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        from rclpy.executors import SingleThreadedExecutor

        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        talker = rclpy.create_node("sphmask_test_talker", context=context)
        listener = rclpy.create_node("sphmask_test_listener", context=context)
        received: list[InstanceArray] = []
        listener.create_subscription(InstanceArray, "/sphmask_test/instances",
                                     received.append, qos)
        pub = talker.create_publisher(InstanceArray, "/sphmask_test/instances", qos)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(talker)
        executor.add_node(listener)
        sent = make_array(4)
        deadline = time.monotonic() + 20.0
        while not received and time.monotonic() < deadline:
            if pub.get_subscription_count() > 0:
                pub.publish(sent)
            executor.spin_once(timeout_sec=0.1)
        assert received, "no InstanceArray arrived over DDS within 20 s"
        assert_arrays_equal(sent, received[0])
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_offline_typestore_reads_what_rclpy_writes():
    """rosbags decodes rclpy's CDR bytes of our messages and re-encodes them byte for byte."""
    store = make_typestore()
    msg = make_array(2)
    raw = serialize_message(msg)
    decoded = store.deserialize_cdr(raw, "sphmask/msg/InstanceArray")
    assert decoded.header.frame_id == "map" and decoded.cloud_width == 1234
    assert [i.class_name for i in decoded.instances] == [i.class_name for i in msg.instances]
    np.testing.assert_array_equal(decoded.instances[1].point_indices,
                                  np.asarray(msg.instances[1].point_indices))
    # CDR padding bytes are unspecified, so compare what the bytes decode to, not the bytes.
    again = deserialize_message(bytes(store.serialize_cdr(decoded, "sphmask/msg/InstanceArray")),
                                InstanceArray)
    assert_arrays_equal(msg, again)


def test_typestore_uses_the_same_msg_files_as_rosidl():
    import sphmask.msg as generated

    defs = message_definitions()
    assert set(defs) == {f"sphmask/msg/{n}" for n in
                         ("Instance", "InstanceArray", "ClassMap", "ProcessingTime")}
    # Every field rosidl generated is declared in the text rosbags reads, and vice versa.
    store = make_typestore()
    for name in ("Instance", "InstanceArray", "ClassMap", "ProcessingTime"):
        rosidl_fields = set(getattr(generated, name).get_fields_and_field_types())
        rosbags_fields = {f[0] for f in store.fielddefs[f"sphmask/msg/{name}"][1]}
        assert rosidl_fields == rosbags_fields, name
