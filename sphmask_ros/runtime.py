"""The ROS side of the sphmask node, shared by `SphMaskNode` and `SphMaskLifecycleNode`.

`NodeRuntime` owns the graph entities and the threads around a `Pipeline`:

* subscriptions (one per input topic, best effort depth 1 by default) whose callbacks only
  decode and validate the cloud, then put it in a `LatestSlot` (one place per topic, newest
  wins, replaced frames counted as dropped) and return;
* one worker thread that takes frames, runs the pipeline (pose, accumulate, crop, voxelize, cap,
  model) and publishes the results, stamped with the input cloud's stamp;
* publishers (reliable): ~/instances, ~/detections (vision_msgs/Detection3DArray), ~/markers,
  ~/labelled_cloud (built only while someone subscribes), ~/instance_image (organized input
  only, while subscribed), ~/processing_time, ~/class_map (transient local, once per model),
  /diagnostics on a timer;
* the pose inputs (static parameters, nav_msgs/Odometry, or /tf + /tf_static) feeding a locked
  transform cache;
* the run-time parameter callbacks (validated by `params.validate_update`).

Every failure on a frame is logged (throttled), counted in the diagnostics and the frame is
dropped; the node keeps serving. No exception leaves a callback (input, odometry, timer): a
bug or a hostile message is logged and counted as `callback_errors`, never fatal. Once the
context is shut down (Ctrl-C while a frame is in the worker), a frame that can no longer be
published is dropped quietly.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from sphmask.msg import ClassMap, InstanceArray, ProcessingTime
from sphmask_core.inference.nms import max_overlap
from sphmask_core.sensor.node_params import NodeParams
from sphmask_core.sensor.pointcloud2 import CloudError
from sphmask_core.sensor.poses import PoseSource
from sphmask_ros import conversions
from sphmask_ros.detections import instances_to_detections
from sphmask_ros.diagnostics import (
    RuntimeStats,
    TransportWindow,
    diagnostic_array,
    plausible_latency,
)
from sphmask_ros.handoff import LatestSlot, Worker
from sphmask_ros.instance_image import instance_image, instance_image_msg
from sphmask_ros.params import make_on_set_callback
from sphmask_ros.pipeline import (
    Frame,
    FrameResult,
    FrameSkipped,
    Pipeline,
    decode_frame,
)
from sphmask_ros.tf_buffer import TfBuffer, make_tf_source

THROTTLE_S = 2.0  # seconds between repeats of the same warning


def input_qos(params: NodeParams) -> QoSProfile:
    """Sensor-data QoS for the inputs: best effort (matches every driver), newest only."""
    reliability = (ReliabilityPolicy.RELIABLE if params.qos_input_reliability == "reliable"
                   else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=params.qos_input_depth,
                      reliability=reliability, durability=DurabilityPolicy.VOLATILE)


def output_qos(depth: int = 5) -> QoSProfile:
    """Reliable outputs: compatible with reliable and best-effort subscribers alike."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def make_pose_source(node: Any, params: NodeParams) -> PoseSource:
    """Poses for `params.pose_source`; 'tf' uses tf2_ros when installed, else our `TfBuffer`
    (subscribed to /tf and /tf_static in `NodeRuntime.start`)."""
    if params.pose_source != "tf" or not params.fixed_frame:
        return PoseSource(params)
    return PoseSource(params, external=make_tf_source(node))


def _context_ok(node: Any) -> bool:
    """Whether the node's context still runs, asked of rcl directly: `Context.ok()` takes the
    lock that `Context.shutdown()` holds while it destroys the node and joins our worker."""
    handle = node.context.handle
    return handle is not None and bool(handle.ok())


def _now_ns(node: Any) -> int:
    return int(node.get_clock().now().nanoseconds)


