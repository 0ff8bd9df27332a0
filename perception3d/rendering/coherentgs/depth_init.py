"""CoherentGS's inputs computed once before training (Paliwal et al., ECCV 2024, §4.2 "initialization" and the
depth-layer masks of §4.1), from the package's priors:

* :func:`dense_depth` — one depth per pixel of a training view from a :class:`~..priors.DepthPrior`: a relative
  prior is aligned by least-squares scale and shift to the view's triangulated feature matches, and pixels
  without depth (textureless plane-sweep pixels) are filled from their neighbours in inverse depth (push–pull).
* :func:`depth_layers` — the depth-layer masks: the disparity (sampled every 10th pixel) clustered into
  ``num_mask_channels`` groups by agglomerative (Ward) clustering, as the authors' ``get_depth_bins``; each pixel
  belongs to the layer whose disparity interval holds it.
* :func:`correspondences` — optical flow between every ordered pair of training views and the authors'
  consistency weight ``w = exp(−½ ‖F_ab + F_ba(x + F_ab)‖₁)`` eroded by a 5 × 5 window
  (``data_preparation_scripts/gen_flow.py``), thresholded at ``flow_threshold``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..priors import DepthPrior, FlowPrior, align_scale_shift, feature_depths, warp_by_flow

__all__ = ["dense_depth", "fill_holes", "depth_layers", "correspondences"]


def fill_holes(depth: Tensor, valid: Tensor) -> Tensor:
    """Fill ``depth`` [H, W] where ``valid`` is False by push–pull interpolation of inverse depth (average the
    valid pixels down a 2× pyramid, then fill each level's holes from the next coarser one)."""
    inv = torch.where(valid, 1.0 / depth.clamp_min(1e-8), torch.zeros_like(depth))[None, None]
    w = valid.float()[None, None]
    stack = [(inv, w)]
    while max(stack[-1][0].shape[-2:]) > 1:  # down to one cell, which then holds the mean of all valid pixels
        x, m = stack[-1]
        k = tuple(2 if s > 1 else 1 for s in x.shape[-2:])
        x2 = F.avg_pool2d(x * m, k, ceil_mode=True)
        m2 = F.avg_pool2d(m, k, ceil_mode=True)
        stack.append((x2 / m2.clamp_min(1e-12), m2))
    filled = stack[-1][0]
    for x, m in reversed(stack[:-1]):
        up = F.interpolate(filled, size=x.shape[-2:], mode="bilinear", align_corners=False)
        filled = torch.where(m > 0, x, up)  # m: the fraction of valid pixels under each cell
    return 1.0 / filled[0, 0].clamp_min(1e-8)


def dense_depth(prior: DepthPrior, scene, i: int, ids: Sequence[int]) -> tuple[Tensor, dict]:
    """Dense depth [H, W] of view ``i`` (module doc) and a record of what was done (source, metric, filled %)."""
    dm = prior.estimate(scene, i, ids)
    H, W = scene.height, scene.width
    if tuple(dm.depth.shape) != (H, W):
        where = scene.names[i] if scene.names else i
        raise ValueError(f"{dm.source} depth prior: the depth of view {i} ({where}) is "
                         f"{dm.depth.shape[-1]}x{dm.depth.shape[0]}, its image is {W}x{H}")
    depth = dm.depth.float()
    valid = dm.valid & torch.isfinite(depth) & (depth > 0)
    scale, shift = 1.0, 0.0
    if not dm.metric:
        uv, z = feature_depths(scene, i, ids)
        if len(z) < 10:
            raise ValueError(f"{dm.source} depth of view {i} is relative and only {len(z)} triangulated feature "
                             "matches anchor its scale")
        u = torch.from_numpy(uv[:, 0]).long().clamp(0, W - 1)
        v = torch.from_numpy(uv[:, 1]).long().clamp(0, H - 1)
        sparse = torch.zeros_like(depth)
        sparse[v, u] = torch.from_numpy(z).float()
        depth, scale, shift = align_scale_shift(depth, sparse, (sparse > 0) & valid)
        valid &= depth > 0
    frac = float(valid.float().mean())
    if frac < 1e-3:
        raise ValueError(f"{dm.source} depth prior gave no usable depth for view {i} ({scene.names[i]})")
    depth = fill_holes(depth, valid)
    return depth, {"source": dm.source, "metric": dm.metric, "valid": round(frac, 4), "scale": scale,
                   "shift": shift}


def depth_layers(disparity: Tensor, num_layers: int, sites: Optional[Tensor] = None, every: int = 10) -> Tensor:
    """Depth-layer masks [K, H, W] (one-hot over K = ``num_layers``) of a disparity map [H, W] (module doc);
    ``sites`` [H, W] bool restricts the clustering to the pixels that hold a Gaussian."""
    from scipy.cluster.hierarchy import fcluster, linkage

    H, W = disparity.shape
    sub = disparity[::every, ::every]
    if sites is not None:
        sub = sub[sites[::every, ::every]]
    x = sub.reshape(-1).double().numpy()
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-12 or num_layers == 1 or len(x) < num_layers:
        starts = np.array([lo])
    else:
        labels = fcluster(linkage(((x - lo) / (hi - lo))[:, None], method="ward"), num_layers, "maxclust")
        starts = np.sort([x[labels == k].min() for k in np.unique(labels)])
    # layer k holds disparities in [start_k, start_{k+1}); below the first start (unsampled pixels) → layer 0
    idx = torch.bucketize(disparity.double(), torch.from_numpy(starts[1:]), right=True)
    return F.one_hot(idx, num_layers).permute(2, 0, 1).float()


def correspondences(flow_prior: FlowPrior, images: Tensor, sites: Tensor, threshold: float = 0.5
                    ) -> tuple[Tensor, Tensor]:
    """Flows and masks between every ordered pair of V training views.

    Args:
        images: [V, H, W, 3]; sites: [V, H, W] bool (pixels that hold a Gaussian).
    Returns:
        flows [V, V, H, W, 2] (flows[a, b] maps pixels of view a into view b; zero on the diagonal) and masks
        [V, V, H, W] float in {0, 1}: consistent correspondences between two sites.
    """
    import cv2

    V, H, W, _ = images.shape
    flows = torch.zeros(V, V, H, W, 2)
    for a in range(V):
        for b in range(V):
            if a != b:
                flows[a, b] = flow_prior.flow(images[a], images[b])
    masks = torch.zeros(V, V, H, W)
    gx, gy = torch.meshgrid(torch.arange(W, dtype=torch.float32), torch.arange(H, dtype=torch.float32),
                            indexing="xy")
    kernel = np.ones((5, 5), np.uint8)
    for a in range(V):
        for b in range(V):
            if a == b:
                continue
            f = flows[a, b]
            back = warp_by_flow(flows[b, a], f)
            w = torch.exp(-0.5 * (f + back).abs().sum(-1)).numpy().astype(np.float32)
            w = torch.from_numpy(cv2.erode(w, kernel, borderType=cv2.BORDER_REFLECT))
            x1, y1 = gx + f[..., 0], gy + f[..., 1]
            inside = (x1 >= 0) & (x1 <= W - 1) & (y1 >= 0) & (y1 <= H - 1)
            lands = warp_by_flow(sites[b].float()[..., None], f)[..., 0] > 0.999
            masks[a, b] = ((w > threshold) & inside & sites[a] & lands).float()
    return flows, masks
