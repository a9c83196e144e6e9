import numpy as np
import pytest

from sphmask_core.data.scene import (
    IGNORE_LABEL,
    S3DIS_LABELS,
    SCANNET_LABELS,
    STPLS3D_LABELS,
    SYNTHETIC_LABELS,
    LabelSpec,
    Scene,
)


def _scene(n: int = 8) -> Scene:
    rng = np.random.default_rng(0)
    semantic = np.array([0, 1, 2, 2, 4, 4, 4, IGNORE_LABEL][:n], np.int64)
    instance = np.array([-100, -100, 5, 5, 2, 2, 2, -100][:n], np.int64)
    return Scene(
        xyz=rng.normal(size=(n, 3)).astype(np.float32),
        rgb=rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        semantic=semantic,
        instance=instance,
        superpoint=np.array([7, 7, 3, 3, 9, 9, 9, 1][:n], np.int64),
        name="t",
    )


def test_valid_scene_passes_and_counts_instances():
    s = _scene()
    assert s.validate(SYNTHETIC_LABELS) is s
    assert s.n_instances == 2
    assert s.n_points == 8


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: setattr(s, "xyz", s.xyz[:, :2]), "xyz must have shape"),
        (lambda s: setattr(s, "rgb", s.rgb[:5]), "rgb must have shape"),
        (lambda s: setattr(s, "semantic", s.semantic[:5]), "semantic must have shape"),
        (lambda s: setattr(s, "instance", s.instance.astype(np.int32)), "instance must be int64"),
        (lambda s: setattr(s, "xyz", s.xyz.astype(np.float64)), "xyz must be float32"),
        (lambda s: s.xyz.__setitem__((3, 1), np.nan), "xyz contains NaN"),
        (lambda s: s.rgb.__setitem__((0, 0), np.inf), "rgb contains NaN"),
        (lambda s: s.rgb.__setitem__((0, 0), 200.0), "normalised"),
        (lambda s: s.semantic.__setitem__(0, -3), "semantic ids must be >= 0 or -100"),
        (lambda s: s.instance.__setitem__(0, -1), "instance ids must be >= 0 or -100"),
        (lambda s: s.semantic.__setitem__(2, 3), "instance 5 mixes semantic classes 2 and 3"),
        (lambda s: s.semantic.__setitem__(4, IGNORE_LABEL), "must have a semantic label"),
        (lambda s: setattr(s, "superpoint", np.zeros(3, np.int64)), "superpoint must be None or shape"),
        (lambda s: setattr(s, "superpoint", np.zeros(8, np.int32)), "superpoint must be int64"),
    ],
)
def test_validate_names_the_problem(mutate, message):
    s = _scene()
    mutate(s)
    with pytest.raises(ValueError, match=message):
        s.validate()


def test_empty_scene_is_rejected():
    s = _scene().subset(np.zeros(8, bool))
    with pytest.raises(ValueError, match="empty scene"):
        s.validate()


def test_label_spec_checks_range_and_stuff_instances():
    s = _scene()
    s.semantic[4:7] = 40
    with pytest.raises(ValueError, match="out of range"):
        s.validate(SYNTHETIC_LABELS)
    s = _scene()
    s.semantic[2:4] = 1  # floor points carrying an instance id
    s.validate()  # fine without a label spec
    with pytest.raises(ValueError, match="stuff class 1"):
        s.validate(SYNTHETIC_LABELS)


def test_subset_with_mask_and_indices_compacts_ids():
    s = _scene()
    mask = np.array([0, 1, 0, 0, 1, 1, 0, 1], bool)
    sub = s.subset(mask)
    np.testing.assert_array_equal(sub.xyz, s.xyz[mask])
    np.testing.assert_array_equal(sub.semantic, [1, 4, 4, -100])
    np.testing.assert_array_equal(sub.instance, [-100, 0, 0, -100])  # id 2 -> 0
    np.testing.assert_array_equal(sub.superpoint, [1, 2, 2, 0])  # 7, 9, 9, 1 -> ranks
    sub.validate()
    by_idx = s.subset(np.array([6, 2, 3]))
    np.testing.assert_array_equal(by_idx.instance, [0, 1, 1])  # ids 2, 5 keep their order
    np.testing.assert_array_equal(by_idx.xyz, s.xyz[[6, 2, 3]])
    assert s.instance[2] == 5  # the original is untouched


def test_subset_rejects_bad_selection():
    s = _scene()
    with pytest.raises(ValueError, match="boolean mask must have shape"):
        s.subset(np.ones(3, bool))
    with pytest.raises(ValueError, match="out of range"):
        s.subset(np.array([0, 8]))
    with pytest.raises(ValueError, match="boolean mask or integer"):
        s.subset(np.array([0.5]))


def test_from_arrays_coerces_and_fills_defaults():
    s = Scene.from_arrays(np.zeros((4, 3), np.float64) + [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert s.xyz.dtype == np.float32 and s.rgb.dtype == np.float32
    np.testing.assert_array_equal(s.rgb, 0)
    np.testing.assert_array_equal(s.semantic, IGNORE_LABEL)
    np.testing.assert_array_equal(s.instance, IGNORE_LABEL)
    assert s.superpoint is None and s.n_instances == 0
    s2 = Scene.from_arrays(np.ones((2, 3)), semantic=np.array([3.0, 3.0]), instance=np.array([0.0, 0.0]))
    assert s2.semantic.dtype == np.int64 and s2.n_instances == 1
    with pytest.raises(ValueError, match="fractional"):
        Scene.from_arrays(np.ones((2, 3)), semantic=np.array([1.5, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        Scene.from_arrays(np.ones((2, 4)))


def test_label_spec_round_trip_and_properties():
    for spec in (SYNTHETIC_LABELS, SCANNET_LABELS, S3DIS_LABELS, STPLS3D_LABELS):
        d = spec.to_dict()
        assert LabelSpec.from_dict(d) == spec
        assert spec.instance_names == spec.semantic_names[spec.label_shift :]
    assert SYNTHETIC_LABELS.n_semantic == 12 and SYNTHETIC_LABELS.instance_names[0] == "cabinet"
    assert SYNTHETIC_LABELS.instance_names[-1] == "desk"
    assert SCANNET_LABELS.n_semantic == 20 and SCANNET_LABELS.n_instance_classes == 18
    assert SCANNET_LABELS.semantic_names[:2] == ("wall", "floor")
    assert SCANNET_LABELS.semantic_names[-1] == "otherfurniture"
    assert S3DIS_LABELS.n_semantic == 13 and S3DIS_LABELS.n_instance_classes == 11
    assert STPLS3D_LABELS.n_semantic == 15 and STPLS3D_LABELS.n_instance_classes == 14
    assert STPLS3D_LABELS.semantic_names[0] == "ground"


def test_label_spec_rejects_bad_input():
    with pytest.raises(ValueError, match="label_shift"):
        LabelSpec(("a", "b"), 2)
    with pytest.raises(ValueError, match="duplicates"):
        LabelSpec(("a", "a", "b"), 1)
    with pytest.raises(ValueError, match="empty"):
        LabelSpec((), 0)
    with pytest.raises(ValueError, match="missing keys"):
        LabelSpec.from_dict({"semantic_names": ["a", "b"]})
