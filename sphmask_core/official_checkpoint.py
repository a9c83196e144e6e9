"""Import the authors' trained weights: Spherical Mask (yunshin/SphericalMask) and ISBNet.

Both training scripts save `{"net": state_dict, "epoch": int}` (best model) or the same plus
"optimizer" (periodic). Their module tree differs from ours in names only, except for three
layout details handled here:

* spconv weights: ours are KRSC (out, kx, ky, kz, in), the layout of spconv >= 2.2; spconv 2.1
  with its Native algorithm saved RSKC (kx, ky, kz, out, in) or RSCK (kx, ky, kz, in, out). The
  layout is read from the shapes, one layout per checkpoint.
* the residual shortcut: theirs is a 1x1x1 sparse conv whose forward is `x @ W.view(out, in).T`,
  ours an `nn.Linear(in, out)` with weight (out, in).
* BatchNorm buffers map one to one (running mean / var, num_batches_tracked).

`convert_official` fills every tensor of our full ScanNet model or refuses (missing key,
unknown key, wrong shape: one `ConversionError` naming the key; nothing is written).
`convert_isbnet` writes a backbone checkpoint for `sphmask-train ... init_from=` (the paper
initialises from ISBNet): only the tensors ISBNet has, so it cannot be mistaken for a model.
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sphmask_core.checkpoint import save_checkpoint
from sphmask_core.config import ModelConfig, load_model_config

OFFICIAL = "official"
ISBNET = "isbnet"
KINDS = (OFFICIAL, ISBNET)

# Modules the authors build but whose outputs no loss or prediction reads (METHOD 10.2): reported,
# not converted. `criterion.*` holds the loss's class weights and the same dead mask head again.
UNUSED_PREFIXES = ("inst_mask_head_angular.", "inst_inside_mask.", "inside_mask_head.", "norm.", "criterion.")
# Only in a Spherical Mask checkpoint: the ray and centre heads.
SPHERICAL_ONLY_PREFIXES = ("rid_module.", "inst_center_head.")
# ISBNet's kernel generator emits the kernels of 3 dynamic-conv layers, ours of 2: its last
# layer cannot be used (the authors drop it too when they initialise from ISBNet).
ISBNET_KERNEL_LAYER = ("inst_mask_head.2.weight", "inst_mask_head.2.bias")
SPCONV_LAYOUTS = ("KRSC", "RSKC", "RSCK")


class ConversionError(ValueError):
    """The source file is not a usable authors' checkpoint; the message names file and key."""


@dataclass
class Conversion:
    """Result of mapping an authors' state dict onto ours.

    state: our tensor names -> tensors (every tensor of our model for `official`).
    unused: their keys of modules the forward pass never runs.
    dropped: their keys with no counterpart of the same shape (ISBNet's 3-layer kernel head).
    spconv_layout: the layout their sparse-conv weights were saved in.
    epoch: the training epoch stored in the source, if any.
    """

    state: dict[str, torch.Tensor]
    unused: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    spconv_layout: str = "KRSC"
    epoch: int | None = None


# ----------------------------------------------------------------------------------- reading


