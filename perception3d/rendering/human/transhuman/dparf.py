"""DPaRF — Deformable Partial Radiance Fields (TransHuman Sec. 3.3, Eq. 4–6).

Every output token of TransHE owns a small radiance field whose coordinate frame is attached to its body part
and follows it into the observation pose: the frame's origin is the token's posed position and its axes are
rotated by the token's LBS rotation (the mean of its vertices' blend matrices, canonical → observation). A query
point x (body coordinates: world with the global Rh/Th removed) is encoded in the frames of its K = 7 nearest
tokens:

    local coordinate   x̂_k = R_kᵀ (x − t_k)                                         (Eq. 4)
    field feature      f_k = [h_k, γ(x̂_k)]     (token feature, 10-frequency encoding) (Eq. 5)
    aggregation        f(x) = Σ_k softmax_k(−‖x − t_k‖ / α) f_k,   α = 0.5            (Eq. 6)
"""
from __future__ import annotations

import torch
from torch import nn

from .encoding import FrequencyEncoding

__all__ = ["DPaRF"]


class DPaRF(nn.Module):
    """``forward(points [P, 3], token_pos [k, 3], token_rot [k, 3, 3], token_feat [V, k, C]) → [V, P, C + 63]``.
    No parameters (the encoding is fixed)."""

    def __init__(self, knn: int = 7, num_freqs: int = 10, alpha: float = 0.5) -> None:
        super().__init__()
        self.knn, self.alpha = knn, alpha
        self.pe = FrequencyEncoding(num_freqs, 3, include_input=True)

    @property
    def d_pe(self) -> int:
        return self.pe.d_out

    def forward(self, points: torch.Tensor, token_pos: torch.Tensor, token_rot: torch.Tensor,
                token_feat: torch.Tensor) -> torch.Tensor:
        k = min(self.knn, token_pos.shape[0])
        dist, idx = torch.cdist(points, token_pos).topk(k, dim=1, largest=False)        # [P, K]
        w = torch.softmax(-dist / self.alpha, dim=1)                                     # Eq. 6 weights
        rel = points[:, None] - token_pos[idx]                                           # [P, K, 3]
        local = torch.einsum("pkj,pkji->pki", rel, token_rot[idx])                      # Eq. 4: (x − t) R = Rᵀ(x − t)
        enc = (w[..., None] * self.pe(local)).sum(1)                                    # Σ_k w_k γ(x̂_k) [P, 63]
        # Σ_k w_k h_k as one matrix product: the weights scattered into a [P, k_tokens] matrix
        wmat = w.new_zeros(points.shape[0], token_pos.shape[0]).scatter_(1, idx, w)
        feats = wmat @ token_feat                                                        # [V, P, C]
        return torch.cat([feats, enc.expand(feats.shape[0], -1, -1)], -1)                # Eqs. 5–6
