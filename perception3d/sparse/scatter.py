"""Segment reductions used by voxelisation, feature encoders and pooling."""
from __future__ import annotations

import torch

_REDUCE = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


class _SegmentExtremum(torch.autograd.Function):
    """``out[j] = max (or min) of src[i] over i with index[i] == j`` (0 where nothing lands), with a cheaper backward
    than ``Tensor.scatter_reduce``'s that gives bit-identical gradients.

    Autograd's rule for ``scatter_reduce(amax/amin, include_self=False)`` into zeros splits a row's gradient evenly
    over its ties, counting the initial zero as one of them when the extremum is exactly 0:
    ``grad_src[i] = [src[i] == out[index[i]]] · grad[index[i]] / (#ties + [out == 0])``. It gets there through
    float copies of whole [N, C] masks and a dense ``scatter``; here the same formula is evaluated with one gather,
    one compare and one ``index_add_`` of the tie mask. On the DSVT-P pillar encoder (114k points → 8.7k pillars,
    C = 32) that halves the backward (75 → 39 ms on one core); ``tests/test_sparse_ops.py`` checks equality with
    autograd's, ties and zero extrema included.
    """

    @staticmethod
    def forward(ctx, src: torch.Tensor, index: torch.Tensor, num_out: int, reduce: str) -> torch.Tensor:
        out = src.new_zeros(num_out, src.shape[1]).scatter_reduce(
            0, index.unsqueeze(1).expand_as(src), src, reduce, include_self=False)
        ctx.save_for_backward(src, index, out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        src, index, out = ctx.saved_tensors
        hit = src == out.index_select(0, index)                           # src[i] is its row's extremum
        ties = (out == 0).to(src.dtype).index_add_(0, index, hit.to(src.dtype))
        return hit * (grad / ties).index_select(0, index), None, None, None


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
        elif reduce in ("max", "min") and src.requires_grad and torch.is_grad_enabled():
            out = _SegmentExtremum.apply(src, index, num_out, _REDUCE[reduce])
        else:
            out = out.scatter_reduce(0, index.unsqueeze(1).expand_as(src), src, _REDUCE[reduce], include_self=False)
    return out.squeeze(1) if squeeze else out
