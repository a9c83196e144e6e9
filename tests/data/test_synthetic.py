import numpy as np
import pytest

from sphmask_core.data.scene import IGNORE_LABEL, SYNTHETIC_LABELS
from sphmask_core.data.synthetic import (
    BED,
    FLOOR,
    WALL,
    BoxSet,
    PlacedObject,
    SensorConfig,
    SyntheticConfig,
    generate_frames,
    generate_layout,
    generate_scene,
    occluded_from,
)

SMALL = SyntheticConfig(target_points_range=(6000, 8000))


def _same(a, b) -> bool:
    return all(
        np.array_equal(getattr(a, k), getattr(b, k)) for k in ("xyz", "rgb", "semantic", "instance")
    )


def test_deterministic_by_seed_and_seeds_differ():
    a, b, c = generate_scene(3, SMALL), generate_scene(3, SMALL), generate_scene(4, SMALL)
    assert _same(a, b) and a.name == b.name
    assert not _same(a, c) and a.name != c.name


def test_dtypes_ranges_and_label_consistency():
    for seed in range(3):
        s = generate_scene(seed, SMALL)
        s.validate(SYNTHETIC_LABELS)
        assert s.xyz.dtype == np.float32 and s.rgb.dtype == np.float32
        assert s.rgb.min() >= -1 and s.rgb.max() <= 1
        stuff = np.isin(s.semantic, [WALL, FLOOR])
        assert (s.instance[stuff] == IGNORE_LABEL).all()
        assert (s.instance[~stuff] >= 0).all()  # every furniture point belongs to an object
        assert (s.semantic >= 0).all()
        k = s.n_instances
        np.testing.assert_array_equal(np.unique(s.instance[~stuff]), np.arange(k))
        for i in range(k):
            sem = np.unique(s.semantic[s.instance == i])
            assert sem.size == 1 and sem[0] >= SYNTHETIC_LABELS.label_shift
        # floor at z = 0, room centred
        floor_z = s.xyz[s.semantic == FLOOR, 2]
        assert abs(float(np.median(floor_z))) < 0.01
        assert np.abs(s.xyz[:, :2].mean(axis=0)).max() < 1.5


def test_every_instance_class_appears_across_scenes():
    cfg = SyntheticConfig(target_points_range=(20000, 20000), min_instance_points=10)
    seen = set()
    for seed in range(20):
        s = generate_scene(seed, cfg)
        seen |= set(np.unique(s.semantic[s.instance >= 0]).tolist())
    assert seen == set(range(2, 12))


def test_size_control_by_target_and_density():
    for seed in range(3):
        n = generate_scene(seed, SMALL).n_points
        assert 6000 * 0.98 <= n <= 8000, n
    big = generate_scene(0, SyntheticConfig(target_points_range=(120000, 120000)))
    assert 0.98 * 120000 <= big.n_points <= 120000
    lo = generate_scene(5, SyntheticConfig(density=100.0)).n_points
    hi = generate_scene(5, SyntheticConfig(density=300.0)).n_points
    assert 2.6 < hi / lo < 3.4


def _floor_under(obj: PlacedObject, xyz: np.ndarray, shrink: float) -> np.ndarray:
    """(M,) bool: points within the floor footprint (shrunk) of the object's floor-standing boxes."""
    inside = np.zeros(len(xyz), bool)
    c, s = np.cos(obj.yaw), np.sin(obj.yaw)
    for center, half in zip(obj.centers, obj.halves):
        if center[2] - half[2] > 0.01:
            continue
        d = xyz[:, :2] - center[:2]
        lx, ly = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
        inside |= (np.abs(lx) < half[0] - shrink) & (np.abs(ly) < half[1] - shrink)
    return inside


def test_occlusion_hides_floor_under_beds():
    cfg = SyntheticConfig(target_points_range=(40000, 40000))
    seeds = [s for s in range(40) if any(o.semantic == BED for o in generate_layout(s, cfg).objects)][:3]
    assert seeds, "no bed in 40 layouts"
    for seed in seeds:
        beds = [o for o in generate_layout(seed, cfg).objects if o.semantic == BED]
        for occlusion in (True, False):
            scene = generate_scene(seed, SyntheticConfig(target_points_range=(40000, 40000), occlusion=occlusion))
            floor = scene.xyz[scene.semantic == FLOOR].astype(np.float64)
            hidden = sum(int(_floor_under(b, floor, 0.05).sum()) for b in beds)
            if occlusion:
                assert hidden == 0
            else:
                assert hidden > 20  # the same check does see points when nothing is culled


def test_occlusion_keeps_a_plausible_fraction():
    layout_cfg = SyntheticConfig(density=200.0)
    with_occ = generate_scene(7, layout_cfg).n_points
    without = generate_scene(7, SyntheticConfig(density=200.0, occlusion=False)).n_points
    assert 0.3 < with_occ / without < 0.97


