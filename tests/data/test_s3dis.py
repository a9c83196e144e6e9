"""S3DIS loaders on a hand-made room written in the raw Stanford3dDataset format by the test.

Room (12 points):             annotation file (sorted order = instance order)
  0, 1   ceiling              ceiling_1.txt  (instance 0)
  2, 3   floor                floor_1.txt    (instance 3)
  4, 5   chair                chair_1.txt    (instance 1)
  6      unannotated, next to 4/5 -> chair_1
  7, 8   chair                chair_2.txt    (instance 2)
  9, 10  stairs -> clutter    stairs_1.txt   (instance 4)
  11     unannotated, nearest annotated point is 9 -> stairs_1
Annotation points are the room points moved by 1 mm, so matching needs the nearest neighbour.
"""

from __future__ import annotations

import numpy as np
import pytest

from sphmask_core.data.errors import DatasetError
from sphmask_core.data.s3dis import (
    label_room,
    list_preprocessed_rooms,
    list_rooms,
    load_s3dis_room,
    parse_areas,
    preprocess_s3dis,
    read_room_pth,
)
from sphmask_core.data.scannet import save_pth_arrays
from sphmask_core.data.scene import S3DIS_LABELS

XYZ = np.array(
    [[0, 0, 3], [1, 0, 3], [0, 0, 0], [1, 0, 0], [0.5, 0.5, 0.5], [0.6, 0.5, 0.5], [0.55, 0.5, 0.6],
     [3, 3, 0.5], [3.1, 3, 0.5], [5, 5, 1], [5, 5.1, 1], [5, 5, 1.3]]
) + [10.0, 20.0, 0.0]
RGB = np.arange(36).reshape(12, 3) * 7
OBJECTS = {"ceiling_1": [0, 1], "floor_1": [2, 3], "chair_1": [4, 5], "chair_2": [7, 8], "stairs_1": [9, 10]}
SEM = [0, 0, 1, 1, 8, 8, 8, 8, 8, 12, 12, 12]
INST_ALL = [0, 0, 3, 3, 1, 1, 1, 2, 2, 4, 4, 4]
INST_NOSTUFF = [-100, -100, -100, -100, 0, 0, 0, 1, 1, 2, 2, 2]


def _table(rows: np.ndarray) -> str:
    return "".join(f"{r[0]:.6f} {r[1]:.6f} {r[2]:.6f} {int(r[3])} {int(r[4])} {int(r[5])}\n" for r in rows)


def write_room(root, area=1, room="office_1", objects=OBJECTS, xyz=XYZ):
    d = root / f"Area_{area}" / room
    (d / "Annotations").mkdir(parents=True)
    table = np.hstack([xyz, RGB[: len(xyz)]])
    (d / f"{room}.txt").write_text(_table(table))
    for name, idx in objects.items():
        (d / "Annotations" / f"{name}.txt").write_text(_table(table[idx] + [0.001, -0.001, 0.001, 0, 0, 0]))
    return d


def test_parse_areas():
    assert parse_areas("train") == (1, 2, 3, 4, 6)
    assert parse_areas("val") == (5,)
    assert parse_areas("Area_3,Area_1") == (1, 3)
    assert parse_areas([2, "area_6"]) == (2, 6)
    assert parse_areas(4) == (4,)
    with pytest.raises(ValueError, match="1..6"):
        parse_areas("Area_7")


def test_raw_room_labels(tmp_path):
    d = write_room(tmp_path)
    scene = load_s3dis_room(d)
    assert scene.name == "Area_1_office_1"
    np.testing.assert_array_equal(scene.semantic, SEM)
    np.testing.assert_array_equal(scene.instance, INST_NOSTUFF)
    np.testing.assert_allclose(scene.xyz, XYZ - XYZ.mean(0), atol=1e-5)
    np.testing.assert_allclose(scene.rgb, RGB / 127.5 - 1, atol=1e-6)
    scene.validate(S3DIS_LABELS)
    full = load_s3dis_room(d, stuff_instances=True, center=False)
    np.testing.assert_array_equal(full.instance, INST_ALL)
    np.testing.assert_allclose(full.xyz, XYZ, atol=1e-5)


