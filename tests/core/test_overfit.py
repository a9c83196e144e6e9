"""The proof that the method learns: the small model overfits one synthetic room on the CPU.

Recipe: 10 iterations of backbone pre-training (the foreground filter needs a semantic head
that is better than uniform), then the full model, AdamW lr 1e-2 with cosine decay, 300
iterations in all on one 8000-point room with 6 objects (chairs, a table, a sofa, a door, a
picture). Measured: about 55 s on one core of the shared 2-core machine; AP50 reaches 1.0 from
about iteration 160 on. Deterministic for a given torch build (fixed seeds, one thread).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from sphmask_core.config import apply_overrides, load_model_config
from sphmask_core.data.collate import collate
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from sphmask_core.evaluation.scannet_eval import evaluate_scannet, gt_ids_from_labels, pred_instances_from_masks
from sphmask_core.inference.segmenter import predict_batch
from sphmask_core.model.spherical_mask import SphericalMask

ITERATIONS = 300
BACKBONE_ITERATIONS = 10
LR = 1e-2
# the room's two chairs have 75 and 84 points: evaluate them too (benchmark default 100)
MIN_REGION = 50


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_small_model_overfits_one_room(one_thread) -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    scene = generate_scene(
        1, SyntheticConfig(target_points_range=(8000, 8000), room_size_range=(4.0, 4.5), n_objects_range=(3, 4))
    )
    assert scene.n_instances >= 5
    # every instance counts here (the benchmark setting), not only what the node would publish
    cfg = apply_overrides(load_model_config("small"), {"test.score_threshold": 0.0})
    model = SphericalMask(cfg)
    batch = collate([scene])
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(i, ITERATIONS) / ITERATIONS))
    )
    t0 = time.perf_counter()
    first = None
    for it in range(ITERATIONS):
        out = model.forward_train(batch, stage="backbone" if it < BACKBONE_ITERATIONS else "full")
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        sched.step()
        if first is None and it >= BACKBONE_ITERATIONS and float(out["instance_loss"]) > 0:
            first = float(out["instance_loss"])  # once the filter lets object voxels through
    elapsed = time.perf_counter() - t0
    assert first is not None and float(out["instance_loss"]) < 0.5 * first

    inst = predict_batch(model, batch)[0]
    names = cfg.class_names
    gt = gt_ids_from_labels(scene.semantic, scene.instance, cfg.labels.label_shift)
    preds = pred_instances_from_masks(inst.masks, inst.class_ids, inst.scores, scene.n_points)
    res = evaluate_scannet([gt], [preds], names, list(range(1, len(names) + 1)), min_region_size=MIN_REGION)
    print(f"overfit: {ITERATIONS} iterations in {elapsed:.1f} s, AP50 {res['AP50']:.3f}, AP {res['AP']:.3f}")
    assert res["AP50"] > 0.9, res
