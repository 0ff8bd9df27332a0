"""CoherentGS's inputs computed once before training (Paliwal et al., ECCV 2024, §4.2 "initialization" and the
depth-layer masks of §4.1), from the package's priors:

* :func:`dense_depth` — one depth per pixel of a training view from a :class:`~..priors.DepthPrior`: a relative
  prior is aligned by least-squares scale and shift to the view's triangulated feature matches (a view with
  fewer than 10 is scaled so that its median depth is √(near · far) of the scene's depth range, which the
  flow-based alignment then corrects, as the authors align an unanchored monocular depth), and pixels without
  depth (textureless plane-sweep pixels) are filled from their neighbours in inverse depth (push–pull).
* :func:`depth_layers` — the depth-layer masks: the disparity (sampled every 10th pixel) clustered into
  ``num_mask_channels`` groups by agglomerative (Ward) clustering, as the authors' ``get_depth_bins``; each pixel
  belongs to the layer whose disparity interval holds it.
* :func:`correspondences` — optical flow between every ordered pair of training views and the authors'
  consistency weight ``w = exp(−½ ‖F_ab + F_ba(x + F_ab)‖₁)`` eroded by a 5 × 5 window
  (``data_preparation_scripts/gen_flow.py``), thresholded at ``flow_threshold``.
* :func:`induced_flow` — the flow a depth map and the known cameras predict between two views, the start of a
  pose-guided flow search: the authors' FlowFormer++ matches LLFF's forward-facing views a few tens of pixels
  apart; between views of an object 30–60° apart (lego: 46–55 px on the 200 × 200 Gaussian grid) DIS from zero
  flow missed the depth-induced flow by a median 50 px and only 6.5 % of the pixels that passed the consistency
  check were within 2 px of it. With the induced flow, the flow prior only has to find the residual between
  view a's image and view b's image warped into view a, and the consistency check keeps what both views'
  images and depths agree on.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..priors import DepthPrior, FlowPrior, align_scale_shift, feature_depths, warp_by_flow
from ..scenes import depth_range

__all__ = ["dense_depth", "fill_holes", "depth_layers", "correspondences", "induced_flow", "outside_masks"]


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
    scale, shift, anchors = 1.0, 0.0, None
    if not dm.metric:
        uv, z = feature_depths(scene, i, ids)
        anchors = int(len(z))
        if len(z) >= 10:
            u = torch.from_numpy(uv[:, 0]).long().clamp(0, W - 1)
            v = torch.from_numpy(uv[:, 1]).long().clamp(0, H - 1)
            sparse = torch.zeros_like(depth)
            sparse[v, u] = torch.from_numpy(z).float()
            depth, scale, shift = align_scale_shift(depth, sparse, (sparse > 0) & valid)
        elif valid.any():  # too few matches to fit a scale: the content's typical depth; the flow alignment fits both
            near, far = depth_range(scene, ids)
            scale = float((near * far) ** 0.5 / depth[valid].median())
            depth = depth * scale
        valid &= depth > 0
    frac = float(valid.float().mean())
    if frac < 1e-3:
        raise ValueError(f"{dm.source} depth prior gave no usable depth for view {i} ({scene.names[i]})")
    depth = fill_holes(depth, valid)
    rec = {"source": dm.source, "metric": dm.metric, "valid": round(frac, 4), "scale": scale, "shift": shift}
    return depth, rec if anchors is None else {**rec, "anchors": anchors}


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


def _pairs(depth: Tensor, Ks: Tensor, viewmats: Tensor):
    """For every ordered pair (a, b), a ≠ b: yields (a, b, uv, q) with uv [H, W, 2] view a's pixel centres and
    q [H, W, 3] = K_b (R_b X + t_b) of the points X_a(x) = o_a + d_a(x) r_a(x) (float64)."""
    V, H, W = depth.shape
    gy, gx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                            indexing="ij")
    uv1 = torch.stack([gx + 0.5, gy + 0.5, torch.ones_like(gx)], -1)
    Ks, viewmats = Ks.double(), viewmats.double()
    c2w = torch.linalg.inv(viewmats)
    for a in range(V):
        X = ((uv1 @ torch.linalg.inv(Ks[a]).T) * depth[a].double()[..., None]) @ c2w[a, :3, :3].T + c2w[a, :3, 3]
        for b in range(V):
            if a != b:
                yield a, b, uv1[..., :2], (X @ viewmats[b, :3, :3].T + viewmats[b, :3, 3]) @ Ks[b].T


def induced_flow(depth: Tensor, Ks: Tensor, viewmats: Tensor) -> Tensor:
    """The flow that depth maps and cameras predict between every ordered pair of views (module doc).

    Args:
        depth: [V, H, W] z-depth of each view's pixels (pixel centres at +0.5); Ks: [V, 3, 3] intrinsics at that
            resolution; viewmats: [V, 4, 4] world → camera.
    Returns:
        [V, V, H, W, 2]: entry [a, b] moves pixel x of view a to where its point X_a(x) projects in view b
        (zero on the diagonal and where the point is behind camera b).
    """
    V, H, W = depth.shape
    flows = torch.zeros(V, V, H, W, 2)
    for a, b, uv, q in _pairs(depth, Ks, viewmats):
        z = q[..., 2:3]
        f = q[..., :2] / z.clamp_min(1e-12) - uv
        flows[a, b] = torch.where(z > 1e-12, f, torch.zeros_like(f)).float()
    return flows


def outside_masks(depth: Tensor, sites: Tensor, Ks: Tensor, viewmats: Tensor, tolerance: int = 1) -> Tensor:
    """Visual-hull check of object captures: for the point X_a(x) of every site of view a (depth [V, H, W], pixel
    centres at +0.5, Ks [V, 3, 3] at that resolution, viewmats [V, 4, 4] world → camera), the number of other
    views b in whose image it lands on the background — off b's foreground ``sites`` grown by ``tolerance``
    pixels. A point on the object is inside every view's foreground; one outside is a depth error and shows as
    a fringe of the object's colours over the background in view b. → [V, H, W] int64 (0 off the sites)."""
    V, H, W = depth.shape
    fg = sites.float()[:, None]
    if tolerance > 0:
        fg = F.max_pool2d(fg, 2 * tolerance + 1, stride=1, padding=tolerance)
    fg = fg[:, 0] > 0
    count = torch.zeros(V, H, W, dtype=torch.long)
    for a, b, _, q in _pairs(depth, Ks, viewmats):
        z = q[..., 2]
        u = torch.floor(q[..., 0] / z.clamp_min(1e-12)).long()
        v = torch.floor(q[..., 1] / z.clamp_min(1e-12)).long()
        inside = sites[a] & (z > 1e-12) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        count[a] += (inside & ~fg[b][v.clamp(0, H - 1), u.clamp(0, W - 1)]).long()
    return count


