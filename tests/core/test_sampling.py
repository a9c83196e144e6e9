import numpy as np
import pytest
import torch

from sphmask_core.ops.sampling import (
    ball_query,
    ball_query_dense,
    farthest_point_sample,
    farthest_point_sample_dense,
    to_padded,
)


def _fps_reference(xyz: np.ndarray, n_sample: int) -> list[int]:
    """Textbook greedy FPS from row 0 with selected rows excluded; cyclic when n < n_sample."""
    n = len(xyz)
    chosen = [0]
    min_d2 = np.full(n, np.inf)
    while len(chosen) < min(n, n_sample):
        d2 = ((xyz - xyz[chosen[-1]]) ** 2).sum(1)
        min_d2 = np.minimum(min_d2, d2)
        min_d2[chosen] = -1.0
        chosen.append(int(np.argmax(min_d2)))
    return [chosen[i % len(chosen)] for i in range(n_sample)]


def _ball_reference(query, q_batch, xyz, p_batch, radius, k):
    out = []
    for q, b in zip(query, q_batch):
        d2 = ((xyz.astype(np.float64) - q) ** 2).sum(1)
        hits = [j for j in range(len(xyz)) if p_batch[j] == b and d2[j] < radius**2][:k]
        out.append(hits + [hits[0]] * (k - len(hits)) if hits else [-1] * k)
    return np.array(out, dtype=np.int64).reshape(len(query), k)


