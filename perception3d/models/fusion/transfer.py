"""SparseFusion's cross-modality information transfer (Xie et al., ICCV 2023, Sec. 3.2), applied *before* the two
branches pick their candidates, each switchable in the config (``semantic_transfer`` / ``geometric_transfer``).

* :class:`SemanticTransfer` — camera semantics → LiDAR BEV: every BEV cell centre ``(x, y)`` at a reference
  height ``z_ref`` is projected with ``lidar2img`` into each camera (``[u d, v d, d]ᵀ = lidar2img · [x, y, z, 1]ᵀ``);
  the image feature there is sampled bilinearly and averaged over the cameras that see the cell, then fused with
  the LiDAR BEV feature: ``F_bev' = ConvBNReLU([F_lidar, LN(Linear(F_img→bev)), n_views])``, and a heat map of
  its own is predicted from ``F_bev'`` (the authors' ``cross_heatmap_head``). It replaces the LiDAR heat map for
  the query initialisation (the authors' ``cross_only=True``), so objects with few points but clear appearance
  can still become LiDAR candidates, while the pre-trained LiDAR detector stays frozen. ``residual=True`` (a
  deviation, for short fusion stages): the transfer predicts a correction added to the frozen LiDAR heat map,
  zero at initialisation and in every cell no camera sees (a rig that does not cover 360° leaves the LiDAR heat
  map there as it was), so a fusion stage loaded from a TransFusion-L checkpoint starts from that model's
  candidates instead of a random heat map's (the authors' fresh ``cross_heatmap_head`` is trained for 6 epochs
  on nuScenes). (The authors gather with
  a multi-scale deformable decoder over all BEV cells; this build samples each camera's feature map at the
  projected point, which costs one ``grid_sample``.)
* :class:`GeometricTransfer` — LiDAR geometry → image features: the projected sparse LiDAR depth map
  (``SparseDepthMap``: normalised depth + hit mask, [B·V, 2, H/4, W/4]) is encoded by a ResNet with one basic block
  per pyramid level whose output is fused with that level's image feature, ``F_l' = Conv3x3([E_l(D), F_l])``
  (the authors' ``DepthEncoderResNet``), which gives the camera branch's monocular depth regression metric
  evidence. Disabled, each level goes through a plain 3×3 conv instead (the authors' ``shared_conv_img``).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perception3d.models.fusion.layers import heatmap_head

__all__ = ["SemanticTransfer", "GeometricTransfer", "bev_cell_centres"]


def bev_cell_centres(h: int, w: int, pc_range: Sequence[float], cell: Sequence[float],
                     device=None) -> torch.Tensor:
    """[H·W, 2] metric (x, y) of the BEV cell centres, row-major (index y·W + x)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([(xs.reshape(-1) + 0.5) * cell[0] + pc_range[0],
                        (ys.reshape(-1) + 0.5) * cell[1] + pc_range[1]], -1)


