"""FDI — Fine-grained Detail Integration (TransHuman Sec. 3.4, Eq. 7) and the radiance heads.

Per query point and reference view the DPaRF feature (coarse, body-level) and the 384-channel pixel-aligned
feature (fine, image-level) are lifted to 256 channels; a cross-attention **across the reference views** lets the
human representation (queries) gather detail from the pixel features (keys/values):

    Q, V_q = W_q h,  W_vq h      K, V_k = W_k p,  W_vk p      (1×1 projections, attention width 128)
    h' = V_q + V_k · softmax_keys(Kᵀ Q / √128)                                            (Eq. 7)

Density: two 256-wide layers, the mean over views, one more layer, σ. Colour: the same features plus two
residual injections of the pixel features and the view direction (NeRF embedding, 4 frequencies), averaged over
views, then RGB. Layer names follow the authors' (``fc_0`` … ``rgb_res_1``) so their checkpoints map one to one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .encoding import nerf_embed, nerf_embed_dim

__all__ = ["FDIHead"]


class _KeyValue(nn.Module):
    def __init__(self, dim: int, att_dim: int) -> None:
        super().__init__()
        self.key_embed = nn.Linear(dim, att_dim)
        self.value_embed = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.key_embed(x), self.value_embed(x)


class FDIHead(nn.Module):
    """``forward(human [V, P, C_h], pixel [V, P, 384], viewdir [P, 3]) → raw [P, 4]`` (rgb logits, σ logit)."""

    def __init__(self, human_dim: int = 255, pixel_dim: int = 384, width: int = 256, att_dim: int = 128,
                 view_freqs: int = 4) -> None:
        super().__init__()
        half = width // 2
        self.view_freqs = view_freqs
        self.fc_0 = nn.Linear(human_dim, width)              # DPaRF feature → attention input
        self.alpha_res_0 = nn.Linear(pixel_dim, width)        # pixel feature → attention input
        self.spatial_key_value_0 = _KeyValue(width, att_dim)  # keys / values from the pixel features
        self.spatial_key_value_1 = _KeyValue(width, att_dim)  # queries / residual values from the human feature
        self.fc_1 = nn.Linear(width, width)
        self.fc_2 = nn.Linear(width, width)
        self.fc_3 = nn.Linear(width, width)
        self.alpha_fc = nn.Linear(width, 1)
        self.feature_fc = nn.Linear(width, width)
        self.rgb_res_0 = nn.Linear(pixel_dim, width)
        self.view_fc = nn.Linear(width + nerf_embed_dim(view_freqs), half)
        self.rgb_res_1 = nn.Linear(pixel_dim, half)
        self.fc_4 = nn.Linear(half, half)
        self.rgb_fc = nn.Linear(half, 3)
        # density goes through a ReLU (the authors'): a start where every sample is empty has no gradient at all,
        # so σ starts slightly positive everywhere (an initialisation choice; the authors use PyTorch's default)
        nn.init.constant_(self.alpha_fc.bias, 0.5)

    def cross_attention(self, human: torch.Tensor, pixel: torch.Tensor) -> torch.Tensor:
        """Eq. 7 over the V views of each point: human, pixel [V, P, W] → [V, P, W]."""
        k, vk = self.spatial_key_value_0(pixel.transpose(0, 1))          # [P, V, a], [P, V, W]
        q, vq = self.spatial_key_value_1(human.transpose(0, 1))
        att = torch.softmax(k @ q.transpose(1, 2) / math.sqrt(k.shape[-1]), dim=1)   # [P, V_key, V_query]
        out = vq + att.transpose(1, 2) @ vk                              # [P, V_query, W]
        return out.transpose(0, 1)

    def forward(self, human: torch.Tensor, pixel: torch.Tensor, viewdir: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc_0(human))
        p = F.relu(self.alpha_res_0(pixel))
        x = self.cross_attention(h, p)
        x = F.relu(self.fc_2(F.relu(self.fc_1(x))))                      # [V, P, W]
        sigma = self.alpha_fc(F.relu(self.fc_3(x.mean(0))))             # density from the view-mean
        c = self.feature_fc(x) + self.rgb_res_0(pixel)
        d = nerf_embed(viewdir, self.view_freqs).expand(x.shape[0], -1, -1)
        c = F.relu(self.view_fc(torch.cat([c, d], -1))) + self.rgb_res_1(pixel)
        rgb = self.rgb_fc(F.relu(self.fc_4(c.mean(0))))
        return torch.cat([rgb, sigma], -1)