def _scenes(seed: int, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(sum(sizes), 3, generator=g) * torch.tensor([4.0, 3.0, 2.0])
    offsets = torch.tensor([0] + np.cumsum(sizes).tolist(), dtype=torch.int64)
    return xyz, offsets


@pytest.mark.parametrize("method", ["torch", "numpy"])
def test_fps_matches_reference_per_scene(method):
    xyz, offsets = _scenes(0, [500, 37, 260])
    padded, lengths = to_padded(xyz, offsets)
    idx = farthest_point_sample_dense(padded, lengths, 64, method=method) + offsets[:-1, None]  # (3, 64)
    assert idx.shape == (3, 64) and idx.dtype == torch.int64
    for b in range(3):
        s, e = int(offsets[b]), int(offsets[b + 1])
        ref = _fps_reference(xyz[s:e].double().numpy(), 64)
        assert (idx[b] - s).tolist() == ref
        assert bool(((idx[b] >= s) & (idx[b] < e)).all())


def test_fps_short_scene_is_cyclic_and_distinct():
    xyz, offsets = _scenes(1, [10, 100])
    idx = farthest_point_sample(xyz, offsets, 25)
    first = idx[0, :10]
    assert sorted(first.tolist()) == list(range(10))
    assert idx[0].tolist() == [first[i % 10].item() for i in range(25)]


def test_fps_prefix_property_and_duplicates():
    xyz, offsets = _scenes(2, [300])
    xyz[100:150] = xyz[0]  # many duplicates of the start point
    long = farthest_point_sample(xyz, offsets, 290)
    short = farthest_point_sample(xyz, offsets, 40)
    assert long[:, :40].tolist() == short.tolist()
    assert len(set(long[0].tolist())) == 290  # duplicated coordinates still give distinct rows


def test_fps_dense_equals_flat():
    xyz, offsets = _scenes(3, [120, 80])
    padded, lengths = to_padded(xyz, offsets)
    assert padded.shape == (2, 120, 3) and lengths.tolist() == [120, 80]
    dense = farthest_point_sample_dense(padded, lengths, 30)
    flat = farthest_point_sample(xyz, offsets, 30)
    assert (dense + offsets[:-1, None]).tolist() == flat.tolist()


def _lattice(n_side: int) -> torch.Tensor:
    """Points of an n^3 grid with unit spacing: most squared distances tie with others."""
    g = torch.arange(n_side, dtype=torch.float32)
    return torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fps_numpy_path_equals_torch_path(dtype):
    g = torch.Generator().manual_seed(7)
    clouds = [
        torch.rand(3000, 3, generator=g) * torch.tensor([6.0, 5.0, 2.5]),  # a room-sized cloud
        _lattice(9),  # ties everywhere: the first maximum must win in both
        torch.cat([torch.rand(40, 3, generator=g), torch.zeros(60, 3)]),  # 60 duplicates
        torch.rand(7, 3, generator=g),  # shorter than n_sample: cyclic
    ]
    lengths = torch.tensor([len(c) for c in clouds])
    padded = torch.zeros(len(clouds), int(lengths.max()), 3)
    for b, c in enumerate(clouds):
        padded[b, : len(c)] = c
    padded = padded.to(dtype)
    for n_sample in (1, 64, 700):
        fast = farthest_point_sample_dense(padded, lengths, n_sample, method="numpy")
        ref = farthest_point_sample_dense(padded, lengths, n_sample, method="torch")
        assert torch.equal(fast, ref), n_sample
    assert torch.equal(farthest_point_sample_dense(padded, lengths, 64), ref[:, :64])  # auto = numpy here


def test_fps_numpy_path_equals_torch_path_on_voxels_of_a_room():
    from sphmask_core.data.synthetic import SyntheticConfig, generate_scene

    sc = generate_scene(3, SyntheticConfig(target_points_range=(20000, 20000)))
    cells = torch.unique(torch.floor(torch.from_numpy(sc.xyz).float() / 0.05), dim=0)
    voxels = (cells * 0.05 + 0.025)[None]  # (1, V, 3) voxel centres: many equal distances
    lengths = torch.tensor([voxels.shape[1]])
    fast = farthest_point_sample_dense(voxels, lengths, 512, method="numpy")
    assert torch.equal(fast, farthest_point_sample_dense(voxels, lengths, 512, method="torch"))


def test_fps_bad_input():
    with pytest.raises(ValueError, match="at least one point"):
        farthest_point_sample(torch.rand(5, 3), torch.tensor([0, 0, 5]), 4)
    with pytest.raises(ValueError, match="n_sample"):
        farthest_point_sample(torch.rand(5, 3), torch.tensor([0, 5]), 0)
    with pytest.raises(ValueError, match="method"):
        farthest_point_sample_dense(torch.rand(1, 5, 3), torch.tensor([5]), 2, method="fast")
    with pytest.raises(ValueError, match="float32 or float64"):
        farthest_point_sample_dense(torch.rand(1, 5, 3).half(), torch.tensor([5]), 2, method="numpy")


def test_ball_query_hand_example():
    xyz = torch.tensor([[0.0, 0, 0], [0.5, 0, 0], [0.1, 0, 0], [0.05, 0, 0], [0.15, 0, 0]])
    batch = torch.zeros(5, dtype=torch.int64)
    q = torch.tensor([[0.1, 0.0, 0.0], [0.5, 0.0, 0.0], [9.0, 9.0, 9.0]])
    for method in ("brute", "grid"):
        out = ball_query(q, torch.zeros(3, dtype=torch.int64), xyz, batch, 0.1, 3, method=method)
        # index order, not nearest first: rows 2,3,4 are within 0.1 of 0.1 (row 0 is exactly at r: excluded)
        assert out.tolist() == [[2, 3, 4], [1, 1, 1], [-1, -1, -1]], method


@pytest.mark.parametrize("method", ["brute", "grid", "auto"])
def test_ball_query_matches_brute_force(method):
    g = torch.Generator().manual_seed(4)
    n, m = 900, 120
    xyz = torch.rand(n, 3, generator=g) * 1.5
    point_batch = torch.randint(0, 3, (n,), generator=g)  # interleaved scenes
    qi = torch.randint(0, n, (m,), generator=g)
    query = xyz[qi] + 0.05 * torch.randn(m, 3, generator=g)
    query_batch = point_batch[qi]
    out = ball_query(query, query_batch, xyz, point_batch, 0.25, 8, method=method)
    ref = _ball_reference(query.numpy(), query_batch.numpy(), xyz.numpy(), point_batch.numpy(), 0.25, 8)
    np.testing.assert_array_equal(out.numpy(), ref)
    assert (ref[:, -1] == ref[:, 0]).any()  # some rows actually exercise padding


def test_ball_query_grid_equals_brute_on_larger_cloud():
    xyz, offsets = _scenes(5, [6000, 4000])
    point_batch = torch.repeat_interleave(torch.arange(2), offsets.diff())
    idx = farthest_point_sample(xyz, offsets, 200).reshape(-1)
    grid = ball_query(xyz[idx], point_batch[idx], xyz, point_batch, 0.3, 32, method="grid")
    brute = ball_query(xyz[idx], point_batch[idx], xyz, point_batch, 0.3, 32, method="brute")
    assert torch.equal(grid, brute)
    assert bool((grid >= 0).all())
    assert bool((point_batch[grid] == point_batch[idx][:, None]).all())


def test_ball_query_dense_local_indices():
    xyz, offsets = _scenes(6, [300, 150])
    padded, lengths = to_padded(xyz, offsets)
    padded[1, 150:] = padded[1, 0]  # padding must never be returned even if it is close
    fps = farthest_point_sample_dense(padded, lengths, 20)  # (2, 20)
    query = torch.gather(padded, 1, fps[..., None].expand(-1, -1, 3))  # (2, 20, 3)
    out = ball_query_dense(query, padded, lengths, 0.5, 16)
    assert out.shape == (2, 20, 16)
    assert int(out[1].max()) < 150 and int(out.min()) >= 0
    for b in range(2):
        s, e = int(offsets[b]), int(offsets[b + 1])
        ref = _ball_reference(query[b].numpy(), np.zeros(20), xyz[s:e].numpy(), np.zeros(e - s), 0.5, 16)
        np.testing.assert_array_equal(out[b].numpy(), ref)


def test_ball_query_bad_input():
    xyz = torch.rand(4, 3)
    batch = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="radius"):
        ball_query(xyz, batch, xyz, batch, 0.0, 2)
    with pytest.raises(ValueError, match="method"):
        ball_query(xyz, batch, xyz, batch, 0.1, 2, method="kdtree")
    with pytest.raises(ValueError, match="one entry per"):
        ball_query(xyz, batch[:2], xyz, batch, 0.1, 2)
