"""The Scene contract (one labelled point cloud) and LabelSpec (class names + label shift).

See docs/ARCHITECTURE.md "Scene". Every loader, the synthetic generator, augmentation and the ROS
preprocessing produce `Scene` objects; `Scene.validate()` is the single place that checks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IGNORE_LABEL = -100  # semantic / instance id of "no label" / "not an instance"

# Raw 0-255 colours passed by mistake are the common bug; colour shift augmentation can push
# normalised colours a little past 1, so the bound is loose.
_RGB_ABS_LIMIT = 2.0


@dataclass(frozen=True)
class LabelSpec:
    """Semantic class names and the stuff/instance split.

    Semantic ids below `label_shift` are "stuff" (wall, floor, ...); an instance's class index is
    `semantic - label_shift`, an index into `instance_names`.
    """

    semantic_names: tuple[str, ...]
    label_shift: int

    def __post_init__(self) -> None:
        names = tuple(self.semantic_names)
        object.__setattr__(self, "semantic_names", names)
        if len(names) == 0:
            raise ValueError("LabelSpec.semantic_names is empty")
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError("LabelSpec.semantic_names must be non-empty strings")
        if len(set(names)) != len(names):
            raise ValueError(f"LabelSpec.semantic_names has duplicates: {names}")
        if isinstance(self.label_shift, bool) or not isinstance(self.label_shift, (int, np.integer)):
            raise ValueError(f"LabelSpec.label_shift must be an int, got {self.label_shift!r}")
        object.__setattr__(self, "label_shift", int(self.label_shift))
        if not 0 <= self.label_shift < len(names):
            raise ValueError(
                f"LabelSpec.label_shift={self.label_shift} must be in [0, {len(names) - 1}] "
                "so that at least one instance class remains"
            )

    @property
    def n_semantic(self) -> int:
        return len(self.semantic_names)

    @property
    def instance_names(self) -> tuple[str, ...]:
        return self.semantic_names[self.label_shift :]

    @property
    def n_instance_classes(self) -> int:
        return len(self.instance_names)

    def to_dict(self) -> dict[str, Any]:
        return {"semantic_names": list(self.semantic_names), "label_shift": self.label_shift}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabelSpec":
        if not isinstance(d, dict):
            raise ValueError(f"LabelSpec.from_dict expects a dict, got {type(d).__name__}")
        missing = {"semantic_names", "label_shift"} - set(d)
        if missing:
            raise ValueError(f"LabelSpec dict is missing keys: {sorted(missing)}")
        return cls(semantic_names=tuple(d["semantic_names"]), label_shift=d["label_shift"])


SYNTHETIC_LABELS = LabelSpec(
    semantic_names=(
        "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
        "bookshelf", "picture", "desk",
    ),
    label_shift=2,
)

# METHOD 8.1: NYU40 ids [1,2,3,4,5,6,7,8,9,10,11,12,14,16,24,28,33,34,36,39] -> 0..19.
SCANNET_LABELS = LabelSpec(
    semantic_names=(
        "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
        "bookshelf", "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain",
        "toilet", "sink", "bathtub", "otherfurniture",
    ),
    label_shift=2,
)

# METHOD 8.2: semantic ids 0..12; ceiling/floor are stuff in training (label_shift 2).
S3DIS_LABELS = LabelSpec(
    semantic_names=(
        "ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa",
        "bookcase", "board", "clutter",
    ),
    label_shift=2,
)

# METHOD 8.3: STPLS3D Synthetic_v3, semantic 0 = ground, 14 instance classes (label_shift 1).
# Names as the STPLS3D release / ISBNet's STPLS3D dataset class call them.
STPLS3D_LABELS = LabelSpec(
    semantic_names=(
        "ground", "building", "low vegetation", "med. vegetation", "high vegetation", "vehicle",
        "truck", "aircraft", "militaryVehicle", "bike", "motorcycle", "light pole",
        "street sign", "clutter", "fence",
    ),
    label_shift=1,
)


def compact_ids(ids: np.ndarray) -> np.ndarray:
    """Renumber non-negative ids to 0..K-1 in order of value; negative ids become IGNORE_LABEL."""
    out = np.full(ids.shape, IGNORE_LABEL, dtype=np.int64)
    valid = ids >= 0
    if valid.any():
        _, inverse = np.unique(ids[valid], return_inverse=True)
        out[valid] = inverse.astype(np.int64)
    return out


@dataclass
class Scene:
    xyz: np.ndarray  # (N, 3) float32, metres
    rgb: np.ndarray  # (N, 3) float32 in [-1, 1] (raw / 127.5 - 1); zeros when colourless
    semantic: np.ndarray  # (N,) int64, -100 = unlabelled
    instance: np.ndarray  # (N,) int64, 0..K-1, -100 = not an instance
    superpoint: np.ndarray | None = None  # (N,) int64 or None
    name: str = field(default="scene")

    @classmethod
    def from_arrays(
        cls,
        xyz: np.ndarray,
        rgb: np.ndarray | None = None,
        semantic: np.ndarray | None = None,
        instance: np.ndarray | None = None,
        superpoint: np.ndarray | None = None,
        name: str = "scene",
    ) -> "Scene":
        """Build a Scene with dtypes coerced and defaults filled (colourless, unlabelled)."""
        xyz = np.ascontiguousarray(np.asarray(xyz), dtype=np.float32)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise ValueError(f"Scene xyz must have shape (N, 3), got {xyz.shape}")
        n = xyz.shape[0]
        rgb_arr = np.zeros((n, 3), np.float32) if rgb is None else np.asarray(rgb, np.float32)
        sem = np.full(n, IGNORE_LABEL, np.int64) if semantic is None else np.asarray(semantic)
        ins = np.full(n, IGNORE_LABEL, np.int64) if instance is None else np.asarray(instance)
        for label, arr in (("semantic", sem), ("instance", ins)):
            if arr.dtype.kind == "f" and np.any(np.isfinite(arr) & (arr != np.round(arr))):
                raise ValueError(f"Scene {label} labels must be integers, got fractional values")
        sp = None if superpoint is None else np.asarray(superpoint).astype(np.int64)
        scene = cls(
            xyz=xyz,
            rgb=np.ascontiguousarray(rgb_arr),
            semantic=sem.astype(np.int64),
            instance=ins.astype(np.int64),
            superpoint=sp,
            name=str(name),
        )
        scene.validate()
        return scene

    @property
    def n_points(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def n_instances(self) -> int:
        """Number of distinct instance ids (ignoring -100)."""
        ids = self.instance[self.instance >= 0]
        return int(np.unique(ids).size)

    def validate(self, label_spec: LabelSpec | None = None) -> "Scene":
        """Raise ValueError naming the first problem found; return self when valid.

        With `label_spec`, semantic ids must be < its class count and instance points must carry
        an instance class (semantic >= label_shift).
        """
        tag = f"Scene '{self.name}'"
        for key in ("xyz", "rgb", "semantic", "instance"):
            if not isinstance(getattr(self, key), np.ndarray):
                raise ValueError(f"{tag}: {key} must be a numpy array, got {type(getattr(self, key)).__name__}")
        if self.xyz.ndim != 2 or self.xyz.shape[1] != 3:
            raise ValueError(f"{tag}: xyz must have shape (N, 3), got {self.xyz.shape}")
        n = self.xyz.shape[0]
        if n == 0:
            raise ValueError(f"{tag}: empty scene (0 points)")
        if self.rgb.shape != (n, 3):
            raise ValueError(f"{tag}: rgb must have shape ({n}, 3), got {self.rgb.shape}")
        for key in ("semantic", "instance"):
            if getattr(self, key).shape != (n,):
                raise ValueError(f"{tag}: {key} must have shape ({n},), got {getattr(self, key).shape}")
        if self.superpoint is not None:
            if not isinstance(self.superpoint, np.ndarray) or self.superpoint.shape != (n,):
                shape = getattr(self.superpoint, "shape", None)
                raise ValueError(f"{tag}: superpoint must be None or shape ({n},), got {shape}")
        for key, want in (("xyz", np.float32), ("rgb", np.float32), ("semantic", np.int64), ("instance", np.int64)):
            if getattr(self, key).dtype != want:
                raise ValueError(f"{tag}: {key} must be {np.dtype(want).name}, got {getattr(self, key).dtype}")
        if self.superpoint is not None and self.superpoint.dtype != np.int64:
            raise ValueError(f"{tag}: superpoint must be int64, got {self.superpoint.dtype}")
        if not np.isfinite(self.xyz).all():
            raise ValueError(f"{tag}: xyz contains NaN or inf")
        if not np.isfinite(self.rgb).all():
            raise ValueError(f"{tag}: rgb contains NaN or inf")
        rgb_max = float(np.abs(self.rgb).max())
        if rgb_max > _RGB_ABS_LIMIT:
            raise ValueError(
                f"{tag}: rgb must be normalised to [-1, 1] (raw / 127.5 - 1), got max |rgb| = {rgb_max:.3g}"
            )
        sem, ins = self.semantic, self.instance
        bad_sem = (sem < 0) & (sem != IGNORE_LABEL)
        if bad_sem.any():
            raise ValueError(f"{tag}: semantic ids must be >= 0 or -100, got {int(sem[bad_sem][0])}")
        bad_ins = (ins < 0) & (ins != IGNORE_LABEL)
        if bad_ins.any():
            raise ValueError(f"{tag}: instance ids must be >= 0 or -100, got {int(ins[bad_ins][0])}")
        if self.superpoint is not None and (self.superpoint < 0).any():
            raise ValueError(f"{tag}: superpoint ids must be >= 0")
        inst_pts = ins >= 0
        if (sem[inst_pts] == IGNORE_LABEL).any():
            raise ValueError(f"{tag}: instance points must have a semantic label, found -100")
        if inst_pts.any():
            ids, inverse = np.unique(ins[inst_pts], return_inverse=True)
            s = sem[inst_pts]
            # One semantic class per instance <=> min and max semantic per instance agree.
            smin = np.full(ids.size, np.iinfo(np.int64).max, np.int64)
            smax = np.full(ids.size, np.iinfo(np.int64).min, np.int64)
            np.minimum.at(smin, inverse, s)
            np.maximum.at(smax, inverse, s)
            mixed = np.nonzero(smin != smax)[0]
            if mixed.size:
                k = mixed[0]
                raise ValueError(
                    f"{tag}: instance {int(ids[k])} mixes semantic classes {int(smin[k])} and {int(smax[k])}"
                )
        if label_spec is not None:
            if (sem >= label_spec.n_semantic).any():
                raise ValueError(
                    f"{tag}: semantic id {int(sem.max())} out of range for {label_spec.n_semantic} classes"
                )
            stuff_inst = inst_pts & (sem < label_spec.label_shift)
            if stuff_inst.any():
                raise ValueError(
                    f"{tag}: instance points with stuff class {int(sem[stuff_inst][0])} "
                    f"(< label_shift {label_spec.label_shift})"
                )
        return self

    def subset(self, mask_or_idx: np.ndarray) -> "Scene":
        """Points selected by a boolean mask (N,) or an index array; instance and superpoint ids
        are renumbered to 0..K-1 (keeping their order) because dropped objects leave gaps."""
        sel = np.asarray(mask_or_idx)
        n = self.n_points
        if sel.dtype == bool:
            if sel.shape != (n,):
                raise ValueError(f"Scene.subset: boolean mask must have shape ({n},), got {sel.shape}")
        elif sel.dtype.kind in "iu":
            if sel.ndim != 1:
                raise ValueError(f"Scene.subset: index array must be 1-D, got shape {sel.shape}")
            if sel.size and (sel.min() < -n or sel.max() >= n):
                raise ValueError(f"Scene.subset: index out of range for {n} points")
        else:
            raise ValueError(f"Scene.subset: expected a boolean mask or integer indices, got {sel.dtype}")
        return Scene(
            xyz=np.ascontiguousarray(self.xyz[sel]),
            rgb=np.ascontiguousarray(self.rgb[sel]),
            semantic=self.semantic[sel].copy(),
            instance=compact_ids(self.instance[sel]),
            superpoint=None if self.superpoint is None else compact_ids(self.superpoint[sel]),
            name=self.name,
        )
