"""Building blocks shared by SparseFusion's branches (TransFusion, Bai et al. CVPR 2022, and SparseFusion, Xie et
al. ICCV 2023): learned positional encoding, the query decoder layer, per-query prediction heads, the box code,
and the Hungarian-matched set loss.

* :class:`PositionEmbeddingLearned`: ``PE(p) = Conv1d(ReLU(BN(Conv1d(p))))`` of a query/key position p (TransFusion
  Sec. 3.2, "positional encoding"); ``norm=False`` is the authors' ``PositionEmbeddingLearnedwoNorm``.
* :class:`QueryDecoderLayer`: the transformer decoder layer of TransFusion's Fig. 2 — self-attention over queries,
  cross-attention from queries to keys, FFN; each with residual + LayerNorm (post-norm), positions added to
  queries and keys. ``cross_only=True`` skips the self-attention (the authors use it with key = query, which makes
  the cross-attention a self-attention over the candidates: SparseFusion Sec. 3.4, Eq. 6).
* :class:`MSDeformAttn` / :class:`DeformableDecoderLayer`: the image queries' decoder — deformable attention into
  the query's own camera (Deformable DETR Eq. 3), self-attention among the queries of one camera.
* :class:`PredictionHeads`: one 1×1-conv tower per output (``center`` 2, ``height`` 1, ``dim`` 3, ``rot`` 2,
  ``vel`` 2, ``heatmap`` = classes), as TransFusion's FFN.
* :func:`encode_boxes` / :func:`decode_boxes`: TransFusion's box code (``TransFusionBBoxCoder``): BEV centre in
  feature cells, gravity-centre height, log sizes, (sin, cos) yaw, velocity.
* :func:`hungarian_match` + :func:`sigmoid_focal_loss`: DETR-style set-prediction training (the authors'
  ``HungarianAssigner3D``: cost = 0.15 · focal-class cost + 0.25 · normalised BEV-L1 + 0.25 · (−IoU3D)).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception3d.ops import box_iou_3d

__all__ = ["PositionEmbeddingLearned", "QueryDecoderLayer", "MSDeformAttn", "DeformableDecoderLayer",
           "ChannelLayerNorm", "heatmap_head", "PredictionHeads", "ProjectionLayerNorm",
           "encode_boxes", "decode_boxes", "pred_codes", "set_prediction_loss", "sigmoid_focal_loss",
           "hungarian_match", "heatmap_topk", "BOX_HEADS"]

#: TransFusion's ``common_heads`` + the class heat map (sizes; ``heatmap`` is added with the class count).
BOX_HEADS = dict(center=2, height=1, dim=3, rot=2, vel=2)


class PositionEmbeddingLearned(nn.Module):
    """[B, P, in_dim] positions → [B, C, P] encodings (TransFusion's learned absolute position embedding)."""

    def __init__(self, in_dim: int, channels: int, norm: bool = True):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(in_dim, channels, 1), *([nn.BatchNorm1d(channels)] if norm else []),
                                 nn.ReLU(inplace=True), nn.Conv1d(channels, channels, 1))

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self.net(pos.transpose(1, 2).contiguous())


