"""DSVT's attention-style 3D pooling between stages of the voxel variant (DSVT-V, §3.3).

Each pooled voxel gathers the (up to) sx·sy·sz voxels of its region into a [V, C] block. The query is the
max-pool of the region; keys are the members plus a learned per-slot position embedding, values are the
members; one multi-head attention (8 heads) and a residual LayerNorm give the pooled feature.
(The authors' ``Stage_ReductionAtt_Block``; parameters have the same shapes.)

Empty slots: the authors' code fills them with zeros and does not mask them (their ``key_padding_mask`` is all
zeros), so an empty slot joins the max (as a 0) and the attention (key = its position embedding, value = 0).
That is the default here (``mask_empty=False``). The paper (§3.3) pads each region into a dense block and says
nothing about masking its empty cells. ``mask_empty=True`` is this package's deviation, off by default: it pools
over the members only, so the result does not depend on how many empty cells a region has.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dsvt_input_layer import PoolingIndex

__all__ = ["AttentionPooling", "gather_regions", "masked_attention"]


def masked_attention(attn: nn.MultiheadAttention, query: Tensor, key: Tensor, value: Tensor,
                     key_padding_mask: Tensor | None) -> Tensor:
    """Multi-head attention with ``attn``'s parameters, written with plain ops (exports to ONNX as is).

    query [B, Lq, C], key/value [B, Lk, C], key_padding_mask [B, Lk] (True = ignore) → [B, Lq, C].
    On the eager path it uses ``scaled_dot_product_attention``; when tracing, explicit matmul + softmax.
    """
    c = attn.embed_dim
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q = F.linear(query, w[:c], b[:c])
    k = F.linear(key, w[c:2 * c], b[c:2 * c])
    v = F.linear(value, w[2 * c:], b[2 * c:])
    return attend(attn, q, k, v, key_padding_mask)


def attend(attn: nn.MultiheadAttention, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None) -> Tensor:
    """Heads split / scaled dot-product / merge / out-projection on projected q [B, Lq, C], k, v [B, Lk, C]."""
    c, h = attn.embed_dim, attn.num_heads
    bsz, lq, lk = q.shape[0], q.shape[1], k.shape[1]
    q = q.reshape(bsz, lq, h, c // h).transpose(1, 2)
    k = k.reshape(bsz, lk, h, c // h).transpose(1, 2)
    v = v.reshape(bsz, lk, h, c // h).transpose(1, 2)
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        logits = torch.matmul(q, k.transpose(-1, -2)) * (float(c // h) ** -0.5)
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        out = torch.matmul(torch.softmax(logits, dim=-1), v)
    else:
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = out.transpose(1, 2).reshape(bsz, lq, c)
    return attn.out_proj(out)


def gather_regions(feats: Tensor, pool: PoolingIndex, volume: int) -> tuple[Tensor, Tensor]:
    """Scatter voxel features [N, C] into their pooling regions → ([M, V, C] zeros where empty, [M, V] occupied)."""
    m = pool.coords.shape[0]
    flat = pool.pool_ids * volume + pool.slot
    grid = feats.new_zeros(m * volume, feats.shape[1]).index_copy(0, flat, feats)
    occupied = torch.zeros_like(grid[:, 0]).index_copy(0, flat, torch.ones_like(feats[:, 0])) > 0
    return grid.view(m, volume, -1), occupied.view(m, volume)


class AttentionPooling(nn.Module):
    """Attention-style pooling of one stage transition (§3.3).

    Args:
        channels: C.
        volume: V = sx·sy·sz cells per pooling region.
        num_heads: attention heads (8, as the authors).
        mask_empty: pool over occupied slots only (a deviation; False = the authors' zero-filled, unmasked
            regions, see the module docstring).
    """

    def __init__(self, channels: int, volume: int, num_heads: int = 8, mask_empty: bool = False) -> None:
        super().__init__()
        self.volume = int(volume)
        self.mask_empty = bool(mask_empty)
        self.norm = nn.LayerNorm(channels)
        self.self_attn = nn.MultiheadAttention(channels, num_heads, batch_first=True)
        self.pos_embedding = nn.Parameter(torch.randn(self.volume, channels))
        nn.init.normal_(self.pos_embedding, std=0.01)

    def forward(self, feats: Tensor, pool: PoolingIndex) -> Tensor:
        """[N, C] features of stage s → [M, C] features of the pooled voxels ``pool.coords``."""
        grid, occupied = gather_regions(feats, pool, self.volume)
        if self.mask_empty:
            query = grid.masked_fill(~occupied[..., None], float("-inf")).amax(dim=1, keepdim=True)
            pad = ~occupied
        else:
            query = grid.amax(dim=1, keepdim=True)
            pad = None
        key = grid + self.pos_embedding[None]
        out = masked_attention(self.self_attn, query, key, grid, pad)
        return self.norm(out + query).squeeze(1)
