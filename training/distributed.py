"""torch.distributed for training: joining torchrun's group, the device of each process, and
the few collectives the trainer needs (all no-ops in a single process)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from training.config import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> DistInfo:
    """Join the process group torchrun describes in the environment; single process otherwise.

    A group initialised by the caller (tests spawn processes themselves) is used as it is.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    use_cuda = torch.cuda.is_available() and device_pref != "cpu"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def is_distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def resolve_device(pref: str, dist_info: DistInfo) -> torch.device:
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("config key 'device' asks for cuda but no CUDA device is available")
        return torch.device("cuda", dist_info.local_rank)
    return torch.device(pref)


def broadcast_object(obj: Any) -> Any:
    if not is_distributed():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_true(flag: bool, device: torch.device) -> bool:
    if not is_distributed():
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def barrier() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()
