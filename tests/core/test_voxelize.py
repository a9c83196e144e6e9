import numpy as np
import pytest
import torch

from sphmask_core.ops.scatter import scatter_max, scatter_mean, segment_ids_compact
from sphmask_core.ops.voxelize import voxel_mean, voxelize


def _reference(xyz: np.ndarray, offsets: np.ndarray, voxel_size: float):
    """Dictionary-based voxelization, one scene at a time."""
    voxels = {}
    point_key = []
    for b in range(len(offsets) - 1):
        pts = xyz[offsets[b] : offsets[b + 1]].astype(np.float64) / voxel_size
        ijk = np.floor(pts - pts.min(0)).astype(np.int64)
        for local, c in enumerate(ijk):
            key = (b, *c.tolist())
            voxels.setdefault(key, []).append(offsets[b] + local)
            point_key.append(key)
    keys = sorted(voxels)
    return keys, voxels, point_key


def _random_batch(seed: int, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    parts = [torch.rand(n, 3, generator=g) * torch.tensor([3.0, 2.0, 1.0]) + 5.0 * i for i, n in enumerate(sizes)]
    offsets = torch.tensor([0] + list(np.cumsum(sizes)), dtype=torch.int64)
    return torch.cat(parts), offsets


def test_hand_example():
    xyz = torch.tensor(
        [[0.0, 0.0, 0.0], [0.05, 0.09, 0.01], [0.25, 0.0, 0.0], [10.0, 10.0, 10.0], [10.15, 10.0, 10.0]]
    )
    vm = voxelize(xyz, torch.tensor([0, 3, 5]), 0.1)
    assert vm.coords.dtype == torch.int32
    assert vm.coords.tolist() == [[0, 0, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]]
    assert vm.point_to_voxel.tolist() == [0, 0, 1, 2, 3]
    assert vm.first_point.tolist() == [0, 2, 3, 4]
    assert vm.counts.tolist() == [2, 1, 1, 1]
    assert vm.voxel_offsets.tolist() == [0, 2, 4]
    assert vm.spatial_shape == [128, 128, 128]


def test_matches_dictionary_reference():
    xyz, offsets = _random_batch(0, [700, 1, 300])
    vm = voxelize(xyz, offsets, 0.07)
    keys, voxels, point_key = _reference(xyz.numpy(), offsets.numpy(), 0.07)
    assert [tuple(c) for c in vm.coords.tolist()] == keys
    assert vm.first_point.tolist() == [min(voxels[k]) for k in keys]
    assert vm.counts.tolist() == [len(voxels[k]) for k in keys]
    assert [keys[v] for v in vm.point_to_voxel.tolist()] == point_key
    per_scene = np.bincount([k[0] for k in keys], minlength=3)
    assert vm.voxel_offsets.tolist() == [0] + np.cumsum(per_scene).tolist()


def test_spatial_shape_clipped_below_and_grows():
    xyz = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.5, 0.0]])
    vm = voxelize(xyz, torch.tensor([0, 2]), 0.01)
    assert vm.spatial_shape == [301, 128, 128]


def test_voxel_mean_and_gradient():
    xyz, offsets = _random_batch(1, [400, 200])
    vm = voxelize(xyz, offsets, 0.2)
    feats = torch.randn(600, 5, dtype=torch.float64, requires_grad=True)
    mean = voxel_mean(feats, vm.point_to_voxel, vm.n_voxels)  # (V, 5)
    p2v = vm.point_to_voxel.numpy()
    ref = np.stack([feats.detach().numpy()[p2v == v].mean(0) for v in range(vm.n_voxels)])
    np.testing.assert_allclose(mean.detach().numpy(), ref, rtol=1e-12)
    mean.sum().backward()
    expected = 1.0 / vm.counts[vm.point_to_voxel].double()
    torch.testing.assert_close(feats.grad, expected[:, None].expand(-1, 5))
    # devoxelize round trip: a per-voxel value broadcast back is constant inside each voxel
    back = mean[vm.point_to_voxel]
    assert torch.allclose(voxel_mean(back, vm.point_to_voxel, vm.n_voxels), mean)


def test_scatter_helpers():
    src = torch.tensor([[1.0], [3.0], [5.0], [-2.0]])
    index = torch.tensor([2, 0, 2, 0])
    assert scatter_mean(src, index, 4).flatten().tolist() == [0.5, 0.0, 3.0, 0.0]
    assert scatter_max(src, index, 3).flatten().tolist() == [3.0, 0.0, 5.0]
    compact, n = segment_ids_compact(torch.tensor([7, -100, 7, 3]))
    assert compact.tolist() == [2, 0, 2, 1] and n == 3
    with pytest.raises(ValueError, match="index values"):
        scatter_mean(src, torch.tensor([0, 1, 2, 9]), 4)


@pytest.mark.parametrize(
    "xyz, offsets, size, match",
    [
        (torch.zeros(4, 3), torch.tensor([0, 3]), 0.1, "offsets must run"),
        (torch.zeros(4, 3), torch.tensor([0, 3, 2, 4]), 0.1, "non-decreasing"),
        (torch.zeros(4, 2), torch.tensor([0, 4]), 0.1, r"\(N, 3\)"),
        (torch.zeros(4, 3), torch.tensor([0, 4]), 0.0, "voxel_size"),
        (torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0]]), torch.tensor([0, 2]), 0.1, "NaN"),
        (torch.tensor([[0.0, 0, 0], [1000.0, 0, 0]]), torch.tensor([0, 2]), 0.01, "extent"),
        (torch.zeros(0, 3), torch.tensor([0, 0]), 0.1, "empty"),
    ],
)
def test_bad_input(xyz, offsets, size, match):
    with pytest.raises(ValueError, match=match):
        voxelize(xyz, offsets, size)