class QueryDecoderLayer(nn.Module):
    """TransFusion's decoder layer. Shapes: query [B, C, Pq], key [B, C, Pk], positions [B, Pq|Pk, d] →
    [B, C, Pq]. ``attn_mask`` [B·heads, Pq, Pk] bool (True = blocked) restricts which keys a query sees.

    ``Q' = LN(Q + SelfAttn(Q + PE_q))`` (query, key and value all carry the position, as TransFusion's); ``Q'' = LN(Q' + CrossAttn(Q' + PE_q, K + PE_k, K + PE_k))``;
    ``out = LN(Q'' + FFN(Q''))`` (Vaswani et al. / TransFusion Sec. 3.2).
    """

    def __init__(self, channels: int, num_heads: int = 8, ffn_channels: int = 256, dropout: float = 0.1,
                 query_pos: Optional[nn.Module] = None, key_pos: Optional[nn.Module] = None,
                 cross_only: bool = False):
        super().__init__()
        self.cross_only = cross_only
        if not cross_only:
            self.self_attn = nn.MultiheadAttention(channels, num_heads, dropout=dropout)
            self.norm1 = nn.LayerNorm(channels)
        self.cross_attn = nn.MultiheadAttention(channels, num_heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(channels)
        self.ffn = nn.Sequential(nn.Linear(channels, ffn_channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_channels, channels))
        self.norm3 = nn.LayerNorm(channels)
        self.drop = nn.Dropout(dropout)
        self.query_pos, self.key_pos = query_pos, key_pos

    def forward(self, query: torch.Tensor, key: torch.Tensor, query_pos: torch.Tensor, key_pos: torch.Tensor,
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        q = query.permute(2, 0, 1)  # [Pq, B, C]
        k = key.permute(2, 0, 1)
        qp = self.query_pos(query_pos).permute(2, 0, 1) if self.query_pos is not None else 0
        kp = self.key_pos(key_pos).permute(2, 0, 1) if self.key_pos is not None else 0
        if not self.cross_only:
            qq = q + qp
            q = self.norm1(q + self.drop(self.self_attn(qq, qq, qq, need_weights=False)[0]))
        kk = k + kp
        q = self.norm2(q + self.drop(self.cross_attn(q + qp, kk, kk, attn_mask=attn_mask, need_weights=False)[0]))
        q = self.norm3(q + self.drop(self.ffn(q)))
        return q.permute(1, 2, 0)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Zhu et al., Deformable DETR, ICLR 2021, Eq. 3), pure PyTorch:
    ``MSDA(z_q, p̂_q, {x_l}) = W_o Σ_h Σ_l Σ_k A_hlqk · W_v x_l(φ_l(p̂_q) + Δp_hlqk)`` with offsets ``Δp`` and weights
    ``A`` (softmax over levels × points) predicted from the query; bilinear sampling by ``grid_sample``.

    Multi-camera: each query reads the maps of *its own* camera. Shapes: ``query`` [B, P, C], ``ref`` [B, P, 2]
    (normalised (x, y) in [0, 1]), ``values`` list over levels of [B·V, C, h_l, w_l], ``view`` [B, P] (which of the
    V cameras) → [B, P, C].
    """

    def __init__(self, channels: int, num_levels: int = 4, num_heads: int = 8, num_points: int = 4):
        super().__init__()
        self.h, self.l, self.p = num_heads, num_levels, num_points
        self.sampling_offsets = nn.Linear(channels, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(channels, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)
        # Deformable DETR's initialisation: offsets start on rings around the reference point, uniform weights
        nn.init.zeros_(self.sampling_offsets.weight)
        th = torch.arange(num_heads, dtype=torch.float32) * (2 * np.pi / num_heads)
        grid = torch.stack([th.cos(), th.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(num_heads, 1, 1, 2).repeat(1, num_levels,
                                                                                             num_points, 1)
        grid = grid * torch.arange(1, num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: torch.Tensor, ref: torch.Tensor, values: Sequence[torch.Tensor],
                view: torch.Tensor) -> torch.Tensor:
        b, nq, c = query.shape
        v = values[0].shape[0] // b
        h, ch = self.h, c // self.h
        off = self.sampling_offsets(query).view(b, nq, h, self.l, self.p, 2)
        attn = self.attention_weights(query).view(b, nq, h, self.l * self.p).softmax(-1)
        attn = attn.view(b, nq, h, self.l, self.p)
        sel = view[:, None, None, :, None].expand(b, 1, h * ch, nq, self.p)
        out = query.new_zeros(b, h, ch, nq)
        for lvl, x in enumerate(values[: self.l]):
            hl, wl = x.shape[-2:]
            val = self.value_proj(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b * v * h, ch, hl, wl)
            loc = ref[:, :, None, None, :] + off[:, :, :, lvl] / torch.tensor([wl, hl], device=x.device,
                                                                              dtype=x.dtype)
            grid = (2 * loc - 1).permute(0, 2, 1, 3, 4)                           # [B, h, P, p, 2]
            grid = grid[:, None].expand(b, v, h, nq, self.p, 2).reshape(b * v * h, nq, self.p, 2)
            smp = F.grid_sample(val, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            smp = smp.view(b, v, h * ch, nq, self.p).gather(1, sel)[:, 0]       # own camera: [B, h·ch, P, p]
            w = attn[:, :, :, lvl].permute(0, 2, 1, 3)                           # [B, h, P, p]
            out = out + (smp.view(b, h, ch, nq, self.p) * w[:, :, None]).sum(-1)
        return self.output_proj(out.reshape(b, c, nq).transpose(1, 2))


class DeformableDecoderLayer(nn.Module):
    """The image-query decoder layer (the authors' ``DeformableTransformerDecoderLayer``): self-attention among the
    queries of one camera, deformable cross-attention (:class:`MSDeformAttn`) into that camera's feature pyramid
    (keys = features + PE(pixel position)), FFN; post-norm. Shapes: ``query`` [B, C, P], ``pos`` [B, P, 2] in
    [0, 1], ``values`` list of [B·V, C, h_l, w_l], ``view`` [B, P] → [B, C, P]."""

    def __init__(self, channels: int, num_heads: int = 8, ffn_channels: int = 256, dropout: float = 0.1,
                 num_levels: int = 4, num_points: int = 4):
        super().__init__()
        self.num_heads = num_heads
        self.self_attn = nn.MultiheadAttention(channels, num_heads, dropout=dropout)
        self.cross_attn = MSDeformAttn(channels, num_levels, num_heads, num_points)
        self.ffn = nn.Sequential(nn.Linear(channels, ffn_channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_channels, channels))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(channels) for _ in range(3))
        self.drop = nn.Dropout(dropout)
        self.query_pos = PositionEmbeddingLearned(2, channels, norm=False)
        self.key_pos = PositionEmbeddingLearned(2, channels, norm=False)

    def forward(self, query: torch.Tensor, pos: torch.Tensor, values: Sequence[torch.Tensor],
                view: torch.Tensor) -> torch.Tensor:
        qp = self.query_pos(pos).permute(2, 0, 1)
        q = query.permute(2, 0, 1)                                              # [P, B, C]
        mask = (view[:, :, None] != view[:, None, :]).repeat_interleave(self.num_heads, 0)
        qq = q + qp
        q = self.norm1(q + self.drop(self.self_attn(qq, qq, qq, attn_mask=mask, need_weights=False)[0]))
        keys = []
        for x in values:                                                        # keys + PE(normalised pixel)
            hl, wl = x.shape[-2:]
            ys, xs = torch.meshgrid(torch.arange(hl, device=x.device), torch.arange(wl, device=x.device),
                                    indexing="ij")
            p = torch.stack([(xs.reshape(-1) + 0.5) / wl, (ys.reshape(-1) + 0.5) / hl], -1).float()[None]
            keys.append(x + self.key_pos(p).reshape(1, -1, hl, wl))
        q2 = self.cross_attn((q + qp).transpose(0, 1), pos, keys, view).transpose(0, 1)
        q = self.norm2(q + self.drop(q2))
        q = self.norm3(q + self.drop(self.ffn(q)))
        return q.permute(1, 2, 0)


def heatmap_head(channels: int, num_classes: int, norm: str = "bn") -> nn.Sequential:
    """Dense class heat-map head [B, C, H, W] → logits [B, n_cls, H, W]: 3×3 conv → norm → ReLU → 3×3 conv, the last
    bias at −2.19 (prior 0.1, CenterNet). ``norm="bn"``: TransFusion's ``build_heatmap`` (conv without bias, BN);
    ``"ln"``: the authors' ``build_heatmap_LN`` for image levels (conv with bias, LayerNorm)."""
    hd = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=norm != "bn"),
                       nn.BatchNorm2d(channels) if norm == "bn" else ChannelLayerNorm(channels),
                       nn.ReLU(inplace=True), nn.Conv2d(channels, num_classes, 3, padding=1))
    nn.init.constant_(hd[-1].bias, -2.19)
    return hd


