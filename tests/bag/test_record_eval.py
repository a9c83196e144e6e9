"""record-synthetic -> info -> eval round trips in both storage formats, against direct evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from bag_segmenters import OracleSegmenter

from sphmask_core.evaluation.scannet_eval import (
    evaluate_scannet,
    gt_ids_from_labels,
    pred_instances_from_masks,
)
from sphmask_core.sensor.bag_reader import BagReader
from sphmask_core.sensor.pointcloud2 import decode_cloud
from sphmask_ros.bag.cli import main as bag_main
from sphmask_ros.bag.evaluate import OUTPUT_TOPICS, EvalConfig, evaluate_bag
from sphmask_ros.bag.info import bag_info
from sphmask_ros.bag.messages import to_rclpy
from sphmask_ros.bag.record import (
    EXTRINSIC_QUAT,
    EXTRINSIC_XYZ,
    frame_stamp_ns,
    record_synthetic,
    synthetic_frames,
)

MIN_REGION = 20


def _params(tmp_path: Path, **extra: object) -> Path:
    lines = ["/**:", "  ros__parameters:", "    input_voxel_size: 0.0", "    device: cpu", "    score_threshold: 0.1"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in extra.items()]
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _noisy_oracle(frames: list) -> OracleSegmenter:
    """Spoilt ground truth of the frames' own (sensor-frame) points."""
    return OracleSegmenter(np.concatenate([f.xyz for f in frames]),
                           np.concatenate([f.semantic for f in frames]),
                           np.concatenate([f.instance for f in frames]), noisy=True)


def _direct(frames: list, seg: OracleSegmenter, threshold: float = 0.1) -> tuple[dict, list[dict]]:
    """The same frames, segmented directly and scored with the core evaluator."""
    gts, preds, per_frame = [], [], []
    names, ids = seg.class_names, list(range(1, len(seg.class_names) + 1))
    for f in frames:
        inst = seg(f.xyz, f.rgb)
        keep = np.flatnonzero(inst.scores >= threshold)
        p = pred_instances_from_masks([inst.masks[k] for k in keep], inst.class_ids[keep],
                                      inst.scores[keep], f.xyz.shape[0])
        g = gt_ids_from_labels(f.semantic, f.instance, 2)
        gts.append(g)
        preds.append(p)
        per_frame.append(evaluate_scannet([g], [p], names, ids, MIN_REGION))
    return evaluate_scannet(gts, preds, names, ids, MIN_REGION), per_frame


def _same(a: float | None, b: float) -> bool:
    return (a is None and np.isnan(b)) or (a is not None and np.isclose(a, b))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_info_eval_round_trip(storage, synthetic_bags, record_cfg, tmp_path):
    bag = synthetic_bags[storage]
    info = bag_info(bag)
    topics = {t.name: t for t in info.topics}
    assert {n: t.count for n, t in topics.items()} == {"/points": 3, "/odom": 3, "/tf_static": 1}
    assert topics["/points"].msgtype == "sensor_msgs/msg/PointCloud2"
    assert topics["/points"].ground_truth is True and topics["/odom"].ground_truth is None
    assert topics["/tf_static"].qos.startswith("reliable/transient_local")
    assert info.duration_s == pytest.approx(0.2) and not info.warnings

    frames = synthetic_frames(record_cfg)
    seg = _noisy_oracle(frames)
    report = evaluate_bag(EvalConfig(bag=bag, params_file=_params(tmp_path), out=tmp_path / "ev",
                                     min_region_size=MIN_REGION, renders=2, progress=False),
                          segmenter=seg, model_name="grid", log=lambda s: None)
    direct, direct_frames = _direct(frames, seg)
    m = report.metrics
    assert m["num_scenes"] == 3
    assert 0.0 < direct["AP50"] < direct["AP25"] < 1.0  # a non-trivial answer to agree on
    for key in ("AP", "AP50", "AP25"):
        assert _same(m[key], direct[key]), key
        for row, d in zip(report.data["per_frame"], direct_frames):
            assert _same(row[key], d[key]), key
    assert report.data["frames"] == {"in_bag": 3, "considered": 3, "processed": 3, "skipped": 0,
                                     "skipped_by_reason": {}}
    assert set(report.data["latency_ms"]) == {"p50", "p95", "max", "mean"}
    assert len(report.data["renders"]) == 2 and all(Path(p).is_file() for p in report.data["renders"])
    # the page a person opens: every render linked, the plots it shows exist
    page = Path(report.data["report_html"]).read_text()
    for p in report.data["renders"]:
        assert f'href="{Path(p).relative_to(report.out_dir).as_posix()}"' in page
    for img in re.findall(r'<img src="([^"]+)"', page):
        assert (report.out_dir / img).is_file(), img
    assert "pr_curves.png" in page and "latency.png" in page and "instances.png" in page
    saved = json.loads((report.out_dir / "report.json").read_text())
    assert saved["metrics"]["AP50"] == m["AP50"]

    # The output bag: types, one message per frame each, input stamps and frame ids.
    out = BagReader(report.out_dir / "output_bag")
    for topic, msgtype in OUTPUT_TOPICS.values():
        assert out.topics[topic].msgtype == msgtype and out.topics[topic].count == 3
    in_stamps = [frame_stamp_ns(f) for f in frames]
    seen: dict[str, list[int]] = {}
    for msg in out.messages():
        ros = to_rclpy(msg)
        header = ros.markers[0].header if msg.topic.endswith("markers") else ros.header
        assert header.frame_id == "sensor"
        seen.setdefault(msg.topic, []).append(header.stamp.sec * 10**9 + header.stamp.nanosec)
        assert msg.log_time_ns == seen[msg.topic][-1]  # written at the input's log time
        if msg.topic.endswith("instances"):
            k = len(seen[msg.topic]) - 1
            assert ros.cloud_width == frames[k].xyz.shape[0] and ros.model_name == "grid"
            assert len(ros.instances) == int((seg(frames[k].xyz).scores >= 0.1).sum())
        if msg.topic.endswith("labelled_cloud"):
            cloud = decode_cloud(ros)
            k = len(seen[msg.topic]) - 1
            np.testing.assert_allclose(cloud.xyz, frames[k].xyz, atol=1e-6)
    assert all(stamps == in_stamps for stamps in seen.values())


