"""Dense PyTorch ground truth for sparse ops (shared by the sparse tests)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from perception3d.sparse import SparseTensor

CONV = {2: F.conv2d, 3: F.conv3d}
CONV_T = {2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAXPOOL = {2: F.max_pool2d, 3: F.max_pool3d}


def random_sparse(shape, batch_size, channels, density=0.25, seed=0, dtype=torch.float32) -> SparseTensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand((batch_size, *shape), generator=g) < density
    coords = mask.nonzero().int()
    feats = torch.randn(coords.shape[0], channels, generator=g, dtype=dtype)
    return SparseTensor(feats, coords, shape, batch_size)


def dense_weight(w_krsc: torch.Tensor) -> torch.Tensor:
    """spconv layout [C_out, *k, C_in] -> F.convNd layout [C_out, C_in, *k]."""
    return w_krsc.movedim(-1, 1)


def at_sites(dense: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """[B, C, *S] sampled at coords [N, 1 + D] -> [N, C]."""
    idx = tuple(coords.long().t())
    return dense.movedim(1, -1)[idx]


def active_mask(x: SparseTensor) -> torch.Tensor:
    m = torch.zeros((x.batch_size, 1, *x.spatial_shape), dtype=torch.float64)
    m[(x.coords[:, 0].long(), 0, *x.coords[:, 1:].long().t())] = 1
    return m


def touched_sites(x: SparseTensor, kernel, stride, padding, dilation) -> set:
    """Output sites of a strided conv: every site whose receptive field holds an active input."""
    nd = x.ndim
    ones = torch.ones((1, 1, *kernel), dtype=torch.float64)
    hit = CONV[nd](active_mask(x), ones, stride=stride, padding=padding, dilation=dilation)[:, 0] > 0
    return {tuple(r) for r in hit.nonzero().tolist()}


def site_set(x: SparseTensor) -> set:
    return {tuple(r) for r in x.coords.tolist()}
