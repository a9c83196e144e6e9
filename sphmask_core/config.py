"""Model configuration: nested plain dataclasses, YAML files, dict round trip.

`ModelConfig` is everything needed to build a `SphericalMask` and run it: label set, input
channels, voxel size, backbone, aggregators, query heads, losses and test-time settings. The YAML
files in `sphmask_core/configs/` mirror it key by key; any key that is not a field raises a
`ValueError` naming the full dotted key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sphmask_core.config_io import Converters, from_plain, read_yaml, to_plain
from sphmask_core.data.scene import S3DIS_LABELS, SCANNET_LABELS, STPLS3D_LABELS, SYNTHETIC_LABELS, LabelSpec
from sphmask_core.losses.criterion import LossConfig
from sphmask_core.model.backbone import BackboneConfig

VOXEL_UNITS = ("all", "object")
XYZ_FEATURES = ("raw", "floor")
NMS_KINDS = ("matrix", "greedy")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# Named label sets usable in YAML as `labels: synthetic` instead of spelling out every class.
NAMED_LABELS: dict[str, LabelSpec] = {
    "synthetic": SYNTHETIC_LABELS,
    "scannet": SCANNET_LABELS,
    "s3dis": S3DIS_LABELS,
    "stpls3d": STPLS3D_LABELS,
}


@dataclass
class AggregatorConfig:
    """The two local aggregators (set abstraction) that turn object voxels into queries (METHOD 3.4).

    Attributes:
        n_sample_pa1: FPS samples per scene taken from the object units by the first aggregator
            (code 2048; the paper's 1024 is an ablation).
        n_queries: queries per scene; training takes the first n_queries of the FPS-ordered pa1
            samples, test runs FPS n_queries over them.
        radius_pa1: ball-query radius of the first aggregator, metres.
        radius_pa2: ball-query radius of the second aggregator, metres.
        k_pa1, k_pa2: neighbours per centre in the first grouping.
        k_post_pa1, k_post_pa2: neighbours per sample in the second grouping (radius 2r).
        mlp_pa1: channel widths of the first aggregator's shared MLP (input = backbone channels + 6).
        mlp_pa2: same for the second aggregator (input = last width of mlp_pa1 + 6); its last width
            is the query feature size.
    """

    n_sample_pa1: int = 2048
    n_queries: int = 256
    radius_pa1: float = 0.2
    radius_pa2: float = 0.4
    k_pa1: int = 32
    k_pa2: int = 32
    k_post_pa1: int = 64
    k_post_pa2: int = 32
    mlp_pa1: tuple[int, ...] = (32, 64)
    mlp_pa2: tuple[int, ...] = (64, 128)

    def __post_init__(self) -> None:
        _positive(self, ("n_sample_pa1", "n_queries", "k_pa1", "k_pa2", "k_post_pa1", "k_post_pa2"))
        _positive(self, ("radius_pa1", "radius_pa2"))
        if self.n_queries > self.n_sample_pa1:
            raise ValueError(f"aggregator.n_queries ({self.n_queries}) must be <= n_sample_pa1 ({self.n_sample_pa1})")
        for key in ("mlp_pa1", "mlp_pa2"):
            widths = tuple(getattr(self, key))
            if not widths or any(int(w) <= 0 for w in widths):
                raise ValueError(f"aggregator.{key} must be a non-empty list of positive widths, got {widths}")
            setattr(self, key, tuple(int(w) for w in widths))

    @property
    def query_dim(self) -> int:
        return self.mlp_pa2[-1]


@dataclass
class QueryHeadConfig:
    """Per-query heads and the dynamic convolution (METHOD 3.5-3.6).

    Attributes:
        dec_dim: hidden width of inst_shared_mlp and of every head.
        n_theta: polar bins of the spherical sectors (code: 5, 0..180 deg).
        n_phi: azimuth bins (code: 5, 0..360 deg); rays per query = n_theta * n_phi.
        num_dyco_layer: layers of the dynamic convolution (2 = 38x32, 32x1).
        mask_dim: width of the mask tower output and of the first dynamic-conv layer.
        bn_eps: BatchNorm eps of inst_shared_mlp, every head, the kernel generator and the mask
            tower. The authors' layers are PyTorch's default 1e-5; with trained running variances
            near 1e-3 the eps is not negligible, so a converted checkpoint needs theirs. Models
            trained here before this key existed used 1e-4 (see checkpoint.config_from_checkpoint).
    """

    dec_dim: int = 128
    n_theta: int = 5
    n_phi: int = 5
    num_dyco_layer: int = 2
    mask_dim: int = 32
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        _positive(self, ("dec_dim", "n_theta", "n_phi", "num_dyco_layer", "mask_dim", "bn_eps"))
        # the sector anchors use int(180 / n_theta) and int(360 / n_phi) steps (METHOD 4.2)
        if 180 % self.n_theta or 360 % self.n_phi:
            raise ValueError(
                f"heads.n_theta ({self.n_theta}) must divide 180 and heads.n_phi ({self.n_phi}) must divide 360"
            )


@dataclass
class TestConfig:
    """Inference settings (METHOD 6).

    Attributes:
        topk_candidates: (query, class) candidates kept by score before NMS (code 90).
        nms: "matrix" (Gaussian matrix NMS, the released ScanNet model) or "greedy" (class-wise
            hard NMS at `nms_iou_threshold`, ISBNet's S3DIS setting).
        nms_iou_threshold: IoU above which greedy NMS removes the lower-scored mask (S3DIS 0.2).
        nms_sigma: Gaussian matrix-NMS sigma (code 2).
        nms_topk: instances kept after matrix NMS by decayed score (code 200).
        score_threshold: instances whose decayed score is below this are dropped after NMS
            (0 = keep all, the benchmark setting). The node's `score_threshold` parameter
            overrides it, so the node, `sphmask-predict`, validation and `sphmask-bag eval`
            report the same instances for the same value.
        duplicate_iou: after matrix NMS and the score threshold, drop a mask when a higher-scored
            mask of the same class overlaps it with IoU above this (0 = off, the released model;
            matrix NMS only decays such duplicates' scores, so they survive a threshold).
        npoint_thresh: candidates with fewer voxels are dropped before NMS (code 100).
        min_points: masks with fewer points after devoxelization / refinement are dropped (code 100).
        filter_bg_thresh: a unit is "object" if any instance-class probability reaches this (0.1).
        superpoint_refinement: after devoxelization, a superpoint joins a mask iff >= 50% of its
            points are in it (only when superpoints are given).
        rotate: rotate every test cloud by `rotation_angle` about z before inference (the
            released ScanNet checkpoint's 0.35 pi trick); off for synthetic and sensor data.
        rotation_angle: radians.
        clamp_center: before the spherical test, clamp every coordinate of each query's centre at
            >= 0.01 together with its rays, as the released code does (it clamps the whole
            rays + centre tensor). It moves centres of a mean-centred scene that lie below 0.01 on
            any axis, so it is off except for converted authors' checkpoints.
        x4_split: split every test scene into four interleaved point subsets (points k, k+4,
            k+8, ...) that run through the U-Net separately, each point keeping the voxel of its
            own subset, with queries sampled from the object voxels of the first two (ISBNet's
            S3DIS test, METHOD 6.1): a network trained on a quarter of each dense room's points
            then sees that density at test.
    """

    __test__ = False  # keeps pytest from collecting this class as a test suite

    topk_candidates: int = 90
    nms: str = "matrix"
    nms_iou_threshold: float = 0.2
    nms_sigma: float = 2.0
    nms_topk: int = 200
    score_threshold: float = 0.0
    duplicate_iou: float = 0.0
    npoint_thresh: int = 100
    min_points: int = 100
    filter_bg_thresh: float = 0.1
    superpoint_refinement: bool = True
    rotate: bool = False
    rotation_angle: float = 0.35 * math.pi
    clamp_center: bool = False
    x4_split: bool = False

    def __post_init__(self) -> None:
        _positive(self, ("topk_candidates", "nms_sigma"))
        if self.nms not in NMS_KINDS:
            raise ValueError(f"test.nms must be one of {NMS_KINDS}, got {self.nms!r}")
        if not 0.0 <= self.nms_iou_threshold <= 1.0:
            raise ValueError(f"test.nms_iou_threshold must be in [0, 1], got {self.nms_iou_threshold}")
        if self.nms_topk == 0 or self.nms_topk < -1:
            raise ValueError(f"test.nms_topk must be positive or -1 (keep all), got {self.nms_topk}")
        if self.npoint_thresh < 0 or self.min_points < 0:
            raise ValueError("test.npoint_thresh and test.min_points must be >= 0")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"test.score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 0.0 <= self.duplicate_iou <= 1.0:
            raise ValueError(f"test.duplicate_iou must be in [0, 1] (0 = off), got {self.duplicate_iou}")
        if not 0.0 <= self.filter_bg_thresh <= 1.0:
            raise ValueError(f"test.filter_bg_thresh must be in [0, 1], got {self.filter_bg_thresh}")


@dataclass
class ModelConfig:
    """Everything that defines a Spherical Mask model.

    Attributes:
        name: a label for logs and checkpoints ("small", "full_scannet", ...).
        labels: semantic class names and label_shift (`LabelSpec`); the YAML may give a named set
            (synthetic / scannet / s3dis / stpls3d) or a mapping {semantic_names, label_shift}.
        use_superpoints: pool voxels into superpoints when the input has them; otherwise (and
            always when False) the mask units are voxels.
        voxel_units: which voxels are mask units when there are no superpoints.
            "object": only voxels passing the foreground filter (METHOD 3.3, the reference's
            STPLS3D training); "all": every voxel, as superpoints cover the whole scene, so z also
            learns to reject background and to take object voxels the filter missed (slower to
            train: more units, more imbalance). The same set is used in training (randomly
            capped) and at test (all of them): z means nothing on voxels never supervised.
        max_units_train: without superpoints, unit voxels randomly kept per scene in training
            (METHOD 3.3: 15000).
        xyz_feature: how point positions enter as input features. "raw": as given (METHOD 2.1;
            ScanNet files are already mean-centred). "floor": per scene, minus the mean x and y
            and minus the lowest z, so a room in its own frame and a gravity-aligned sensor cloud
            (floor at z = -sensor height) give the same features: what a robot's clouds need.
        backbone: sparse U-Net (`BackboneConfig`); its `in_channels` (6 = rgb + xyz features,
            3 = xyz only for colour-free input) and `voxel_size` (metres, ScanNet 0.02) are the
            model's (see the `in_channels` / `voxel_size` properties).
        aggregator: query generation (`AggregatorConfig`).
        heads: query heads and dynamic convolution (`QueryHeadConfig`).
        loss: loss weights and switches (`LossConfig`).
        test: inference settings (`TestConfig`).
    """

    name: str = "custom"
    labels: LabelSpec = SYNTHETIC_LABELS
    use_superpoints: bool = True
    voxel_units: str = "object"
    max_units_train: int = 15000
    xyz_feature: str = "raw"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    heads: QueryHeadConfig = field(default_factory=QueryHeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    test: TestConfig = field(default_factory=TestConfig)

    def __post_init__(self) -> None:
        if self.backbone.in_channels not in (3, 6):
            raise ValueError(
                f"backbone.in_channels must be 6 (rgb + xyz) or 3 (xyz only), got {self.backbone.in_channels}"
            )
        _positive(self, ("max_units_train",))
        if self.xyz_feature not in XYZ_FEATURES:
            raise ValueError(f"xyz_feature must be one of {XYZ_FEATURES}, got {self.xyz_feature!r}")
        if self.voxel_units not in VOXEL_UNITS:
            raise ValueError(f"voxel_units must be one of {VOXEL_UNITS}, got {self.voxel_units!r}")

    @property
    def in_channels(self) -> int:
        """6 = rgb + xyz point features, 3 = xyz only."""
        return self.backbone.in_channels

    @property
    def voxel_size(self) -> float:
        return self.backbone.voxel_size

    @property
    def voxel_scale(self) -> float:
        """Voxels per metre: the unit of the box and offset L1 losses (ScanNet: 50)."""
        return 1.0 / self.backbone.voxel_size

    @property
    def n_classes(self) -> int:
        """Number of instance classes (the class head has one more: no object)."""
        return self.labels.n_instance_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.labels.instance_names)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, numbers, str, bool) that `from_dict` turns back into an equal config."""
        return to_plain(self, _CONVERTERS)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of `to_dict`; missing keys take defaults, unknown keys raise ValueError naming the key.

        `loss.voxel_scale`, which older checkpoints and configs spell out, is derived from the
        voxel size now: accepted when it agrees, refused when it does not.
        """
        data = dict(data)
        loss = data.get("loss")
        if isinstance(loss, dict) and "voxel_scale" in loss:
            loss = dict(loss)
            scale = loss.pop("voxel_scale")
            voxel = (data.get("backbone") or {}).get("voxel_size", BackboneConfig().voxel_size)
            if not isinstance(scale, (int, float)) or abs(scale * voxel - 1.0) > 1e-6:
                raise ValueError(f"config key 'model.loss.voxel_scale' ({scale!r}) must equal "
                                 f"1 / backbone.voxel_size ({1.0 / voxel:g}); it is derived from "
                                 "the voxel size, so leave it out")
            data["loss"] = loss
        return from_plain(cls, data, "model", converters=_CONVERTERS)


def load_model_config(path_or_name: str | Path) -> ModelConfig:
    """Load a model YAML: a file path, or a shipped config name ("small", "full_scannet")."""
    text = str(path_or_name)
    path = Path(text)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{text}.yaml"
        if not path.is_file():
            shipped = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
            raise FileNotFoundError(f"no model config named '{text}'; shipped configs: {shipped}")
    if not path.is_file():
        raise FileNotFoundError(f"model config file not found: {path}")
    return ModelConfig.from_dict(read_yaml(path))


def apply_overrides(cfg: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """A copy of `cfg` with dotted keys replaced, e.g. {"aggregator.n_queries": 64}."""
    data = cfg.to_dict()
    for dotted, value in overrides.items():
        node = data
        keys = dotted.split(".")
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                raise ValueError(f"unknown config key 'model.{dotted}'")
            node = node[key]
        if keys[-1] not in node:
            raise ValueError(f"unknown config key 'model.{dotted}'")
        node[keys[-1]] = copy.deepcopy(value)
    return ModelConfig.from_dict(data)


# ----------------------------------------------------------------------------------------------
# generic dataclass <-> plain data conversion


def _positive(obj: Any, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = getattr(obj, key)
        if not value > 0:
            raise ValueError(f"{type(obj).__name__}.{key} must be > 0, got {value!r}")


def _label_spec(value: Any, path: str) -> LabelSpec:
    if isinstance(value, LabelSpec):
        return value
    if isinstance(value, str):
        if value not in NAMED_LABELS:
            raise ValueError(f"config key '{path}': unknown label set '{value}' (known: {sorted(NAMED_LABELS)})")
        return NAMED_LABELS[value]
    if isinstance(value, dict):
        unknown = set(value) - {"semantic_names", "label_shift"}
        if unknown:
            raise ValueError(f"unknown config key '{path}.{sorted(unknown)[0]}'")
        return LabelSpec.from_dict(value)
    raise ValueError(f"config key '{path}' must be a label-set name or a mapping, got {value!r}")


_CONVERTERS: Converters = {LabelSpec: (_label_spec, LabelSpec.to_dict)}
