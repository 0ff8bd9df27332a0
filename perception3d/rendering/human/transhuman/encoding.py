"""The two sinusoidal encodings TransHuman uses (no parameters).

* :class:`FrequencyEncoding` — pixelNeRF's positional encoding, used by TransHE for the canonical token positions
  (``num_freqs = width / 6``, no raw input, so it is exactly ``width`` wide) and by DPaRF for the local coordinates
  (10 frequencies + the raw input: 63 channels): ``[x, sin(π 2^i x + φ)]`` with φ ∈ {0, π/2} (sin, cos),
  ordered frequency-major, then (sin, cos), then the coordinate.
* :func:`nerf_embed` — NeRF's embedder for the viewing direction (``[x, sin(2^i x), cos(2^i x)]``, 4 frequencies:
  27 channels).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FrequencyEncoding", "nerf_embed", "nerf_embed_dim"]


class FrequencyEncoding(nn.Module):
    """``forward(x [..., d_in]) → [..., d_out]``, d_out = 2·num_freqs·d_in (+ d_in with the raw input)."""

    def __init__(self, num_freqs: int, d_in: int = 3, include_input: bool = True, freq_factor: float = math.pi):
        super().__init__()
        self.num_freqs, self.d_in, self.include_input = num_freqs, d_in, include_input
        self.d_out = 2 * num_freqs * d_in + (d_in if include_input else 0)
        freqs = freq_factor * 2.0 ** torch.arange(num_freqs, dtype=torch.float32)
        self.register_buffer("freqs", freqs.repeat_interleave(2).view(-1, 1), persistent=False)   # [2F, 1]
        phases = torch.zeros(2 * num_freqs)
        phases[1::2] = math.pi / 2
        self.register_buffer("phases", phases.view(-1, 1), persistent=False)                       # [2F, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = torch.sin(x.unsqueeze(-2) * self.freqs + self.phases).flatten(-2)                   # [..., 2F·d]
        return torch.cat([x, emb], -1) if self.include_input else emb


def nerf_embed_dim(num_freqs: int, d_in: int = 3) -> int:
    return d_in * (1 + 2 * num_freqs)


def nerf_embed(x: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """NeRF's embedder: ``[x, sin(x), cos(x), sin(2x), cos(2x), …]`` (frequencies 2^0 … 2^(F−1))."""
    out = [x]
    for i in range(num_freqs):
        out += [torch.sin(x * 2.0 ** i), torch.cos(x * 2.0 ** i)]
    return torch.cat(out, -1)
