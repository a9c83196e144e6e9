"""STPLS3D block cutting on a hand-made scene written in the Synthetic_v3 text format by the test.

Scene (relative to an offset of (1000, 500, 20), which the cutter removes):
  block 0 (x in [0, 50]):    ground (0,0,0) (10,10,0); building inst 7 at z 8 and 10; vehicle inst 3
  block 1 (x in [50, 100]):  two ground points -> dropped (min_points 2: more than 2 needed)
  block 2 (x in [100, 150]): ground, vehicle inst 12 (2 points), bike inst 4; z range 1 -> dummy point
"""

from __future__ import annotations

import numpy as np
import pytest

from sphmask_core.data.errors import DatasetError
from sphmask_core.data.scene import STPLS3D_LABELS
from sphmask_core.data.stpls3d import (
    BlockConfig,
    cut_scene,
    grid_blocks,
    keep_train_block,
    list_stpls3d_blocks,
    load_stpls3d_block,
    prepare_stpls3d,
    read_stpls3d_txt,
    rotate_copy,
    split_files,
)

OFFSET = np.array([1000.0, 500.0, 20.0])
REL = np.array(
    [[0, 0, 0], [10, 10, 0], [20, 20, 8], [21, 20, 10], [30, 5, 1],
     [60, 5, 0], [70, 5, 1],
     [120, 0, 0], [125, 1, 0.5], [126, 1, 0.5], [130, 2, 1]]
)
RGB = np.arange(33).reshape(11, 3) * 7.0
SEM = np.array([0, 0, 1, 1, 5, 0, 0, 0, 5, 5, 9])
INST = np.array([0, 0, 7, 7, 3, 0, 0, 0, 12, 12, 4])
CFG = BlockConfig(min_points=2, min_instances=0, instance_margin=-100)  # block 1 has exactly 2


def write_scene(raw, name="1_points_GTv3.txt", sep=",", header=False):
    raw.mkdir(parents=True, exist_ok=True)
    table = np.hstack([REL + OFFSET, RGB, SEM[:, None], INST[:, None]])
    lines = [sep.join(f"{v:g}" for v in row) for row in table]
    if header:
        lines.insert(0, sep.join(["x", "y", "z", "r", "g", "b", "class", "inst"]))
    (raw / name).write_text("\n".join(lines) + "\n")
    return raw / name


def test_grid_blocks_closed_cells():
    xy = np.array([[0, 0], [50, 0], [100, 0], [10, 60]], float)
    np.testing.assert_array_equal(grid_blocks(xy, 50, 50)[0], [0, 1])  # cell x[0,50] y[0,50]
    blocks = grid_blocks(xy, 50, 50)
    assert len(blocks) == 4  # 2 x 2 cells
    assert [b.tolist() for b in blocks] == [[0, 1], [3], [1, 2], []]
    assert [b.tolist() for b in grid_blocks(np.array([[3.0, 4.0]]), 50, 50)] == [[0]]


