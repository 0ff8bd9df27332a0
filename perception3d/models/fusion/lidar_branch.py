"""SparseFusion's LiDAR branch = TransFusion-L's head (Bai et al., CVPR 2022, Sec. 3.2; SparseFusion Sec. 3.1):
BEV features → class heat map → top-K instance queries (K = 200) with a class embedding → one transformer decoder
layer (query self-attention + cross-attention to the BEV map) → per-query boxes = the LiDAR candidates.

* heat map: ``Ŝ = σ(Conv(ConvBNReLU(F_bev)))`` [B, n_cls, H, W], supervised with Gaussian targets (penalty-reduced
  focal loss, CenterNet Eq. 1, weight 0.1 as the authors);
* query initialisation: the local maxima of Ŝ (3×3, none for pedestrian / traffic cone on nuScenes), top-K over
  classes and cells; the query feature is the BEV feature at the peak plus ``class_encoding(one-hot(class))``
  (TransFusion's "category-aware" queries); its position is the cell centre;
* decoder + prediction heads: :class:`~perception3d.models.fusion.layers.QueryDecoderLayer` with learned positional
  encodings, centre predicted as an offset to the query position, trained with the Hungarian set loss.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perception3d.models.fusion.layers import (BOX_HEADS, PositionEmbeddingLearned, PredictionHeads,
                                               QueryDecoderLayer, heatmap_head, heatmap_topk)
from perception3d.models.heads.center_head import draw_gaussian, focal_loss_centernet, gaussian_radius

__all__ = ["TransFusionLiDARBranch", "bev_heatmap_targets"]


def bev_heatmap_targets(gt_boxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor], num_classes: int,
                        shape: Sequence[int], pc_range: Sequence[float], cell: Sequence[float],
                        overlap: float = 0.1, min_radius: int = 2) -> torch.Tensor:
    """Gaussian class heat maps [B, n_cls, H, W]: each box splats ``exp(−r²/2σ²)`` at its centre cell, radius
    ``max(min_radius, gaussian_radius(l, w, overlap))`` in cells (the authors' ``gaussian_overlap=0.1``,
    ``min_radius=2``)."""
    h, w = shape
    dev = gt_boxes[0].device if len(gt_boxes) else None
    out = torch.zeros(len(gt_boxes), num_classes, h, w, device=dev)
    for i, (b, l) in enumerate(zip(gt_boxes, gt_labels)):
        for box, lab in zip(b.tolist(), l.tolist()):
            lx, ly = box[3] / cell[0], box[4] / cell[1]
            if lx <= 0 or ly <= 0:
                continue
            r = max(min_radius, int(gaussian_radius(ly, lx, overlap)))
            cx, cy = (box[0] - pc_range[0]) / cell[0], (box[1] - pc_range[1]) / cell[1]
            if 0 <= cx < w and 0 <= cy < h:
                draw_gaussian(out[i, int(lab)], int(cx), int(cy), r)
    return out


class TransFusionLiDARBranch(nn.Module):
    """TransFusion-L head. ``forward(bev [B, C_in, H, W], heatmap_fn=None)`` → dict:
    ``feat`` [B, C, K] query features after the decoder, ``pos`` [B, K, 2] query positions (BEV cells, x then y),
    ``pred`` {center [B, 2, K] (absolute cells), height, dim, rot, vel, heatmap [B, n_cls, K]},
    ``dense_heatmap`` [B, n_cls, H, W] logits, ``labels`` [B, K] the classes the queries were initialised with,
    ``bev`` [B, C, H, W] the shared-conv BEV features (keys of the cross-attention), ``query_score``
    [B, n_cls, K] the heat-map peak each query was initialised from, on its own class (0 on the others: the
    authors' ``query_heatmap_score · one_hot``, which decoding multiplies into the box scores).

    ``heatmap_fn`` (shared-conv BEV [B, C, H, W] → heat-map logits [B, n_cls, H, W]) replaces ``heatmap_head``:
    the semantic transfer's heat map from image-enriched BEV features
    (:class:`~perception3d.models.fusion.transfer.SemanticTransfer`, the authors' ``cross_only=True``).
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 128, num_queries: int = 200,
                 num_heads: int = 8, ffn_channels: int = 256, dropout: float = 0.1, nms_kernel: int = 3,
                 no_nms_classes: Sequence[int] = ()):
        super().__init__()
        self.num_classes, self.num_queries = int(num_classes), int(num_queries)
        self.nms_kernel, self.no_nms_classes = int(nms_kernel), tuple(no_nms_classes)
        self.shared_conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.heatmap_head = heatmap_head(channels, num_classes)
        self.class_encoding = nn.Conv1d(num_classes, channels, 1)
        self.decoder = QueryDecoderLayer(channels, num_heads, ffn_channels, dropout,
                                         PositionEmbeddingLearned(2, channels), PositionEmbeddingLearned(2, channels))
        self.heads = PredictionHeads(channels, dict(BOX_HEADS, heatmap=num_classes))

    def forward(self, bev: torch.Tensor,
                heatmap_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
        feat = self.shared_conv(bev)
        b, c, h, w = feat.shape
        dense = self.heatmap_head(feat) if heatmap_fn is None else heatmap_fn(feat)
        labels, index, peak = heatmap_topk(dense.detach().sigmoid(), self.num_queries, self.nms_kernel,
                                           self.no_nms_classes)
        flat = feat.reshape(b, c, h * w)
        q = flat.gather(2, index[:, None].expand(b, c, index.shape[1]))
        one_hot = F.one_hot(labels, self.num_classes).permute(0, 2, 1).float()          # [B, n_cls, K]
        q = q + self.class_encoding(one_hot)
        pos = torch.stack([index % w, index // w], -1).float() + 0.5                # [B, K, 2] cell centres
        ys, xs = torch.meshgrid(torch.arange(h, device=bev.device), torch.arange(w, device=bev.device),
                                indexing="ij")
        key_pos = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).float()[None].expand(b, -1, -1) + 0.5
        q = self.decoder(q, flat, pos, key_pos)
        pred = self.heads(q)
        pred["center"] = pred["center"] + pos.transpose(1, 2)
        query_score = peak[:, None] * one_hot
        return dict(feat=q, pos=pred["center"].detach().transpose(1, 2), pred=pred, dense_heatmap=dense,
                    labels=labels, bev=feat, query_score=query_score)

    def heatmap_loss(self, dense: torch.Tensor, gt_boxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                     pc_range: Sequence[float], cell: Sequence[float], weight: float = 0.1) -> torch.Tensor:
        """Gaussian focal loss of the dense heat map against :func:`bev_heatmap_targets` (weight 0.1)."""
        target = bev_heatmap_targets(gt_boxes, gt_labels, self.num_classes, dense.shape[-2:], pc_range, cell)
        return weight * focal_loss_centernet(dense, target.to(dense.device))
