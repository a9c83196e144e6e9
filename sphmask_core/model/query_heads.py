"""Per-query heads (METHOD 3.5) and the superpoint mask tower (METHOD 3.6).

Queries arrive flattened over the batch as (M, dec_dim). Every layer is a 1x1 Conv1d applied to a
(1, C, M) view so BatchNorm statistics are taken over all queries of the batch, as in the
reference implementation, and parameter shapes match its Conv1d layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from sphmask_core.config import QueryHeadConfig
from sphmask_core.model.migration import dyco_kernel_size

BN_MOMENTUM = 0.1


def _conv_bn_relu(c_in: int, c_out: int, bn_eps: float) -> list[nn.Module]:
    return [
        nn.Conv1d(c_in, c_out, kernel_size=1, bias=False),
        nn.BatchNorm1d(c_out, eps=bn_eps, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    ]


class GenericMLP(nn.Sequential):
    """n_hidden x [Conv1d (no bias), BN, ReLU] then Conv1d with bias and no activation."""

    def __init__(self, c_in: int, hidden: int, c_out: int, bn_eps: float, n_hidden: int = 2) -> None:
        layers: list[nn.Module] = []
        c = c_in
        for _ in range(n_hidden):
            layers += _conv_bn_relu(c, hidden, bn_eps)
            c = hidden
        layers.append(nn.Conv1d(c, c_out, kernel_size=1, bias=True))
        super().__init__(*layers)


def _apply_rows(module: nn.Module, x: Tensor) -> Tensor:
    """Run a Conv1d stack on row vectors: (M, C_in) -> (M, C_out)."""
    return module(x.t().unsqueeze(0)).squeeze(0).t()


@dataclass
class QueryOutputs:
    """Outputs of the query heads for M queries (flattened over the batch)."""

    class_logits: Tensor  # (M, n_classes + 1), last column = no object
    conf: Tensor  # (M,) raw predicted IoU (no sigmoid)
    boxes: Tensor  # (M, 6) absolute AABB: min xyz, max xyz
    centers: Tensor  # (M, 3) absolute spherical centre
    rays: Tensor  # (M, n_theta * n_phi) raw ray lengths in metres
    kernels: Tensor  # (M, kernel_size) dynamic-convolution parameters


class QueryHeads(nn.Module):
    """inst_shared_mlp followed by class / conf / box / centre / ray heads and the kernel generator."""

    def __init__(self, cfg: QueryHeadConfig, in_dim: int, n_classes: int) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        d = cfg.dec_dim
        eps = cfg.bn_eps
        self.cfg = cfg
        self.n_classes = n_classes
        # the dynamic conv reads mask_dim unit features and has mask_dim hidden channels
        self.kernel_size = dyco_kernel_size(cfg.mask_dim, cfg.mask_dim, cfg.num_dyco_layer)
        self.inst_shared_mlp = nn.Sequential(
            *_conv_bn_relu(in_dim, d, eps),
            nn.Conv1d(d, d, kernel_size=1, bias=True),
            nn.BatchNorm1d(d, eps=eps, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )
        self.class_head = GenericMLP(d, d, n_classes + 1, eps)
        self.conf_head = GenericMLP(d, d, 1, eps)
        self.box_head = GenericMLP(d, d, 6, eps)
        self.center_head = GenericMLP(d, d, 3, eps)
        self.ray_head = GenericMLP(d, d, cfg.n_theta * cfg.n_phi, eps)
        self.kernel_head = GenericMLP(d, d, self.kernel_size, eps)
        self._init_kernel_head()

    def _init_kernel_head(self) -> None:
        # small initial kernels keep z near 0 at the start, i.e. masks start undecided
        for m in self.kernel_head:
            if isinstance(m, nn.Conv1d) and m.out_channels != self.kernel_size:
                nn.init.kaiming_uniform_(m.weight, a=1)
        last = self.kernel_head[-1]
        nn.init.normal_(last.weight, std=0.01)
        nn.init.zeros_(last.bias)

    def forward(self, feats: Tensor, xyz: Tensor) -> QueryOutputs:
        """feats (M, in_dim) query features, xyz (M, 3) query positions."""
        if feats.ndim != 2 or xyz.shape != (feats.shape[0], 3):
            raise ValueError(f"expected feats (M, C) and xyz (M, 3), got {tuple(feats.shape)} and {tuple(xyz.shape)}")
        h = _apply_rows(self.inst_shared_mlp, feats)  # (M, dec_dim)
        box_offsets = _apply_rows(self.box_head, h)  # (M, 6)
        center_offsets = _apply_rows(self.center_head, h)  # (M, 3)
        return QueryOutputs(
            class_logits=_apply_rows(self.class_head, h),
            conf=_apply_rows(self.conf_head, h).squeeze(1),
            boxes=xyz.repeat(1, 2) + box_offsets,
            centers=xyz + center_offsets,
            rays=_apply_rows(self.ray_head, h),
            kernels=_apply_rows(self.kernel_head, h),
        )


class MaskTower(nn.Module):
    """Per-unit (superpoint or voxel) mask features: 3 x [Conv1d, BN, ReLU] + Conv1d with bias."""

    def __init__(self, in_dim: int, mask_dim: int, bn_eps: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_dim
        for _ in range(3):
            layers += _conv_bn_relu(c, mask_dim, bn_eps)
            c = mask_dim
        layers.append(nn.Conv1d(mask_dim, mask_dim, kernel_size=1, bias=True))
        self.net = nn.Sequential(*layers)

    def forward(self, feats: Tensor) -> Tensor:
        """feats (U, in_dim) -> (U, mask_dim); BN statistics over all units of the batch."""
        if feats.ndim != 2:
            raise ValueError(f"expected unit features (U, C), got {tuple(feats.shape)}")
        return _apply_rows(self.net, feats)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "GenericMLP",
    "MaskTower",
    "QueryHeads",
    "QueryOutputs",
    "count_parameters",
]