def test_train_blocks_by_hand(tmp_path):
    points = read_stpls3d_txt(write_scene(tmp_path))
    scenes = cut_scene(points, "1_points_GTv3", "train", CFG, number=1)
    assert [s.name for s in scenes] == ["1_points_GTv3_0_0", "1_points_GTv3_0_2"]
    a, b = scenes
    np.testing.assert_allclose(a.xyz, REL[:5] - REL[:5].mean(0), atol=1e-5)
    np.testing.assert_allclose(a.rgb, RGB[:5] / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(a.semantic, [0, 0, 1, 1, 5])
    np.testing.assert_array_equal(a.instance, [-100, -100, 1, 1, 0])  # raw ids 3 -> 0, 7 -> 1
    assert a.superpoint is None
    # block 2: z range 1 m < 6 m -> dummy at (mean x, mean y, 1 + 5) with labels -100
    pts = np.vstack([REL[7:], [125.25, 1.0, 6.0]])
    np.testing.assert_allclose(b.xyz, pts - pts.mean(0), atol=1e-5)
    np.testing.assert_allclose(b.rgb[-1], RGB[7:].mean(0) / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(b.semantic, [0, 5, 5, 9, -100])
    np.testing.assert_array_equal(b.instance, [-100, 1, 1, 0, -100])
    assert np.ptp(b.xyz[:, 2]) == pytest.approx(6.0)
    for s in scenes:
        s.validate(STPLS3D_LABELS)


def test_val_uses_large_blocks_and_no_skipping(tmp_path):
    points = read_stpls3d_txt(write_scene(tmp_path))
    strict = BlockConfig(min_points=3)  # min_instances 10 would skip every train block
    assert cut_scene(points, "5_x", "train", strict, number=5) == []
    (val,) = cut_scene(points, "5_x", "val", strict, number=5)
    assert val.n_points == 11 and val.name == "5_x_0_0"
    np.testing.assert_allclose(val.xyz, REL - REL.mean(0), atol=1e-4)
    assert val.n_instances == 4


def test_keep_train_block_rules():
    cfg = BlockConfig(min_instances=3, instance_margin=2)
    sem = np.array([0, 1, 1, 1, 1, 1])
    assert keep_train_block(sem, np.array([-100, 0, 1, 2, 3, 4]), cfg)  # 5 inst, 1 class: 1 < 3
    assert not keep_train_block(sem, np.array([-100, 0, 1, 1, 1, 1]), cfg)  # 2 instances < 3
    sem3 = np.array([0, 1, 2, 3, 1, 1])
    assert not keep_train_block(sem3, np.array([-100, 0, 1, 2, 3, 4]), cfg)  # 3 classes >= 5 - 2


def test_rotated_copies_seeded(tmp_path):
    points = read_stpls3d_txt(write_scene(tmp_path))
    rot = rotate_copy(points, np.random.default_rng(3), keep_classes=(0, 5))
    np.testing.assert_array_equal(rot[:, 6], SEM[np.isin(SEM, (0, 5))])
    kept = points[np.isin(points[:, 6], (0, 5))]
    # rigid rotation about z: distances preserved, z untouched, a whole number of degrees
    d0 = np.linalg.norm(kept[:, None, :3] - kept[None, :, :3], axis=-1)
    d1 = np.linalg.norm(rot[:, None, :3] - rot[None, :, :3], axis=-1)
    np.testing.assert_allclose(d0, d1, rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(rot[:, 2], kept[:, 2])
    deg = np.rad2deg(np.arctan2(rot[0, 1], rot[0, 0]) - np.arctan2(kept[0, 1], kept[0, 0])) % 360
    assert abs(deg - round(deg)) < 1e-6 and 1 <= round(deg) <= 359
    cfg = BlockConfig(train_block=500, train_stride=500, min_points=3, min_instances=0, instance_margin=-100,
                      extra_rotations=2, rotation_keep_classes=(0, 5), seed=7)
    first = cut_scene(points, "1_s", "train", cfg, number=1)
    again = cut_scene(points, "1_s", "train", cfg, number=1)
    assert [s.name for s in first] == ["1_s_0_0", "1_s_1_0", "1_s_2_0"]
    for s, t in zip(first, again):
        np.testing.assert_array_equal(s.xyz, t.xyz)
    assert set(np.unique(first[1].semantic)) <= {0, 5, -100}  # -100: the z-range dummy
    assert not np.allclose(first[1].xyz, first[2].xyz)  # copies use different angles
    other = cut_scene(points, "1_s", "train", BlockConfig(**{**cfg.__dict__, "seed": 8}), number=1)
    assert not all(np.allclose(a.xyz, b.xyz) for a, b in zip(first[1:], other[1:]))


def test_splits_and_round_trip(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_scene(raw, "1_points_GTv3.txt")
    write_scene(raw, "10_points_GTv3.txt", sep=" ", header=True)
    write_scene(raw, "5_points_GTv3.txt")
    assert [p.name for p in split_files(raw, "train")] == ["1_points_GTv3.txt"]
    assert [p.name for p in split_files(raw, "val")] == ["5_points_GTv3.txt", "10_points_GTv3.txt"]
    np.testing.assert_array_equal(read_stpls3d_txt(raw / "10_points_GTv3.txt"), read_stpls3d_txt(raw / "1_points_GTv3.txt"))
    written = prepare_stpls3d(raw, out, "train", CFG, progress=False)
    assert list_stpls3d_blocks(out, "train") == sorted(written)
    direct = cut_scene(read_stpls3d_txt(raw / "1_points_GTv3.txt"), "1_points_GTv3", "train", CFG, number=1)
    for path, scene in zip(written, direct):
        loaded = load_stpls3d_block(path)
        assert loaded.name == scene.name
        for key in ("xyz", "rgb", "semantic", "instance"):
            np.testing.assert_array_equal(getattr(loaded, key), getattr(scene, key), err_msg=key)
    (test_block,) = prepare_stpls3d(raw, out, "test", BlockConfig(min_points=3), progress=False)[:1]
    assert (load_stpls3d_block(test_block).semantic == -100).all()


def test_bad_files(tmp_path):
    path = write_scene(tmp_path)
    text = path.read_text().splitlines()
    text[3] = text[3].rsplit(",", 2)[0] + ",15,1"
    (tmp_path / "2_bad.txt").write_text("\n".join(text))
    with pytest.raises(DatasetError, match="2_bad.txt: unknown semantic label 15"):
        read_stpls3d_txt(tmp_path / "2_bad.txt")
    (tmp_path / "3_empty.txt").write_text("")
    with pytest.raises(DatasetError, match="empty scene"):
        read_stpls3d_txt(tmp_path / "3_empty.txt")
    (tmp_path / "4_short.txt").write_text("1,2,3,4,5,6\n")
    with pytest.raises(DatasetError, match="expected 8 columns"):
        read_stpls3d_txt(tmp_path / "4_short.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no scene files"):
        split_files(tmp_path / "empty", "val")
    with pytest.raises(DatasetError, match="not found"):
        split_files(tmp_path / "missing", "val")
