"""Sparse convolution modules with spconv 2.x's constructor arguments and weight layout [C_out, *kernel, C_in].

    SubMConv{2,3}d          output sites = input sites (submanifold); F.convNd with "same" padding at the sites
    SparseConv{2,3}d        strided; output sites = every site the receptive fields touch (spconv's set)
    SparseInverseConv{2,3}d back to the sites of the strided conv that made the input (F.conv_transposeNd there)

A state_dict loads in either direction between these and spconv's modules of the same configuration.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import nn

from . import backend as _backend
from .functional import sparse_conv
from .kmap import inverse_kmap, strided_kmap, subm_kmap
from .tensor import SparseTensor

IntOrSeq = Union[int, Sequence[int]]


def _ntuple(v: IntOrSeq, n: int, name: str) -> tuple:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(x) for x in v)
    if len(v) != n:
        raise ValueError(f"{name} must be an int or {n} ints, got {v}")
    return v


class _SparseConvNd(nn.Module):
    """Shared body of the sparse convolutions; subclasses set `_ndim`, `subm` and `inverse`."""

    _ndim = 3
    subm = False
    inverse = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrSeq = 3, stride: IntOrSeq = 1,
                 padding: IntOrSeq = 0, dilation: IntOrSeq = 1, bias: bool = True,
                 indice_key: Optional[str] = None, backend: Optional[str] = None) -> None:
        super().__init__()
        ndim = self._ndim
        name = type(self).__name__
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"{name}: channels must be positive, got {in_channels} -> {out_channels}")
        self.ndim = ndim
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _ntuple(kernel_size, ndim, "kernel_size")
        self.stride = _ntuple(stride, ndim, "stride")
        self.padding = _ntuple(padding, ndim, "padding")
        self.dilation = _ntuple(dilation, ndim, "dilation")
        if min(self.stride + self.dilation + self.kernel_size) <= 0 or min(self.padding) < 0:
            raise ValueError(f"{name}: kernel_size, stride and dilation must be positive and padding >= 0")
        if self.subm and any(s != 1 for s in self.stride):
            raise ValueError(f"{name} keeps the input sites, so stride must be 1, got {self.stride}")
        self.indice_key = indice_key
        self.backend = _backend.check_backend(backend)
        self.weight = nn.Parameter(torch.empty(out_channels, *self.kernel_size, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()
        self._spconv_module = None

    def reset_parameters(self) -> None:
        # spconv's init: kaiming_uniform(a=sqrt(5)) with fan_in = C_in * kernel volume -> U(-1/sqrt(fan_in), ...)
        fan_in = self.in_channels * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if not self.subm:
            s += f", stride={self.stride}"
        if any(self.padding) and not self.subm:
            s += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.indice_key:
            s += f", indice_key={self.indice_key!r}"
        return s

    def _check_input(self, x: SparseTensor) -> None:
        if not isinstance(x, SparseTensor):
            raise TypeError(f"{type(self).__name__} takes a SparseTensor, got {type(x).__name__}")
        if x.ndim != self.ndim:
            raise ValueError(f"{type(self).__name__} is {self.ndim}-D but the input has {x.ndim} spatial axes")
        if x.num_channels != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects {self.in_channels} input channels, got {x.num_channels}")

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check_input(x)
        if _backend.resolve(self.backend, x.device) == "spconv":
            return self._forward_spconv(x)
        feats = x.feats
        if feats.is_cuda and torch.is_autocast_enabled("cuda"):
            feats = feats.to(torch.get_autocast_dtype("cuda"))
        if self.subm:
            kmap = subm_kmap(x.coord_set, self.kernel_size, self.dilation)
            return x.replace(feats=sparse_conv(feats, self.weight, kmap, self.bias))
        if self.inverse:
            kmap, parent, conv_stride = inverse_kmap(x.coord_set, self.kernel_size, self.indice_key)
            stride = tuple(s // c for s, c in zip(x.stride, conv_stride))
            return x.with_coords(sparse_conv(feats, self.weight, kmap, self.bias), parent, stride)
        kmap, out_cs = strided_kmap(x.coord_set, self.kernel_size, self.stride, self.padding, self.dilation,
                                    self.indice_key)
        stride = tuple(s * c for s, c in zip(x.stride, self.stride))
        return x.with_coords(sparse_conv(feats, self.weight, kmap, self.bias), out_cs, stride)

    # ------------------------------------------------------------------ spconv backend
    def _make_spconv(self):
        import spconv.pytorch as spconv
        names = {(3, "subm"): "SubMConv3d", (3, "conv"): "SparseConv3d", (3, "inv"): "SparseInverseConv3d",
                 (2, "subm"): "SubMConv2d", (2, "conv"): "SparseConv2d", (2, "inv"): "SparseInverseConv2d"}
        kind = "subm" if self.subm else ("inv" if self.inverse else "conv")
        cls = getattr(spconv, names[(self.ndim, kind)])
        if self.inverse:
            return cls(self.in_channels, self.out_channels, self.kernel_size, indice_key=self.indice_key,
                       bias=self.bias is not None)
        return cls(self.in_channels, self.out_channels, self.kernel_size, stride=self.stride, padding=self.padding,
                   dilation=self.dilation, bias=self.bias is not None, indice_key=self.indice_key)

    def _forward_spconv(self, x: SparseTensor) -> SparseTensor:
        if self.inverse and self.indice_key is None:
            raise ValueError("the spconv backend needs indice_key on SparseInverseConv (and on the conv it inverts)")
        if self._spconv_module is None:
            self._spconv_module = [self._make_spconv()]  # a list keeps it out of this module's state_dict
        mod = self._spconv_module[0].to(x.device)
        t = x.to_spconv()
        t.indice_dict = dict(getattr(x.coord_set, "spconv_indice_dict", {}))
        params = {"weight": self.weight}
        if self.bias is not None:
            params["bias"] = self.bias
        out = torch.func.functional_call(mod, params, (t,))
        if self.subm:
            res = x.replace(feats=out.features)
        else:
            stride = tuple(s * c for s, c in zip(x.stride, self.stride)) if not self.inverse else x.stride
            res = SparseTensor(out.features, out.indices, tuple(out.spatial_shape), out.batch_size, stride,
                               x.voxel_size, x.origin, check=False)
        res.coord_set.spconv_indice_dict = out.indice_dict
        return res


class _SparseInverseConvNd(_SparseConvNd):
    inverse = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrSeq = 3,
                 indice_key: Optional[str] = None, bias: bool = True, backend: Optional[str] = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, 1, 0, 1, bias, indice_key, backend)


class SubMConv3d(_SparseConvNd):
    """Submanifold 3-D sparse convolution: F.conv3d with 'same' padding, evaluated at the input sites."""
    _ndim, subm = 3, True


class SparseConv3d(_SparseConvNd):
    """Strided 3-D sparse convolution: F.conv3d at every site that the input's receptive fields touch."""
    _ndim = 3


class SparseInverseConv3d(_SparseInverseConvNd):
    """Inverse of the strided 3-D conv that made the input (F.conv_transpose3d at that conv's input sites)."""
    _ndim = 3


class SubMConv2d(_SparseConvNd):
    """Submanifold 2-D sparse convolution."""
    _ndim, subm = 2, True


class SparseConv2d(_SparseConvNd):
    """Strided 2-D sparse convolution."""
    _ndim = 2


class SparseInverseConv2d(_SparseInverseConvNd):
    """Inverse of the strided 2-D conv that made the input."""
    _ndim = 2
