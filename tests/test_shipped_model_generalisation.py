"""The shipped default model on scenes it has never seen (issue 12): rooms of HELD-OUT shape
families and layout styles, and scenes with nothing to find (uniform noise, empty rooms).

Thresholds sit well below the issue's targets (held-out class-agnostic AP50 0.8, no instance on
noise or empty rooms) so that a handful of small rooms does not flake. The shipped model does not
meet all of them yet (model card, "Generalisation"): it publishes nothing on these two noise
clouds (tested; on 20 noise clouds it published 0.2 per cloud), but
scores class-agnostic AP50 0.22 on these three small rooms and publishes 4-5 instances on each
empty room, so those tests are strict xfails; a model that passes them turns them into failures
until the marker goes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sphmask_core.data import randomized as rz
from sphmask_core.evaluation.scannet_eval import (PredInstance, evaluate_scannet, gt_ids_from_labels,
                                                  pred_instances_from_masks)
from sphmask_core.inference.segmenter import Segmenter

HELDOUT_SEEDS = (930001, 930003, 930004)  # in no training, validation or card set; 7-9 instances each
SMALL_SCANS = rz.RandomizedConfig(split="heldout", scan_resolution=(96, 72), scan_frames_range=(3, 3))
MIN_AGNOSTIC_AP50 = 0.5  # model card: see "held-out families"
MIN_CLASS_AP50 = 0.25


def _node_score_threshold() -> float:
    params = yaml.safe_load((Path(__file__).parents[1] / "config" / "sphmask.yaml").read_text())
    return float(params["/**"]["ros__parameters"]["score_threshold"])


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    torch.set_num_threads(1)
    return Segmenter.from_checkpoint(device="cpu")


NOT_YET = pytest.mark.xfail(strict=True, reason="issue 12 targets not met by the shipped model (model card)")


@NOT_YET
def test_shipped_model_finds_objects_of_held_out_families(segmenter):
    names = list(segmenter.class_names)
    shift = segmenter.cfg.labels.label_shift
    gts, preds, gts_agn, preds_agn = [], [], [], []
    for seed in HELDOUT_SEEDS:
        scene = rz.generate_scene(seed, SMALL_SCANS, "scan")
        assert scene.instance.max() >= 2
        inst = segmenter(scene.xyz, scene.rgb)
        p = pred_instances_from_masks(inst.masks, inst.class_ids, inst.scores, scene.n_points)
        gts.append(gt_ids_from_labels(scene.semantic, scene.instance, shift))
        preds.append(p)
        gts_agn.append(gt_ids_from_labels(np.where(scene.semantic >= shift, shift, scene.semantic), scene.instance, shift))
        preds_agn.append([PredInstance(q.mask, 1, q.confidence) for q in p])
    cls = evaluate_scannet(gts, preds, names, list(range(1, len(names) + 1)))
    agn = evaluate_scannet(gts_agn, preds_agn, ["object"], [1])
    print(f"held-out families, {len(HELDOUT_SEEDS)} rooms: class AP50 {cls['AP50']:.3f}, agnostic AP50 {agn['AP50']:.3f}")
    assert agn["AP50"] > MIN_AGNOSTIC_AP50, agn
    assert cls["AP50"] > MIN_CLASS_AP50, cls


@pytest.mark.parametrize("variant,seed", [
    ("noise", 931000), ("noise", 931001),
    pytest.param("empty", 931002, marks=NOT_YET), pytest.param("empty", 931003, marks=NOT_YET),
])
def test_shipped_model_publishes_nothing_on_noise_and_empty_rooms(segmenter, variant, seed):
    scene = rz.negative_scene(seed, SMALL_SCANS, variant)
    assert (scene.instance < 0).all()
    inst = segmenter(scene.xyz, scene.rgb)
    published = inst.scores >= _node_score_threshold()
    assert published.sum() == 0, [(inst.class_names[c], float(s)) for c, s in zip(inst.class_ids[published],
                                                                                 inst.scores[published])]