class SemanticTransfer(nn.Module):
    """Image features → LiDAR BEV. Shapes: ``bev`` [B, C, H, W], ``img_feat`` [B·V, C, h, w] (one pyramid level),
    ``lidar2img`` [B, V, 4, 4] (to input-image pixels), ``img_size`` (H_img, W_img) → heat-map logits
    [B, n_cls, H, W]."""

    def __init__(self, channels: int, num_classes: int, pc_range: Sequence[float], cell: Optional[Sequence[float]],
                 z_ref: float = 0.0, residual: bool = False):
        super().__init__()
        # cell None: set by SparseFusionHead.use_grid from the BEV grid before the first forward
        self.pc_range, self.z_ref = list(pc_range), float(z_ref)
        self.cell = None if cell is None else list(cell)
        self.residual = bool(residual)
        self.img_proj = nn.Sequential(nn.Linear(channels, channels), nn.LayerNorm(channels))
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels + 1, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.heatmap_head = heatmap_head(channels, num_classes)
        if self.residual:  # the correction starts at 0: the heat map starts as the LiDAR one
            nn.init.zeros_(self.heatmap_head[-1].weight)
            nn.init.zeros_(self.heatmap_head[-1].bias)

    def image_to_bev(self, img_feat: torch.Tensor, lidar2img: torch.Tensor, img_size: Sequence[int], h: int,
                     w: int) -> torch.Tensor:
        """[B·V, C, h', w'] → (img_bev [B, C, H·W], n_views [B, 1, H·W]): mean over the cameras that see each cell."""
        b, v = lidar2img.shape[:2]
        c = img_feat.shape[1]
        xy = bev_cell_centres(h, w, self.pc_range, self.cell, img_feat.device)
        pts = torch.cat([xy, torch.full_like(xy[:, :1], self.z_ref), torch.ones_like(xy[:, :1])], -1)  # [N, 4]
        q = torch.einsum("bvij,nj->bvni", lidar2img.float(), pts)                 # [B, V, N, 4]
        d = q[..., 2]
        uv = q[..., :2] / d.clamp(min=1e-5)[..., None]
        hi, wi = img_size
        ok = (d > 1e-3) & (uv[..., 0] >= 0) & (uv[..., 0] < wi) & (uv[..., 1] >= 0) & (uv[..., 1] < hi)
        grid = torch.stack([uv[..., 0] / wi * 2 - 1, uv[..., 1] / hi * 2 - 1], -1)  # align_corners=False
        grid = grid.reshape(b * v, 1, -1, 2).clamp(-2, 2)
        s = F.grid_sample(img_feat, grid, align_corners=False).reshape(b, v, c, -1)  # [B, V, C, N]
        m = ok.float()[:, :, None]
        n = m.sum(1)                                                               # [B, 1, N]
        return (s * m).sum(1) / n.clamp(min=1), n

    def forward(self, bev: torch.Tensor, img_feat: torch.Tensor, lidar2img: torch.Tensor,
                img_size: Sequence[int], lidar_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``lidar_logits`` [B, n_cls, H, W]: with ``residual=True`` the LiDAR heat map the image evidence corrects
        (``Ŝ = S_lidar + ΔS(F_bev')``; required then)."""
        b, c, h, w = bev.shape
        img_bev, n = self.image_to_bev(img_feat, lidar2img, img_size, h, w)
        img_bev = self.img_proj(img_bev.transpose(1, 2)).transpose(1, 2) * (n > 0).float()
        fused = self.fuse(torch.cat([bev, img_bev.reshape(b, c, h, w), n.reshape(b, 1, h, w)], 1))
        if not self.residual:
            return self.heatmap_head(fused)
        if lidar_logits is None:
            raise ValueError("SemanticTransfer(residual=True) needs the LiDAR heat-map logits (lidar_logits)")
        # image evidence corrects the cells a camera sees; elsewhere the heat map stays the LiDAR one
        return lidar_logits + self.heatmap_head(fused) * (n > 0).float().reshape(b, 1, h, w)


class GeometricTransfer(nn.Module):
    """Sparse LiDAR depth → image features (the authors' ``DepthEncoderResNet``). Shapes: ``feats`` list of
    [B·V, C_in, h_l, w_l] (pyramid levels at strides 4, 8, 16, …), ``depth`` [B·V, 2, H/4, W/4] or None →
    list of [B·V, C, h_l, w_l].

    ``D_0 = ConvBNReLU(depth)``; per level ``l``: ``D_l' = BasicBlock_l(D_{l-1})`` (stride 1 at the first level,
    2 after), ``D_l = Conv3x3([D_l', F_l])`` — the output of a level is both the image feature handed to the
    camera branch and the input of the next level's depth block, so LiDAR geometry flows through every scale.
    ``enabled=False``: one shared 3×3 conv ``C_in → C`` per level instead (the authors' ``shared_conv_img``).
    """

    def __init__(self, in_channels: int, channels: int, num_levels: int, depth_channels: int = 2,
                 enabled: bool = True):
        super().__init__()
        self.enabled = enabled
        if not enabled:
            self.shared_conv = nn.Conv2d(in_channels, channels, 3, padding=1)
            return
        from perception3d.models.fusion.image_backbone import BasicBlock
        self.conv_depth = nn.Sequential(nn.Conv2d(depth_channels, channels, 3, padding=1),
                                        nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.layers = nn.ModuleList()
        for i in range(num_levels):
            stride = 1 if i == 0 else 2
            down = None if stride == 1 else nn.Sequential(nn.Conv2d(channels, channels, 1, stride),
                                                          nn.BatchNorm2d(channels))
            self.layers.append(BasicBlock(channels, channels, stride, down))
        self.fuse_layers = nn.ModuleList(nn.Conv2d(in_channels + channels, channels, 3, padding=1)
                                         for _ in range(num_levels))

    def forward(self, feats: Sequence[torch.Tensor], depth: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        if not self.enabled:
            return [self.shared_conv(f) for f in feats]
        if depth is None:
            raise ValueError("GeometricTransfer: geometric_transfer=True needs 'sparse_depth' per sample (the "
                             "SparseDepthMap transform) — add it to the pipeline or disable the transfer")
        d = self.conv_depth(depth.float())
        out = []
        for block, fuse, f in zip(self.layers, self.fuse_layers, feats):
            d = block(d)
            if d.shape[-2:] != f.shape[-2:]:  # image size not a multiple of the largest stride
                d = F.interpolate(d, size=f.shape[-2:], mode="nearest")
            d = fuse(torch.cat([d, f], 1))
            out.append(d)
        return out
