"""Segment reductions used by voxelisation, feature encoders and pooling."""
from __future__ import annotations

import torch

_REDUCE = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


def scatter_reduce(src: torch.Tensor, index: torch.Tensor, num_out: int, reduce: str = "sum") -> torch.Tensor:
    """out[j] = reduce(src[i] for i with index[i] == j): [num_out, C]. Rows with index −1 are ignored;
    outputs that receive nothing are 0. Differentiable with respect to `src`.

    Args:
        src: [N, C] (or [N]) values.
        index: [N] int64 target rows in [−1, num_out).
        reduce: "sum" | "mean" | "max" | "min".
    """
    if reduce not in _REDUCE:
        raise ValueError(f"scatter_reduce: reduce must be one of {sorted(_REDUCE)}, got {reduce!r}")
    if index.dim() != 1 or index.shape[0] != src.shape[0]:
        raise ValueError(f"scatter_reduce: index must be [N] with N = {src.shape[0]}, got {tuple(index.shape)}")
    squeeze = src.dim() == 1
    if squeeze:
        src = src.unsqueeze(1)
    index = index.long()
    keep = index >= 0
    if not bool(keep.all()):
        src, index = src[keep], index[keep]
    out = src.new_zeros(num_out, src.shape[1])
    if index.numel():
        if reduce == "sum":
            out = out.index_add(0, index, src)
        else:
            out = out.scatter_reduce(0, index.unsqueeze(1).expand_as(src), src, _REDUCE[reduce], include_self=False)
    return out.squeeze(1) if squeeze else out
