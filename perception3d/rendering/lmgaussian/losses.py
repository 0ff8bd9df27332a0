"""LM-Gaussian's regularisation losses (Yu et al., "LM-Gaussian: Boost Sparse-view 3D Gaussian Splatting with Large
Model Priors", 2024, §IV-C "Multi-modal Regularized Gaussian Reconstruction"; authors' ``utils/loss_utils.py`` and
``stage1_forward.py``).

* :func:`pearson_depth_loss` — Eq. (8): 1 − Pearson correlation of the rendered depth with the (scale- and
  shift-ambiguous) depth prior, over the whole image;
* :func:`local_pearson_loss` — the same on random square patches (the authors draw ``p_corr`` × the number of
  non-overlapping boxes of side ``box``);
* :func:`normal_prior_loss` — Eq. (9): L1 + (1 − cos) between the rendered normal and the monocular normal map;
* :func:`depth_normal_consistency` — Eq. (10): 1 − cos between the rendered normal and the normal of the rendered
  depth surface (finite differences of the unprojected depth, :func:`depth_to_normal`);
* :func:`masked_l1` — the virtual-view (point-render) loss, Eq. (11), and the refinement stage's loss.

All images are [H, W, C] (the house layout); depth maps [H, W].
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["pearson_depth_loss", "local_pearson_loss", "normal_prior_loss", "depth_to_normal",
           "depth_normal_consistency", "masked_l1"]


def pearson_depth_loss(depth: torch.Tensor, prior: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """1 − Pearson correlation of ``depth`` and ``prior`` (any equal shapes) over ``mask`` (default all):
    invariant to a positive scale and any shift of either map. As the authors compute it (unbiased standard
    deviations, biased mean of the product), an affine-related pair of n pixels gives 1/n, an inverted one
    2 − 1/n."""
    if depth.shape != prior.shape:
        raise ValueError(f"pearson_depth_loss: depth {tuple(depth.shape)} and prior {tuple(prior.shape)} differ")
    if mask is not None:
        depth, prior = depth[mask], prior[mask]
    if depth.numel() < 2:
        return depth.sum() * 0.0
    s = depth - depth.mean()
    t = prior - prior.mean()
    s = s / (s.std() + 1e-6)
    t = t / (t.std() + 1e-6)
    return 1.0 - (s * t).mean()


def local_pearson_loss(depth: torch.Tensor, prior: torch.Tensor, box: int, p_corr: float = 0.5,
                       mask: Optional[torch.Tensor] = None,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Mean :func:`pearson_depth_loss` over ``int(p_corr · ⌊H/box⌋ · ⌊W/box⌋)`` random ``box × box`` patches
    (at least one) of [H, W] maps — the authors' local Pearson term, which keeps the depth ordering right inside
    small regions that the global correlation averages away."""
    H, W = depth.shape
    box = int(min(box, H, W))
    n = max(int(p_corr * (H // box) * (W // box)), 1)
    y0 = torch.randint(0, H - box + 1, (n,), generator=generator).to(depth.device)
    x0 = torch.randint(0, W - box + 1, (n,), generator=generator).to(depth.device)
    # all patches at once ([n, box, box] gathers; a Python loop of ~70 small Pearsons cost ~30 % of a CPU step)
    ar = torch.arange(box, device=depth.device)
    rows, cols = (y0[:, None] + ar)[:, :, None], (x0[:, None] + ar)[:, None, :]
    s, t = depth[rows, cols].reshape(n, -1), prior[rows, cols].reshape(n, -1)
    m = (torch.ones_like(s, dtype=torch.bool) if mask is None else mask[rows, cols].reshape(n, -1)).to(s.dtype)
    cnt = m.sum(-1)
    ok = cnt >= 2  # pearson_depth_loss of fewer than 2 pixels is 0
    c = cnt.clamp_min(1)[:, None]

    def standardise(x):  # masked; unbiased standard deviation, as torch.std in pearson_depth_loss
        x = (x - (x * m).sum(-1, keepdim=True) / c) * m
        var = (x * x).sum(-1, keepdim=True) / (c - 1).clamp_min(1)
        return x / (var.clamp_min(1e-20).sqrt() + 1e-6)  # clamp: an empty patch has a zero, not NaN, gradient

    corr = (standardise(s) * standardise(t)).sum(-1) / c[:, 0]
    return torch.where(ok, 1.0 - corr, torch.zeros_like(corr)).sum() / n


def normal_prior_loss(normal: torch.Tensor, prior: torch.Tensor, mask: Optional[torch.Tensor] = None,
                      w_l1: float = 0.01, w_cos: float = 0.01) -> torch.Tensor:
    """``w_l1 · mean Σ_c |n − n̂| + w_cos · mean (1 − n·n̂)`` over ``mask`` (authors: 0.01 and 0.01) for [H, W, 3]
    rendered normals ``normal`` and unit prior normals ``prior`` in the same (camera) frame."""
    if normal.shape != prior.shape:
        raise ValueError(f"normal_prior_loss: normal {tuple(normal.shape)} and prior {tuple(prior.shape)} differ")
    l1 = (normal - prior).abs().sum(-1)
    cos = 1.0 - (normal * prior).sum(-1)
    if mask is not None:
        l1, cos = l1[mask], cos[mask]
    if l1.numel() == 0:
        return normal.sum() * 0.0
    return w_l1 * l1.mean() + w_cos * cos.mean()


def depth_to_normal(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-frame unit normals [H, W, 3] (OpenCV axes, facing the camera: n_z ≤ 0) of the surface of a camera-z
    depth map [H, W] with intrinsics K [3, 3]: cross product of the central differences of the unprojected
    points (border pixels repeat their neighbours)."""
    H, W = depth.shape
    v, u = torch.meshgrid(torch.arange(H, dtype=depth.dtype, device=depth.device) + 0.5,
                          torch.arange(W, dtype=depth.dtype, device=depth.device) + 0.5, indexing="ij")
    x = (u - K[0, 2]) / K[0, 0] * depth
    y = (v - K[1, 2]) / K[1, 1] * depth
    P = torch.stack([x, y, depth], -1)  # [H, W, 3]
    P = F.pad(P.permute(2, 0, 1)[None], (1, 1, 1, 1), mode="replicate")[0].permute(1, 2, 0)
    dx = P[1:-1, 2:] - P[1:-1, :-2]
    dy = P[2:, 1:-1] - P[:-2, 1:-1]
    n = F.normalize(torch.cross(dx, dy, dim=-1), dim=-1)
    # x right, y down, z forward: dx × dy points away from the camera (+z) on a surface facing it; flip to face it
    return torch.where(n[..., 2:3] > 0, -n, n)


def depth_normal_consistency(normal: torch.Tensor, depth: torch.Tensor, K: torch.Tensor,
                             mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """mean (1 − n_render · n_depth) over ``mask``: rendered normals [H, W, 3] against the normals of the rendered
    depth [H, W] (:func:`depth_to_normal`), the depth-normal consistency of 2DGS / RaDe-GS that LM-Gaussian adds
    after ``regularization_from_iter``."""
    nd = depth_to_normal(depth, K)
    err = 1.0 - (F.normalize(normal, dim=-1) * nd).sum(-1)
    if mask is not None:
        err = err[mask]
    return err.mean() if err.numel() else normal.sum() * 0.0


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean |pred − target| over the pixels of ``mask`` ([H, W] bool; default all) of [H, W, C] images."""
    d = (pred - target).abs()
    if mask is not None:
        d = d[mask]
    return d.mean() if d.numel() else pred.sum() * 0.0
