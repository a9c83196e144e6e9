"""ScanNetV2 loaders on a hand-made mini scan written in the real raw format by the test.

Mini scan (12 vertices):
  seg 10: vertices 0-2  wall   (NYU40 1)   group "wall"
  seg 20: vertices 3-5  floor  (NYU40 2)   group "floor"
  seg 30: vertices 6-7  chair  (NYU40 5)   group "office chair" (segments 30, 31)
  seg 31: vertex   8    chair
  seg 40: vertices 9-10 table  (NYU40 7)   group "table"
  seg 50: vertex   11   lamp   (NYU40 35, not a benchmark class) group "lamp"
Expected: semantic [0,0,0, 1,1,1, 4,4,4, 6,6, -100], instance chair=0, table=1, rest -100.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from sphmask_core.data.errors import DatasetError
from sphmask_core.data.ply import read_ply, write_ply
from sphmask_core.data.scannet import (
    convert_scannet,
    list_scannet_split,
    load_scannet_pth,
    load_scannet_raw,
    main,
    nyu40_to_semantic,
    read_pth_arrays,
    read_split_file,
)

XYZ = np.array(
    [[0, 0, 0], [0, 1, 0], [0, 2, 1], [1, 0, 0], [2, 0, 0], [2, 2, 0],
     [1, 1, 0.5], [1.2, 1, 0.5], [1.1, 1.2, 0.9], [3, 3, 0.7], [3.5, 3, 0.7], [4, 1, 1.5]],
    np.float32,
)
RGB = (np.arange(36).reshape(12, 3) * 7).astype(np.uint8)
NYU40 = np.array([1, 1, 1, 2, 2, 2, 5, 5, 5, 7, 7, 35], np.uint16)
SEGS = [10, 10, 10, 20, 20, 20, 30, 30, 31, 40, 40, 50]
GROUPS = [("wall", [10]), ("office chair", [30, 31]), ("floor", [20]), ("table", [40]), ("lamp", [50])]
TSV = (
    "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyu40class\n"
    "1\twall\twall\t10\t1\t12\twall\n2\tfloor\tfloor\t10\t2\t5\tfloor\n"
    "3\toffice chair\tchair\t5\t5\t4\tchair\n4\ttable\ttable\t5\t7\t10\ttable\n5\tlamp\tlamp\t3\t35\t7\tlamp\n"
)
EXPECTED_SEM = np.array([0, 0, 0, 1, 1, 1, 4, 4, 4, 6, 6, -100])
EXPECTED_INST = np.array([-100] * 6 + [0, 0, 0, 1, 1, -100])
EXPECTED_SP = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 4, 5])


def write_scan(root, name="scene0000_00", groups=GROUPS, alignment=None, n_labels=12, xyz=XYZ):
    d = root / name
    d.mkdir(parents=True)
    faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    verts = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "red": RGB[: len(xyz), 0],
             "green": RGB[: len(xyz), 1], "blue": RGB[: len(xyz), 2], "alpha": np.full(len(xyz), 255, np.uint8)}
    write_ply(d / f"{name}_vh_clean_2.ply", verts, faces if len(xyz) else None)
    lab = {k: v[:n_labels] for k, v in verts.items()} | {"label": NYU40[:n_labels]}
    write_ply(d / f"{name}_vh_clean_2.labels.ply", lab, binary=False)
    agg = {"sceneId": name, "segGroups": [
        {"id": i, "objectId": i, "segments": segs, "label": label} for i, (label, segs) in enumerate(groups)]}
    (d / f"{name}.aggregation.json").write_text(json.dumps(agg))
    (d / f"{name}_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"sceneId": name, "segIndices": SEGS[: len(xyz)]}))
    meta = "colorHeight = 968\n"
    if alignment is not None:
        meta += "axisAlignment = " + " ".join(str(float(x)) for x in np.ravel(alignment)) + "\n"
    (d / f"{name}.txt").write_text(meta)
    (root / "scannetv2-labels.combined.tsv").write_text(TSV)
    return d


def test_nyu40_map():
    np.testing.assert_array_equal(nyu40_to_semantic(np.array([0, 1, 2, 13, 14, 39, 40, 35])), [-100, 0, 1, -100, 12, 19, -100, -100])


def test_raw_mini_scene(tmp_path):
    scene = load_scannet_raw(write_scan(tmp_path))
    assert scene.name == "scene0000_00"
    np.testing.assert_array_equal(scene.semantic, EXPECTED_SEM)
    np.testing.assert_array_equal(scene.instance, EXPECTED_INST)
    np.testing.assert_array_equal(scene.superpoint, EXPECTED_SP)
    np.testing.assert_allclose(scene.xyz, XYZ - XYZ.astype(np.float64).mean(0), atol=1e-6)
    np.testing.assert_allclose(scene.rgb, RGB / 127.5 - 1, atol=1e-6)
    assert scene.rgb.min() >= -1 and scene.rgb.max() <= 1
    from sphmask_core.data.scene import SCANNET_LABELS

    scene.validate(SCANNET_LABELS)


def test_axis_alignment_applied_before_centring(tmp_path):
    # 90 degrees about z plus a translation: (x, y, z) -> (-y + 1, x + 2, z + 3)
    m = np.array([[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]], float)
    scene = load_scannet_raw(write_scan(tmp_path, alignment=m))
    x, y, z = XYZ.astype(np.float64).T
    aligned = np.stack([-y + 1, x + 2, z + 3], axis=1)
    np.testing.assert_allclose(scene.xyz, aligned - aligned.mean(0), atol=1e-6)
    plain = load_scannet_raw(tmp_path / "scene0000_00", axis_align=False)
    np.testing.assert_allclose(plain.xyz, XYZ - XYZ.astype(np.float64).mean(0), atol=1e-6)


def test_later_group_wins_and_group_order_gives_ids(tmp_path):
    groups = [("table", [40]), ("office chair", [30, 31]), ("wall", [10]), ("office chair", [31])]
    scene = load_scannet_raw(write_scan(tmp_path, groups=groups))
    # table -> group 0, chair verts 6-7 -> group 1, vertex 8 -> group 3 (later wins); compacted 0,1,2
    np.testing.assert_array_equal(scene.instance, [-100] * 6 + [1, 1, 2, 0, 0, -100])


def test_scene0217_keeps_first_half_of_groups(tmp_path):
    objects = [("office chair", [30, 31]), ("table", [40])]
    groups = objects + objects[::-1]  # the duplicate half lists them in the other order
    scene = load_scannet_raw(write_scan(tmp_path, name="scene0217_00", groups=groups))
    np.testing.assert_array_equal(scene.instance, EXPECTED_INST)  # chair 0, table 1
    other = load_scannet_raw(write_scan(tmp_path, name="scene0218_00", groups=groups))
    # elsewhere every group counts: the second half wins, table (group 2) < chair (group 3)
    np.testing.assert_array_equal(other.instance, [-100] * 6 + [1, 1, 1, 0, 0, -100])


@pytest.mark.parametrize(
    "broken,match",
    [
        ("scene0000_00.aggregation.json", "missing instance annotation"),
        ("scene0000_00_vh_clean_2.0.010000.segs.json", "missing segment file"),
        ("scene0000_00_vh_clean_2.ply", "missing mesh"),
    ],
)
def test_missing_companion_file(tmp_path, broken, match):
    d = write_scan(tmp_path)
    (d / broken).unlink()
    with pytest.raises(DatasetError, match=match) as info:
        load_scannet_raw(d)
    assert broken in str(info.value)


def test_label_count_mismatch(tmp_path):
    d = write_scan(tmp_path, n_labels=11)
    with pytest.raises(DatasetError, match=r"labels\.ply: 11 vertices but scene0000_00_vh_clean_2\.ply has 12"):
        load_scannet_raw(d)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_ground_truth_comes_from_the_aggregation_without_labels_ply(tmp_path, caplog):
    d = write_scan(tmp_path)
    (d / "scene0000_00_vh_clean_2.labels.ply").unlink()
    with caplog.at_level(logging.WARNING):
        scene = load_scannet_raw(d)
    np.testing.assert_array_equal(scene.semantic, EXPECTED_SEM)
    np.testing.assert_array_equal(scene.instance, EXPECTED_INST)
    assert _warnings(caplog) == []


def test_unknown_category_is_void_with_one_warning_naming_it(tmp_path, caplog):
    # an earlier release's scene: `dishrack` (twice) is not in the tsv; the scene still loads
    groups = [("wall", [10]), ("office chair", [30, 31]), ("floor", [20]), ("dishrack", [40]), ("lamp", [50]),
              ("dishrack", [40])]
    with caplog.at_level(logging.WARNING):
        scene = load_scannet_raw(write_scan(tmp_path, groups=groups))
    np.testing.assert_array_equal(scene.semantic, [0, 0, 0, 1, 1, 1, 4, 4, 4, -100, -100, -100])
    np.testing.assert_array_equal(scene.instance, [-100] * 6 + [0, 0, 0, -100, -100, -100])
    named = [w for w in _warnings(caplog) if "dishrack" in w]
    assert len(named) == 1 and "scene0000_00" in named[0] and "void" in named[0]


def test_labels_ply_disagreeing_with_the_aggregation_is_a_warning_not_the_truth(tmp_path, caplog):
    d = write_scan(tmp_path)
    # ids that are not NYU40 (as in an earlier release): chair stored as 3, table as 12
    lab = read_ply(d / "scene0000_00_vh_clean_2.labels.ply")["vertex"]
    fields = {k: lab[k] for k in lab.dtype.names}
    fields["label"] = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3, 12, 12, 35], np.uint16)
    write_ply(d / "scene0000_00_vh_clean_2.labels.ply", fields, binary=False)
    with caplog.at_level(logging.WARNING):
        scene = load_scannet_raw(d)
    np.testing.assert_array_equal(scene.semantic, EXPECTED_SEM)
    np.testing.assert_array_equal(scene.instance, EXPECTED_INST)
    (warning,) = _warnings(caplog)
    assert "labels.ply disagrees with the aggregation on 5 of 12 vertices" in warning


def test_consistent_labels_ply_gives_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        load_scannet_raw(write_scan(tmp_path))
    assert _warnings(caplog) == []


def test_tsv_of_an_earlier_release_names_the_raw_column_category(tmp_path):
    d = write_scan(tmp_path)
    old = "\n".join("\t".join(c for i, c in enumerate(line.split("\t")) if i != 2) for line in TSV.splitlines())
    old = old.replace("raw_category", "category", 1)
    (tmp_path / "scannetv2-labels.combined.tsv").write_text(old + "\n")
    assert "raw_category" not in old and old.startswith("id\tcategory\tcount\tnyu40id")
    scene = load_scannet_raw(d)
    np.testing.assert_array_equal(scene.semantic, EXPECTED_SEM)
    np.testing.assert_array_equal(scene.instance, EXPECTED_INST)
    (tmp_path / "scannetv2-labels.combined.tsv").write_text("id\tname\tnyu40id\n1\twall\t1\n")
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['raw_category \(or category\)'\]"):
        load_scannet_raw(d)


def test_empty_scene(tmp_path):
    d = write_scan(tmp_path, xyz=np.zeros((0, 3), np.float32), n_labels=0)
    with pytest.raises(DatasetError, match="empty scene"):
        load_scannet_raw(d)


def test_bad_alignment_and_missing_tsv(tmp_path):
    d = write_scan(tmp_path, alignment=np.eye(4))
    (d / "scene0000_00.txt").write_text("axisAlignment = 1 0 0\n")
    with pytest.raises(DatasetError, match="16 numbers"):
        load_scannet_raw(d)
    (d / "scene0000_00.txt").unlink()  # metadata is optional
    (tmp_path / "scannetv2-labels.combined.tsv").unlink()
    with pytest.raises(DatasetError, match="label map not found"):
        load_scannet_raw(d)


def test_test_split_raw_has_no_labels(tmp_path):
    d = write_scan(tmp_path)
    (d / "scene0000_00_vh_clean_2.labels.ply").unlink()
    scene = load_scannet_raw(d, with_labels=False)
    assert (scene.semantic == -100).all() and (scene.instance == -100).all()
    np.testing.assert_array_equal(scene.superpoint, EXPECTED_SP)


def _assert_same_scene(a, b):
    assert a.name == b.name
    for key in ("xyz", "rgb", "semantic", "instance", "superpoint"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
        assert getattr(a, key).dtype == getattr(b, key).dtype


def test_converter_round_trip(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_scan(raw, "scene0000_00")
    write_scan(raw, "scene0001_00", groups=[("table", [40]), ("office chair", [30])], alignment=np.diag([2.0, 1, 1, 1]))
    split = tmp_path / "scannetv2_val.txt"
    split.write_text("scene0000_00\nscene0001_00\n\n")
    written = convert_scannet(raw, out, split, progress=False)
    assert [p.name for p in written] == ["scene0000_00_inst_nostuff.pth", "scene0001_00_inst_nostuff.pth"]
    assert list_scannet_split(out, "val") == written
    # the file is the ISBNet tuple of float64 numpy arrays
    arrays = read_pth_arrays(written[0])
    assert len(arrays) == 4 and all(a.dtype == np.float64 for a in arrays)
    for p in written:
        _assert_same_scene(load_scannet_pth(p), load_scannet_raw(raw / p.name[:12]))
    assert load_scannet_pth(written[0], superpoint_dir=None).superpoint is None


def test_converter_test_split_and_tensor_files(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_scan(raw, "scene0707_00")
    (written,) = convert_scannet(raw, out, ["scene0707_00"], split="test", progress=False)
    assert len(read_pth_arrays(written)) == 2
    scene = load_scannet_pth(written)
    assert (scene.semantic == -100).all() and (scene.instance == -100).all()
    np.testing.assert_array_equal(scene.superpoint, EXPECTED_SP)
    # files holding tensors instead of numpy arrays load the same way
    torch.save((torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([4.0, -100]), torch.tensor([0.0, -100])), out / "t.pth")
    np.testing.assert_array_equal(load_scannet_pth(out / "t.pth", None).instance, [0, -100])


def test_pth_errors(tmp_path):
    (tmp_path / "junk_inst_nostuff.pth").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="junk_inst_nostuff.pth: cannot be read"):
        load_scannet_pth(tmp_path / "junk_inst_nostuff.pth")
    torch.save((np.zeros((3, 3)),) * 3, tmp_path / "three_inst_nostuff.pth")
    with pytest.raises(DatasetError, match="got 3 items"):
        load_scannet_pth(tmp_path / "three_inst_nostuff.pth")
    torch.save((np.zeros((3, 3)), np.zeros((3, 3)), np.zeros(3), np.array([0.0, 0, 0.5])), tmp_path / "f_inst_nostuff.pth")
    with pytest.raises(DatasetError, match="fractional"):
        load_scannet_pth(tmp_path / "f_inst_nostuff.pth")


def test_split_file_and_cli(tmp_path, capsys):
    with pytest.raises(DatasetError, match="not a scene name"):
        (tmp_path / "s.txt").write_text("../etc\n")
        read_split_file(tmp_path / "s.txt")
    assert main(["convert", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "not found" in err[0]
    raw = tmp_path / "raw"
    write_scan(raw, "scene0000_00")
    assert main(["convert", str(raw), str(tmp_path / "out"), "--scenes", "scene0000_00", "--quiet"]) == 0
    assert (tmp_path / "out" / "train" / "scene0000_00_inst_nostuff.pth").is_file()
    assert (tmp_path / "out" / "superpoints" / "scene0000_00.pth").is_file()
    assert main(["convert", str(raw), str(tmp_path / "out2"), "--scenes", "scene9999_00", "--quiet"]) == 2
