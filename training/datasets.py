"""Torch datasets of `Scene`s for training and validation, and the epoch batch sampler.

Reproducibility: a training item is addressed by (epoch, index) and its augmentation draws from
`np.random.default_rng([seed, epoch, index])`, so the data of an iteration depends only on the
config and the position in the run, never on worker processes or on how often the run was
stopped and resumed. The batch order of an epoch comes from `DistributedSampler` (seeded,
`set_epoch`), which also splits it between DDP processes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from sphmask_core.config_io import from_plain
from sphmask_core.data.scene import Scene
from training.config import ConfigError, DatasetConfig


LOG = logging.getLogger("sphmask.train")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset folder (or a split inside it) does not exist or holds no scenes."""


Item = tuple[int, int]  # (epoch, index)


@dataclass
class TrainItem:
    """An augmented training scene and the positions its voxels are computed from."""

    scene: Scene
    grid_xyz: np.ndarray | None  # (N, 3) float32 after elastic distortion; None = scene.xyz


def subsample_scene(scene: Scene, fraction: float, rng: np.random.Generator) -> Scene:
    """Keep a random `fraction` of the points (S3DIS trains on 25 % per load, METHOD 7.3)."""
    if fraction >= 1.0:
        return scene
    n = len(scene.xyz)
    keep = np.sort(rng.choice(n, size=max(1, int(round(n * fraction))), replace=False))  # (M,)
    return dataclasses.replace(
        scene,
        xyz=scene.xyz[keep],
        rgb=scene.rgb[keep],
        semantic=scene.semantic[keep],
        instance=scene.instance[keep],
        superpoint=None if scene.superpoint is None else scene.superpoint[keep],
    )


class SceneDataset(Dataset):
    """Scenes from a loader function, augmented in train mode.

    `load(i)` returns scene i of `n_scenes`; in train mode the dataset is `repeat` times longer
    and item (epoch, k) is scene k % n_scenes with its own augmentation random stream.
    """

    def __init__(
        self,
        load: Callable[[int], Scene],
        n_scenes: int,
        train: bool,
        seed: int = 0,
        repeat: int = 1,
        augment: bool = True,
        augment_cfg: Any = None,
        subsample: float = 1.0,
    ) -> None:
        if n_scenes <= 0:
            raise DatasetNotFoundError("the dataset holds no scenes")
        self.load = load
        self.n_scenes = n_scenes
        self.train = train
        self.seed = seed
        self.repeat = repeat if train else 1
        self.augment = augment and train
        self.augment_cfg = augment_cfg
        self.subsample = subsample if train else 1.0

    def __len__(self) -> int:
        return self.n_scenes * self.repeat

    def __getitem__(self, item: Item | int) -> Scene | TrainItem | None:
        """Validation: the Scene. Training: a TrainItem, or None when augmentation cropped the
        scene below its minimum size (the batch then goes on without it, as in ISBNet)."""
        epoch, index = item if isinstance(item, tuple) else (0, int(item))
        if not 0 <= index < len(self):
            raise IndexError(f"scene index {index} out of range [0, {len(self)})")
        scene = self.load(index % self.n_scenes)
        if not self.train:
            return scene
        rng = np.random.default_rng([self.seed, epoch, index])
        scene = subsample_scene(scene, self.subsample, rng)
        if not self.augment:
            return TrainItem(scene, None)
        from sphmask_core.data.augment import SceneDropped, augment_scene

        try:
            scene, grid = augment_scene(scene, rng, self.augment_cfg)
        except SceneDropped:
            return None
        return TrainItem(scene, grid)


