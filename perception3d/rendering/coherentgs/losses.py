"""CoherentGS's losses (Paliwal et al., ECCV 2024, §4.1–4.2; authors' ``train.py`` and ``utils/loss_utils.py``),
each under the authors' name.

* :func:`ml1_loss` — the reconstruction term's multi-scale L1: Σ_s w_s ‖pool_s(I) − pool_s(Î)‖₁ over five
  2× average-pooled scales with weights (1, 1/4, 1/8, 1/16, 1/32), combined with D-SSIM as
  (1 − λ) ML1 + λ (1 − SSIM), λ = 0.2 (3DGS's Eq. 7 with ML1 in place of L1).
* :func:`second_order_tv` — the multi-view constraint: total variation of the rendered disparity within each
  depth layer (masks M_k) mixed with the TV of the whole map, γ TV(M ⊙ D) + (1 − γ) TV(D), γ rising from 0.35
  to 1 over training (the authors' function of this name; its differences are first-order, as theirs).
* :func:`warping_loss` — the flow-based correspondence loss: the Gaussian of pixel x in view a and the one at
  x + F_ab(x) in view b should sit at the same 3D point, ‖X_a(x) − X_b(x + F_ab(x))‖₁ over the consistent
  correspondences (mask), with a random reference view a each call and every other view as b; each error is
  divided by the pixel's depth (scale-free; see the function for why).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ml1_loss", "tv", "second_order_tv", "backwarp", "warping_loss", "ML1_WEIGHTS"]

ML1_WEIGHTS = (1.0, 1 / 4, 1 / 8, 1 / 16, 1 / 32)


def ml1_loss(pred: Tensor, gt: Tensor, weights: Sequence[float] = ML1_WEIGHTS) -> Tensor:
    """Multi-scale L1 of [B, C, H, W] images (authors' ``ML1Loss``)."""
    loss = pred.new_zeros(())
    for k, w in enumerate(weights):
        if k:
            if min(pred.shape[-2:]) < 2:
                break
            pred, gt = F.avg_pool2d(pred, 2), F.avg_pool2d(gt, 2)
        loss = loss + w * (pred - gt).abs().mean()
    return loss


def tv(x: Tensor) -> Tensor:
    """Anisotropic total variation of [C, H, W]: mean |∂x| + mean |∂y| (authors' ``tv``)."""
    return (x[:, :, :-1] - x[:, :, 1:]).abs().mean() + (x[:, :-1, :] - x[:, 1:, :]).abs().mean()


def second_order_tv(disparity: Tensor, layers: Tensor, gamma: float) -> Tensor:
    """γ TV(M_k ⊙ D) + (1 − γ) TV(D) for disparity D [1, H, W] and depth-layer masks M [K, H, W] (module doc)."""
    return gamma * tv(layers * disparity) + (1 - gamma) * tv(disparity)


def backwarp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample ``image`` [B, C, H, W] at x + flow(x) (flow [B, 2, H, W] in pixels; bilinear, zero outside):
    with the flow from view a to view b, ``backwarp(I_b, F_ab)`` is view b's content seen at view a's pixels."""
    B, _, H, W = image.shape
    gy, gx = torch.meshgrid(torch.arange(H, dtype=image.dtype, device=image.device),
                            torch.arange(W, dtype=image.dtype, device=image.device), indexing="ij")
    x = gx + flow[:, 0]
    y = gy + flow[:, 1]
    grid = torch.stack([2 * x / max(W - 1, 1) - 1, 2 * y / max(H - 1, 1) - 1], -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def warping_loss(xyz: Tensor, flows: Tensor, masks: Tensor, ref: int, depth: Optional[Tensor] = None,
                 norm: float = 1.0, others: Optional[Sequence[int]] = None) -> Tensor:
    """Σ_b mean ‖(X_a − backwarp(X_b, F_ab)) ⊙ M_ab‖₁ / d_a for reference view a = ``ref``.

    Args:
        xyz: [V, 3, H, W] the per-pixel Gaussians' world positions (zero where a pixel holds none).
        flows: [V, V, H, W, 2]; masks: [V, V, H, W] (see :func:`.depth_init.correspondences`).
        depth: [V, 1, H, W] the Gaussians' depths: each pixel's 3D error is divided by its depth d_a. The authors
            divide by nothing; with a noisy flow their absolute error is smallest when every depth shrinks
            towards its camera (on Barn's nearly parallel pair the alignment scale fell to 0.45), the relative
            one is not. None: divide by ``norm`` (a length unit) only.
    """
    V = xyz.shape[0]
    others = [b for b in range(V) if b != ref] if others is None else others
    loss = xyz.new_zeros(())
    x0 = xyz[ref:ref + 1]
    w0 = 1.0 / norm if depth is None else 1.0 / depth[ref:ref + 1].clamp_min(1e-8)
    for b in others:
        m = masks[ref, b][None, None] * w0
        warped = backwarp(xyz[b:b + 1], flows[ref, b].permute(2, 0, 1)[None])
        loss = loss + ((warped - x0) * m).abs().mean()
    return loss
