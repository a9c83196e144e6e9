"""xyz input features relative to each scene's mean xy and lowest z."""

import torch

from sphmask_core.config import load_model_config
from sphmask_core.model.spherical_mask import floor_relative_xyz


def test_hand_computed_two_scenes():
    xyz = torch.tensor([[0.0, 0.0, 1.0], [2.0, 4.0, 3.0],          # scene 0: mean xy (1, 2), low z 1
                        [10.0, 10.0, -1.5], [10.0, 12.0, 0.5]])   # scene 1: mean xy (10, 11), low z -1.5
    out = floor_relative_xyz(xyz, torch.tensor([0, 2, 4]))
    expected = torch.tensor([[-1.0, -2.0, 0.0], [1.0, 2.0, 2.0], [0.0, -1.0, 0.0], [0.0, 1.0, 2.0]])
    torch.testing.assert_close(out, expected)


def test_translation_of_a_scene_changes_nothing():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(500, 3, generator=g) * 4
    b = torch.rand(300, 3, generator=g) * 4
    offsets = torch.tensor([0, 500, 800])
    base = floor_relative_xyz(torch.cat([a, b]), offsets)
    moved = floor_relative_xyz(torch.cat([a + torch.tensor([3.0, -7.0, -1.2]), b]), offsets)
    torch.testing.assert_close(base, moved, atol=1e-5, rtol=0)


def test_switch_per_config():
    assert load_model_config("small").xyz_feature == "floor"
    assert load_model_config("full_scannet").xyz_feature == "raw"  # METHOD 2.1 parity
