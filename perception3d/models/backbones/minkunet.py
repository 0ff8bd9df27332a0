"""``MinkUNetBackbone``: the submanifold sparse-conv U-Net of MinkowskiNet (Choy et al., CVPR 2019) as mmdet3d
builds it (``MinkUNetBackbone``, SPVNAS's ``MinkUNet``), over this package's ``SparseTensor``.

    points → voxels (mean of the points' features) → [input BatchNorm]
           → stem: 2 × (SubM 3³ → BN → ReLU) (C_in → base)
    encoder stage i:  SparseConv k2s2 (down) → BN → ReLU, then ``encoder_blocks[i]`` residual blocks
                      (SubM 3³ → BN → ReLU → SubM 3³ → BN, + identity or a 1×1 projection, ReLU)
    decoder stage i:  SparseInverseConv k2 (up; the inverse of the encoder's down conv, same sites) → BN → ReLU,
                      concatenate the encoder's skip at that stride, then ``decoder_blocks[i]`` residual blocks
    → voxel features at stride 1 (``out_channels`` = decoder_channels[-1]), plus point2voxel.

mmdet3d's MinkUNet18-W32 (SemanticKITTI): base 32, encoder (32, 64, 128, 256) × (2, 2, 2, 2), decoder (256, 128,
96, 96) × (2, 2, 2, 2), voxel 0.05 m, head Linear(96 → 19); MinkUNet34: encoder blocks (2, 3, 4, 6).

Input normalisation (``input_norm=True``, off by default as in the reference): the voxel features are the raw point
columns, metres for x, y, z (up to tens of metres) beside an intensity below 1, so in the first convolution the
intensity is ~1/100 of the signal and a class told apart only by it (lane markings on asphalt) is not learned
in a short schedule.  A BatchNorm1d over the input columns (Cylinder3D's point-feature network starts the same
way) puts every column on unit scale.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from perception3d.models.backbones.subm_resnet import SparseBNReLU
from perception3d.registry import MODELS
from perception3d.sparse import SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d

from .voxel_input import PointVoxelInput, SparseInputNorm

__all__ = ["MinkUNetBackbone", "SparseResBlock", "SparseInputNorm"]


class SparseResBlock(nn.Module):
    """Residual block ``SubM 3³ → BN → ReLU → SubM 3³ → BN`` + (identity | SubM 1×1 → BN), ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = SubMConv3d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = SparseBNReLU(out_channels)
        self.conv2 = SubMConv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = SparseBNReLU(out_channels, relu=False)
        self.proj = None
        if in_channels != out_channels:
            self.proj = nn.ModuleList([SubMConv3d(in_channels, out_channels, 1, bias=False),
                                       SparseBNReLU(out_channels, relu=False)])

    def forward(self, x: SparseTensor) -> SparseTensor:
        out = self.bn2(self.conv2(self.bn1(self.conv1(x))))
        idn = x if self.proj is None else self.proj[1](self.proj[0](x))
        return out.replace(feats=(out.feats + idn.feats).relu())


class _ConvBNReLU(nn.Module):
    def __init__(self, conv: nn.Module, channels: int) -> None:
        super().__init__()
        self.conv, self.bn = conv, SparseBNReLU(channels)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.bn(self.conv(x))


@MODELS.register_module()
class MinkUNetBackbone(PointVoxelInput, nn.Module):
    """MinkUNet encoder–decoder (see the module docstring).

    Args:
        in_channels: point feature width (x, y, z, intensity … as the dataset serves them).
        base_channels: stem width.
        encoder_channels, encoder_blocks, decoder_channels, decoder_blocks: per stage (equal lengths).
        voxel_size, point_range: voxelisation (x, y, z order).
        input_norm: :class:`SparseInputNorm` over the voxels' input features before the stem.
    ``forward(points)`` → (voxel features SparseTensor at stride 1, point2voxel [N_total]).
    """

    def __init__(self, in_channels: int = 4, base_channels: int = 32,
                 encoder_channels: Sequence[int] = (32, 64, 128, 256), encoder_blocks: Sequence[int] = (2, 2, 2, 2),
                 decoder_channels: Sequence[int] = (256, 128, 96, 96), decoder_blocks: Sequence[int] = (2, 2, 2, 2),
                 voxel_size: Sequence[float] = (0.05, 0.05, 0.05),
                 point_range: Sequence[float] = (-51.2, -51.2, -4.0, 51.2, 51.2, 2.4),
                 input_norm: bool = False) -> None:
        super().__init__()
        n = len(encoder_channels)
        if not (len(encoder_blocks) == len(decoder_channels) == len(decoder_blocks) == n):
            raise ValueError("MinkUNetBackbone: encoder/decoder channels and blocks must have the same length, got "
                             f"{list(encoder_channels)}, {list(encoder_blocks)}, {list(decoder_channels)}, "
                             f"{list(decoder_blocks)}")
        self.voxel_size, self.point_range = tuple(voxel_size), tuple(point_range)
        self.input_norm = SparseInputNorm(in_channels) if input_norm else None
        self.stem = nn.ModuleList([
            _ConvBNReLU(SubMConv3d(in_channels, base_channels, 3, padding=1, bias=False), base_channels),
            _ConvBNReLU(SubMConv3d(base_channels, base_channels, 3, padding=1, bias=False), base_channels)])
        enc = [base_channels] + list(encoder_channels)
        self.encoder = nn.ModuleList()
        for i in range(n):
            layers: List[nn.Module] = [_ConvBNReLU(SparseConv3d(enc[i], enc[i], 2, stride=2, bias=False,
                                                                indice_key=f"down{i}"), enc[i])]
            layers += [SparseResBlock(enc[i] if j == 0 else enc[i + 1], enc[i + 1]) for j in range(encoder_blocks[i])]
            self.encoder.append(nn.ModuleList(layers))
        dec = [enc[-1]] + list(decoder_channels)
        self.decoder = nn.ModuleList()
        for i in range(n):
            skip = enc[n - 1 - i]
            up = _ConvBNReLU(SparseInverseConv3d(dec[i], dec[i + 1], 2, bias=False,
                                                 indice_key=f"down{n - 1 - i}"), dec[i + 1])
            blocks = [SparseResBlock(dec[i + 1] + skip if j == 0 else dec[i + 1], dec[i + 1])
                      for j in range(decoder_blocks[i])]
            self.decoder.append(nn.ModuleList([up] + blocks))
        self.out_channels = dec[-1]

    def forward(self, points) -> Tuple[SparseTensor, Optional[Tensor]]:
        x, p2v = self.input_voxels(points)
        for layer in self.stem:
            x = layer(x)
        skips = [x]
        for stage in self.encoder:
            for layer in stage:
                x = layer(x)
            skips.append(x)
        skips.pop()
        for stage in self.decoder:
            x = stage[0](x)
            skip = skips.pop()
            x = x.replace(feats=torch.cat([x.feats, skip.feats], 1))
            for layer in stage[1:]:
                x = layer(x)
        return x, p2v