class NodeRuntime:
    """Graph entities, worker and callbacks of one sphmask node (see module doc).

    `create_publisher` is the node's publisher factory (`node.create_publisher`, or
    `create_lifecycle_publisher` for the lifecycle node, whose publishers stay silent while
    inactive). Call order: `load_model` -> `create_publishers` -> `start` (subscriptions,
    worker, timer) -> `stop` -> `destroy_publishers` -> `release_model`.
    """

    def __init__(self, node: Any, params: NodeParams,
                 create_publisher: Callable[..., Any] | None = None) -> None:
        self.node = node
        self.params = params
        self.stats = RuntimeStats()
        self.slot: LatestSlot[Frame] = LatestSlot()
        self.pipeline: Pipeline | None = None
        self._create_publisher = create_publisher or node.create_publisher
        self._pubs: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._timer: Any = None
        self._worker: Worker[Frame] | None = None
        self._params_lock = threading.Lock()
        self._param_handles: list[Any] = []
        self._transport = TransportWindow()
        self._stamp_warned: set[str] = set()

    # ------------------------------------------------------------------ model
    def load_model(self) -> None:
        """Build the pipeline (loads the checkpoint, warms the model up).

        Raises CheckpointError (unreadable checkpoint) or ValueError (bad device, class_names,
        pose_source 'tf' without tf2_ros).
        """
        if self.pipeline is None:
            self.pipeline = Pipeline.from_params(self.params, logger=self.node.get_logger(),
                                                 pose_source=make_pose_source(self.node, self.params))
            log = self.node.get_logger()
            log.info(f"model '{self.pipeline.model_name}' on {self.pipeline.device}, "
                     f"{len(self.pipeline.class_names)} classes, warm-up "
                     f"{self.pipeline.warmup_s * 1e3:.0f} ms")

    def release_model(self) -> None:
        """Drop the model and give cached GPU memory back."""
        if self.pipeline is not None:
            self.pipeline.release()
            self.pipeline = None

    # ------------------------------------------------------------------ publishers
    def _pub_events(self, topic: str) -> PublisherEventCallbacks:
        log = self.node.get_logger()

        def incompatible(info: Any) -> None:
            self.stats.count("qos_incompatible")
            log.warning(f"a subscriber of '{topic}' requests an incompatible QoS "
                        f"(policy id {info.last_policy_kind}); it receives nothing",
                        throttle_duration_sec=THROTTLE_S)

        return PublisherEventCallbacks(incompatible_qos=incompatible)

    def create_publishers(self) -> None:
        make = self._create_publisher
        spec = {
            "instances": (InstanceArray, "~/instances", output_qos()),
            "detections": (Detection3DArray, "~/detections", output_qos()),
            "markers": (MarkerArray, "~/markers", output_qos(1)),
            "instance_image": (Image, "~/instance_image", output_qos(1)),
            "labelled_cloud": (PointCloud2, "~/labelled_cloud", output_qos(1)),
            "processing_time": (ProcessingTime, "~/processing_time", output_qos()),
            "class_map": (ClassMap, "~/class_map", LATCHED_QOS),
            "diagnostics": (DiagnosticArray, "/diagnostics", output_qos(10)),
        }
        for key, (msg_type, topic, qos) in spec.items():
            self._pubs[key] = make(msg_type, topic, qos, event_callbacks=self._pub_events(topic))

    def destroy_publishers(self, destroy: Callable[[Any], Any] | None = None) -> None:
        destroy = destroy or self.node.destroy_publisher
        for pub in self._pubs.values():
            destroy(pub)
        self._pubs.clear()

    def publish_class_map(self) -> None:
        if self.pipeline is None or "class_map" not in self._pubs:
            return
        header = Header(stamp=self.node.get_clock().now().to_msg(), frame_id="")
        self._pubs["class_map"].publish(conversions.class_map_msg(
            self.pipeline.class_names, header, self.params.score_threshold))

    # ------------------------------------------------------------------ run
    def start(self) -> None:
        """Subscriptions, pose inputs, worker thread and diagnostics timer."""
        if self.pipeline is None:
            raise RuntimeError("load_model() must run before start()")
        self.slot = LatestSlot()
        self._worker = Worker(self.slot, self._handle, self._on_worker_error)
        self._worker.start()
        log = self.node.get_logger()

        def incompatible(topic: str) -> Callable[[Any], None]:
            def cb(info: Any) -> None:
                self.stats.count("qos_incompatible")
                log.warning(f"publisher of '{topic}' offers a QoS incompatible with this node's "
                            f"input QoS ({self.params.qos_input_reliability}, policy id "
                            f"{info.last_policy_kind}); no clouds arrive",
                            throttle_duration_sec=THROTTLE_S)
            return cb

        def lost(topic: str) -> Callable[[Any], None]:
            def cb(info: Any) -> None:
                self.stats.record_lost(topic, int(info.total_count))
                log.warning(f"{info.total_count} clouds lost in transport on '{topic}' so far "
                            f"(DDS: sent but never received whole; large best-effort clouds "
                            f"need config/fastdds.xml on the publisher's side too)",
                            throttle_duration_sec=THROTTLE_S)
            return cb

        for topic in self.params.input_topics:
            name = self.node.resolve_topic_name(topic)  # diagnostics name topics in full
            on_cloud = self._make_cloud_callback(name)
            sub = self.node.create_subscription(
                PointCloud2, topic, lambda msg, info, cb=on_cloud: cb(msg, info),  # with info
                input_qos(self.params),
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible(name),
                                                           message_lost=lost(name)))
            self._subs.append(sub)
            log.info(f"listening to '{sub.topic_name}' ({self.params.qos_input_reliability}, "
                     f"depth {self.params.qos_input_depth})")
        if isinstance(self.pipeline.poses.external, TfBuffer):
            self._subs.extend(self.pipeline.poses.external.subscribe(self.node, self._guarded))
        if self.params.fixed_frame and self.params.pose_source == "odometry":
            self._subs.append(self.node.create_subscription(
                Odometry, self.params.odometry_topic,
                self._guarded("odometry callback", self._on_odometry), output_qos(50)))
        self._timer = self.node.create_timer(self.params.diagnostics_period,
                                             self._guarded("diagnostics timer",
                                                           self.publish_diagnostics))
        self.publish_class_map()

    def stop(self) -> None:
        """Undo `start`: subscriptions and timer first (no new frames), then the worker."""
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs.clear()
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None
        if self._worker is not None:
            if not self._worker.stop(timeout=30.0):
                self.node.get_logger().error("worker thread did not finish within 30 s")
            self._worker = None
        self.slot.clear()

    # ------------------------------------------------------------------ parameters
    def install_parameter_callbacks(self) -> None:
        """Validate run-time changes, then apply them to the pipeline."""
        self._param_handles.append(self.node.add_on_set_parameters_callback(
            make_on_set_callback(lambda: self.params)))
        self._param_handles.append(self.node.add_post_set_parameters_callback(self._after_set))

    def remove_parameter_callbacks(self) -> None:
        """Undo `install_parameter_callbacks` (lifecycle cleanup)."""
        on_set, post_set = self._param_handles or (None, None)
        if on_set is not None:
            self.node.remove_on_set_parameters_callback(on_set)
            self.node.remove_post_set_parameters_callback(post_set)
        self._param_handles.clear()

    def _after_set(self, parameters: list) -> None:
        with self._params_lock:
            self.params = NodeParams.from_node(self.node)
            if self.pipeline is not None:
                self.pipeline.set_params(self.params)
        names = ", ".join(f"{p.name}={p.value!r}" for p in parameters)
        self.node.get_logger().info(f"parameters changed: {names}")
        if any(p.name == "score_threshold" for p in parameters):
            self.publish_class_map()

    # ------------------------------------------------------------------ callbacks
    def _guarded(self, what: str, fn: Callable[..., None]) -> Callable[..., None]:
        """`fn` with every exception logged and counted: an executor callback must not raise,
        or rclpy's spin ends and the node with it."""
        def call(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - see docstring
                if not _context_ok(self.node):
                    return  # shutting down: rcl refuses handles, nothing is lost
                self.stats.count("callback_errors")
                self.node.get_logger().error(f"unexpected error in the {what}: "
                                             f"{type(exc).__name__}: {exc}",
                                             throttle_duration_sec=THROTTLE_S)
        return call

    def _make_cloud_callback(self, topic: str) -> Callable[..., None]:
        """`callback(msg, info=None)`; `info` is rclpy's MessageInfo (publication sequence)."""
        def on_cloud(msg: PointCloud2, info: dict | None = None) -> None:
            seq = info.get("publication_sequence_number") if info else None
            gid = (info.get("publisher_gid") or {}).get("data") if info else None
            self.stats.record_received(topic, seq, gid)
            try:
                frame = decode_frame(msg, topic, _now_ns(self.node))
            except CloudError as exc:
                self.stats.count("invalid")
                self.node.get_logger().warning(
                    f"skipping malformed cloud on '{topic}': {exc}", throttle_duration_sec=THROTTLE_S)
                return
            self.stats.record_points(topic, frame.cloud.dropped, frame.cloud.colour_cleared)
            if frame.cloud.dropped:
                reasons = ", ".join(f"{n} {r}" for r, n in frame.cloud.dropped.items())
                self.node.get_logger().warning(
                    f"cloud on '{topic}': dropped bad points ({reasons})",
                    throttle_duration_sec=THROTTLE_S)
            try:
                self.slot.put(frame, key=topic)
            except RuntimeError:
                pass  # stopping: the slot is closed, the frame is not wanted any more
        return self._guarded(f"input callback of '{topic}'", on_cloud)

    def _on_odometry(self, msg: Odometry) -> None:
        if self.pipeline is not None:
            self.pipeline.add_odometry(msg)

    def _on_worker_error(self, exc: BaseException) -> None:
        if not _context_ok(self.node):
            return  # Ctrl-C while a frame was in flight: its results have nowhere to go
        self.stats.record_error(f"{type(exc).__name__}: {exc}")
        self.node.get_logger().error(f"unexpected error in the worker: {exc!r}",
                                     throttle_duration_sec=THROTTLE_S)

    def _handle(self, frame: Frame) -> None:
        """Worker: process one frame and publish; failures are logged, counted, dropped."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        log = self.node.get_logger()
        try:
            result = pipeline.process(frame)
        except FrameSkipped as exc:
            self.stats.count("no_transform")
            log.warning(f"skipping cloud from '{frame.header.frame_id}': {exc}",
                        throttle_duration_sec=THROTTLE_S)
            return
        except Exception as exc:  # noqa: BLE001 - model/CUDA failures must not stop the node
            self.stats.record_error(f"{type(exc).__name__}: {exc}")
            log.error(f"inference failed, frame dropped: {type(exc).__name__}: {exc}",
                      throttle_duration_sec=THROTTLE_S)
            pipeline.recover_from_error(exc)
            return
        self.stats.record_points(frame.topic, result.points_dropped, 0)
        if result.capped:
            self.stats.count("capped")
            log.warning(f"cloud of {result.n_before_cap} points capped to max_points="
                        f"{self.params.max_points}", throttle_duration_sec=THROTTLE_S)
        if not _context_ok(self.node):
            return  # Ctrl-C while this frame was processed: nothing can be published any more
        self._publish(result, pipeline, frame.topic)

    def _latency_ms(self, stamp_ns: int, topic: str) -> float | None:
        """now - stamp on the node's clock, None (warned once per topic) when implausible."""
        latency_ms = (_now_ns(self.node) - stamp_ns) / 1e6
        if plausible_latency(latency_ms):
            return latency_ms
        if topic not in self._stamp_warned:
            self._stamp_warned.add(topic)
            sim = self.node.get_clock().ros_time_is_active
            self.node.get_logger().warning(
                f"cloud on '{topic}' stamped {stamp_ns / 1e9:.3f} s is {latency_ms / 1e3:.3g} s "
                f"{'behind' if latency_ms > 0 else 'ahead of'} the node's clock "
                f"({'sim time' if sim else 'system time'}); latency statistics ignore such "
                f"stamps (counted as stamp_invalid; warned once)")
        return None

    def _publish(self, result: FrameResult, pipeline: Pipeline, topic: str = "") -> None:
        pubs = self._pubs
        if not pubs:
            return
        stages = dict(result.stages_s)
        t0 = time.perf_counter()
        inst = result.instances
        pubs["instances"].publish(conversions.instances_to_msg(
            inst, result.header, inst.n_points, pipeline.model_name, result.track_ids))
        pubs["detections"].publish(instances_to_detections(inst, result.header, result.track_ids))
        pubs["markers"].publish(conversions.instances_to_markers(inst, result.header,
                                                                 result.track_ids))
        if result.raw_shape[0] > 1 and pubs["instance_image"].get_subscription_count() > 0:
            # organized input (depth camera): ids per input pixel, in the input's frame
            image = instance_image(inst.point_instance, result.point_sweep,
                                   result.point_raw_index, *result.raw_shape)
            pubs["instance_image"].publish(instance_image_msg(image, result.input_header))
        if (self.params.publish_labelled_cloud
                and pubs["labelled_cloud"].get_subscription_count() > 0):
            t_enc = time.perf_counter()
            cloud = conversions.labelled_cloud(inst, result.header, result.xyz, result.rgb)
            stages["encode"] = time.perf_counter() - t_enc
            pubs["labelled_cloud"].publish(cloud)
        stages["publish"] = time.perf_counter() - t0 - stages.get("encode", 0.0)
        stages_ms = {k: v * 1e3 for k, v in stages.items()}
        total_ms = sum(stages_ms.values())
        latency_ms = self._latency_ms(result.stamp_ns, topic)
        self.stats.record_frame(stages_ms, total_ms, latency_ms, mask_overlap=max_overlap(inst.masks))
        timing = ProcessingTime()
        timing.header = result.header
        timing.stage_names = list(stages_ms)
        timing.stage_ms = [float(v) for v in stages_ms.values()]
        timing.total_ms = float(total_ms)
        timing.latency_ms = math.nan if latency_ms is None else float(latency_ms)
        timing.dropped_frames = int(self.slot.dropped)
        pubs["processing_time"].publish(timing)

    def publish_diagnostics(self) -> None:
        pub = self._pubs.get("diagnostics")
        if pub is None:
            return
        pipeline = self.pipeline
        header = Header(stamp=self.node.get_clock().now().to_msg())
        snap = self.stats.snapshot(dropped=self.slot.dropped)
        rates = self._transport.update(time.monotonic(), snap.topics)
        pub.publish(diagnostic_array(
            header, self.node.get_name(), snap,
            device=str(pipeline.device) if pipeline else "none",
            model_name=pipeline.model_name if pipeline else "none",
            warn_ms=self.params.latency_warn_ms, error_ms=self.params.latency_error_ms,
            rates=rates))

    # ------------------------------------------------------------------ introspection (tests)
    @property
    def busy(self) -> bool:
        return self._worker is not None and (self._worker.busy or self.slot.pending > 0)
