"""The randomised generator: primitives against analytic hits, sensor models against their error
models, determinism, distinct families, and held-out families that share no code with training."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sphmask_core.data import randomized as rz
from sphmask_core.data import shape_families as sf
from sphmask_core.data.primitives import BOX, CYLINDER, ELLIPSOID, Primitives, cast_rays, rot_x, rot_z
from sphmask_core.data.scene import IGNORE_LABEL
from sphmask_core.data.sensors import LidarConfig, RGBDConfig, camera_pose, simulate_lidar, simulate_rgbd

SMALL = rz.RandomizedConfig(n_objects_range=(3, 5), scan_resolution=(48, 36), frame_resolution=(64, 48),
                            scan_frames_range=(2, 2), room_size_range=(4.0, 5.0))


def _prims(kinds, centers, halves, rots=None) -> Primitives:
    n = len(kinds)
    return Primitives(np.array(kinds), np.array(centers, float), np.array(rots if rots is not None else [np.eye(3)] * n),
                      np.array(halves, float), np.full((n, 3), 0.5), np.full(n, 2), np.arange(n))


# ------------------------------------------------------------------------- ray casting


def test_rays_hit_box_cylinder_and_ellipsoid_where_the_geometry_says():
    prims = _prims([BOX, CYLINDER, ELLIPSOID], [[3, 0, 0], [0, 3, 0], [0, 0, 3]],
                   [[0.5, 1, 1], [0.4, 0.4, 1], [0.3, 0.3, 0.6]])
    dirs = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0.6, 0.8, 0]])
    hits = cast_rays(np.zeros(3), dirs, prims)
    np.testing.assert_allclose(hits.t[:3], [2.5, 2.6, 2.4], atol=1e-9)
    assert hits.prim.tolist() == [0, 1, 2, -1, -1]
    np.testing.assert_allclose(hits.normal[:3], [[-1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-9)
    assert np.isinf(hits.t[3:]).all()


def test_rotated_cylinder_cap_and_nearest_of_overlapping_solids():
    # a cylinder lying along x (rotated about y) is hit on its cap; a box behind it is hidden
    lying = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float)  # part z -> world x
    prims = _prims([CYLINDER, BOX], [[2, 0, 0], [4, 0, 0]], [[0.3, 0.3, 0.5], [0.2, 2, 2]], [lying, np.eye(3)])
    hits = cast_rays(np.zeros(3), np.array([[1.0, 0, 0], [1.0, 0.5, 0] / np.hypot(1, 0.5)]), prims)
    assert hits.prim[0] == 0 and hits.t[0] == pytest.approx(1.5)
    np.testing.assert_allclose(hits.normal[0], [-1, 0, 0], atol=1e-9)
    assert hits.prim[1] == 1 and hits.t[1] == pytest.approx(3.8 * np.hypot(1, 0.5))


def test_ray_cast_matches_a_brute_force_sphere_march():
    rng = np.random.default_rng(0)
    n = 12
    kinds = rng.integers(0, 3, n)
    centers = rng.uniform(-3, 3, (n, 3))
    halves = rng.uniform(0.1, 0.6, (n, 3))
    rots = np.array([rot_z(a) @ rot_x(b) for a, b in rng.uniform(0, 3, (n, 2))])
    prims = _prims(list(kinds), centers, halves, rots)
    dirs = rng.normal(size=(200, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origin = np.array([0.0, 0.0, 5.0])
    hits = cast_rays(origin, dirs, prims)
    # reference: march each ray in 4 mm steps and test membership in the unit solids
    ts = np.arange(0, 12, 0.004)
    pts = origin + ts[None, :, None] * dirs[:, None]  # (R, T, 3)
    first = np.full(len(dirs), np.inf)
    for k in range(n):
        u = np.einsum("ji,rtj->rti", rots[k], pts - centers[k]) / halves[k]
        inside = {BOX: (np.abs(u) <= 1).all(-1), CYLINDER: (u[..., 0] ** 2 + u[..., 1] ** 2 <= 1) & (np.abs(u[..., 2]) <= 1),
                  ELLIPSOID: (u ** 2).sum(-1) <= 1}[int(kinds[k])]
        t_in = np.where(inside.any(1), ts[inside.argmax(1)], np.inf)
        first = np.minimum(first, t_in)
    both = np.isfinite(first) & np.isfinite(hits.t)
    assert (np.isfinite(first) == np.isfinite(hits.t)).mean() > 0.98  # grazing rays may differ by a step
    np.testing.assert_allclose(hits.t[both], first[both], atol=0.009)


# ------------------------------------------------------------------------------ sensors


def _wall(distance: float) -> Primitives:
    return _prims([BOX], [[distance + 0.05, 0, 1]], [[0.05, 20, 20]])


def test_rgbd_depth_noise_grows_with_range():
    def spread(distance: float) -> float:
        cfg = RGBDConfig(width=64, height=48, noise_a=0.0, noise_b=0.004, blob_holes=0.0, flying_prob=0.0)
        pts = simulate_rgbd(camera_pose(np.array([0, 0, 1.0]), 0.0, 0.0), _wall(distance), cfg, np.random.default_rng(1))
        return float(np.std(pts.xyz[:, 0] - distance))

    near, far = spread(1.0), spread(4.0)
    assert near == pytest.approx(0.004, rel=0.15)  # sigma = b * z^2
    assert far == pytest.approx(0.004 * 16, rel=0.15)


def test_rgbd_field_of_view_range_and_holes():
    cfg = RGBDConfig(width=64, height=48, fov_h_deg=60.0, noise_a=0.0, noise_b=0.0, blob_holes=0.0, flying_prob=0.0)
    pts = simulate_rgbd(camera_pose(np.array([0, 0, 1.0]), 0.0, 0.0), _wall(2.0), cfg, np.random.default_rng(0))
    assert len(pts.xyz) == 64 * 48
    half_width = np.abs(pts.xyz[:, 1]).max()
    assert half_width == pytest.approx(2.0 * np.tan(np.deg2rad(30)), rel=0.03)
    holes = simulate_rgbd(camera_pose(np.array([0, 0, 1.0]), 0.0, 0.0), _wall(2.0),
                          RGBDConfig(width=64, height=48, blob_holes=0.2, flying_prob=0.0), np.random.default_rng(0))
    assert 0.7 * 64 * 48 < len(holes.xyz) < 0.9 * 64 * 48
    beyond = simulate_rgbd(camera_pose(np.array([0, 0, 1.0]), 0.0, 0.0), _wall(9.0), cfg, np.random.default_rng(0))
    assert len(beyond.xyz) == 0  # past max_range


def test_rgbd_flying_pixels_sit_between_surfaces_and_carry_no_label():
    prims = _prims([BOX, BOX], [[1.05, -1, 1], [3.05, 0, 1]], [[0.05, 1, 5], [0.05, 10, 10]])
    cfg = RGBDConfig(width=64, height=48, noise_a=0.0, noise_b=0.0, blob_holes=0.0, flying_prob=1.0)
    pts = simulate_rgbd(camera_pose(np.array([0, 0, 1.0]), 0.0, 0.0), prims, cfg, np.random.default_rng(0))
    fly = pts.prim < 0
    assert 10 <= fly.sum() <= 100  # one column of the depth edge
    assert ((pts.xyz[fly, 0] > 1.05) & (pts.xyz[fly, 0] < 3.0)).all()
    assert np.isin(np.round(pts.xyz[~fly, 0], 6), [1.0, 3.0]).all()


def test_lidar_returns_lie_on_its_beams_with_range_noise():
    cfg = LidarConfig(n_beams=8, elevation_deg=(-10.0, 10.0), azimuth_steps=360, range_sigma=0.0, dropout=0.0)
    room = _prims([CYLINDER], [[0, 0, 0]], [[5.0, 5.0, 10.0]])  # we sit inside: no entry hit
    assert len(simulate_lidar(np.eye(4), room, cfg, np.random.default_rng(0)).xyz) == 0
    walls = _prims([BOX] * 4, [[5, 0, 0], [-5, 0, 0], [0, 5, 0], [0, -5, 0]],
                   [[0.1, 6, 6], [0.1, 6, 6], [6, 0.1, 6], [6, 0.1, 6]])
    pts = simulate_lidar(np.eye(4), walls, cfg, np.random.default_rng(0))
    assert len(pts.xyz) == 8 * 360
    el = np.rad2deg(np.arctan2(pts.xyz[:, 2], np.hypot(pts.xyz[:, 0], pts.xyz[:, 1])))
    np.testing.assert_allclose(np.unique(np.round(el, 6)), np.linspace(-10, 10, 8), atol=1e-6)
    noisy = simulate_lidar(np.eye(4), walls, LidarConfig(n_beams=8, elevation_deg=(-10.0, 10.0), azimuth_steps=360,
                                                        range_sigma=0.02, dropout=0.1), np.random.default_rng(0))
    assert 0.85 * 8 * 360 < len(noisy.xyz) < 0.95 * 8 * 360
    on_x = noisy.xyz[:, 0] > np.abs(noisy.xyz[:, 1]) + 0.5  # returns from the wall x = 4.9
    rng_ = np.linalg.norm(noisy.xyz[on_x], axis=1)
    true = 4.9 / (noisy.xyz[on_x, 0] / rng_)  # noise moves points along their ray only
    assert np.std(rng_ - true) == pytest.approx(0.02, rel=0.15)


def test_lidar_scene_has_no_colour():
    scene = rz.generate_scene(3, SMALL, "lidar")
    assert np.all(scene.rgb == 0.0)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("kind", ["scan", "frame", "lidar", "negative", "classic_frame"])
def test_scenes_are_deterministic_by_seed_and_differ_between_seeds(kind):
    a, b, c = rz.generate_scene(5, SMALL, kind), rz.generate_scene(5, SMALL, kind), rz.generate_scene(6, SMALL, kind)
    for f in ("xyz", "rgb", "semantic", "instance"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert a.xyz.shape != c.xyz.shape or not np.array_equal(a.xyz, c.xyz)


def test_classic_frame_is_one_sensor_frame_of_the_original_generator():
    from sphmask_core.data.synthetic import SensorConfig, SyntheticConfig, generate_frames

    cfg = rz.RandomizedConfig(classic_frame_points_range=(3000, 3000))
    scene = rz.generate_scene(3, cfg, "classic_frame")
    assert scene.xyz.shape == (3000, 3)
    _, frames = generate_frames(3, SyntheticConfig(density=1000.0), 6, SensorConfig())
    # every point is a point of one of the generator's frames, in that sensor's coordinates
    match = [np.isin(scene.xyz.view("V12").ravel(), f.xyz.view("V12").ravel()).all() for f in frames]
    assert sum(match) == 1
    f = frames[match.index(True)]
    row = {p.tobytes(): k for k, p in enumerate(f.xyz)}
    src = np.array([row[p.tobytes()] for p in scene.xyz])
    assert np.all(np.diff(src) > 0)  # a sorted subset: the frame's point order is kept
    labelled = scene.semantic >= 0
    np.testing.assert_array_equal(scene.semantic[labelled], f.semantic[src][labelled])
    ids = scene.instance[scene.instance >= 0]
    assert ids.size and set(np.unique(ids)) == set(range(int(ids.max()) + 1))  # contiguous ids


def test_negative_scenes_have_no_instances_and_noise_is_uniform():
    for seed in range(6):
        assert (rz.generate_scene(seed, SMALL, "negative").instance == IGNORE_LABEL).all()
    noise = rz.noise_scene(0, 20000)
    assert (noise.instance == IGNORE_LABEL).all()
    hist = np.histogram(noise.xyz[:, 2], bins=10)[0]
    assert hist.min() > 0.8 * hist.mean()


def test_furnished_scenes_label_instances_and_clutter_is_stuff():
    room = rz.build_room(2, "train", (8, 10), (5.0, 6.0))
    stuff = room.prims.instance == IGNORE_LABEL
    assert set(room.prims.semantic[stuff].tolist()) <= {rz.WALL, rz.FLOOR}
    assert set(room.prims.semantic[~stuff].tolist()) <= set(range(2, 12))
    assert room.n_instances == len(np.unique(room.prims.instance[~stuff])) >= 5
    cfg = rz.RandomizedConfig(n_objects_range=(8, 10), room_size_range=(5.0, 6.0), scan_resolution=(96, 72),
                              scan_frames_range=(4, 4))
    scene = rz.generate_scene(2, cfg, "scan")
    assert scene.instance.max() >= 1
    assert ((scene.instance >= 0) <= (scene.semantic >= 2)).all()


# ------------------------------------------------------------------ families and held-out split


def _signature(parts: list[sf.Part]) -> tuple:
    return tuple(sorted((int(k), round(float(np.prod(h)), 6)) for k, _, h, _, _ in parts))


def test_every_class_has_several_training_families_and_a_held_out_one():
    for sem in range(2, 12):
        assert len(sf.families_of(sem, False)) >= 3
        assert len(sf.families_of(sem, True)) >= 1


def test_families_are_deterministic_and_distinct():
    for fam in sf.FAMILIES:
        a = fam.build(np.random.default_rng(7))
        b = fam.build(np.random.default_rng(7))
        assert _signature(a) == _signature(b)
        assert _signature(a) != _signature(fam.build(np.random.default_rng(8))), fam.name
    for sem in range(2, 12):
        fams = [f for f in sf.FAMILIES if f.semantic == sem]
        # structure = the ordered (solid kind, colour role) of the parts
        sigs = {f.name: {tuple((int(k), role) for k, _, _, _, role in f.build(np.random.default_rng(s))) for s in range(5)}
                for f in fams}
        names = list(sigs)
        for i in range(len(names)):  # two families never build the same part structure
            for j in range(i + 1, len(names)):
                assert not (sigs[names[i]] & sigs[names[j]]), (names[i], names[j])


def _called_functions(build, seeds) -> set[tuple[str, int]]:
    """Code objects of shape_families.py run by `build` (comprehensions are code objects of their own)."""
    called: set[tuple[str, int]] = set()
    module_file = sf.__file__

    def prof(frame, event, arg):
        if event == "call" and frame.f_code.co_filename == module_file:
            called.add((frame.f_code.co_name, frame.f_code.co_firstlineno))

    sys.setprofile(prof)
    try:
        for s in seeds:
            build(np.random.default_rng(s))
    finally:
        sys.setprofile(None)
    return called


def test_held_out_families_share_no_shape_code_path_with_training_families():
    shared_ok = {(f.__code__.co_name, f.__code__.co_firstlineno) for f in (sf._b, sf._c, sf._e)}  # solid constructors
    train_calls: set[str] = set()
    for f in sf.FAMILIES:
        if not f.heldout:
            train_calls |= _called_functions(f.build, range(8))
    held_calls: set[str] = set()
    for f in sf.FAMILIES:
        if f.heldout:
            held_calls |= _called_functions(f.build, range(8))
    assert held_calls - shared_ok  # the probe does see family code
    assert (train_calls & held_calls) <= shared_ok, sorted(train_calls & held_calls)


def test_held_out_rooms_use_only_held_out_families_shapes_and_styles():
    held = {f.name for f in sf.FAMILIES if f.heldout}
    for seed in range(4):
        tr, ho = rz.build_room(seed, "train"), rz.build_room(seed, "heldout")
        assert tr.families and not set(tr.families) & held
        assert ho.families and set(ho.families) <= held
        assert tr.shape in rz.ROOM_SHAPES["train"] and ho.shape in rz.ROOM_SHAPES["heldout"]
        assert tr.style in rz.LAYOUT_STYLES["train"] and ho.style in rz.LAYOUT_STYLES["heldout"]
    assert not set(rz.ROOM_SHAPES["train"]) & set(rz.ROOM_SHAPES["heldout"])
    assert not set(rz.LAYOUT_STYLES["train"]) & set(rz.LAYOUT_STYLES["heldout"])


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="split"):
        rz.RandomizedConfig(split="test").validate()
    with pytest.raises(ValueError, match="mix"):
        rz.RandomizedConfig(mix=(1.0, 0.0)).validate()
    with pytest.raises(ValueError, match="kind"):
        rz.generate_scene(0, SMALL, "mesh")
