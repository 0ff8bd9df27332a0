"""Sparse pooling over active sites only (spconv's semantics): an inactive input site never counts.

SparseMaxPool / SparseAvgPool use the strided kernel map (same output sites as SparseConv with the same
kernel, stride, padding, dilation). `global_pool` reduces each batch entry to one vector.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .conv import IntOrSeq, _ntuple
from .functional import sparse_pool
from .kmap import strided_kmap
from .scatter import scatter_reduce
from .tensor import SparseTensor


class _SparsePoolNd(nn.Module):
    _ndim = 3
    mode = "max"

    def __init__(self, kernel_size: IntOrSeq = 3, stride: Optional[IntOrSeq] = 1, padding: IntOrSeq = 0,
                 dilation: IntOrSeq = 1, indice_key: Optional[str] = None) -> None:
        super().__init__()
        n = self._ndim
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size")
        self.stride = self.kernel_size if stride is None else _ntuple(stride, n, "stride")
        self.padding = _ntuple(padding, n, "padding")
        self.dilation = _ntuple(dilation, n, "dilation")
        self.indice_key = indice_key

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, x: SparseTensor) -> SparseTensor:
        if not isinstance(x, SparseTensor) or x.ndim != self._ndim:
            raise ValueError(f"{type(self).__name__} takes a {self._ndim}-D SparseTensor")
        kmap, out_cs = strided_kmap(x.coord_set, self.kernel_size, self.stride, self.padding, self.dilation,
                                    self.indice_key)
        stride = tuple(s * c for s, c in zip(x.stride, self.stride))
        return x.with_coords(sparse_pool(x.feats, kmap, self.mode), out_cs, stride)


class SparseMaxPool3d(_SparsePoolNd):
    """max(0, max over the active inputs) at each output site (spconv's semantics; stride defaults to the kernel)."""
    _ndim, mode = 3, "max"

    def __init__(self, kernel_size: IntOrSeq = 3, stride: Optional[IntOrSeq] = None, padding: IntOrSeq = 0,
                 dilation: IntOrSeq = 1, indice_key: Optional[str] = None) -> None:
        super().__init__(kernel_size, stride, padding, dilation, indice_key)


class SparseAvgPool3d(_SparsePoolNd):
    """Mean over the active inputs of each output site (divides by the number of active inputs, not the
    kernel volume); stride defaults to 1 as in spconv."""
    _ndim, mode = 3, "avg"


class SparseMaxPool2d(SparseMaxPool3d):
    _ndim, mode = 2, "max"


class SparseAvgPool2d(_SparsePoolNd):
    _ndim, mode = 2, "avg"


def global_pool(x: SparseTensor, mode: str = "avg") -> torch.Tensor:
    """Pool every batch entry to one vector: [batch_size, C]. An entry with no sites gives zeros."""
    if mode not in ("avg", "max"):
        raise ValueError(f"global_pool mode must be 'avg' or 'max', got {mode!r}")
    return scatter_reduce(x.feats, x.coords[:, 0].long(), x.batch_size, "mean" if mode == "avg" else "max")
