import numpy as np
import pytest

from sphmask_core.data.augment import (
    AugmentConfig,
    SceneDropped,
    augment_scene,
    color_shift,
    crop_mask,
    elastic,
    flip_xy,
    jitter,
    rotate_z,
)
from sphmask_core.data.scene import Scene


def _cloud(n: int = 2000, seed: int = 0, extent: float = 4.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, extent, size=(n, 3))


def _scene(n: int = 6000, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-3, 3, size=(n, 3)) * [1, 1, 0.5]
    # instances: quadrants in xy (ids 0..3, class 2 + id), points with z < -1 are floor (stuff)
    inst = (xyz[:, 0] > 0).astype(np.int64) * 2 + (xyz[:, 1] > 0)
    sem = inst + 2
    floor = xyz[:, 2] < -1.0
    inst[floor], sem[floor] = -100, 1
    return Scene.from_arrays(xyz, rng.uniform(-1, 1, (n, 3)), sem, inst, name="s")


def _pairwise(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


def test_rotation_preserves_distances_and_z():
    x = _cloud(300)
    y = rotate_z(x, np.random.default_rng(1))
    np.testing.assert_allclose(_pairwise(y), _pairwise(x), atol=1e-9)
    np.testing.assert_allclose(y[:, 2], x[:, 2])
    assert not np.allclose(y, x)
    # the angle is uniform: xy rotation of the unit x vector covers all directions
    angles = [np.arctan2(*rotate_z(np.array([[1.0, 0, 0]]), np.random.default_rng(s))[0, 1::-1]) for s in range(400)]
    hist = np.histogram(angles, bins=4, range=(-np.pi, np.pi))[0]
    assert hist.min() > 60


def test_flip_negates_x_and_y_independently_half_the_time():
    x = _cloud(50)
    counts = np.zeros(4, int)
    for s in range(400):
        y = flip_xy(x, np.random.default_rng(s))
        sx, sy = np.sign(y[0, 0] / x[0, 0]), np.sign(y[0, 1] / x[0, 1])
        np.testing.assert_allclose(y, x * [sx, sy, 1.0])
        counts[int(sx < 0) * 2 + int(sy < 0)] += 1
    assert counts.min() > 70  # all four combinations, about 100 each
    np.testing.assert_allclose(flip_xy(x, np.random.default_rng(0), p=0.0), x)
    np.testing.assert_allclose(flip_xy(x, np.random.default_rng(0), p=1.0), x * [-1, -1, 1])


def test_jitter_is_a_near_identity_linear_map():
    x = _cloud(100)
    y = jitter(x, np.random.default_rng(2), sigma=0.1)
    m, *_ = np.linalg.lstsq(x, y, rcond=None)  # exact linear map, recovered
    np.testing.assert_allclose(x @ m, y, atol=1e-9)
    assert 0 < np.abs(m - np.eye(3)).max() < 0.5
    np.testing.assert_allclose(jitter(x, np.random.default_rng(2), sigma=0.0), x)


def test_elastic_is_bounded_smooth_and_linear_in_magnitude():
    x = _cloud(3000, extent=5.0)
    d1 = elastic(x, np.random.default_rng(3), spacing=0.4, magnitude=0.1) - x
    d2 = elastic(x, np.random.default_rng(3), spacing=0.4, magnitude=0.2) - x
    np.testing.assert_allclose(d2, 2 * d1, atol=1e-9)  # same field, scaled
    # each component is an average of N(0,1) noise: never beyond a few sigma times magnitude
    assert np.abs(d1).max() <= 0.1 * 5.0
    assert np.linalg.norm(d1, axis=1).mean() > 0.002  # it does move points
    # smooth: points 1 mm apart move almost identically
    d_near = elastic(x + 0.001, np.random.default_rng(3), spacing=0.4, magnitude=0.1) - (x + 0.001)
    assert np.abs(d_near - d1).max() < 0.1 * np.abs(d1).max()
    np.testing.assert_allclose(elastic(x, np.random.default_rng(3), 0.4, 0.0), x)


def test_color_shift_is_one_offset_per_channel():
    rgb = np.random.default_rng(0).uniform(-1, 1, (100, 3)).astype(np.float32)
    out = color_shift(rgb, np.random.default_rng(4), sigma=0.1)
    delta = out - rgb
    np.testing.assert_allclose(delta, np.broadcast_to(delta[0], delta.shape), atol=1e-6)
    assert np.abs(delta[0]).max() > 0 and out.dtype == np.float32


def test_crop_respects_max_points_and_keeps_a_window():
    x = _cloud(20000, extent=10.0)
    for s in range(5):
        keep = crop_mask(x, np.random.default_rng(s), max_points=3000, window=10.24, step=0.64)
        assert 0 < keep.sum() <= 3000
        kept = x[keep]
        # a box window: every point inside the kept points' bounding box (xy) was kept too
        lo, hi = kept.min(0), kept.max(0)
        inside = ((x[:, :2] >= lo[:2]) & (x[:, :2] <= hi[:2])).all(1)
        np.testing.assert_array_equal(inside, keep)
    assert crop_mask(x, np.random.default_rng(0), max_points=20000, window=1.0, step=0.1).all()


def test_augment_scene_is_deterministic_and_consistent():
    scene = _scene()
    cfg = AugmentConfig(min_points=100)
    a, ga = augment_scene(scene, np.random.default_rng(7), cfg)
    b, gb = augment_scene(scene, np.random.default_rng(7), cfg)
    c, _ = augment_scene(scene, np.random.default_rng(8), cfg)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(ga, gb)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not np.allclose(a.xyz, c.xyz)
    assert ga.dtype == np.float32 and ga.shape == a.xyz.shape
    a.validate()
    # labels travel with their points and the xyz feature is an affine image of the input
    np.testing.assert_array_equal(a.semantic, scene.semantic)
    m, *_ = np.linalg.lstsq(scene.xyz.astype(np.float64), a.xyz.astype(np.float64), rcond=None)
    np.testing.assert_allclose(scene.xyz @ m, a.xyz, atol=1e-4)
    assert np.linalg.norm(ga - a.xyz, axis=1).mean() > 0.01  # elastic only moved the grid
    assert scene.xyz is not a.xyz and scene.n_points == 6000  # input untouched


def test_augment_scene_crops_big_scenes_and_drops_small_ones():
    scene = _scene(n=8000)
    cfg = AugmentConfig(max_points=3000, crop_window_voxels=400, crop_step_voxels=20, min_points=500)
    out, grid = augment_scene(scene, np.random.default_rng(0), cfg)
    assert 500 <= out.n_points <= 3000 and grid.shape == (out.n_points, 3)
    out.validate()
    ids = np.unique(out.instance[out.instance >= 0])
    np.testing.assert_array_equal(ids, np.arange(ids.size))  # compacted after the crop
    for k in ids:
        assert np.unique(out.semantic[out.instance == k]).size == 1
    with pytest.raises(SceneDropped, match="min_points=9000"):
        augment_scene(scene, np.random.default_rng(0), AugmentConfig(min_points=9000))
    everything_off = AugmentConfig(jitter=False, flip=False, rotate=False, elastic=False, color_shift=False, min_points=0)
    same, g = augment_scene(scene, np.random.default_rng(0), everything_off)
    np.testing.assert_array_equal(same.xyz, scene.xyz)
    np.testing.assert_array_equal(g, scene.xyz)
    np.testing.assert_array_equal(same.rgb, scene.rgb)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="flip_p"):
        AugmentConfig(flip_p=2.0).validate()
    with pytest.raises(ValueError, match="elastic"):
        AugmentConfig(elastic_params=((0.0, 1.0),)).validate()
    with pytest.raises(ValueError, match="shape"):
        rotate_z(np.zeros((3, 2)), np.random.default_rng(0))
