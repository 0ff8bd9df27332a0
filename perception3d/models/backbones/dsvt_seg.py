"""``DSVTSegBackbone``: DSVT as a LiDAR semantic-segmentation backbone (this package's design; the DSVT authors
publish detection models only, no segmentation recipe).

    points → voxels (mean features) → [input BatchNorm]
    → stem: SubM 3³ (C_in → d) → BN → ReLU → SubM 3³ → BN → ReLU
    → DSVT-V blocks on the 3-D voxels (one stage, no pooling, so every voxel keeps its own feature): rotated
      sets inside 3-D windows, the base and the shifted hybrid window alternating between blocks (DSVT §3.1)
    → concat(stem, DSVT) → Linear → BN → ReLU  (voxel-wise features, ``out_channels``; a ``SegHead`` classifies
      them and ``PointSegmentor`` projects them onto the points)

Windows should span the whole z extent of the grid (as the first stage of the authors' DSVT-V Waymo model,
window (12, 12, 32) on 32 z levels) so that a set mixes ground, objects and what stands on them.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from perception3d.models.backbones.dsvt import DSVT
from perception3d.models.backbones.subm_resnet import SparseBNReLU
from perception3d.registry import MODELS
from perception3d.sparse import SparseTensor, SubMConv3d, grid_shape

from .voxel_input import PointVoxelInput, SparseInputNorm

__all__ = ["DSVTSegBackbone"]


@MODELS.register_module()
class DSVTSegBackbone(PointVoxelInput, nn.Module):
    """Args: in_channels; d_model, nhead, dim_feedforward, set_size, num_blocks (DSVT blocks, alternating
    window configurations); window_shape (wx, wy, wz) in voxels; voxel_size, point_range (x, y, z order);
    out_channels (width of the fused voxel features); input_norm (:class:`SparseInputNorm` on the voxels' raw
    features before the stem: metres and intensity at one scale).

    ``forward(points)`` → (voxel features SparseTensor at stride 1, point2voxel [N_total]).
    """

    def __init__(self, in_channels: int = 4, d_model: int = 64, nhead: int = 4, dim_feedforward: int = 128,
                 set_size: int = 36, num_blocks: int = 2, window_shape: Sequence[int] = (12, 12, 40),
                 voxel_size: Sequence[float] = (0.2, 0.2, 0.2),
                 point_range: Sequence[float] = (-32.0, -32.0, -3.0, 32.0, 32.0, 5.0),
                 out_channels: Optional[int] = None, input_norm: bool = False) -> None:
        super().__init__()
        self.voxel_size, self.point_range = tuple(voxel_size), tuple(point_range)
        self.input_norm = SparseInputNorm(in_channels) if input_norm else None
        grid = grid_shape(voxel_size, point_range)
        self.stem = nn.ModuleList([SubMConv3d(in_channels, d_model, 3, padding=1, bias=False), SparseBNReLU(d_model),
                                   SubMConv3d(d_model, d_model, 3, padding=1, bias=False), SparseBNReLU(d_model)])
        self.dsvt = DSVT(grid_size=grid, window_shape=[list(window_shape)], set_info=[[set_size, num_blocks]],
                         d_model=[d_model], nhead=[nhead], dim_feedforward=[dim_feedforward],
                         shifts_list=[[(0, 0, 0), tuple(w // 2 for w in window_shape)]])
        self.out_channels = int(out_channels or d_model)
        self.fuse = nn.Sequential(nn.Linear(2 * d_model, self.out_channels, bias=False),
                                  nn.BatchNorm1d(self.out_channels, eps=1e-3, momentum=0.01), nn.ReLU(inplace=True))

    def forward(self, points) -> Tuple[SparseTensor, Optional[Tensor]]:
        x, p2v = self.input_voxels(points)
        for layer in self.stem:
            x = layer(x)
        feats, coords = self.dsvt.forward_tensors(x.feats, x.coords)
        if not torch.equal(coords.to(x.coords.dtype), x.coords):      # one stage keeps the voxels and their order
            raise RuntimeError("DSVTSegBackbone: DSVT changed the voxel set; use one stage without pooling")
        return x.replace(feats=self.fuse(torch.cat([x.feats, feats], 1))), p2v
