"""PSNR and SSIM of images: the one implementation that training (3DGS's D-SSIM term) and evaluation
(:mod:`perception3d.evaluation.image_metrics`, which adds the masked variants and LPIPS) share.

Images are float ``[H, W, 3]`` (or ``[B, H, W, 3]``) in [0, 1], numpy or torch.

* :func:`psnr` — ``−10 log10(MSE)`` over all pixels and channels (data range 1).
* :func:`ssim` / :func:`ssim_map` — Wang et al. 2004, Eq. 13: Gaussian window 11 × 11, σ = 1.5,
  ``K1 = 0.01, K2 = 0.03``, per channel, averaged. ``padding="valid"`` (default) averages the SSIM map over the
  positions where the whole window fits (pytorch-msssim's ``ssim`` and scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``); ``padding="same"``
  zero-pads by 5 and averages over every pixel (the ``ssim`` in 3DGS's ``utils/loss_utils.py``).

Imports nothing of the package.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "ssim_map", "ssim_differentiable", "psnr_masked", "ssim_masked", "mask_bbox"]

ImageLike = Union[np.ndarray, torch.Tensor]


def _img(x: ImageLike, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    t = t.detach().to(torch.float64)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] not in (1, 3):
        raise ValueError(f"{name}: expected an image [H, W, 3] or [B, H, W, 3], got {tuple(t.shape)}")
    return t


def _pair(pred: ImageLike, gt: ImageLike) -> tuple[torch.Tensor, torch.Tensor]:
    p, g = _img(pred, "pred"), _img(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {tuple(p.shape)} vs {tuple(g.shape)}")
    return p, g


def _psnr_from_mse(mse: float) -> float:
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def psnr(pred: ImageLike, gt: ImageLike) -> float:
    """PSNR in dB over all pixels and channels, data range 1 (a batch is pooled into one MSE)."""
    p, g = _pair(pred, gt)
    return _psnr_from_mse(float(((p - g) ** 2).mean()))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim_map(pred: ImageLike, gt: ImageLike, window: int = 11, sigma: float = 1.5, padding: str = "valid",
             k1: float = 0.01, k2: float = 0.03, data_range: float = 1.0, backend: str = "auto") -> torch.Tensor:
    """The SSIM map [B, 3, H', W'] (Eq. 13 of Wang et al. 2004, Gaussian-weighted local statistics).

    ``backend``: "scipy" (float64 separable correlation, the CPU default), "torch" (depthwise conv, the
    default for GPU tensors) or "auto"."""
    p, g = _pair(pred, gt)
    x, y = p.permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)
    C = x.shape[1]
    if padding not in ("valid", "same"):
        raise ValueError(f"ssim: padding must be 'valid' or 'same', got {padding!r}")
    if padding == "valid" and min(x.shape[-2:]) < window:
        raise ValueError(f"ssim: image {tuple(x.shape[-2:])} smaller than the {window} x {window} window")
    w1 = _gaussian_window(window, sigma).to(x.device)
    pad = window // 2 if padding == "same" else 0

    if backend not in ("auto", "scipy", "torch"):
        raise ValueError(f"ssim: backend must be 'auto', 'scipy' or 'torch', got {backend!r}")
    if backend == "scipy" or (backend == "auto" and x.device.type == "cpu"):
        # On CPU scipy's separable correlation in float64 is several times faster than torch's depthwise conv.
        from scipy.ndimage import correlate1d

        wn, r = w1.numpy(), window // 2

        def blur(t: torch.Tensor) -> torch.Tensor:  # zero padding, then crop to "valid" if asked
            a = correlate1d(correlate1d(t.numpy(), wn, axis=-1, mode="constant"), wn, axis=-2, mode="constant")
            if pad == 0:
                a = a[..., r:a.shape[-2] - r, r:a.shape[-1] - r]
            return torch.from_numpy(np.ascontiguousarray(a))
    else:
        blur = _torch_blur(w1, C, pad)
    return _ssim_from_blur(x, y, blur, (k1 * data_range) ** 2, (k2 * data_range) ** 2)


def _torch_blur(w1: torch.Tensor, C: int, pad: int):
    """Separable Gaussian of the 1-D window ``w1``, depthwise over C channels, zero padding ``pad``."""
    window = w1.numel()

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.conv2d(t, w1.view(1, 1, 1, -1).expand(C, 1, 1, window), padding=(0, pad), groups=C)
        return F.conv2d(t, w1.view(1, 1, -1, 1).expand(C, 1, window, 1), padding=(pad, 0), groups=C)
    return blur


def _ssim_from_blur(x: torch.Tensor, y: torch.Tensor, blur, c1: float, c2: float) -> torch.Tensor:
    """The SSIM map (Wang et al. 2004, Eq. 13) from Gaussian-weighted local means, variances and covariance."""
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(y * y) - mu_y ** 2
    sxy = blur(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))


def ssim_differentiable(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
                        k2: float = 0.03, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of [B, C, H, W] tensors as a differentiable scalar in their dtype and device ("valid" positions,
    the same formula as :func:`ssim_map`): the D-SSIM term of the 3DGS loss (Kerbl et al. 2023, Eq. 7)."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim_differentiable: expected two [B, C, H, W] tensors of one shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    w1 = _gaussian_window(window, sigma).to(device=x.device, dtype=x.dtype)
    blur = _torch_blur(w1, x.shape[1], 0)
    return _ssim_from_blur(x, y, blur, (k1 * data_range) ** 2, (k2 * data_range) ** 2).mean()


def ssim(pred: ImageLike, gt: ImageLike, padding: str = "valid", **kw) -> float:
    """Mean SSIM (Gaussian 11 × 11, σ = 1.5) over channels and positions; see the module doc for ``padding``."""
    return float(ssim_map(pred, gt, padding=padding, **kw).mean())


# masked variants (SpaRe's PSNR-M / SSIM-M; the human fields' body-box evaluation)
def _mask(mask: ImageLike, shape: tuple[int, ...]) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(mask)) if not isinstance(mask, torch.Tensor) else mask
    m = m.detach()
    if m.ndim == 3 and m.shape[-1] in (1, 3):
        m = m[..., 0]
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"mask shape {tuple(m.shape)} does not match the image's {tuple(shape)}")
    return m > 0.5 if m.is_floating_point() else m.bool()


def psnr_masked(pred: ImageLike, gt: ImageLike, mask: ImageLike) -> float:
    """PSNR-M: MSE over the pixels where ``mask`` is true only (``[H, W]``), all channels."""
    p, g = _pair(pred, gt)
    if p.shape[0] != 1:
        raise ValueError("psnr_masked takes one image [H, W, 3]")
    m = _mask(mask, p.shape[1:3])
    if not m.any():
        raise ValueError("psnr_masked: the mask is empty")
    return _psnr_from_mse(float(((p[0] - g[0]) ** 2)[m].mean()))


def mask_bbox(mask: ImageLike) -> tuple[int, int, int, int]:
    """Tight bounding box ``(y0, y1, x0, x1)`` (end-exclusive) of the true pixels of an [H, W] mask."""
    m = torch.as_tensor(np.asarray(mask)) if not isinstance(mask, torch.Tensor) else mask
    if m.ndim == 3:
        m = m[..., 0]
    m = m > 0.5 if m.is_floating_point() else m.bool()
    ys, xs = torch.nonzero(m, as_tuple=True)
    if len(ys) == 0:
        raise ValueError("mask_bbox: the mask is empty")
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def _crop(x: ImageLike, box: tuple[int, int, int, int]) -> torch.Tensor:
    y0, y1, x0, x1 = box
    return _img(x, "image")[:, y0:y1, x0:x1]


def ssim_masked(pred: ImageLike, gt: ImageLike, mask: ImageLike, **kw) -> float:
    """SSIM-M: SSIM of the crop to the tight bounding box of ``mask`` (a box thinner than the 11-px window
    is computed with ``padding="same"``)."""
    p, g = _pair(pred, gt)
    _mask(mask, p.shape[1:3])
    box = mask_bbox(mask)
    pc, gc = _crop(p, box), _crop(g, box)
    if min(pc.shape[1:3]) < 11 and "padding" not in kw:
        kw["padding"] = "same"
    return ssim(pc, gc, **kw)
