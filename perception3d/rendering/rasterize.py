"""``rasterize``: render 3D Gaussians into C pinhole cameras — gsplat's ``rasterization()`` contract, three backends.

* ``backend="gsplat"`` calls :func:`gsplat.rasterization` (CUDA tensors and gsplat installed).
* ``backend="cpu"`` runs the compiled C++ kernels of :mod:`perception3d.rendering.rasterize_cpu` (built on first
  use, cached) — the fast CPU path: projection, SH colours, tile binning and compositing, forward and backward
  (with ``viewmats`` / ``Ks`` that require gradients, projection and SH are the torch backend's).
* ``backend="torch"`` is the pure-PyTorch path of :mod:`perception3d.rendering.rasterize_torch` (CPU or GPU,
  differentiable by autograd): the reference and the fallback.
* ``backend="auto"`` takes gsplat when the inputs are on CUDA and gsplat imports, "cpu" for CPU tensors when the
  kernels build (else torch, with one warning), torch otherwise.

Return values follow gsplat 1.5: ``(render_colors [C, H, W, X], render_alphas [C, H, W, 1], meta)`` with
``X = D`` for "RGB", 1 for "D"/"ED", ``D + 1`` for "RGB+D"/"RGB+ED" (depth last). ``meta`` carries ``means2d``
([C, N, 2], call ``retain_grad()`` on it for densification), ``radii`` [C, N, 2] int32, ``depths``, ``conics``,
``opacities``, ``width``, ``height``, ``n_cameras``, ``tile_size`` … so ``gsplat.strategy.DefaultStrategy``
works with every backend. The torch and cpu backends always return the unpacked layout (``packed`` is ignored).
"""
from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
from torch import Tensor

from . import rasterize_cpu
from .rasterize_torch import bin_tiles, composite_tiles, project_gaussians
from .sh import eval_sh, num_sh_bases

__all__ = ["rasterize", "gsplat_available", "RENDER_MODES", "BACKENDS"]

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
BACKENDS = ("auto", "cpu", "torch", "gsplat")
_warned_fallback = False


def _cpu_backend_or_torch() -> str:
    """"cpu" when the compiled kernels are usable, else "torch" (warning once per process)."""
    global _warned_fallback
    if rasterize_cpu.available():
        return "cpu"
    if not _warned_fallback:
        why = rasterize_cpu.BUILD_INFO.get("error")
        warnings.warn(f"rasterize: the compiled CPU backend is unavailable ({why}); using the (slower) pure-torch "
                      "backend", RuntimeWarning, stacklevel=3)
        _warned_fallback = True
    return "torch"


