"""CoherentGS's implicit convolutional decoder (Paliwal et al., ECCV 2024, §4.1 "single-view constraint") over
the per-pixel Gaussians' 2-D :class:`~perception3d.sparse.SparseTensor`.

The decoder maps a fixed code of the input view (a positional encoding γ(c) of the view's index c ∈ [0, 1]) to
one residual per depth layer at every pixel site: ``o = f_θ(γ(c))`` with ``o`` of ``num_mask_channels`` channels.
Like the authors' X-Fields-style decoder (``scene/decoder.py``) it starts at a grid of ~2 × 2 cells, and each
level doubles the resolution by bilinear upsampling followed by a 3 × 3 convolution and a LeakyReLU(0.2); the
coarsest level concatenates a coordinate map (CoordConv). Because every Gaussian of a layer gets its residual from
the same smooth convolutional generator, neighbouring Gaussians move together (coherence) instead of
independently.

Here the grid is sparse: each level is the set of cells at stride 2^l that hold at least one pixel site
(:class:`PixelPyramid`), the convolutions are :class:`~perception3d.sparse.SubMConv2d` (kernel maps cached on each
level's coordinate set) and the upsampling is bilinear over the sites that exist (weights renormalised where a
neighbour has no site, e.g. outside an object mask).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception3d.sparse import SparseTensor, SubMConv2d
from perception3d.sparse.tensor import linearize

__all__ = ["PixelPyramid", "SparseImplicitDecoder", "view_code", "layer_widths"]


def view_code(num_views: int, num_freqs: int = 10) -> Tensor:
    """The decoders' input: γ(c) for c = linspace(0, 1, V), γ(c) = (sin 2^k c, cos 2^k c), k = 0 … F − 1
    (NeRF's encoding without the identity, as the authors' ``get_embedder(10)``). → [V, 2F]."""
    c = torch.linspace(0, 1, num_views) if num_views > 1 else torch.zeros(1)
    f = 2.0 ** torch.arange(num_freqs, dtype=torch.float32)
    x = c[:, None] * f[None]
    return torch.stack([torch.sin(x), torch.cos(x)], -1).reshape(num_views, 2 * num_freqs)


def layer_widths(num_levels: int, ngf: int) -> list[int]:
    """Channel widths from the coarsest level to the finest: [16, 16, 16, 8, 8, 8, 4, 4, …] × ngf (authors'
    ``layer_specs``)."""
    spec = [16, 16, 16, 8, 8, 8, 4]
    spec += [4] * max(0, num_levels - len(spec))
    return [s * ngf for s in spec[:num_levels]]


class PixelPyramid:
    """The pixel sites at strides 1, 2, 4, … 2^L and the bilinear upsampling from each level to the next finer.

    Args:
        grid: the per-pixel SparseTensor (coords (view, y, x)); its coordinate set is level 0.
        coarsest: L; None = the level at which the larger image side has ≤ 2 cells (the authors' 2 × 2 start).
    """

    def __init__(self, grid: SparseTensor, coarsest: Optional[int] = None):
        H, W = grid.spatial_shape
        if coarsest is None:
            coarsest = max(1, math.ceil(math.log2(max(H, W) / 2)))
        self.levels = [grid.replace(feats=grid.feats[:, :0])]
        self._up: list[tuple[Tensor, Tensor]] = [None]  # level l → l − 1: (indices [N_{l-1}, 4], weights)
        for _ in range(coarsest):
            fine = self.levels[-1]
            h, w = (fine.spatial_shape[0] + 1) // 2, (fine.spatial_shape[1] + 1) // 2
            c = fine.coords.long()
            cc = torch.cat([c[:, :1], c[:, 1:] // 2], 1)
            key = linearize(cc, (h, w))
            uniq = torch.unique(key)  # sorted
            coords = torch.stack([uniq // (h * w), (uniq // w) % h, uniq % w], 1).int()
            coarse = SparseTensor(coords.new_zeros((len(coords), 0), dtype=torch.float32), coords, (h, w),
                                  grid.batch_size, stride=fine.stride[0] * 2, check=False)
            self.levels.append(coarse)
            self._up.append(self._bilinear(c, uniq, (h, w)))

    @property
    def coarsest(self) -> int:
        return len(self.levels) - 1

    @staticmethod
    def _bilinear(fine: Tensor, coarse_keys: Tensor, shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Bilinear weights of the four coarse cells around each fine site's centre (align_corners=False
        geometry: fine centre y + 0.5 sits at coarse (y + 0.5) / 2 − 0.5); missing cells get weight 0 and the
        rest are renormalised (the parent cell always exists and carries ≥ 9/16)."""
        h, w = shape
        b = fine[:, 0]
        yc = (fine[:, 1].double() + 0.5) / 2 - 0.5
        xc = (fine[:, 2].double() + 0.5) / 2 - 0.5
        y0, x0 = torch.floor(yc).long(), torch.floor(xc).long()
        wy, wx = (yc - y0).float(), (xc - x0).float()
        idx, wts = [], []
        for dy, fy in ((0, 1 - wy), (1, wy)):
            for dx, fx in ((0, 1 - wx), (1, wx)):
                y, x = y0 + dy, x0 + dx
                inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
                key = (b * h + y.clamp(0, h - 1)) * w + x.clamp(0, w - 1)
                pos = torch.searchsorted(coarse_keys, key).clamp_max(len(coarse_keys) - 1)
                found = inside & (coarse_keys[pos] == key)
                idx.append(torch.where(found, pos, torch.zeros_like(pos)))
                wts.append(torch.where(found, fy * fx, torch.zeros_like(fx)))
        idx, wts = torch.stack(idx, 1), torch.stack(wts, 1)
        return idx, wts / wts.sum(1, keepdim=True)

    def upsample(self, feats: Tensor, level: int) -> Tensor:
        """Features [N_level, C] of ``level`` → [N_{level-1}, C] at the next finer level."""
        idx, w = self._up[level]
        return (feats[idx] * w[..., None]).sum(1)

    def coordconv(self, level: int) -> Tensor:
        """[N_level, 2] cell centres of ``level`` in [−1, 1] (x, y): the CoordConv channels."""
        t = self.levels[level]
        h, w = t.spatial_shape
        c = t.coords.float()
        return torch.stack([2 * (c[:, 2] + 0.5) / w - 1, 2 * (c[:, 1] + 0.5) / h - 1], 1)

    def to(self, device) -> "PixelPyramid":
        self.levels = [t.to(device) for t in self.levels]
        self._up = [None] + [(i.to(device), w.to(device)) for i, w in self._up[1:]]
        return self


class SparseImplicitDecoder(nn.Module):
    """f_θ: view code → per-layer residuals at every pixel site (module doc).

    Args:
        in_channels: channels of the view code (2 × embed_freqs).
        out_channels: one per depth layer (num_mask_channels).
        widths: channels per level from the pyramid's coarsest level down to ``finest_level``
            (:func:`layer_widths`).
        finest_level: the last convolution runs at this level; the result is upsampled to the pixels.
    """

    def __init__(self, in_channels: int, out_channels: int, widths: Sequence[int], finest_level: int = 0):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) <= 0:
            raise ValueError(f"SparseImplicitDecoder: widths must be positive, got {widths}")
        self.finest_level = int(finest_level)
        self.num_levels = len(widths)
        # coarsest level: a 1 × 1 conv of the code (authors' upconv1), then CoordConv's two channels join
        self.head = SubMConv2d(in_channels, widths[0], 1)
        convs, c = [], widths[0] + 2
        for wd in widths[1:]:
            convs.append(SubMConv2d(c, wd, 3))
            c = wd
        self.convs = nn.ModuleList(convs)
        self.last = SubMConv2d(c, out_channels, 3)
        for m in self.modules():  # authors: N(0, 0.02) weights, zero bias
            if isinstance(m, SubMConv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, pyramid: PixelPyramid, code: Tensor) -> Tensor:
        """pyramid of the pixel sites, code [V, C_in] → residuals [N_pixels, out_channels] (before tanh)."""
        top = self.finest_level + self.num_levels - 1
        if top > pyramid.coarsest:
            raise ValueError(f"SparseImplicitDecoder: {self.num_levels} levels from level {self.finest_level} need "
                             f"a pyramid of {top} levels, it has {pyramid.coarsest}")
        t = pyramid.levels[top]
        f = code[t.coords[:, 0].long()]
        f = F.leaky_relu(self.head(t.replace(feats=f)).feats, 0.2)
        f = torch.cat([f, pyramid.coordconv(top)], 1)
        for k, conv in enumerate(self.convs):
            level = top - 1 - k
            f = pyramid.upsample(f, level + 1)
            f = F.leaky_relu(conv(pyramid.levels[level].replace(feats=f)).feats, 0.2)
        f = self.last(pyramid.levels[self.finest_level].replace(feats=f)).feats
        for level in range(self.finest_level, 0, -1):
            f = pyramid.upsample(f, level)
        return f
