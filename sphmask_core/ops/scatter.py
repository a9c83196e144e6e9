"""Segment pooling helpers in plain PyTorch (replacement for torch_scatter, METHOD 2.3)."""

from __future__ import annotations

import torch


def _check_index(index: torch.Tensor, n_rows: int, n: int) -> None:
    if index.dim() != 1:
        raise ValueError(f"index must be 1-D, got shape {tuple(index.shape)}")
    if index.shape[0] != n_rows:
        raise ValueError(f"index has {index.shape[0]} entries but src has {n_rows} rows")
    if index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"index must be an integer tensor, got {index.dtype}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if index.numel() > 0 and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ValueError(f"index values must lie in [0, {n}), got [{int(index.min())}, {int(index.max())}]")


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Sum rows of ``src`` (N, ...) into ``n`` segments given by ``index`` (N,) -> (n, ...).

    Differentiable with respect to ``src``.
    """
    _check_index(index, src.shape[0], n)
    out = src.new_zeros((n,) + tuple(src.shape[1:]))
    return out.index_add(0, index.long(), src)


def segment_counts(index: torch.Tensor, n: int) -> torch.Tensor:
    """Number of rows per segment, (n,) int64."""
    _check_index(index, index.shape[0], n)
    return torch.bincount(index.long(), minlength=n)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of the rows of ``src`` (N, C) (or (N,)) per segment ``index`` (N,) -> (n, C) (or (n,)).

    Empty segments get zeros. Differentiable with respect to ``src``: each source row receives
    1/count of its segment's gradient.
    """
    total = scatter_sum(src, index, n)  # (n, ...)
    counts = segment_counts(index, n).clamp_(min=1).to(total.dtype)  # (n,)
    return total / counts.view((n,) + (1,) * (src.dim() - 1))


def scatter_max(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Per-segment maximum of ``src`` (N, C) (or (N,)) -> (n, C); empty segments get zeros."""
    _check_index(index, src.shape[0], n)
    out = src.new_zeros((n,) + tuple(src.shape[1:]))
    idx = index.long().view((-1,) + (1,) * (src.dim() - 1)).expand_as(src)
    return out.scatter_reduce(0, idx, src, reduce="amax", include_self=False)


def segment_ids_compact(ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Relabel arbitrary integer ids (N,) to 0..n-1 in ascending order of the original value.

    Returns ``(compact (N,) int64, n)``. Negative ids are treated as ordinary values; callers
    that use a sentinel such as -100 must mask it out first.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"ids must be an integer tensor, got {ids.dtype}")
    uniq, inverse = torch.unique(ids, sorted=True, return_inverse=True)
    return inverse.long(), int(uniq.numel())


def check_offsets(offsets: torch.Tensor, n_rows: int) -> None:
    """Raise ValueError unless ``offsets`` (B+1,) is int, starts at 0, ends at ``n_rows``, non-decreasing."""
    if offsets.dim() != 1 or offsets.numel() < 2:
        raise ValueError(f"offsets must be 1-D with at least 2 entries (B+1), got shape {tuple(offsets.shape)}")
    if offsets.is_floating_point() or offsets.dtype == torch.bool:
        raise ValueError(f"offsets must be an integer tensor, got {offsets.dtype}")
    if int(offsets[0]) != 0 or int(offsets[-1]) != n_rows:
        raise ValueError(f"offsets must run from 0 to {n_rows}, got {int(offsets[0])}..{int(offsets[-1])}")
    if bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError("offsets must be non-decreasing")


def batch_ids_from_offsets(offsets: torch.Tensor) -> torch.Tensor:
    """Scene index of every row, (N,) int64, for offsets (B+1,)."""
    counts = (offsets[1:] - offsets[:-1]).long()  # (B,)
    return torch.repeat_interleave(torch.arange(counts.numel(), device=offsets.device), counts)
