"""LM-Gaussian's background-aware depth-guided initialisation (Yu et al. 2024, §IV-B; authors'
``dust3r/coarse_initialization.py`` and their ``get_masks_depth`` / ``clean_pointcloud_final`` in
``dust3r/cloud_opt/base_opt.py``).

The authors take DUSt3R's per-view depth maps and poses, keep the confident pixels, **keep every background
pixel** (depth > 1.5 × the view's median depth) whatever its confidence — distant regions are where stereo
confidence is lowest, and dropping them leaves the background empty — and remove the points of a view that lie in
front of another view's depth surface (they would occlude what that view saw: floaters). The surviving pixels are
unprojected with their colours into the initial point cloud.

Here the depth comes from any :class:`~perception3d.rendering.priors.DepthPrior` (the DUSt3R / Marigold maps an
LM-Gaussian scene ships, or the built-in plane sweep), relative maps are first aligned by scale and shift to
features triangulated with the scene's cameras, and holes of a sparse (multi-view) prior are filled by
inpainting the depth (OpenCV Telea) so that textureless surfaces also get points; views with an object mask
(alpha) only get points inside it. Priors without per-pixel
confidence treat every valid pixel as confident; the occlusion test then drops any foreground point that lies more
than ``occlusion_tol`` (relative depth) in front of another training view's surface. On an object capture a
view sees empty background off its object mask, i.e. a surface at infinity, so a point that projects there is an
occluder too (the test then carves the cloud to the views' visual hull, as 3DGS's masked starts are carved).

Not the authors': :func:`hull_volume_points` (``lmgaussian.hull_volume_points``) adds points drawn uniformly inside
the training views' visual hull on object captures. The authors' DUSt3R cloud covers every surface densely; a
weight-free prior's does not (triangulated features, inpainted holes, hull-filled depth), and where its depth is
wrong the occluder test removes the points, so parts of the object start with few Gaussians, which then stretch
to cover them. The volume points are vanilla 3DGS's masked random start, kept alongside the depth points.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..trainer import carve_points

__all__ = ["ViewDepth", "view_depth", "background_aware_points", "hull_volume_points"]

log = logging.getLogger("perception3d.lmgaussian")


@dataclass
class ViewDepth:
    """One training view's depth for initialisation and the depth loss.

    Attributes:
        depth: [H, W] camera-z depth in scene units (aligned when the prior is relative), 0 where unknown.
        valid: [H, W] bool, the prior's own valid pixels (before hole filling).
        raw: [H, W] the prior's map as it came (relative maps un-aligned), for the Pearson loss.
        source: the prior's name.
    """

    depth: torch.Tensor
    valid: torch.Tensor
    raw: torch.Tensor
    source: str


def view_depth(prior, scene, i: int, ids: Sequence[int]) -> ViewDepth:
    """Depth of view ``i`` from ``prior`` (a :class:`DepthPrior`), in scene units: a relative prior is aligned
    (scale and shift, :func:`~perception3d.rendering.priors.align_scale_shift`) to the SIFT features of view
    ``i`` triangulated with the other views ``ids`` (:func:`~perception3d.rendering.priors.feature_depth_map`)."""
    from ..priors import align_scale_shift, feature_depth_map

    dm = prior.estimate(scene, i, ids)
    if tuple(dm.depth.shape) != (scene.height, scene.width):
        raise ValueError(f"depth prior {dm.source}: view {i} ({scene.names[i]}) depth is "
                         f"{tuple(dm.depth.shape[::-1])}, the image is {scene.width}x{scene.height}")
    depth, valid = dm.depth, dm.valid
    if not dm.metric:
        sparse, n_feat = feature_depth_map(scene, i, ids)
        if n_feat < 10:
            raise ValueError(f"LM-Gaussian init: the {dm.source} depth of view {i} ({scene.names[i]}) is relative "
                             f"and only {n_feat} triangulated features anchor its scale (need 10)")
        depth, a, _ = align_scale_shift(depth, sparse, (sparse > 0) & valid)
        if a <= 0:
            raise ValueError(f"LM-Gaussian init: the {dm.source} depth of view {i} ({scene.names[i]}) is "
                             f"anti-correlated with the triangulated features (scale {a:.3g})")
        valid = valid & (depth > 0)
        depth = torch.where(valid, depth, torch.zeros_like(depth))
    return ViewDepth(depth.float(), valid.bool(), dm.depth.float(), dm.source)


def _inpaint(depth: torch.Tensor, valid: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """Fill the pixels outside ``valid`` from their surroundings (Telea's fast marching, in inverse depth so
    that the far background does not bleed over the foreground)."""
    import cv2

    d = depth.numpy().astype(np.float32)
    inv = np.where(valid.numpy(), 1.0 / np.maximum(d, 1e-6), 0).astype(np.float32)
    scale = float(inv.max()) or 1.0
    filled = cv2.inpaint((inv / scale * 65535).astype(np.uint16), (~valid.numpy()).astype(np.uint8), radius,
                         cv2.INPAINT_TELEA).astype(np.float32) / 65535 * scale
    out = np.where(filled > 0, 1.0 / np.maximum(filled, 1e-9), 0).astype(np.float32)
    return torch.from_numpy(np.where(valid.numpy(), d, out))


@torch.no_grad()
def background_aware_points(scene, ids: Sequence[int], depths: dict, n: int, background_ratio: float = 1.5,
                            occlusion_tol: float = 0.05, fill_holes: bool = True,
                            generator: Optional[torch.Generator] = None,
                            agreement: Optional[dict] = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The initial point cloud (module doc) from the training views ``ids`` and their :class:`ViewDepth`
    ``depths`` ({view: ViewDepth}). Returns (points [n', 3], colours [n', 3] in [0, 1], counts) with n' ≤ ``n``
    drawn uniformly over all kept pixels; ``counts`` says how many pixels were background, filled, removed as
    occluders, kept.

    ``agreement``: a dict to fill with {view: [H, W] int} — for each pixel of the view's own (valid, not
    inpainted) depth, how many other training views' depth agrees with it within ``occlusion_tol`` (the point
    projects into view j at depth z with |z − z_j| ≤ tol · z_j): the multi-view geometric consistency that
    MVS fusion and DUSt3R's confidence stand for, used to mask the depth losses' targets."""
    cams = scene.cameras
    H, W = scene.height, scene.width
    filled = {}
    for i in ids:
        vd = depths[i]
        if not bool(vd.valid.any()):
            raise ValueError(f"LM-Gaussian init: the {vd.source} depth prior gave no valid pixel on view {i} "
                             f"({scene.names[i]})")
        full = _inpaint(vd.depth, vd.valid) if fill_holes and not bool(vd.valid.all()) else vd.depth
        ok = full > 0
        obj = scene.mask(i)
        if obj is not None:  # an object capture (alpha / mask): its background gets no points
            ok &= obj
        filled[i] = (full, ok, obj)
    stats = {"background": 0, "filled": 0, "occluders_removed": 0, "kept": 0}
    pts, cols = [], []
    vv, uu = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    uv = torch.stack([uu, vv], -1).reshape(-1, 2).float() + 0.5
    for i in ids:
        d, ok, _ = filled[i]
        med = float(d[ok].median())
        # "retain all the background information": pixels beyond background_ratio × the median depth are kept
        back = ok & (d > background_ratio * med)
        keep = ok.clone()
        agree = torch.zeros(H * W, dtype=torch.int32)
        X = cams[i].unproject(uv, d.reshape(-1))[0]
        for j in ids:
            if j == i:
                continue
            dj, okj, objj = filled[j]
            puv, z = cams[j].project(X)
            puv, z = puv[0], z[0]
            u, v = puv[:, 0].floor().long(), puv[:, 1].floor().long()
            inside = (z > 0) & (u >= 0) & (v >= 0) & (u < W) & (v < H)
            zj = torch.zeros_like(z)
            zj[inside] = torch.where(okj[v[inside], u[inside]], dj[v[inside], u[inside]],
                                     torch.zeros_like(z[inside]))
            # clean_pointcloud: a point in front of what view j saw there would occlude it
            occluder = inside & (zj > 0) & (z < (1 - occlusion_tol) * zj)
            if objj is not None:  # off view j's object mask it sees the empty background: anything there occludes it
                off = torch.zeros_like(inside)
                off[inside] = ~objj[v[inside], u[inside]]
                occluder |= off
            keep &= ~(occluder.reshape(H, W) & ~back)
            if agreement is not None:
                agree += (inside & (zj > 0) & ((z - zj).abs() <= occlusion_tol * zj)).int()
        if agreement is not None:
            agreement[i] = torch.where(depths[i].valid & ok, agree.reshape(H, W), torch.zeros_like(agree.reshape(H, W)))
        stats["background"] += int(back.sum())
        stats["filled"] += int((ok & ~depths[i].valid).sum())
        stats["occluders_removed"] += int((ok & ~keep).sum())
        stats["kept"] += int(keep.sum())
        m = keep.reshape(-1)
        pts.append(X[m])
        cols.append(scene.image(i).reshape(-1, 3)[m])
    P, C = torch.cat(pts), torch.cat(cols)
    if len(P) == 0:
        raise ValueError(f"LM-Gaussian init: no point survived on views {list(ids)}")
    if len(P) > n:
        sel = torch.randperm(len(P), generator=generator)[:n]
        P, C = P[sel], C[sel]
    log.info("LM-Gaussian init: %s → %d points", stats, len(P))
    return P, C, stats


