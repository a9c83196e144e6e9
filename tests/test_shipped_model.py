"""The shipped default model (sphmask_core/pretrained): it loads, matches its config, segments.

Threshold: the model card (sphmask_core/pretrained/README.md) reports AP50 on 50 held-out
synthetic rooms; a fresh handful of rooms (seeds never used in training or in the card) must stay
within a margin of it, so a broken export, a config drift or a regression in inference fails here.
"""

from __future__ import annotations

import torch

from sphmask_core.checkpoint import build_model_from_checkpoint
from sphmask_core.config import load_model_config
from sphmask_core.data.synthetic import SyntheticConfig, generate_scene
from sphmask_core.evaluation.scannet_eval import evaluate_scannet, gt_ids_from_labels, pred_instances_from_masks
from sphmask_core.inference.segmenter import Segmenter
from sphmask_core.pretrained import default_checkpoint_path

FRESH_SEEDS = (400000, 400001, 400002, 400003)
DENSITY = 400.0  # points per m^2 of the training rooms (training/configs/synthetic_small_full.yaml)
MIN_AP50 = 0.6  # model card: 0.835 over 20 held-out rooms; 4 rooms vary by about +-0.1


def test_shipped_checkpoint_loads_and_matches_the_small_config():
    model, cfg, meta = build_model_from_checkpoint(default_checkpoint_path())
    assert cfg.to_dict() == load_model_config("small").to_dict()
    assert meta["class_names"] == list(cfg.class_names)
    assert "optimizer" not in meta  # exported for deployment, not for resuming
    assert default_checkpoint_path().stat().st_size < 20e6
    assert sum(p.numel() for p in model.parameters()) > 0


def test_shipped_model_segments_fresh_rooms():
    torch.set_num_threads(1)
    segmenter = Segmenter.from_checkpoint(device="cpu")
    names = list(segmenter.class_names)
    gts, preds = [], []
    for seed in FRESH_SEEDS:
        scene = generate_scene(seed, SyntheticConfig(density=DENSITY))
        inst = segmenter(scene.xyz, scene.rgb)
        assert inst.point_instance.shape == (scene.n_points,)
        gts.append(gt_ids_from_labels(scene.semantic, scene.instance, segmenter.cfg.labels.label_shift))
        preds.append(pred_instances_from_masks(inst.masks, inst.class_ids, inst.scores, scene.n_points))
    res = evaluate_scannet(gts, preds, names, list(range(1, len(names) + 1)))
    print(f"shipped model on {len(FRESH_SEEDS)} fresh rooms: AP {res['AP']:.3f} AP50 {res['AP50']:.3f} "
          f"AP25 {res['AP25']:.3f}")
    assert res["AP50"] > MIN_AP50, res