def read_authors_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], int | None]:
    """(state dict, epoch) of an authors' training checkpoint, loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"checkpoint file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = _UNSUPPORTED_GLOBAL.search(str(e))
        if found is None:  # not a pickle stream at all
            raise ConversionError(f"{path} is not a PyTorch checkpoint (unreadable with torch.load)") from e
        raise ConversionError(
            f"{path} needs pickle to load and is refused: it holds a {found.group(1)} object, which only an "
            "unrestricted pickle load (able to run arbitrary code) can rebuild; only tensors and plain containers are read"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConversionError(f"{path} is not a PyTorch checkpoint ({_first_line(e)})") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("net"), dict):
        keys = sorted(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise ConversionError(f"{path} is not an authors' training checkpoint: no 'net' state dict (found {keys})")
    state = obj["net"]
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f"{path}: entry '{key}' of its state dict is {type(value).__name__}, not a tensor")
    epoch = obj.get("epoch")
    return state, epoch if isinstance(epoch, int) else None


_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ----------------------------------------------------------------------------------- names

_PLAIN_RENAMES = (
    ("input_conv.", "backbone.input_conv."),
    ("output_layer.", "backbone.output_layer."),
    ("semantic_linear.", "pointwise_heads.semantic."),
    ("offset_linear.", "pointwise_heads.centroid_offset."),
    ("offset_vertices_linear.", "pointwise_heads.corner_offset."),
    ("box_conf_linear.", "pointwise_heads.box_conf."),
    # GenericMLP keeps its layers in `.layers`, with the same indices as our Sequential
    ("inst_shared_mlp.layers.", "query_heads.inst_shared_mlp."),
    ("inst_sem_head.layers.", "query_heads.class_head."),
    ("inst_conf_head.layers.", "query_heads.conf_head."),
    ("inst_box_head.layers.", "query_heads.box_head."),
    ("inst_center_head.layers.", "query_heads.center_head."),
    ("rid_module.layers.", "query_heads.ray_head."),
)
# their residual-branch index (BN, ReLU, conv, BN, ReLU, conv) -> ours (BN+ReLU, conv, BN+ReLU, conv)
_CONV_BRANCH = {"0": "0.0", "2": "1", "3": "2.0", "5": "3"}
_UNET_BLOCK = re.compile(r"(blocks|blocks_tail)\.block(\d+)\.(conv_branch\.(\d+)|i_branch\.0)\.(\w+)$")
_UNET_SAMPLE = re.compile(r"(conv|deconv)\.(\d+)\.(\w+)$")
_AGGREGATOR = re.compile(r"point_aggregator([12])\.mlp_module([123])\.(?:layer)?(\d+)\.(conv|bn\.bn)\.(\w+)$")
# conv_with_kaiming_uniform blocks: Sequential(Sequential(conv, BN, ReLU) x n, last conv)
_CONV_BLOCKS = re.compile(r"(inst_mask_head|mask_tower)\.(\d+)\.(?:(\d+)\.)?(\w+)$")


def our_name(their: str, n_blocks: dict[str, int]) -> str | None:
    """Our tensor name for one of theirs; None if it has no counterpart.

    n_blocks: number of conv blocks before the last conv of "inst_mask_head" (2) and
    "mask_tower" (3). Every Sequential of ours places layer i at index 3 i (conv, BN, ReLU).
    """
    for old, new in _PLAIN_RENAMES:
        if their.startswith(old):
            return new + their[len(old):]
    if their.startswith("unet."):
        return _unet_name(their)
    m = _AGGREGATOR.match(their)
    if m:
        agg, mlp, layer, kind, param = m.groups()
        index = 3 * int(layer) + (0 if kind == "conv" else 1)
        return f"aggregator{agg}.mlp{mlp}.{index}.{param}"
    m = _CONV_BLOCKS.match(their)
    if m:
        module, block, sub, param = m.groups()
        ours = "query_heads.kernel_head" if module == "inst_mask_head" else "mask_tower.net"
        block_i = int(block)
        if sub is None:  # the last, plain conv
            return f"{ours}.{3 * block_i}.{param}" if block_i == n_blocks[module] else None
        if block_i >= n_blocks[module] or sub not in ("0", "1"):
            return None
        return f"{ours}.{3 * block_i + int(sub)}.{param}"
    return None


def _unet_name(their: str) -> str | None:
    rest = their[len("unet."):]
    depth = 0
    while rest.startswith("u."):
        rest = rest[2:]
        depth += 1
    prefix = "backbone.unet." + "inner." * depth
    m = _UNET_BLOCK.match(rest)
    if m:
        group, block, branch, conv_index, param = m.groups()
        ours_group = "blocks" if group == "blocks" else "tail"
        if conv_index is None:
            return f"{prefix}{ours_group}.{block}.shortcut.{param}"
        if conv_index not in _CONV_BRANCH:
            return None
        return f"{prefix}{ours_group}.{block}.body.{_CONV_BRANCH[conv_index]}.{param}"
    m = _UNET_SAMPLE.match(rest)
    if m:
        which, index, param = m.groups()
        ours = "down" if which == "conv" else "up"
        sub = {"0": "0.0", "2": "1"}.get(index)
        return f"{prefix}{ours}.{sub}.{param}" if sub else None
    return None


def their_name(ours: str, n_blocks: dict[str, int]) -> str:
    """The authors' name of one of our tensors (inverse of `our_name`, for error messages)."""
    for old, new in _PLAIN_RENAMES:
        if ours.startswith(new):
            return old + ours[len(new):]
    m = re.match(r"backbone\.unet\.((?:inner\.)*)(.+)$", ours)
    if m:
        prefix = "unet." + "u." * (len(m.group(1)) // len("inner."))
        rest = m.group(2)
        b = re.match(r"(blocks|tail)\.(\d+)\.(?:body\.(0\.0|1|2\.0|3)|shortcut)\.(\w+)$", rest)
        if b:
            group = "blocks" if b.group(1) == "blocks" else "blocks_tail"
            inverse = {v: k for k, v in _CONV_BRANCH.items()}
            branch = f"conv_branch.{inverse[b.group(3)]}" if b.group(3) else "i_branch.0"
            return f"{prefix}{group}.block{b.group(2)}.{branch}.{b.group(4)}"
        d = re.match(r"(down|up)\.(0\.0|1)\.(\w+)$", rest)
        if d:
            which = "conv" if d.group(1) == "down" else "deconv"
            return f"{prefix}{which}.{'0' if d.group(2) == '0.0' else '2'}.{d.group(3)}"
    m = re.match(r"aggregator([12])\.mlp([123])\.(\d+)\.(\w+)$", ours)
    if m:
        agg, mlp, index, param = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        layer = str(index // 3) if mlp == "3" else f"layer{index // 3}"
        kind = "conv" if index % 3 == 0 else "bn.bn"
        return f"point_aggregator{agg}.mlp_module{mlp}.{layer}.{kind}.{param}"
    m = re.match(r"(query_heads\.kernel_head|mask_tower\.net)\.(\d+)\.(\w+)$", ours)
    if m:
        module = "inst_mask_head" if m.group(1).startswith("query_heads") else "mask_tower"
        index, param = int(m.group(2)), m.group(3)
        block = index // 3
        if block == n_blocks[module]:
            return f"{module}.{block}.{param}"
        return f"{module}.{block}.{index % 3}.{param}"
    return ours


# ----------------------------------------------------------------------------------- layouts


def _is_spconv_weight(ours_shape: tuple[int, ...]) -> bool:
    return len(ours_shape) == 5


def _layout_shape(krsc: tuple[int, ...], layout: str) -> tuple[int, ...]:
    o, k0, k1, k2, i = krsc
    return {"KRSC": krsc, "RSKC": (k0, k1, k2, o, i), "RSCK": (k0, k1, k2, i, o)}[layout]


def to_krsc(weight: torch.Tensor, layout: str) -> torch.Tensor:
    """A sparse-conv weight saved in `layout` as KRSC (out, kx, ky, kz, in)."""
    if layout == "KRSC":
        return weight
    if layout == "RSKC":
        return weight.permute(3, 0, 1, 2, 4).contiguous()
    if layout == "RSCK":
        return weight.permute(4, 0, 1, 2, 3).contiguous()
    raise ValueError(f"unknown spconv layout {layout!r}")


def _spconv_layout(pairs: list[tuple[str, torch.Tensor, tuple[int, ...]]]) -> str:
    """The one layout (preferring KRSC) that fits every (their key, tensor, our KRSC shape)."""
    possible = set(SPCONV_LAYOUTS)
    for key, tensor, krsc in pairs:
        fits = {lay for lay in SPCONV_LAYOUTS if tuple(tensor.shape) == _layout_shape(krsc, lay)}
        if not fits:
            raise ConversionError(f"wrong shape for '{key}': {tuple(tensor.shape)}, expected {krsc} (out, k, k, k, in)")
        possible &= fits
        if not possible:
            raise ConversionError(f"'{key}' is saved in another sparse-conv weight layout than the tensors before it")
    return next(lay for lay in SPCONV_LAYOUTS if lay in possible)


# ----------------------------------------------------------------------------------- mapping


def _reference_state(cfg: ModelConfig) -> dict[str, torch.Tensor]:
    from sphmask_core.model.spherical_mask import SphericalMask  # heavy import kept local

    return SphericalMask(cfg).state_dict()


def detect_kind(state: dict[str, torch.Tensor]) -> str:
    """"official" (Spherical Mask) or "isbnet", from the modules present."""
    if "input_conv.0.weight" not in state:
        raise ConversionError("not a Spherical Mask or ISBNet state dict: no 'input_conv.0.weight'")
    return OFFICIAL if any(k.startswith(SPHERICAL_ONLY_PREFIXES) for k in state) else ISBNET


def convert_state_dict(
    theirs: dict[str, torch.Tensor], cfg: ModelConfig, kind: str, reference: dict[str, torch.Tensor] | None = None
) -> Conversion:
    """Map an authors' state dict onto our model for `cfg`; raise ConversionError on any mismatch.

    reference: our state dict for `cfg` (built when not given; passed by tests to save time).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    found = detect_kind(theirs)
    if found != kind:
        if kind == OFFICIAL:
            raise ConversionError(
                "this is an ISBNet checkpoint (no ray or centre head: 'rid_module.*', 'inst_center_head.*'); "
                "convert it with `sphmask-convert isbnet`"
            )
        raise ConversionError(
            "this is a Spherical Mask checkpoint (it has 'rid_module.*'); convert it with `sphmask-convert official`"
        )
    own = _reference_state(cfg) if reference is None else reference
    n_blocks = {"inst_mask_head": 2, "mask_tower": 3}
    mapped: dict[str, tuple[str, torch.Tensor]] = {}  # ours -> (theirs, tensor)
    unused: list[str] = []
    dropped: list[str] = []
    for key, tensor in theirs.items():
        ours = our_name(key, n_blocks)
        if ours is None or ours not in own:
            if key.startswith(UNUSED_PREFIXES):
                unused.append(key)
                continue
            raise ConversionError(f"unknown key '{key}': no tensor of ours corresponds to it")
        if ours in mapped:
            raise ConversionError(f"'{key}' and '{mapped[ours][0]}' both map to '{ours}'")
        mapped[ours] = (key, tensor)

    if kind == ISBNET:
        for key in ISBNET_KERNEL_LAYER:
            ours = our_name(key, n_blocks)
            if ours in mapped and tuple(mapped[ours][1].shape) != tuple(own[ours].shape):
                dropped.append(key)
                del mapped[ours]

    required = _required(own, kind, theirs)
    missing = [k for k in required if k not in mapped]
    if missing:
        raise ConversionError(
            f"missing key '{their_name(missing[0], n_blocks)}' (for our '{missing[0]}'; {len(missing)} missing)"
        )

    spconv = [(k, t, tuple(own[o].shape)) for o, (k, t) in mapped.items() if _is_spconv_weight(tuple(own[o].shape))]
    layout = _spconv_layout(spconv) if spconv else "KRSC"
    state: dict[str, torch.Tensor] = {}
    for ours, (key, tensor) in mapped.items():
        target = own[ours]
        value = tensor
        if _is_spconv_weight(tuple(target.shape)):
            value = to_krsc(value, layout)
        elif ours.endswith(".shortcut.weight"):
            value = _shortcut_weight(key, value, tuple(target.shape), layout)
        if tuple(value.shape) != tuple(target.shape):
            raise ConversionError(f"wrong shape for '{key}': {tuple(tensor.shape)}, expected {tuple(target.shape)}")
        if target.is_floating_point() != value.is_floating_point():
            raise ConversionError(f"wrong dtype for '{key}': {value.dtype}, expected {target.dtype}")
        state[ours] = value.detach().to(dtype=target.dtype).clone()
    # keep our module order: a converted checkpoint reads like one we trained
    state = {k: state[k] for k in own if k in state}
    return Conversion(state=state, unused=sorted(unused), dropped=dropped, spconv_layout=layout)


def _shortcut_weight(key: str, value: torch.Tensor, target: tuple[int, ...], layout: str) -> torch.Tensor:
    """Their 1x1x1 sparse conv (out, 1, 1, 1, in) in `layout` -> our Linear weight (out, in)."""
    o, i = target
    if value.dim() != 5 or value.numel() != o * i:
        raise ConversionError(f"wrong shape for '{key}': {tuple(value.shape)}, expected {(o, 1, 1, 1, i)}")
    if tuple(value.shape) != _layout_shape((o, 1, 1, 1, i), layout):
        raise ConversionError(f"wrong shape for '{key}': {tuple(value.shape)} in layout {layout}, expected {(o, 1, 1, 1, i)}")
    return to_krsc(value, layout).reshape(o, i)


def _required(own: dict[str, torch.Tensor], kind: str, theirs: dict[str, torch.Tensor]) -> list[str]:
    """Our tensors the source must provide."""
    if kind == OFFICIAL:
        return list(own)
    backbone = [k for k in own if k.startswith(("backbone.", "pointwise_heads."))]
    if not any(k.startswith("point_aggregator1.") for k in theirs):
        return backbone  # ISBNet's first stage (--only_backbone): U-Net and point-wise heads only
    not_in_isbnet = ("query_heads.center_head.", "query_heads.ray_head.", "query_heads.kernel_head.6.")
    return [k for k in own if not k.startswith(not_in_isbnet)]


# ----------------------------------------------------------------------------------- configs


def official_config() -> ModelConfig:
    """Our full ScanNet model configured to run as the released code does at test time."""
    cfg = copy.deepcopy(load_model_config("full_scannet"))
    data = cfg.to_dict()
    data["name"] = "authors_scannetv2"
    data["heads"]["bn_eps"] = 1e-5
    data["test"]["rotate"] = True  # released test: every scene rotated by 0.35 pi about z
    data["test"]["clamp_center"] = True  # released test: rays + centre clamped at >= 0.01
    return ModelConfig.from_dict(data)


def backbone_config() -> ModelConfig:
    """The full ScanNet configuration (our defaults) for a checkpoint converted from ISBNet."""
    return load_model_config("full_scannet")


def convert_file(kind: str, src: str | os.PathLike, out: str | os.PathLike) -> Conversion:
    """Convert `src` and write a sphmask checkpoint to `out` (nothing is written on failure)."""
    src = Path(src)
    theirs, epoch = read_authors_checkpoint(src)
    cfg = official_config() if kind == OFFICIAL else backbone_config()
    try:
        conversion = convert_state_dict(theirs, cfg, kind)
    except ConversionError as e:
        raise ConversionError(f"{src}: {e}") from e
    conversion.epoch = epoch
    provenance: dict[str, Any] = {
        "converted_from": kind,
        "source_file": src.name,
        "source_epoch": epoch,
        "spconv_layout": conversion.spconv_layout,
        "stage": "full" if kind == OFFICIAL else "backbone",
    }
    save_checkpoint(out, conversion.state, cfg, cfg.class_names, cfg.labels, metrics=provenance)
    return conversion


# ----------------------------------------------------------------------------------- CLI

PROG = "sphmask-convert"


def main(argv: list[str] | None = None) -> int:
    """`sphmask-convert official|isbnet SRC.pth OUT.pt`; exit 2 on any refusal."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert the authors' Spherical Mask (official) or ISBNet checkpoint into a sphmask checkpoint.",
        epilog=(
            "official: every tensor of the full ScanNet model, test settings of the released code\n"
            "          (0.35 pi rotation, centre clamp); use with sphmask-predict, sphmask-bag, the node.\n"
            "isbnet:   backbone checkpoint to start the full stage from: sphmask-train ... init_from=OUT.pt"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("src", type=Path, help="the authors' .pth file")
    parser.add_argument("out", type=Path, help="sphmask checkpoint to write (.pt)")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.src.resolve():
        print(f"{PROG}: error: OUT must differ from SRC", file=sys.stderr)
        return 2
    try:
        conversion = convert_file(args.kind, args.src, args.out)
    except ConversionError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG}: error: cannot write {args.out}: {_first_line(e)}", file=sys.stderr)
        return 2
    n = sum(t.numel() for t in conversion.state.values())
    epoch = f", epoch {conversion.epoch}" if conversion.epoch is not None else ""
    print(f"{PROG}: wrote {args.out}: {len(conversion.state)} tensors ({n:,} values){epoch}, "
          f"sparse-conv layout {conversion.spconv_layout}")
    if conversion.unused:
        modules = sorted({".".join(k.split(".")[:2]) if k.startswith("criterion.") else k.split(".")[0] for k in conversion.unused})
        print(f"{PROG}: not converted, never used by the forward pass: {len(conversion.unused)} tensors of {', '.join(modules)}")
    if conversion.dropped:
        print(f"{PROG}: not converted, other shape in our model (3- vs 2-layer dynamic conv): {', '.join(conversion.dropped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
