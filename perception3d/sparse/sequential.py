"""``SparseSequential``: a chain of modules over a SparseTensor, as spconv's ``SparseSequential``."""
from __future__ import annotations

from torch import nn

from .tensor import SparseTensor

__all__ = ["SparseSequential"]

#: modules that act on each row of a feature matrix [N, C]: given a SparseTensor, they get its ``feats``
FEATURE_MODULES = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid,
                   nn.Tanh, nn.Dropout, nn.Identity, nn.Linear, nn.LayerNorm)


class SparseSequential(nn.Sequential):
    """``nn.Sequential`` whose feature-wise members (BatchNorm1d, activations, Dropout, Linear, LayerNorm) are
    applied to a SparseTensor's ``feats`` (the coordinates and the kernel-map cache are kept); every other member
    (sparse conv / pool, blocks) takes and returns the SparseTensor. Parameter names are ``nn.Sequential``'s
    (``0.weight``, ``1.running_mean``, ...), so state dicts load as they would into spconv's."""

    def forward(self, x):
        for module in self:
            if isinstance(x, SparseTensor) and isinstance(module, FEATURE_MODULES):
                x = x.replace(feats=module(x.feats))
            else:
                x = module(x)
        return x