def correspondences(flow_prior: FlowPrior, images: Tensor, sites: Tensor, threshold: float = 0.5,
                    init: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Flows and masks between every ordered pair of V training views.

    Args:
        images: [V, H, W, 3]; sites: [V, H, W] bool (pixels that hold a Gaussian).
        init: [V, V, H, W, 2] predicted flows (:func:`induced_flow`), or None: the prior's flow between the
            images (authors). With a prediction P, image b is first warped into view a along it, the prior finds
            the residual flow r from image a to that warped image (small where P is right, and free of the
            rotation and foreshortening between the views), and the flow is r(x) + P(x + r(x)).
    Returns:
        flows [V, V, H, W, 2] (flows[a, b] maps pixels of view a into view b; zero on the diagonal) and masks
        [V, V, H, W] float in {0, 1}: consistent correspondences between two sites.
    """
    import cv2

    V, H, W, _ = images.shape
    flows = torch.zeros(V, V, H, W, 2)
    for a in range(V):
        for b in range(V):
            if a == b:
                continue
            if init is None:
                flows[a, b] = flow_prior.flow(images[a], images[b])
            else:
                r = flow_prior.flow(images[a], warp_by_flow(images[b], init[a, b]).clamp(0, 1))
                flows[a, b] = r + warp_by_flow(init[a, b], r)
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