def test_label_room_later_file_wins_and_fill():
    room = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [10, 0, 0]], float)
    sem, inst = label_room(room, [(7, room[[0, 1]]), (8, room[[1, 2]])])
    np.testing.assert_array_equal(sem, [7, 8, 8, 8])  # point 1 claimed twice, point 3 filled from 2
    np.testing.assert_array_equal(inst, [0, 1, 1, 1])
    # an annotation that loses all its points leaves no gap in the ids
    sem, inst = label_room(room, [(7, room[[1]]), (8, room[[1, 2]]), (9, room[[3]])])
    np.testing.assert_array_equal(inst, [0, 0, 0, 1])
    np.testing.assert_array_equal(sem, [8, 8, 8, 9])


def test_preprocess_round_trip(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "prep" / "preprocess"
    write_room(raw, 1, "office_1")
    write_room(raw, 5, "hallway_2", objects={"wall_1": list(range(6)), "table_1": list(range(6, 12))})
    written = preprocess_s3dis(raw, out, areas=(1, 5), progress=False)
    assert [p.name for p in written] == ["Area_1_office_1_inst_nostuff.pth", "Area_5_hallway_2_inst_nostuff.pth"]
    xyz, rgb, sem, inst = read_room_pth(written[0])
    assert (xyz.dtype, rgb.dtype, sem.dtype, inst.dtype) == (np.float32, np.float32, np.int32, np.int32)
    np.testing.assert_array_equal(rgb, RGB)  # raw 0-255 in the file
    np.testing.assert_array_equal(inst, INST_ALL)
    assert list_preprocessed_rooms(out, "val") == written[1:]
    assert list_rooms(raw, 1) == [raw / "Area_1" / "office_1"]
    for p, room_dir in zip(written, list_rooms(raw, "Area_1,Area_5")):
        a, b = load_s3dis_room(p), load_s3dis_room(room_dir)
        assert a.name == b.name
        for key in ("xyz", "rgb", "semantic", "instance"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    # superpoints next to the preprocess folder are picked up and renumbered
    save_pth_arrays(tmp_path / "prep" / "superpoints" / "Area_1_office_1.pth", (np.repeat([7, 3, 9], 4),))
    np.testing.assert_array_equal(load_s3dis_room(written[0]).superpoint, np.repeat([1, 0, 2], 4))
    assert load_s3dis_room(written[0], superpoint_dir=None).superpoint is None


def test_failures(tmp_path):
    d = write_room(tmp_path, objects={"chair_1": [4, 5], "spaceship_1": [7]})
    with pytest.raises(DatasetError, match="unknown S3DIS class 'spaceship'") as info:
        load_s3dis_room(d)
    assert "spaceship_1.txt" in str(info.value)
    d2 = write_room(tmp_path, room="office_2")
    for p in (d2 / "Annotations").iterdir():
        p.unlink()
    (d2 / "Annotations").rmdir()
    with pytest.raises(DatasetError, match="missing Annotations folder"):
        load_s3dis_room(d2)
    d3 = write_room(tmp_path, room="office_3")
    with (d3 / "office_3.txt").open("a") as fh:
        fh.write("1.0 2.0 3.0 4 5 \x10 6\n")  # the kind of corruption found in the real release
    with pytest.raises(DatasetError, match="office_3.txt: not a table"):
        load_s3dis_room(d3)
    d4 = write_room(tmp_path, room="office_4")
    (d4 / "office_4.txt").write_text("")
    with pytest.raises(DatasetError, match="office_4.txt: empty"):
        load_s3dis_room(d4)
    save_pth_arrays(tmp_path / "Area_1_x_inst_nostuff.pth", (np.zeros((3, 3), np.float32), np.zeros((2, 3), np.float32), np.zeros(3), np.zeros(3)))
    with pytest.raises(DatasetError, match="lengths disagree"):
        load_s3dis_room(tmp_path / "Area_1_x_inst_nostuff.pth")
    with pytest.raises(DatasetError, match="area folder not found"):
        list_rooms(tmp_path, "Area_6")