def test_oracle_scores_perfectly_with_accumulation(synthetic_bags, record_cfg, tmp_path):
    """Perfect predictions over accumulated windows in the map frame (poses from /odom) give AP 1."""
    frames = synthetic_frames(record_cfg)
    world = np.concatenate([f.world_xyz() for f in frames]).astype(np.float32)
    oracle = OracleSegmenter(world, np.concatenate([f.semantic for f in frames]),
                             np.concatenate([f.instance for f in frames]))
    params = _params(tmp_path, fixed_frame="map", pose_source="odometry", odometry_topic="/odom",
                     **{"accumulate": None})
    text = params.read_text().replace('    accumulate: null\n', "    accumulate:\n      frames: 2\n")
    text += ("    static_transform:\n"
             f"      xyz: {list(EXTRINSIC_XYZ)}\n      quaternion: {list(EXTRINSIC_QUAT)}\n")
    params.write_text(text)
    report = evaluate_bag(EvalConfig(bag=synthetic_bags["mcap"], params_file=params,
                                     out=tmp_path / "oracle", min_region_size=MIN_REGION,
                                     renders=0, progress=False),
                          segmenter=oracle, log=lambda s: None)
    rows = report.data["per_frame"]
    sizes = [f.xyz.shape[0] for f in frames]
    assert [r["points"] for r in rows] == [sizes[0], sizes[0] + sizes[1], sizes[1] + sizes[2]]
    assert report.metrics["AP"] == pytest.approx(1.0)
    assert report.metrics["AP25"] == pytest.approx(1.0)
    first = next(BagReader(report.out_dir / "output_bag").messages([OUTPUT_TOPICS["instances"][0]]))
    assert to_rclpy(first).header.frame_id == "map"


def test_record_is_deterministic(synthetic_bags, record_cfg, tmp_path):
    again = record_synthetic(tmp_path / "again", record_cfg)
    # Compared as messages: CDR alignment padding bytes are not initialised by the serializer.
    a = [(m.topic, m.log_time_ns, m) for m in BagReader(synthetic_bags["mcap"]).messages()]
    b = [(m.topic, m.log_time_ns, m) for m in BagReader(again.path).messages()]
    assert [x[:2] for x in a] == [x[:2] for x in b]
    for (topic, _, ma), (_, _, mb) in zip(a, b):
        if topic == "/tf_static":
            assert ma.data == mb.data
        else:
            assert to_rclpy(ma) == to_rclpy(mb)
    cloud = decode_cloud(to_rclpy(next(BagReader(again.path).messages(["/points"]))))
    frame = synthetic_frames(record_cfg)[0]
    np.testing.assert_array_equal(cloud.extras["instance_id"], np.where(frame.instance >= 0, frame.instance, -1))
    np.testing.assert_array_equal(cloud.extras["semantic_id"], frame.semantic)


def test_cli_eval_with_a_checkpoint(synthetic_bags, random_checkpoint, tmp_path, capsys):
    out = tmp_path / "cli_eval"
    args = ["eval", str(synthetic_bags["sqlite3"]), "--topic", "/points", "--checkpoint",
            str(random_checkpoint), "--params", str(_params(tmp_path)), "--out", str(out),
            "--max-frames", "1", "--renders", "1", "--min-region-size", str(MIN_REGION),
            "--no-progress"]
    assert bag_main(args) == 0
    printed = capsys.readouterr().out
    assert "frames: 1 processed" in printed and "AP50" in printed
    assert printed.rstrip().endswith(f"page:   {out / 'report.html'}") and (out / "report.html").is_file()
    data = json.loads((out / "report.json").read_text())
    assert data["model"] == "random_small" and data["frames"]["considered"] == 1
    assert data["metrics"]["num_scenes"] == 1 and len(data["renders"]) == 1
    assert bag_main(args) == 2  # the output exists now: refused before any work
    assert "already exists" in capsys.readouterr().err