class ProjectionLayerNorm(nn.Module):
    """[B, C, P] → [B, C, P]: ``LN(Linear(f))`` per candidate (the authors' ``ProjectionLayerNorm``), putting LiDAR
    and camera candidates into one feature space before the fusion layer."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x.transpose(1, 2))).transpose(1, 2)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over dim 1 of [B, C, ...] (the authors' ``LayerNorm(data_format="channels_first")``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class PredictionHeads(nn.Module):
    """One tower per output (``heads`` = {name: out | (out, num_conv) | (out, num_conv, norm)}): ``num_conv − 1`` ×
    (Conv1d 1×1 → norm → ReLU), then Conv1d 1×1 — TransFusion's FFN with ``norm="bn"`` (BN1d, conv without bias),
    the authors' image ``FFNLN`` with ``"ln"`` (LayerNorm) or ``None`` (conv with bias, no norm).
    [B, C, P] → {name: [B, out, P]}. The ``heatmap`` / ``cls`` tower's bias starts at −2.19 (prior 0.1)."""

    def __init__(self, channels: int, heads: Dict[str, object], head_channels: int = 64, num_conv: int = 2,
                 init_bias: float = -2.19):
        super().__init__()
        self.names = list(heads)
        for name, spec in heads.items():
            spec = (spec,) if isinstance(spec, int) else tuple(spec)
            out, n_conv, norm = (spec + (num_conv, "bn")[len(spec) - 1:])[:3]
            layers, c = [], channels
            for _ in range(n_conv - 1):
                layers.append(nn.Conv1d(c, head_channels, 1, bias=norm is None))
                if norm is not None:
                    layers.append(nn.BatchNorm1d(head_channels) if norm == "bn" else ChannelLayerNorm(head_channels))
                layers.append(nn.ReLU(inplace=True))
                c = head_channels
            layers.append(nn.Conv1d(c, out, 1))
            if name in ("heatmap", "cls"):
                nn.init.constant_(layers[-1].bias, init_bias)
            setattr(self, name, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {n: getattr(self, n)(x) for n in self.names}


def encode_boxes(boxes: torch.Tensor, pc_range: Sequence[float], cell: Sequence[float]) -> torch.Tensor:
    """LiDAR boxes [M, 9] (x, y, z_bottom, dx, dy, dz, yaw, vx, vy) → codes [M, 10]:
    ``((x − x0) / cell_x, (y − y0) / cell_y, z_bottom + dz / 2, log dx, log dy, log dz, sin yaw, cos yaw, vx, vy)``
    (``cell`` = voxel size × BEV stride, metres of one BEV cell)."""
    b = boxes
    return torch.stack([(b[:, 0] - pc_range[0]) / cell[0], (b[:, 1] - pc_range[1]) / cell[1],
                        b[:, 2] + b[:, 5] / 2, b[:, 3].clamp(min=1e-3).log(), b[:, 4].clamp(min=1e-3).log(),
                        b[:, 5].clamp(min=1e-3).log(), torch.sin(b[:, 6]), torch.cos(b[:, 6]), b[:, 7], b[:, 8]], 1)


def decode_boxes(pred: Dict[str, torch.Tensor], pc_range: Sequence[float], cell: Sequence[float]) -> torch.Tensor:
    """Head outputs ({center [B, 2, P], height [B, 1, P], dim, rot, vel}) → boxes [B, P, 9] (house convention)."""
    x = pred["center"][:, 0] * cell[0] + pc_range[0]
    y = pred["center"][:, 1] * cell[1] + pc_range[1]
    dims = pred["dim"].clamp(max=8).exp()
    z = pred["height"][:, 0] - dims[:, 2] / 2
    yaw = torch.atan2(pred["rot"][:, 0], pred["rot"][:, 1])
    vel = pred["vel"] if "vel" in pred else torch.zeros_like(pred["rot"])
    return torch.stack([x, y, z, dims[:, 0], dims[:, 1], dims[:, 2], yaw, vel[:, 0], vel[:, 1]], -1)


def pred_codes(pred: Dict[str, torch.Tensor]) -> torch.Tensor:
    """{center, height, dim, rot, vel} [B, k, P] → [B, P, 10] in the order of :func:`encode_boxes`."""
    return torch.cat([pred["center"], pred["height"], pred["dim"], pred["rot"], pred["vel"]], 1).transpose(1, 2)


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
                       alpha: float = 0.25) -> torch.Tensor:
    """Sum of the sigmoid focal loss (Lin et al. ICCV 2017, Eq. 5) over all entries; ``target`` in {0, 1}."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    w = alpha * target + (1 - alpha) * (1 - target)
    return (w * (1 - pt).pow(gamma) * ce).sum()


@torch.no_grad()
def hungarian_match(cls_logits: torch.Tensor, boxes: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                    pc_range: Sequence[float], weights: Sequence[float] = (0.15, 0.25, 0.25),
                    gamma: float = 2.0, alpha: float = 0.25) -> Tuple[torch.Tensor, torch.Tensor]:
    """One-to-one assignment of P predictions to M ground truths (the authors' ``HungarianAssigner3D``).

    Cost (SparseFusion / TransFusion Sec. 3.3): ``w_c · C_focal + w_r · |xy_pred − xy_gt|₁ / range + w_i · (−IoU3D)``
    with ``C_focal = α (1 − p)^γ (−log p) − (1 − α) p^γ (−log(1 − p))`` at the gt class.
    Args: cls_logits [P, n_cls], boxes [P, ≥7], gt_boxes [M, ≥7], gt_labels [M].
    Returns (pred_idx, gt_idx) of the min(P, M) matched pairs (scipy's ``linear_sum_assignment``).
    """
    from scipy.optimize import linear_sum_assignment
    if len(gt_boxes) == 0 or len(boxes) == 0:
        e = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return e, e
    p = cls_logits.float().sigmoid()
    eps = 1e-12
    neg = -(1 - p + eps).log() * (1 - alpha) * p.pow(gamma)
    pos = -(p + eps).log() * alpha * (1 - p).pow(gamma)
    c_cls = (pos - neg)[:, gt_labels]
    rng = torch.tensor([pc_range[3] - pc_range[0], pc_range[4] - pc_range[1]], device=boxes.device)
    c_reg = torch.cdist(boxes[:, :2].float() / rng, gt_boxes[:, :2].float() / rng, p=1)
    safe = boxes[:, :7].float().clone()
    safe[:, 3:6] = safe[:, 3:6].clamp(min=1e-2, max=50)
    c_iou = -box_iou_3d(safe.cpu(), gt_boxes[:, :7].float().cpu()).to(boxes.device)
    cost = weights[0] * c_cls + weights[1] * c_reg + weights[2] * c_iou
    cost = torch.nan_to_num(cost, nan=1e4, posinf=1e4, neginf=-1e4)
    r, c = linear_sum_assignment(cost.cpu().numpy())
    return torch.as_tensor(np.asarray(r), device=boxes.device), torch.as_tensor(np.asarray(c), device=boxes.device)


def heatmap_topk(heatmap: torch.Tensor, k: int, nms_kernel: int = 3,
                 no_nms_classes: Sequence[int] = ()) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query initialisation (TransFusion Sec. 3.2, "input-dependent initialisation"): keep the local maxima of a
    [B, n_cls, H, W] heat map in a ``nms_kernel`` window (classes in ``no_nms_classes`` — small objects — keep every
    cell), then take the top-``k`` over all classes and cells.

    Returns ``(cls [B, k], index [B, k] (flat y·W + x), score [B, k])``.
    """
    b, n, h, w = heatmap.shape
    pad = nms_kernel // 2
    local_max = F.max_pool2d(heatmap, nms_kernel, stride=1, padding=pad) if nms_kernel > 1 else heatmap
    if no_nms_classes:
        idx = list(no_nms_classes)
        local_max = local_max.clone()
        local_max[:, idx] = heatmap[:, idx]
    hm = (heatmap * (heatmap == local_max)).reshape(b, -1)
    k = min(k, hm.shape[1])
    score, top = hm.topk(k, dim=1)
    return top // (h * w), top % (h * w), score


def set_prediction_loss(pred: Dict[str, torch.Tensor], gt_boxes: Sequence[torch.Tensor],
                        gt_labels: Sequence[torch.Tensor], pc_range: Sequence[float], cell: Sequence[float],
                        code_weights: Sequence[float] = (1, 1, 1, 1, 1, 1, 1, 1, 0.2, 0.2),
                        cls_weight: float = 1.0, bbox_weight: float = 0.25,
                        match_weights: Sequence[float] = (0.15, 0.25, 0.25)) -> Dict[str, torch.Tensor]:
    """Hungarian-matched set loss of per-query predictions (TransFusion Sec. 3.3 / the authors' ``get_targets`` +
    ``loss``): match each sample's P queries to its M ground truths with :func:`hungarian_match`, then
    ``L = w_cls · Focal(cls, one-hot of the matched labels; unmatched = background) / max(#matched, 1)
    + w_bbox · Σ code_weights ⊙ |code_pred − code_gt| / max(#matched, 1)``.

    Args: pred {center, height, dim, rot, vel, heatmap} [B, k, P] (centre in BEV cells, absolute);
        gt_boxes per sample [M, 9] (x, y, z_bottom, dx, dy, dz, yaw, vx, vy), gt_labels [M].
    Returns ``{"loss_cls", "loss_bbox"}`` (scalars) and ``"num_matched"``.
    """
    boxes = decode_boxes(pred, pc_range, cell)                                  # [B, P, 9]
    logits = pred["heatmap"].transpose(1, 2)                                    # [B, P, n]
    codes = pred_codes(pred)                                                    # [B, P, 10]
    cls_t = torch.zeros_like(logits)
    reg_l = logits.new_zeros(())
    n_pos = 0
    cw = torch.as_tensor(code_weights, dtype=codes.dtype, device=codes.device)
    for i, (gb, gl) in enumerate(zip(gt_boxes, gt_labels)):
        r, c = hungarian_match(logits[i].detach(), boxes[i].detach(), gb, gl, pc_range, match_weights)
        if len(r) == 0:
            continue
        cls_t[i, r, gl[c]] = 1.0
        target = encode_boxes(gb[c], pc_range, cell)
        reg_l = reg_l + ((codes[i, r] - target).abs() * cw).sum()
        n_pos += len(r)
    norm = max(n_pos, 1)
    return dict(loss_cls=cls_weight * sigmoid_focal_loss(logits, cls_t) / norm,
                loss_bbox=bbox_weight * reg_l / norm, num_matched=torch.tensor(float(n_pos)))