class EpochBatchSampler(Sampler[list[Item]]):
    """Batches of (epoch, index) for one epoch and one DDP rank, optionally from a start batch.

    Starting at `start_batch` is how a resumed run skips the batches it already trained on,
    without loading them.
    """

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        epoch: int,
        seed: int,
        shuffle: bool = True,
        drop_last: bool = True,
        world_size: int = 1,
        rank: int = 0,
        start_batch: int = 0,
    ) -> None:
        self.batch_size = batch_size
        self.epoch = epoch
        self.drop_last = drop_last
        self.start_batch = start_batch
        sampler = DistributedSampler(
            range(n_items), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        sampler.set_epoch(epoch)
        self.indices = list(iter(sampler))  # this rank's share of the epoch, in order

    def num_batches(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        return max(self.num_batches() - self.start_batch, 0)

    def __iter__(self) -> Iterator[list[Item]]:
        for b in range(self.start_batch, self.num_batches()):
            chunk = self.indices[b * self.batch_size : (b + 1) * self.batch_size]
            yield [(self.epoch, i) for i in chunk]


# ----------------------------------------------------------------------------------- builders


SYNTHETIC_GENERATORS = ("rooms", "randomized")


def _synthetic_loader(cfg: DatasetConfig, seeds: Sequence[int], train: bool = True) -> tuple[Callable[[int], Scene], int]:
    """Generator of `dataset.synthetic.generator` ("rooms": synthetic.py, the default;
    "randomized": randomized.py). Keys under `dataset.synthetic.val` override the others for the
    validation split (e.g. `val: {split: heldout}` validates on held-out shape families)."""
    overrides = dict(cfg.synthetic)
    name = overrides.pop("generator", "rooms")
    val = overrides.pop("val", None) or {}
    if not isinstance(val, dict):
        raise ConfigError(f"config key 'dataset.synthetic.val' expects a mapping, got {val!r}")
    if not train:
        overrides.update(val)
    if name == "rooms":
        from sphmask_core.data import synthetic as module

        cls = getattr(module, "SyntheticConfig", None)
    elif name == "randomized":
        from sphmask_core.data import randomized as module

        cls = module.RandomizedConfig
    else:
        raise ConfigError(f"config key 'dataset.synthetic.generator' must be one of {SYNTHETIC_GENERATORS}, got {name!r}")
    gen_cfg = _build_synthetic_config(module, overrides, cls)
    start, stop = int(seeds[0]), int(seeds[1])
    return functools.partial(_generate, module.generate_scene, start, gen_cfg), stop - start


def _generate(generate: Callable[[int, Any], Scene], start: int, gen_cfg: Any, i: int) -> Scene:
    return generate(start + i, gen_cfg)


def _build_synthetic_config(module: Any, overrides: dict[str, Any], cls: Any = None) -> Any:
    cls = cls if cls is not None else getattr(module, "SyntheticConfig", None)
    if cls is None:
        if overrides:
            raise ValueError("dataset.synthetic overrides given but the generator takes no config")
        return None
    gen_cfg = from_plain(cls, overrides, "dataset.synthetic", error=ConfigError)
    try:
        return gen_cfg.validate()
    except ValueError as exc:
        raise ConfigError(f"config section 'dataset.synthetic': {exc}") from None


def build_augment_config(overrides: dict[str, Any], voxel_size: float | None = None) -> Any:
    """AugmentConfig with overrides; its voxel size (the unit of elastic distortion and crop
    windows) follows the model's unless the overrides set it."""
    from sphmask_core.data.augment import AugmentConfig

    values = dict(overrides)
    if voxel_size is not None and "voxel_size" not in values:
        values["voxel_size"] = float(voxel_size)
    aug_cfg = from_plain(AugmentConfig, values, "dataset.augment_cfg", error=ConfigError)
    try:
        return aug_cfg.validate()
    except ValueError as exc:
        raise ConfigError(f"config section 'dataset.augment_cfg': {exc}") from None


def _scene_files(name: str, root: Path, split: str) -> tuple[Callable[[Path], Scene], list[Path]]:
    """The loader function and the sorted scene files of one split of a real dataset."""
    if name == "scannet":
        from sphmask_core.data.scannet import list_scannet_split, load_scannet_pth

        return load_scannet_pth, list_scannet_split(root, split)
    if name == "stpls3d":
        from sphmask_core.data.stpls3d import list_stpls3d_blocks, load_stpls3d_block

        return load_stpls3d_block, list_stpls3d_blocks(root, split)
    if name == "s3dis":
        from sphmask_core.data.s3dis import list_preprocessed_rooms, list_rooms, load_s3dis_room

        # preprocessed rooms in root/preprocess (ISBNet layout) or root itself, else raw Area_k folders
        for folder in (root / "preprocess", root):
            if folder.is_dir() and any(folder.glob("Area_*_inst_nostuff.pth")):
                return load_s3dis_room, list_preprocessed_rooms(folder, split)
        return load_s3dis_room, list_rooms(root, split)
    raise ConfigError(f"config key 'dataset.name': no loader for {name!r}")


def _load_file(loader: Callable[[Path], Scene], files: list[Path], i: int) -> Scene:
    return loader(files[i])


def _folder_files(cfg: DatasetConfig, root: Path, split: str) -> tuple[Callable[[Path], Scene], list[Path]]:
    """The user's own labelled clouds (sphmask_core/data/folder.py), ids mapped by the classes file."""
    from sphmask_core.data.classes import load_classes
    from sphmask_core.data.folder import list_folder_split

    classes = load_classes(cfg.classes)
    return functools.partial(_load_labelled, classes), list_folder_split(root, split)


def _load_labelled(classes: Any, path: Path) -> Scene:
    from sphmask_core.data.folder import load_labelled_cloud

    return load_labelled_cloud(path, classes)


def _real_loader(cfg: DatasetConfig, split: str) -> tuple[Callable[[int], Scene], int]:
    from sphmask_core.data.errors import DatasetError

    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"dataset folder not found: {root} (dataset.root for {cfg.name})")
    try:
        if cfg.name == "folder":
            loader, files = _folder_files(cfg, root, split)
        else:
            loader, files = _scene_files(cfg.name, root, split)
    except DatasetError as exc:
        raise DatasetNotFoundError(f"{cfg.name} split '{split}': {exc}") from None
    except ValueError as exc:  # e.g. an S3DIS area list that does not parse
        raise ConfigError(f"{cfg.name} split '{split}': {exc}") from None
    # a partial of module-level functions pickles, so DataLoader workers can use it
    return functools.partial(_load_file, loader, files), len(files)


def _scene_at(scenes: list[Scene], i: int) -> Scene:
    return scenes[i]


def _node_params(cfg: DatasetConfig) -> Any:
    from sphmask_core.sensor.node_params import load_node_params

    try:
        return load_node_params(cfg.params_file)
    except ValueError as exc:
        raise ConfigError(f"config key 'dataset.params_file': {exc}") from None


def dataset_labels(cfg: DatasetConfig) -> Any:
    """The LabelSpec the data decides (the classes file, else a bag dataset's metadata), or None
    when the model config's own labels apply."""
    from sphmask_core.data.classes import load_classes

    if cfg.classes:
        return load_classes(cfg.classes).labels
    if cfg.name == "bag":
        from sphmask_core.data.bag import bag_classes

        return bag_classes([Path(p).expanduser() for p in cfg.train_bags]).labels
    return None


def _bag_loader(cfg: DatasetConfig, train: bool) -> tuple[Callable[[int], Scene], int]:
    """Windows of the bags of one split through the node's pre-processing (sphmask_core/data/bag.py)."""
    from sphmask_core.data.bag import BagSplit, load_bag_windows
    from sphmask_core.data.classes import load_classes
    from sphmask_core.data.errors import DatasetError

    which = "train" if train else "val"
    bags, (start, end) = (cfg.train_bags, cfg.train_range) if train else (cfg.val_bags, cfg.val_range)
    if not bags:
        raise ConfigError("config key 'dataset.val_bags' is empty: list the validation bags "
                          "(the training bags with a later val_range, or others), or set val_every: 0")
    params = _node_params(cfg)
    split = BagSplit(tuple(Path(p).expanduser() for p in bags), float(start),
                     None if end is None else float(end))
    try:
        classes = load_classes(cfg.classes) if cfg.classes else None
        scenes, _ = load_bag_windows(split, cfg.topic, params, classes,
                                     log=lambda line: LOG.warning("%s", line))
    except DatasetError as exc:
        raise DatasetNotFoundError(f"bag split '{which}': {exc}") from None
    return functools.partial(_scene_at, scenes), len(scenes)


def build_dataset(cfg: DatasetConfig, train: bool, seed: int = 0, voxel_size: float | None = None) -> SceneDataset:
    """The training (train=True) or validation split described by `cfg`; `voxel_size` is the
    model's, for augmentation."""
    if cfg.name == "synthetic":
        load, n = _synthetic_loader(cfg, cfg.train_seeds if train else cfg.val_seeds, train)
    elif cfg.name == "bag":
        load, n = _bag_loader(cfg, train)
    else:
        load, n = _real_loader(cfg, cfg.train_split if train else cfg.val_split)
    augment_cfg = build_augment_config(cfg.augment_cfg, voxel_size) if (train and cfg.augment) else None
    return SceneDataset(
        load, n, train=train, seed=seed, repeat=cfg.repeat, augment=cfg.augment,
        augment_cfg=augment_cfg, subsample=cfg.subsample,
    )


def collate_items(items: list[TrainItem | None], collate_fn: Callable | None = None) -> Any:
    """Batch of the training items that survived augmentation; None when none did."""
    kept = [it for it in items if it is not None]
    if not kept:
        return None
    if collate_fn is None:
        from sphmask_core.data.collate import collate as collate_fn
    scenes = [it.scene for it in kept]
    if all(it.grid_xyz is None for it in kept):
        return collate_fn(scenes)
    grids = [it.scene.xyz if it.grid_xyz is None else it.grid_xyz for it in kept]
    return collate_fn(scenes, grids)


def build_loader(
    dataset: SceneDataset, batch_sampler: Sampler, num_workers: int, collate_fn: Callable | None = None
) -> DataLoader:
    """DataLoader over a batch sampler, collating scenes into a model `Batch`.

    A private generator keeps DataLoader's base-seed draw off the global torch RNG, whose state
    is part of the checkpoint and must evolve identically in straight and resumed runs.
    """
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=functools.partial(collate_items, collate_fn=collate_fn),
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )
