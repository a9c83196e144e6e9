import numpy as np
import pytest
import torch

from sphmask_core.data.collate import Batch, collate
from sphmask_core.data.scene import Scene


def _scene(name: str, instance: list[int], superpoint: list[int] | None, seed: int) -> Scene:
    n = len(instance)
    rng = np.random.default_rng(seed)
    inst = np.array(instance, dtype=np.int64)
    sem = np.where(inst >= 0, 3 + np.maximum(inst, 0) % 2, 0).astype(np.int64)
    return Scene(
        xyz=rng.random((n, 3), dtype=np.float32),
        rgb=(rng.random((n, 3), dtype=np.float32) * 2 - 1),
        semantic=sem,
        instance=inst,
        superpoint=None if superpoint is None else np.array(superpoint, dtype=np.int64),
        name=name,
    )


def test_ids_unique_across_batch_and_fields_concatenated():
    a = _scene("a", [0, 1, -100, 1, 0], [0, 0, 1, 2, 2], 0)
    b = _scene("b", [-100, 0, 2, 2], [1, 0, 1, 3], 1)  # ids with gaps are renumbered
    batch = collate([a, b])
    assert batch.offsets.tolist() == [0, 5, 9] and batch.batch_size == 2
    assert batch.instance.tolist() == [0, 1, -100, 1, 0, -100, 2, 3, 3]
    assert batch.superpoint.tolist() == [0, 0, 1, 2, 2, 4, 3, 4, 5]
    assert batch.scene_names == ["a", "b"]
    np.testing.assert_array_equal(batch.xyz.numpy(), np.concatenate([a.xyz, b.xyz]))
    np.testing.assert_array_equal(batch.rgb.numpy(), np.concatenate([a.rgb, b.rgb]))
    np.testing.assert_array_equal(batch.semantic.numpy(), np.concatenate([a.semantic, b.semantic]))
    assert torch.equal(batch.grid_xyz, batch.xyz) and batch.grid_xyz.data_ptr() != batch.xyz.data_ptr()
    assert batch.xyz.dtype == torch.float32 and batch.offsets.dtype == torch.int64
    assert batch.batch_ids.tolist() == [0] * 5 + [1] * 4
    # the original scenes are untouched
    assert b.instance.tolist() == [-100, 0, 2, 2]


def test_superpoint_none_if_any_scene_lacks_them():
    batch = collate([_scene("a", [0, 0], [0, 1], 0), _scene("b", [0, -100], None, 1)])
    assert batch.superpoint is None


def test_grid_xyz_and_to_device():
    a, b = _scene("a", [0, 0, 1], None, 0), _scene("b", [-100, -100], None, 1)
    grid = [a.xyz + 1.0, b.xyz - 1.0]
    batch = collate([a, b], grid_xyz=grid)
    np.testing.assert_allclose(batch.grid_xyz.numpy(), np.concatenate(grid))
    moved = batch.to("cpu")
    assert isinstance(moved, Batch) and moved.scene_names == ["a", "b"] and moved.superpoint is None
    assert torch.equal(moved.instance, batch.instance)


def test_bad_input():
    a = _scene("a", [0, 0, 1], None, 0)
    with pytest.raises(ValueError, match="at least one scene"):
        collate([])
    with pytest.raises(ValueError, match="grid_xyz"):
        collate([a], grid_xyz=[np.zeros((2, 3), np.float32)])
    bad = _scene("bad", [0, 0, 1], None, 0)
    bad.rgb = bad.rgb * 200  # raw 0-255 colours
    with pytest.raises(ValueError, match="rgb"):
        collate([a, bad])
