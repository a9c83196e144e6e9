"""(query, class) candidates of one scene (METHOD 6.2), decided before any mask exists.

The score of a pair is sqrt(p_class * clamp(IoU, 0, 1)); only the top `topk` pairs can reach
NMS, so only their queries need a mask. The model uses this to skip the dynamic convolution of
every other query, and postprocessing uses the same function, so both pick identical pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Candidates:
    scores: Tensor  # (T,) sqrt(p_class * IoU), descending
    queries: Tensor  # (T,) query of each pair
    classes: Tensor  # (T,) instance class of each pair


def select_candidates(class_probs: Tensor, conf: Tensor, n_classes: int, topk: int) -> Candidates | None:
    """Top-`topk` (query, class) pairs by score; None when no query's argmax is an object class.

    class_probs: (K, C + 1) softmax with the no-object class last; conf: (K,) raw predicted IoU.
    """
    if class_probs.shape[0] == 0 or not bool((class_probs.argmax(dim=1) < n_classes).any()):
        return None
    iou = conf.clamp(0.0, 1.0)  # (K,)
    scores = torch.sqrt(class_probs[:, :n_classes] * iou[:, None]).flatten()  # (K * C,)
    top_scores, flat_idx = scores.topk(min(topk, scores.numel()))  # (T,)
    return Candidates(scores=top_scores, queries=flat_idx // n_classes, classes=flat_idx % n_classes)


__all__ = ["Candidates", "select_candidates"]
