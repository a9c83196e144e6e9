"""Sparse U-Net backbone (METHOD 3.1), built with spconv.

The spconv convolution algorithm is chosen once from the device by :func:`conv_algo_for` and
given explicitly to every convolution layer (the CPU build of spconv only runs ``Native``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import partial

with warnings.catch_warnings():
    # spconv 2.3 decorates its ops with torch.cuda.amp APIs that torch deprecates: a screenful of
    # FutureWarnings at every start that users can do nothing about
    warnings.simplefilter("ignore", FutureWarning)
    import spconv.pytorch as spconv
# spconv's sparse tensor asks torch.fx whether it is being traced; torch answers with a one-time
# deprecation warning on every start. Nothing here traces: keep that logger to errors.
logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
import torch
from spconv.core import ConvAlgo
from torch import nn


@dataclass
class BackboneConfig:
    """U-Net shape. Defaults are the full ScanNet model (about 30.11 M parameters)."""

    in_channels: int = 6
    base_channels: int = 32
    levels: int = 7
    blocks_per_level: int = 2
    bn_eps: float = 1e-4
    bn_momentum: float = 0.1
    voxel_size: float = 0.02

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.base_channels < 1:
            raise ValueError("in_channels and base_channels must be >= 1")
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")
        if self.blocks_per_level < 1:
            raise ValueError(f"blocks_per_level must be >= 1, got {self.blocks_per_level}")
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {self.voxel_size}")

    @property
    def channels(self) -> list[int]:
        """Channels per level, base * (i + 1)."""
        return [self.base_channels * (i + 1) for i in range(self.levels)]

    @property
    def out_channels(self) -> int:
        return self.base_channels


def conv_algo_for(device: torch.device | str) -> ConvAlgo:
    """The spconv algorithm for ``device``: Native on the CPU, implicit GEMM (spconv default) on CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        return ConvAlgo.MaskImplicitGemm
    if device.type == "cpu":
        return ConvAlgo.Native
    raise ValueError(f"spconv supports only cpu and cuda devices, got {device}")


_SPCONV_TYPES = (spconv.SubMConv3d, spconv.SparseConv3d, spconv.SparseInverseConv3d)


def set_conv_algo(module: nn.Module, algo: ConvAlgo) -> None:
    """Set ``algo`` on every spconv convolution inside ``module`` (after moving it to another device)."""
    for layer in module.modules():
        if isinstance(layer, _SPCONV_TYPES):
            layer.algo = algo


def _bn_relu(channels: int, cfg: BackboneConfig) -> spconv.SparseSequential:
    return spconv.SparseSequential(
        nn.BatchNorm1d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum), nn.ReLU()
    )


class ResidualBlock(spconv.SparseModule):
    """Pre-activation block: BN-ReLU-SubM3 -> BN-ReLU-SubM3, plus identity or a bias-free 1x1 linear."""

    def __init__(self, c_in: int, c_out: int, cfg: BackboneConfig, algo: ConvAlgo, indice_key: str) -> None:
        super().__init__()
        subm = partial(spconv.SubMConv3d, kernel_size=3, padding=1, bias=False, indice_key=indice_key, algo=algo)
        self.shortcut = nn.Identity() if c_in == c_out else nn.Linear(c_in, c_out, bias=False)
        self.body = spconv.SparseSequential(
            _bn_relu(c_in, cfg), subm(c_in, c_out), _bn_relu(c_out, cfg), subm(c_out, c_out)
        )

    def forward(self, x: spconv.SparseConvTensor) -> spconv.SparseConvTensor:
        identity = self.shortcut(x.features)  # (V, c_out)
        out = self.body(x)
        return out.replace_feature(out.features + identity)


class UBlock(nn.Module):
    """One U-Net level: blocks, then (if deeper levels remain) down, inner UBlock, up, concat, tail blocks."""

    def __init__(self, channels: list[int], cfg: BackboneConfig, algo: ConvAlgo, level: int = 1) -> None:
        super().__init__()
        c = channels[0]
        key = f"subm{level}"
        self.blocks = spconv.SparseSequential(
            *[ResidualBlock(c, c, cfg, algo, key) for _ in range(cfg.blocks_per_level)]
        )
        self.inner: UBlock | None = None
        if len(channels) > 1:
            c_next = channels[1]
            down_key = f"spconv{level}"
            self.down = spconv.SparseSequential(
                _bn_relu(c, cfg),
                spconv.SparseConv3d(c, c_next, kernel_size=2, stride=2, bias=False, indice_key=down_key, algo=algo),
            )
            self.inner = UBlock(channels[1:], cfg, algo, level + 1)
            self.up = spconv.SparseSequential(
                _bn_relu(c_next, cfg),
                spconv.SparseInverseConv3d(c_next, c, kernel_size=2, bias=False, indice_key=down_key, algo=algo),
            )
            tail = [ResidualBlock(2 * c, c, cfg, algo, key)]
            tail += [ResidualBlock(c, c, cfg, algo, key) for _ in range(cfg.blocks_per_level - 1)]
            self.tail = spconv.SparseSequential(*tail)

    def forward(self, x: spconv.SparseConvTensor) -> spconv.SparseConvTensor:
        x = self.blocks(x)
        if self.inner is None:
            return x
        skip = x.features  # (V_l, c)
        y = self.up(self.inner(self.down(x)))  # back on this level's indices
        y = y.replace_feature(torch.cat([skip, y.features], dim=1))  # (V_l, 2c)
        return self.tail(y)


class UNet(nn.Module):
    """Input SubM conv -> UBlock -> BN+ReLU; (V, C_in) voxel features -> (V, base_channels)."""

    def __init__(self, cfg: BackboneConfig, algo: ConvAlgo | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        algo = conv_algo_for("cpu") if algo is None else algo
        c0 = cfg.channels[0]
        self.input_conv = spconv.SparseSequential(
            spconv.SubMConv3d(cfg.in_channels, c0, kernel_size=3, padding=1, bias=False, indice_key="subm1", algo=algo)
        )
        self.unet = UBlock(cfg.channels, cfg, algo)
        self.output_layer = spconv.SparseSequential(
            nn.BatchNorm1d(c0, eps=cfg.bn_eps, momentum=cfg.bn_momentum), nn.ReLU()
        )

    def set_conv_algo(self, algo: ConvAlgo) -> None:
        set_conv_algo(self, algo)

    def forward(
        self, feats: torch.Tensor, coords: torch.Tensor, batch_size: int, spatial_shape: list[int]
    ) -> torch.Tensor:
        """``feats`` (V, C_in) float, ``coords`` (V, 4) int32 [batch, x, y, z] -> (V, base_channels).

        Output rows are in the order of the input rows.
        """
        if feats.dim() != 2 or feats.shape[1] != self.cfg.in_channels:
            raise ValueError(f"feats must have shape (V, {self.cfg.in_channels}), got {tuple(feats.shape)}")
        if coords.dim() != 2 or coords.shape != (feats.shape[0], 4):
            raise ValueError(f"coords must have shape ({feats.shape[0]}, 4), got {tuple(coords.shape)}")
        if len(spatial_shape) != 3:
            raise ValueError(f"spatial_shape must have 3 entries, got {spatial_shape}")
        x = spconv.SparseConvTensor(feats, coords.int().contiguous(), list(spatial_shape), batch_size)
        x = self.output_layer(self.unet(self.input_conv(x)))
        return x.features


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