def gsplat_available() -> bool:
    """True when gsplat imports and CUDA is present (its rasterizer needs CUDA)."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:  # pragma: no cover - depends on the install
        return False
    return True


def _check_tensor(name: str, t, shape: tuple, dtype: Optional[torch.dtype] = None,
                  device: Optional[torch.device] = None) -> None:
    """Raise ValueError naming ``name`` unless ``t`` is a finite float tensor of ``shape`` (None = any)."""
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if dtype is not None and t.dtype != dtype:
        raise ValueError(f"{name} has dtype {t.dtype} but means has {dtype}; use one dtype for all inputs")
    if device is not None and t.device != device:
        raise ValueError(f"{name} is on {t.device} but means is on {device}")
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(t.shape)}")
    # one reduction instead of an elementwise mask (NaN / Inf propagate into the sum; the exact test only runs
    # when the sum is not finite, which an overflow of finite values can also cause)
    if t.numel() and not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf")


def _validate(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds,
              render_mode, tile_size):
    _check_tensor("means", means, (None, 3))
    N, dt, dev = means.shape[0], means.dtype, means.device
    _check_tensor("quats", quats, (N, 4), dt, dev)
    _check_tensor("scales", scales, (N, 3), dt, dev)
    _check_tensor("opacities", opacities, (N,), dt, dev)
    if N and (opacities.min() < 0 or opacities.max() > 1):
        raise ValueError("opacities must lie in [0, 1] (activated values, e.g. sigmoid of the logits), got "
                         f"range [{float(opacities.min()):.4g}, {float(opacities.max()):.4g}]")
    _check_tensor("viewmats", viewmats, (None, 4, 4), dt, dev)
    C = viewmats.shape[0]
    _check_tensor("Ks", Ks, (C, 3, 3), dt, dev)
    if C == 0:
        raise ValueError("viewmats must hold at least one camera, got C = 0")
    for nm, v in (("width", width), ("height", height), ("tile_size", tile_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{nm} must be a positive int, got {v!r}")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if sh_degree is None:
        if colors.dim() == 2:
            _check_tensor("colors", colors, (N, None), dt, dev)
        else:
            _check_tensor("colors", colors, (C, N, None), dt, dev)
    else:
        if not isinstance(sh_degree, int) or not 0 <= sh_degree <= 3:
            raise ValueError(f"sh_degree must be None or an int in 0..3, got {sh_degree!r}")
        if colors.dim() not in (3, 4):
            raise ValueError(f"colors must be SH coefficients [N, K, 3] or [C, N, K, 3] when sh_degree is set, "
                             f"got shape {list(colors.shape)}")
        if colors.dim() == 3:
            _check_tensor("colors", colors, (N, None, 3), dt, dev)
        else:
            _check_tensor("colors", colors, (C, N, None, 3), dt, dev)
        if colors.shape[-2] < num_sh_bases(sh_degree):
            raise ValueError(f"colors: sh_degree={sh_degree} needs >= {num_sh_bases(sh_degree)} SH coefficients "
                             f"per channel, got {colors.shape[-2]}")
    if backgrounds is not None:
        D = colors.shape[-1]
        _check_tensor("backgrounds", backgrounds, (C, D), dt, dev)


def rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
              viewmats: Tensor, Ks: Tensor, width: int, height: int, sh_degree: Optional[int] = None,
              near_plane: float = 0.01, far_plane: float = 1e10, radius_clip: float = 0.0, eps2d: float = 0.3,
              backgrounds: Optional[Tensor] = None, render_mode: str = "RGB", packed: bool = False,
              tile_size: int = 16, backend: str = "auto", max_pairs_per_chunk: int = 1 << 20,
              segment: int = 32, keep_budget: int = 1 << 25):
    """Rasterize N 3D Gaussians into C images (3DGS, Kerbl et al. 2023).

    Args:
        means [N, 3]; quats [N, 4] (w, x, y, z; need not be unit); scales [N, 3] (linear); opacities [N] in [0, 1].
        colors: [N, D] / [C, N, D] post-activation features, or with ``sh_degree`` set, SH coefficients
            [N, K, 3] / [C, N, K, 3] with K ≥ (sh_degree + 1)² (colour = max(SH + 0.5, 0), as 3DGS).
        viewmats [C, 4, 4] world → camera (OpenCV); Ks [C, 3, 3]; width, height in pixels.
        near_plane, far_plane: depth culling; radius_clip: drop Gaussians whose radii are both ≤ this (px).
        eps2d: added to the projected 2D covariance's diagonal (the 0.3 px low-pass filter).
        backgrounds: [C, D] colour behind the Gaussians.
        render_mode: "RGB", "D" (accumulated depth Σ w z), "ED" (expected depth Σ w z / Σ w), "RGB+D", "RGB+ED".
        packed: passed to gsplat; ignored by the torch and cpu backends (they return the unpacked layout).
        backend: "auto" | "cpu" | "torch" | "gsplat" (see the module docstring).
        max_pairs_per_chunk, segment, keep_budget: memory/speed knobs of the torch backend (see
            :func:`~perception3d.rendering.rasterize_torch.composite_tiles`).
    Returns:
        render_colors [C, H, W, X], render_alphas [C, H, W, 1], meta (dict, gsplat 1.5 names).
    Raises:
        ValueError naming the argument for a wrong shape, dtype, device, NaN/Inf, or an unknown mode.
    """
    _validate(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds,
              render_mode, tile_size)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if means.is_cuda:
            backend = "gsplat" if gsplat_available() else "torch"
        else:
            backend = _cpu_backend_or_torch() if means.device.type == "cpu" else "torch"
    elif backend == "cpu":
        if means.device.type != "cpu":
            raise ValueError(f"backend='cpu' needs CPU tensors, got means on {means.device}; use backend='auto'")
        backend = _cpu_backend_or_torch()
    if backend == "gsplat":
        if not means.is_cuda or not gsplat_available():
            raise ValueError("backend='gsplat' needs gsplat installed and CUDA tensors; use backend='torch'")
        from gsplat import rasterization

        rc, ra, meta = rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                     near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip,
                                     eps2d=eps2d, sh_degree=sh_degree, packed=packed, tile_size=tile_size,
                                     backgrounds=backgrounds, render_mode=render_mode)
        meta["backend"] = "gsplat"
        return rc, ra, meta
    return _rasterize_tiles(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree,
                            near_plane, far_plane, radius_clip, eps2d, backgrounds, render_mode, tile_size,
                            backend, max_pairs_per_chunk, segment, keep_budget)


def _rasterize_tiles(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree,
                     near_plane, far_plane, radius_clip, eps2d, backgrounds, render_mode, tile_size, backend,
                     max_pairs_per_chunk, segment, keep_budget):
    """The torch and cpu backends: projection, SH colours, binning and compositing (compiled or torch)."""
    C, N = viewmats.shape[0], means.shape[0]
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    op = opacities[None].expand(C, N)
    # compiled projection / SH / binning unless the cameras themselves are optimised (their gradients are the
    # torch path's)
    fused = backend == "cpu" and not (viewmats.requires_grad or Ks.requires_grad)
    if fused:
        radii, means2d, depths, conics, bin_radii = rasterize_cpu.project_cpu(
            means, quats, scales, opacities, viewmats, Ks, width, height, eps2d, near_plane, far_plane, radius_clip)
    else:
        radii, means2d, depths, conics, cov2d = project_gaussians(means, quats, scales, viewmats, Ks, width, height,
                                                                  eps2d, near_plane, far_plane, radius_clip)
    # per-camera colours [C, N, D]
    if sh_degree is None:
        feats = colors if colors.dim() == 3 else colors[None].expand(C, N, colors.shape[-1])
    else:
        campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
        if fused:
            feats = rasterize_cpu.sh_colors_cpu(sh_degree, means, colors, campos.detach())
        else:
            # float64 arithmetic rounded once, as the compiled backend
            dirs = means.double()[None] - campos.double()[:, None]  # [C, N, 3]
            shs = colors if colors.dim() == 4 else colors[None].expand((C,) + colors.shape)
            feats = torch.clamp_min(eval_sh(sh_degree, dirs, shs.double()) + 0.5, 0.0).to(means.dtype)
    if render_mode in ("RGB+D", "RGB+ED"):
        feats = torch.cat([feats, depths[..., None]], -1)
    elif render_mode in ("D", "ED"):
        feats = depths[..., None]

    if fused:
        flatten_ids, offsets = rasterize_cpu.bin_tiles_cpu(means2d, bin_radii, depths, tile_size, tw, th)
    else:
        # Bin with opacity-aware radii (what gsplat's CUDA projection does): alpha ≥ 1/255 needs
        # σ ≤ ln(255·o), i.e. |dx| ≤ √(2 ln(255·o) Σ'_xx); pixels outside that box are cut anyway, so the image
        # is unchanged and far fewer (tile, Gaussian) pairs are evaluated. meta["radii"] keeps the 3.33σ radii.
        with torch.no_grad():
            ext = torch.sqrt(2.0 * torch.log((255.0 * op).clamp_min(1.0)))[..., None]  # [C, N, 1]
            sd = torch.stack([cov2d[..., 0, 0], cov2d[..., 1, 1]], -1).sqrt()
            bin_radii = torch.minimum(radii.to(sd.dtype), torch.ceil(ext * sd + 0.01))
            bin_radii = torch.where((ext > 0) & (radii > 0), bin_radii, torch.zeros_like(bin_radii)).to(torch.int32)
        flatten_ids, offsets = bin_tiles(means2d.detach(), bin_radii, depths.detach(), tile_size, tw, th)
    if backend == "cpu":
        img, T = rasterize_cpu.composite_tiles_cpu(means2d, conics, op, feats, bin_radii, flatten_ids, offsets,
                                                   width, height, tile_size, C)
    else:
        img, T = composite_tiles(means2d, conics, op, feats, radii, flatten_ids, offsets, width, height,
                                 tile_size, C, max_pairs_per_chunk, segment, keep_budget)
    if torch.is_grad_enabled() and not img.requires_grad:
        # nothing visible (camera behind every Gaussian, all culled): keep the outputs in the autograd graph so
        # that a loss on them back-propagates zero gradients on every backend instead of raising
        zero = sum(torch.where(torch.isfinite(x), x, 0.0).sum() * 0.0
                   for x in (means2d, conics, op, feats) if x.requires_grad)
        if torch.is_tensor(zero):
            img, T = img + zero, T + zero
    alphas = (1.0 - T)[..., None]
    if render_mode in ("ED", "RGB+ED"):
        img = torch.cat([img[..., :-1], img[..., -1:] / alphas.clamp(min=1e-10)], -1)
    if backgrounds is not None and render_mode != "D" and render_mode != "ED":
        bg = backgrounds
        if render_mode in ("RGB+D", "RGB+ED"):
            bg = torch.cat([bg, torch.zeros_like(bg[:, :1])], -1)
        img = img + bg[:, None, None, :] * T[..., None]
    meta = {
        "batch_ids": None, "camera_ids": None, "gaussian_ids": None,
        "radii": radii, "means2d": means2d, "depths": depths, "conics": conics, "opacities": op,
        "tile_width": tw, "tile_height": th, "tiles_per_gauss": None, "isect_ids": None,
        "flatten_ids": flatten_ids, "isect_offsets": offsets[:-1].reshape(C, th, tw),
        "width": width, "height": height, "tile_size": tile_size, "n_batches": 1, "n_cameras": C,
        "backend": backend,
    }
    return img, alphas, meta