@torch.no_grad()
def hull_volume_points(scene, ids: Sequence[int], n: int, lo: torch.Tensor, hi: torch.Tensor,
                       generator: Optional[torch.Generator] = None, max_rounds: int = 50
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points uniform in the box ``lo``–``hi`` ([3] each) that lie inside the object mask of every training
    view in ``ids`` that sees them and are seen by one at least (the visual hull, :func:`~perception3d.rendering.
    trainer.carve_points`), with random colours (3DGS's random start). Returns (points [n', 3], colours [n', 3]);
    n' < n only when ``max_rounds`` batches of 4n candidates did not find n (a thin hull in a large box). Every
    view must have an object mask (ValueError naming the view otherwise)."""
    masks = []
    for i in ids:
        m = scene.mask(i)
        if m is None:
            raise ValueError(f"LM-Gaussian init: hull_volume_points needs object masks; view {i} "
                             f"({scene.names[i]}) has none")
        masks.append(m)
    lo, hi = torch.as_tensor(lo, dtype=torch.float32), torch.as_tensor(hi, dtype=torch.float32)
    found, count = [], 0
    for _ in range(max_rounds):
        if count >= n:
            break
        X = carve_points(lo + torch.rand(4 * n, 3, generator=generator) * (hi - lo), scene, ids, masks,
                         require_seen=True)
        found.append(X)
        count += len(X)
    P = torch.cat(found)[:n] if found else torch.zeros(0, 3)
    return P, torch.rand(len(P), 3, generator=generator)
