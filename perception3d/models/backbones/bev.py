"""BEV side of a LiDAR detector: sparse → dense BEV map, then a 2D BEV backbone.

- ``HeightCompression`` (SECOND / CenterPoint-Voxel): a 3D SparseTensor [B, C, Z, Y, X] is densified and its
  height folded into channels → [B, C·Z, Y, X].
- ``PointPillarScatter`` (PointPillars / DSVT-P): a 2D SparseTensor (b, y, x), or a 3D one with Z = 1, is
  scattered into a dense [B, C, Y, X] canvas. Both go through ``bev_scatter``, which handles either case.
- ``BaseBEVBackbone`` (SECOND-FPN as in OpenPCDet): per level a strided 3×3 conv + ``layer_nums[i]`` 3×3 convs,
  each level up/down-sampled by ``upsample_strides[i]`` to a common stride and concatenated.
- ``BaseBEVResBackbone`` (DSVT's BEV ResNet): the same, with residual ``BasicBlock2d`` instead of plain convs.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from perception3d.registry import MODELS

__all__ = ["bev_scatter", "HeightCompression", "PointPillarScatter", "BaseBEVBackbone", "BaseBEVResBackbone",
           "BasicBlock2d"]


def bev_scatter(x) -> torch.Tensor:
    """SparseTensor (D = 2: (b, y, x); D = 3: (b, z, y, x)) → dense BEV map [B, C·Z, Y, X] (Z = 1 for D = 2).

    Channels of a 3D tensor are ordered channel-major (c·Z + z), as spconv's ``dense().view(B, C*Z, Y, X)``.
    """
    if isinstance(x, torch.Tensor):
        if x.dim() == 4:
            return x
        if x.dim() == 5:
            b, c, z, h, w = x.shape
            return x.reshape(b, c * z, h, w)
        raise ValueError(f"bev_scatter: expected a SparseTensor or a [B,C,Y,X]/[B,C,Z,Y,X] tensor, got {tuple(x.shape)}")
    dense = x.dense()
    if dense.dim() == 4:  # D = 2
        return dense
    if dense.dim() == 5:
        b, c, z, h, w = dense.shape
        return dense.reshape(b, c * z, h, w)
    raise ValueError(f"bev_scatter: SparseTensor with {len(x.spatial_shape)} spatial axes cannot become a BEV map")


@MODELS.register_module()
class HeightCompression(nn.Module):
    """3D sparse features → dense BEV by folding Z into channels. ``num_bev_features`` = C·Z (checked)."""

    def __init__(self, num_bev_features: int | None = None) -> None:
        super().__init__()
        self.num_bev_features = num_bev_features

    def forward(self, x) -> torch.Tensor:
        bev = bev_scatter(x)
        if self.num_bev_features is not None and bev.shape[1] != self.num_bev_features:
            raise ValueError(f"HeightCompression: got {bev.shape[1]} BEV channels (C·Z), config says "
                             f"num_bev_features={self.num_bev_features}; fix the config's Z range/voxel size")
        return bev


@MODELS.register_module()
class PointPillarScatter(HeightCompression):
    """Pillar (2D) sparse features → dense BEV canvas [B, C, Y, X]. Same as HeightCompression for Z = 1."""


def _conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), nn.ReLU()]


class BasicBlock2d(nn.Module):
    """ResNet basic block (two 3×3 convs + identity / 1×1-strided shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


def _check_lists(layer_nums, layer_strides, num_filters, upsample_strides, num_upsample_filters) -> None:
    n = len(layer_nums)
    for name, v in (("layer_strides", layer_strides), ("num_filters", num_filters)):
        if len(v) != n:
            raise ValueError(f"BEV backbone: {name} has {len(v)} entries, layer_nums has {n}")
    if len(upsample_strides) != len(num_upsample_filters):
        raise ValueError("BEV backbone: upsample_strides and num_upsample_filters differ in length")
    if len(upsample_strides) not in (0, n, n + 1):
        raise ValueError(f"BEV backbone: {len(upsample_strides)} upsample levels for {n} levels")


class _BEVBase(nn.Module):
    """Shared structure: per level a block from ``_level`` (the subclass's kind of block), then the deblock (FPN)
    part: level i is resampled by upsample_strides[i] and all levels concatenated."""

    def __init__(self, in_channels: int, layer_nums: Sequence[int], layer_strides: Sequence[int],
                 num_filters: Sequence[int], upsample_strides: Sequence[float] = (),
                 num_upsample_filters: Sequence[int] = ()) -> None:
        super().__init__()
        _check_lists(layer_nums, layer_strides, num_filters, upsample_strides, num_upsample_filters)
        self.blocks = nn.ModuleList()
        c_in = in_channels
        for n, s, f in zip(layer_nums, layer_strides, num_filters):
            self.blocks.append(self._level(c_in, f, s, n))
            c_in = f
        self._build_deblocks(num_filters, upsample_strides, num_upsample_filters)

    def _level(self, c_in: int, c_out: int, stride: int, num_extra: int) -> nn.Module:
        raise NotImplementedError

    def _build_deblocks(self, num_filters, upsample_strides, num_upsample_filters) -> None:
        self.deblocks = nn.ModuleList()
        for i, (us, nuf) in enumerate(zip(upsample_strides, num_upsample_filters)):
            if i >= len(num_filters):
                break
            if us >= 1:
                self.deblocks.append(nn.Sequential(
                    nn.ConvTranspose2d(num_filters[i], nuf, int(us), stride=int(us), bias=False),
                    nn.BatchNorm2d(nuf, eps=1e-3, momentum=0.01), nn.ReLU()))
            else:
                s = int(round(1 / us))
                self.deblocks.append(nn.Sequential(*_conv_bn_relu(num_filters[i], nuf, s, s, 0)))
        c_in = sum(num_upsample_filters) if num_upsample_filters else num_filters[-1]
        if len(upsample_strides) > len(num_filters):  # one extra up-sampling after the concat
            us = int(upsample_strides[-1])
            self.deblocks.append(nn.Sequential(
                nn.ConvTranspose2d(c_in, c_in, us, stride=us, bias=False),
                nn.BatchNorm2d(c_in, eps=1e-3, momentum=0.01), nn.ReLU()))
        self.num_bev_features = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, H, W] → [B, sum(num_upsample_filters), H', W']."""
        ups = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            ups.append(self.deblocks[i](x) if len(self.deblocks) > i else x)
        x = torch.cat(ups, dim=1) if len(ups) > 1 else ups[0]
        if len(self.deblocks) > len(self.blocks):
            x = self.deblocks[-1](x)
        return x


@MODELS.register_module()
class BaseBEVBackbone(_BEVBase):
    """SECOND-FPN BEV backbone (OpenPCDet ``BaseBEVBackbone``).

    Args:
        in_channels: channels of the BEV map from HeightCompression / PointPillarScatter.
        layer_nums / layer_strides / num_filters: per level, number of extra 3×3 convs, the stride of the
            level's first conv, and its width.
        upsample_strides / num_upsample_filters: per level, the transposed-conv stride (< 1: strided conv)
            bringing it to the common resolution, and its width. Output channels = sum(num_upsample_filters).
    """

    def _level(self, c_in: int, c_out: int, stride: int, num_extra: int) -> nn.Module:
        layers = [nn.ZeroPad2d(1), *_conv_bn_relu(c_in, c_out, 3, stride, 0)]
        for _ in range(num_extra):
            layers += _conv_bn_relu(c_out, c_out)
        return nn.Sequential(*layers)


@MODELS.register_module()
class BaseBEVResBackbone(_BEVBase):
    """DSVT's BEV ResNet: per level a strided ``BasicBlock2d`` + ``layer_nums[i]`` more; same FPN as above."""

    def _level(self, c_in: int, c_out: int, stride: int, num_extra: int) -> nn.Module:
        return nn.Sequential(BasicBlock2d(c_in, c_out, stride), *[BasicBlock2d(c_out, c_out) for _ in range(num_extra)])
