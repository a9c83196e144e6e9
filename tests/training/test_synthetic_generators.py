"""dataset.synthetic.generator selects the room generator; dataset.synthetic.val overrides it for
the validation split (held-out shape families validate the randomised fine-tune)."""

from __future__ import annotations

import pytest

from training.config import ConfigError, DatasetConfig
from training.datasets import build_dataset

SMALL = {"n_objects_range": [3, 4], "scan_resolution": [48, 36], "frame_resolution": [48, 36],
         "scan_frames_range": [1, 1], "mix": [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]}


def test_randomized_generator_trains_on_training_families_and_validates_on_held_out_ones():
    ds = DatasetConfig(name="synthetic", train_seeds=[0, 2], val_seeds=[5, 6], augment=False,
                       synthetic={"generator": "randomized", **SMALL, "val": {"split": "heldout"}})
    train = build_dataset(ds, train=True)
    val = build_dataset(ds, train=False)
    assert len(train) == 2 and len(val) == 1
    assert train[(0, 1)].scene.name == "randomized_train_scan_000001"
    assert val[0].name == "randomized_heldout_scan_000005"


def test_default_generator_is_the_original_rooms():
    ds = DatasetConfig(name="synthetic", train_seeds=[0, 1], val_seeds=[7, 8], synthetic={"density": 50.0})
    assert build_dataset(ds, train=False)[0].name == "synthetic_000007"


@pytest.mark.parametrize("synthetic,match", [({"generator": "meshes"}, "generator"),
                                             ({"generator": "randomized", "density": 3.0}, "density"),
                                             ({"generator": "randomized", "val": 3}, "val")])
def test_bad_generator_settings_are_config_errors(synthetic, match):
    ds = DatasetConfig(name="synthetic", train_seeds=[0, 1], val_seeds=[7, 8], synthetic=synthetic)
    with pytest.raises(ConfigError, match=match):
        build_dataset(ds, train=False)
