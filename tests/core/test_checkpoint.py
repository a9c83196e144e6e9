"""Checkpoints: round trip gives identical outputs; every kind of bad file -> CheckpointError."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from sphmask_core.checkpoint import (
    CheckpointError,
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from sphmask_core.config import apply_overrides, load_model_config
from sphmask_core.data.collate import collate
from sphmask_core.data.scene import Scene
from sphmask_core.model.spherical_mask import SphericalMask


def _tiny_cfg():
    # every voxel is "object" so the whole query path runs on an untrained model
    return apply_overrides(
        load_model_config("small"),
        {"test.filter_bg_thresh": 0.0, "aggregator.n_sample_pa1": 64, "aggregator.n_queries": 16},
    )


def _scene(seed: int = 0, n: int = 1500) -> Scene:
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0.0, 2.0, size=(n, 3)).astype(np.float32)
    rgb = rng.uniform(-1.0, 1.0, size=(n, 3)).astype(np.float32)
    return Scene.from_arrays(xyz, rgb, name="random")


def _trained_a_little(cfg) -> SphericalMask:
    torch.manual_seed(0)
    model = SphericalMask(cfg)
    # a few train-mode forwards move BatchNorm running statistics away from their init
    with torch.no_grad():
        for seed in range(2):
            model.forward_train(collate([_scene(seed)]), stage="backbone")
    return model.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cfg = _tiny_cfg()
    model = _trained_a_little(cfg)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    save_checkpoint(path, model, cfg, cfg.class_names, cfg.labels, optimizer=opt.state_dict(), epoch=3, step=42)
    return path, model, cfg


def test_round_trip_identical_outputs(saved) -> None:
    path, model, cfg = saved
    loaded, cfg2, meta = build_model_from_checkpoint(path)
    assert cfg2 == cfg
    assert meta["epoch"] == 3 and meta["step"] == 42 and "model" not in meta
    assert meta["class_names"] == cfg.class_names
    assert meta["label_spec"] == cfg.labels.to_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    batch = collate([_scene(5)])
    with torch.no_grad():
        a = model.forward_test(batch)[0]
        b = loaded.forward_test(batch)[0]
    assert a.n_queries > 0
    for name in ("class_probs", "conf", "centers", "rays", "boxes", "unit_masks"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_weights_only_loadable(saved) -> None:
    path, _, _ = saved
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "sphmask-checkpoint"
    assert isinstance(raw["model_config"], dict)


def test_atomic_save_leaves_no_temporary_files(saved) -> None:
    path, _, _ = saved
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_unknown_training_key_rejected(tmp_path) -> None:
    cfg = _tiny_cfg()
    with pytest.raises(ValueError, match="unknown training_state keys"):
        save_checkpoint(tmp_path / "x.pt", SphericalMask(cfg), cfg, cfg.class_names, cfg.labels, bogus=1)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file(saved, tmp_path) -> None:
    path, _, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(cut)


def test_garbage_file(tmp_path) -> None:
    # seeded: random bytes once raised a bare KeyError from torch's unpickler (opcode 98)
    rng = np.random.default_rng(0)
    junk = tmp_path / "junk.pt"
    for size in [4096] * 200 + [1, 7, 64]:
        junk.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_checkpoint(junk)
    junk.write_bytes(b"b" + bytes(40))  # the payload kind that raised KeyError: 98 ('b' = BUILD)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(junk)


def test_foreign_checkpoint(tmp_path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    with pytest.raises(CheckpointError, match="not a sphmask checkpoint"):
        load_checkpoint(foreign)
    plain = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), plain)
    with pytest.raises(CheckpointError, match="not a sphmask checkpoint"):
        load_checkpoint(plain)


def test_pickled_object_is_refused(tmp_path) -> None:
    evil = tmp_path / "obj.pt"
    torch.save({"format": "sphmask-checkpoint", "obj": np.dtype("float32").type}, evil)
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)


def test_config_not_matching_weights(saved, tmp_path) -> None:
    path, _, _ = saved
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["heads"]["dec_dim"] = 32
    bad = tmp_path / "mismatch.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="do not match its model configuration"):
        build_model_from_checkpoint(bad)


def test_invalid_config_in_checkpoint(saved, tmp_path) -> None:
    path, _, _ = saved
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["aggregator"]["no_such_key"] = 1
    bad = tmp_path / "badcfg.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="invalid model configuration"):
        build_model_from_checkpoint(bad)


def test_incomplete_checkpoint(saved, tmp_path) -> None:
    path, _, _ = saved
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model"]
    bad = tmp_path / "noweights.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(bad)


def test_class_names_not_matching_config(saved, tmp_path) -> None:
    path, _, _ = saved
    ckpt = torch.load(path, weights_only=True)
    ckpt["class_names"] = ckpt["class_names"][:3]
    bad = tmp_path / "names.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="class names"):
        build_model_from_checkpoint(bad)