def test_occluded_from_matches_dense_segment_sampling():
    rng = np.random.default_rng(1)
    n_boxes = 8
    centers = rng.uniform(-2, 2, size=(n_boxes, 3))
    halves = rng.uniform(0.05, 0.6, size=(n_boxes, 3))
    yaws = rng.uniform(0, 2 * np.pi, n_boxes)
    boxes = BoxSet(centers, halves, np.cos(yaws), np.sin(yaws))
    grown = BoxSet(centers, halves + 0.01, boxes.cos, boxes.sin)
    shrunk = BoxSet(centers, halves - 0.01, boxes.cos, boxes.sin)

    def inside(p: np.ndarray, bs: BoxSet) -> np.ndarray:
        d = p[..., None, :] - bs.centers  # (..., B, 3)
        lx = bs.cos * d[..., 0] + bs.sin * d[..., 1]
        ly = -bs.sin * d[..., 0] + bs.cos * d[..., 1]
        return ((np.abs(lx) < bs.halves[:, 0]) & (np.abs(ly) < bs.halves[:, 1])
                & (np.abs(d[..., 2]) < bs.halves[:, 2])).any(axis=-1)

    far = BoxSet(centers, halves + 0.04, boxes.cos, boxes.sin)
    origin = np.array([0.0, 0.0, 0.0])
    while inside(origin, far):
        origin = rng.uniform(-2, 2, 3)
    pts = rng.uniform(-3, 3, size=(1500, 3))
    pts = pts[~inside(pts, far)][:300]
    got = occluded_from(pts, origin, boxes)
    grouped = BoxSet(centers, halves, boxes.cos, boxes.sin, group=np.arange(n_boxes) // 3)
    np.testing.assert_array_equal(occluded_from(pts, origin, grouped), got)  # culling is lossless
    t = np.linspace(0, 1, 2000)[:, None, None]  # step <= 5 mm, well under the 2 cm margin chords
    samples = origin + t * (pts - origin)  # (S, M, 3)
    hit_shrunk = inside(samples, shrunk).any(axis=0)
    hit_grown = inside(samples, grown).any(axis=0)
    assert got[hit_shrunk].all()
    assert not got[~hit_grown].any()
    assert 0.03 < got.mean() < 0.97  # both outcomes exercised


def test_boxset_rejects_unsorted_groups():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="non-decreasing"):
        BoxSet(z, z + 1, np.ones(2), np.zeros(2), group=np.array([1, 0]))


def test_points_on_a_visible_face_are_not_self_occluded():
    boxes = BoxSet(np.array([[0.0, 0.0, 0.5]]), np.array([[0.5, 0.5, 0.5]]), np.ones(1), np.zeros(1))
    top = np.array([[0.1, 0.2, 1.0], [-0.3, 0.4, 1.0]])
    bottom_side = np.array([[0.1, 0.2, 0.0], [0.5, 0.0, 0.2]])  # bottom face, far side face
    origin = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(occluded_from(top, origin, boxes), [False, False])
    np.testing.assert_array_equal(occluded_from(bottom_side, origin, boxes), [True, True])


def test_frames_reproject_onto_the_scene():
    sensor = SensorConfig(fov_h_deg=90.0, fov_v_deg=60.0, max_range=6.0, frame_dt=0.05, start_stamp=10.0)
    scene, frames = generate_frames(2, SMALL, n_frames=12, sensor=sensor)
    scene.validate(SYNTHETIC_LABELS)
    assert len(frames) == 12
    covered = np.zeros(scene.n_points, bool)
    for k, f in enumerate(frames):
        assert f.xyz.dtype == np.float32 and f.index.dtype == np.int64
        assert f.stamp == pytest.approx(10.0 + 0.05 * k)
        np.testing.assert_allclose(f.world_xyz(), scene.xyz[f.index], atol=1e-4)
        np.testing.assert_array_equal(f.semantic, scene.semantic[f.index])
        np.testing.assert_array_equal(f.instance, scene.instance[f.index])
        np.testing.assert_array_equal(f.rgb, scene.rgb[f.index])
        # pose is a rigid transform and its quaternion describes the same rotation
        r = f.pose[:3, :3]
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
        x, y, z, w = f.quaternion_xyzw
        assert np.linalg.norm(f.quaternion_xyzw) == pytest.approx(1.0)
        r_q = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ])
        np.testing.assert_allclose(r_q, r, atol=1e-9)
        np.testing.assert_allclose(f.position, f.pose[:3, 3])
        # inside the field of view and range (noise may push a point a few mm out)
        rng_ = np.linalg.norm(f.xyz, axis=1)
        assert rng_.max() <= 6.0 + 0.05
        az = np.abs(np.arctan2(f.xyz[:, 1], f.xyz[:, 0]))
        assert az.max() <= np.deg2rad(45) + 0.05
        assert (f.xyz[:, 0] > 0).all()
        covered[f.index] = True
    assert covered.all()  # the scene is exactly the union of the frames
    positions = np.stack([f.position for f in frames])
    assert np.linalg.norm(np.diff(positions, axis=0), axis=1).min() > 0.01  # the sensor moves


def test_frames_are_deterministic_and_share_the_layout():
    s1, f1 = generate_frames(5, SMALL, n_frames=4)
    s2, f2 = generate_frames(5, SMALL, n_frames=4)
    assert _same(s1, s2)
    assert all(np.array_equal(a.xyz, b.xyz) and np.array_equal(a.pose, b.pose) for a, b in zip(f1, f2))
    # same room as generate_scene(5): same walls' extent and the same objects
    full = generate_scene(5, SMALL)
    assert set(np.unique(s1.semantic)) <= set(np.unique(full.semantic)) | {WALL, FLOOR}
    np.testing.assert_allclose(s1.xyz[s1.semantic == WALL].max(0)[:2], full.xyz[full.semantic == WALL].max(0)[:2], atol=0.05)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="room_size_range"):
        generate_scene(0, SyntheticConfig(room_size_range=(8.0, 4.0)))
    with pytest.raises(ValueError, match="density"):
        generate_scene(0, SyntheticConfig(density=0.0))
    with pytest.raises(ValueError, match="target_points_range"):
        generate_scene(0, SyntheticConfig(target_points_range=(5000, 100)))
    with pytest.raises(ValueError, match="n_frames"):
        generate_frames(0, SMALL, n_frames=0)
    with pytest.raises(ValueError, match="min_range"):
        generate_frames(0, SMALL, n_frames=2, sensor=SensorConfig(min_range=5.0, max_range=1.0))
