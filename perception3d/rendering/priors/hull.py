"""Depth from silhouettes (shape from silhouette; Laurentini, "The visual hull concept for silhouette-based image
understanding", TPAMI 1994) for object captures, and a depth prior that fills another prior's holes with it.

The **visual hull** of calibrated views with object masks is the set of points that project inside every view's
mask; an object capture shows the whole object in every view, so a point outside a view's image (or behind it) is
outside the object too. The hull contains the object, so along a pixel's ray the first point inside the hull is at
or in front of the true surface: exact on the silhouette's rim and on convex parts, too near in concavities the
views cannot see into. Where a multi-view stereo prior has no depth (textureless or unmatched pixels: on lego the
plane sweep the triangulated prior falls back to is valid on under a tenth of a view's object), the hull's entry
depth is a real, weight-free estimate; where the prior's depth lies in front of the hull's entry, the prior is
wrong (such a point projects off some view's mask), and the entry depth is the nearest possible one.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .base import DepthMap, DepthPrior

__all__ = ["visual_hull_depth", "HullFilledDepth"]


@torch.no_grad()
def visual_hull_depth(scene, i: int, ids: Sequence[int], pixels: Optional[torch.Tensor] = None,
                      num_samples: int = 64, tolerance: int = 1, refine: int = 5,
                      depth_range: Optional[tuple[float, float]] = None, chunk: int = 4096) -> torch.Tensor:
    """Camera-z depth [H, W] of the first point along each pixel's ray of view ``i`` that lies inside the visual
    hull of the views ``ids`` other than ``i`` (their masks grown by ``tolerance`` pixels), 0 where the ray never
    enters it within the depth range or the pixel is not asked for.

    ``pixels``: [H, W] bool, the pixels to compute (default: view ``i``'s own mask). The ray is sampled at
    ``num_samples`` depths evenly spaced in ``depth_range`` (default: :func:`~perception3d.rendering.scenes.
    depth_range` of the views), then the entry is bisected ``refine`` times between the last sample outside and
    the first inside. Every other view must have a mask (ValueError naming the view otherwise)."""
    from ..scenes import depth_range as scene_depth_range

    H, W = scene.height, scene.width
    others = [j for j in ids if j != i]
    if not others:
        raise ValueError(f"visual hull: view {i} needs at least one other view with an object mask")
    fg = []
    for j in others:
        m = scene.mask(j)
        if m is None:
            raise ValueError(f"visual hull: view {j} ({scene.names[j]}) has no object mask (no mask file, no alpha); "
                             "the visual hull needs object captures")
        m = m.float()[None, None]
        if tolerance > 0:
            m = F.max_pool2d(m, 2 * tolerance + 1, stride=1, padding=tolerance)
        fg.append(m[0, 0] > 0)
    fg = torch.stack(fg)                                                        # [J, H, W]
    if pixels is None:
        pixels = scene.mask(i)
        if pixels is None:
            raise ValueError(f"visual hull: view {i} ({scene.names[i]}) has no object mask")
    near, far = depth_range if depth_range is not None else scene_depth_range(scene, list(ids))
    if not 0 < near < far:
        raise ValueError(f"visual hull: need 0 < near < far, got ({near}, {far})")
    zs = torch.linspace(near, far, num_samples)
    out = torch.zeros(H, W)
    vv, uu = torch.nonzero(pixels, as_tuple=True)
    cam_i = scene.cameras[[i]]
    # a pixel's points at unit depth, world frame (X(z) = c + z · r with r the ray at camera z = 1)
    uv = torch.stack([uu.float() + 0.5, vv.float() + 0.5], -1)
    centre = cam_i.unproject(uv[:1], torch.zeros(1))[0, 0]
    ray = cam_i.unproject(uv, torch.ones(len(uv)))[0] - centre                  # [P, 3]

    single = [scene.cameras[[j]] for j in others]

    def inside(X: torch.Tensor) -> torch.Tensor:                               # X [N, 3] → [N] bool
        # view by view, projecting only the points still inside every view so far (most rays' samples leave
        # the hull at the first views, so this does a fraction of the J projections)
        alive = torch.arange(len(X))
        for j, cam in enumerate(single):
            puv, z = cam.project(X[alive])                                      # [1, A, 2], [1, A]
            u, v = puv[0, :, 0].floor().long(), puv[0, :, 1].floor().long()
            seen = (z[0] > 0) & (u >= 0) & (v >= 0) & (u < W) & (v < H)
            alive = alive[seen & fg[j, v.clamp(0, H - 1), u.clamp(0, W - 1)]]
            if len(alive) == 0:
                break
        out = torch.zeros(len(X), dtype=torch.bool)
        out[alive] = True
        return out

    step = float(zs[1] - zs[0]) if num_samples > 1 else 0.0
    for s in range(0, len(ray), chunk):
        r = ray[s:s + chunk]
        X = centre + r[:, None, :] * zs[None, :, None]                          # [P, S, 3]
        ins = inside(X.reshape(-1, 3)).view(len(r), num_samples)
        hit = ins.any(1)
        first = ins.float().argmax(1)                                           # first sample inside
        hi = zs[first]
        lo = (hi - step).clamp_min(near)
        for _ in range(refine if step > 0 else 0):                             # bisect the entry in (lo, hi]
            mid = 0.5 * (lo + hi)
            m_in = inside(centre + r * mid[:, None])
            hi = torch.where(m_in, mid, hi)
            lo = torch.where(m_in, lo, mid)
        hi = torch.where(first == 0, zs[0].expand_as(hi), hi)                   # already inside at near
        out[vv[s:s + chunk], uu[s:s + chunk]] = torch.where(hit, hi, torch.zeros_like(hi))
    return out


class HullFilledDepth(DepthPrior):
    """A metric depth prior (``prior``, a config dict for :func:`~perception3d.rendering.priors.
    build_depth_prior`; default the triangulated features; ``dict(type="none")``: the hull alone) whose holes
    inside the view's object mask are filled with the visual hull's entry depth (:func:`visual_hull_depth`), at
    confidence ``confidence``. With ``clamp`` the prior's own depths that lie in front of the hull's entry are
    moved back onto it (module doc). For object captures only: a view without a mask raises ValueError."""

    name = "hull_filled"
    metric = True

    def __init__(self, prior: Optional[dict] = None, num_samples: int = 64, tolerance: int = 1,
                 confidence: float = 0.5, clamp: bool = True):
        from . import build_depth_prior

        if not 0 < confidence <= 1:
            raise ValueError(f"HullFilledDepth: confidence must be in (0, 1], got {confidence}")
        if num_samples < 2:
            raise ValueError(f"HullFilledDepth: num_samples must be >= 2, got {num_samples}")
        prior = dict(prior or {"type": "triangulated"})
        self.inner = None if prior.get("type") == "none" else build_depth_prior(prior)
        self.num_samples, self.tolerance = int(num_samples), int(tolerance)
        self.confidence, self.clamp = float(confidence), bool(clamp)
        self.last_stats: dict = {}

    def describe(self) -> dict:
        return {"type": self.name, "metric": True, "prior": None if self.inner is None else self.inner.describe(),
                "num_samples": self.num_samples, "tolerance": self.tolerance, "confidence": self.confidence,
                "clamp": self.clamp, "weights": None}

    def estimate(self, scene, i: int, ids: Optional[Sequence[int]] = None) -> DepthMap:
        ids = list(scene.train_ids if ids is None else ids)
        if self.inner is None:   # the hull alone
            dm = DepthMap(torch.zeros(scene.height, scene.width), None, True, "none")
        else:
            dm = self.inner.estimate(scene, i, ids)
        if not dm.metric:
            raise ValueError(f"HullFilledDepth: the {dm.source} depth of view {i} is relative; the visual hull's "
                             "depth is metric, so the inner prior must be too (plane_sweep, triangulated, features)")
        obj = scene.mask(i)
        if obj is None:
            raise ValueError(f"HullFilledDepth: view {i} ({scene.names[i]}) has no object mask (no mask file, no "
                             "alpha); hull filling is for object captures")
        valid = dm.valid & obj
        ask = obj if self.clamp else obj & ~valid
        hull = visual_hull_depth(scene, i, ids, ask, self.num_samples, self.tolerance)
        depth = torch.where(obj, dm.depth.float(), torch.zeros_like(dm.depth, dtype=torch.float32))
        conf = (torch.ones_like(depth) if dm.confidence is None else dm.confidence.float()) * valid
        fill = obj & ~valid & (hull > 0)
        depth = torch.where(fill, hull, depth)
        conf = torch.where(fill, torch.full_like(conf, self.confidence), conf)
        clamped = torch.zeros_like(valid)
        if self.clamp:
            clamped = valid & (hull > 0) & (depth < hull)
            depth = torch.where(clamped, hull, depth)
        self.last_stats = {"view": i, "prior_valid": float(valid.float().mean()), "filled": float(fill.float().mean()),
                           "clamped": float(clamped.float().mean()),
                           "inner": getattr(self.inner, "last_stats", None)}
        return DepthMap(depth, conf, True, f"{self.name}:{dm.source}")
