"""``VoxelResBackBone8x``: the 3D sparse ResNet of CenterPoint-Voxel (OpenPCDet ``VoxelResBackBone8x``).

Input: a 3D SparseTensor (b, z, y, x) from a voxel encoder. Stages (channels, submanifold ResNet blocks):
  conv_input SubM 3³ → 16; conv1: 2 × SparseBasicBlock(16); conv2: SparseConv 3³/2 → 32, 2 blocks;
  conv3: SparseConv 3³/2 → 64, 2 blocks; conv4: SparseConv 3³/2 (z padding 0) → 128, 2 blocks;
  conv_out: SparseConv (3, 1, 1)/(2, 1, 1) → 128. Output stride 8 in x/y; feed to ``HeightCompression``.
``base_channels`` scales all widths (16 → 32 → 64 → 128 at 16), ``out_channels`` is conv_out's width.
``xy_strides`` are the x/y strides of the conv2 / conv3 / conv4 down-samplings (official (2, 2, 2): 8×; a
CPU-sized grid of coarser voxels can keep the official 0.8 m BEV cell with (2, 2, 1), the z stride stays 2).
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from perception3d.models.layers.z_pad import pad_z_one
from perception3d.registry import MODELS
from perception3d.sparse import SparseConv3d, SparseSequential, SubMConv3d

__all__ = ["VoxelResBackBone8x", "SparseBasicBlock", "SparseSequential", "SparseBNReLU"]


class SparseBNReLU(nn.Module):
    """BatchNorm1d (+ ReLU) on a SparseTensor's features."""

    def __init__(self, channels: int, relu: bool = True) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)
        self.relu = relu

    def forward(self, x):
        f = self.bn(x.feats)
        return x.replace(feats=f.relu() if self.relu else f)


class SparseBasicBlock(nn.Module):
    """Submanifold ResNet basic block: SubM 3³ → BN → ReLU → SubM 3³ → BN, + identity, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = SubMConv3d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = SparseBNReLU(channels)
        self.conv2 = SubMConv3d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = SparseBNReLU(channels, relu=False)

    def forward(self, x):
        out = self.bn2(self.conv2(self.bn1(self.conv1(x))))
        return out.replace(feats=(out.feats + x.feats).relu())


def _down(cin: int, cout: int, kernel, stride, padding) -> SparseSequential:
    return SparseSequential(SparseConv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
                            SparseBNReLU(cout))


@MODELS.register_module()
class VoxelResBackBone8x(nn.Module):
    """CenterPoint-Voxel's 3D backbone. Args: in_channels (voxel feature C), base_channels (16),
    out_channels (128), blocks_per_stage (2), last_pad (z padding of conv_out, 0), z_pad_one (add one z level),
    xy_strides (x/y strides of conv2, conv3, conv4; (2, 2, 2)).

    BEV channels after ``HeightCompression`` = out_channels · Z_out: the z extent (with the extra level) goes
    Z+1 → ⌈(Z+1)/2⌉ → ⌈·/2⌉ → (· − 3)//2 + 1 (conv4, no z padding) → (· − 3 + 2·last_pad)//2 + 1 (conv_out);
    Z = 40 → 2 (official: 128 · 2 = 256), Z = 24 or 30 → 1. Z must leave ≥ 3 levels before conv_out.
    """

    def __init__(self, in_channels: int, base_channels: int = 16, out_channels: int = 128,
                 blocks_per_stage: Sequence[int] | int = 2, last_pad: int = 0, z_pad_one: bool = True,
                 xy_strides: Sequence[int] = (2, 2, 2)) -> None:
        super().__init__()
        self.z_pad_one = z_pad_one
        xy = [int(v) for v in xy_strides]
        if len(xy) != 3 or any(v not in (1, 2) for v in xy):
            raise ValueError(f"VoxelResBackBone8x: xy_strides must be three strides of 1 or 2, got {xy_strides}")
        c = [base_channels, base_channels * 2, base_channels * 4, base_channels * 8]
        nb = [blocks_per_stage] * 4 if isinstance(blocks_per_stage, int) else list(blocks_per_stage)
        self.conv_input = SparseSequential(SubMConv3d(in_channels, c[0], 3, padding=1, bias=False),
                                           SparseBNReLU(c[0]))
        self.conv1 = SparseSequential(*[SparseBasicBlock(c[0]) for _ in range(nb[0])])
        self.conv2 = SparseSequential(_down(c[0], c[1], 3, (2, xy[0], xy[0]), 1),
                                      *[SparseBasicBlock(c[1]) for _ in range(nb[1])])
        self.conv3 = SparseSequential(_down(c[1], c[2], 3, (2, xy[1], xy[1]), 1),
                                      *[SparseBasicBlock(c[2]) for _ in range(nb[2])])
        self.conv4 = SparseSequential(_down(c[2], c[3], 3, (2, xy[2], xy[2]), (0, 1, 1)),
                                      *[SparseBasicBlock(c[3]) for _ in range(nb[3])])
        self.conv_out = _down(c[3], out_channels, (3, 1, 1), (2, 1, 1), last_pad)
        self.num_out_features = out_channels

    def forward(self, x):
        """SparseTensor (b, z, y, x), C = in_channels → SparseTensor at stride (16, 8, 8) (x/y: the product of
        ``xy_strides``), C = out_channels.

        As OpenPCDet (``sparse_shape = grid_size[::-1] + [1, 0, 0]``), the z extent gets one extra empty level
        (41 for 40 voxels) so that the z strides end at 2 levels for the official grid.
        """
        if self.z_pad_one:
            x = pad_z_one(x)
        x = self.conv_input(x)
        x = self.conv1(x)
        x = self.conv2(x)
        x = self.conv3(x)
        x = self.conv4(x)
        return self.conv_out(x)
