"""NeuS volume rendering of MetaCap's canonical field along posed-space rays.

Per ray: stratified samples every ``step`` metres between the entry and exit of the posed body's box (grown by
``threshold``), kept only within ``threshold`` of the body (the authors' body-model occupancy grid); each kept
sample is canonicalised (:meth:`FrameBody.to_canonical`) and queried. Opacity of a sample interval (NeuS,
Wang et al. 2021, eq. 13, with instant-nsr-pl's cosine annealing of the section SDFs):

    α_i = max((Φ_s(f(p_i) − c_i δ_i / 2) − Φ_s(f(p_i) + c_i δ_i / 2)) / Φ_s(f(p_i) − c_i δ_i / 2), 0)
    c_i = −(relu(−cos θ_i / 2 + 1/2)(1 − r) + relu(−cos θ_i) r),  cos θ_i = d · ∇f / |∇f|,  Φ_s = sigmoid(s ·)

and the colour C = Σ_i T_i α_i c_i + (1 − Σ_i T_i α_i) · background, T_i = Π_{j<i} (1 − α_j) (NeuS eq. 12).
The world-space SDF gradient is ∇_x f = Mᵀ ∇_{x_c} f (M: the linear part of the canonicalisation); colours take
the canonical normal and view direction (M d), as the authors'.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from .field import CanonicalField
from .frames import FrameBody, camera_rays

__all__ = ["render_rays", "render_image"]


def _ray_box(o: torch.Tensor, d: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    near = torch.minimum(t0, t1).max(-1).values.clamp_min(0.0)
    far = torch.maximum(t0, t1).min(-1).values
    return near, far


def render_rays(field: CanonicalField, body: FrameBody, o: torch.Tensor, d: torch.Tensor, background: torch.Tensor,
                step: float = 0.01, threshold: float = 0.05, randomized: bool = True, cos_anneal_ratio: float = 0.0,
                gen: Optional[torch.Generator] = None, create_graph: bool = True, canonical: bool = False) -> dict:
    """Render rays (origins [R, 3], unit directions [R, 3]) through the posed body (``canonical=True``: the rays
    are in canonical space already, identity warp). Returns comp_rgb [R, 3], opacity [R], depth [R], valid [R]
    (the ray kept a sample), and per sample sdf [S], grad [S, 3] (world), n_samples."""
    R, dev = o.shape[0], o.device
    background = background.to(o)
    verts = body.verts_c if canonical else body.verts
    lo, hi = verts.min(0).values - threshold, verts.max(0).values + threshold
    near, far = _ray_box(o, d, lo, hi)
    n_max = max(1, int(math.ceil(float((far - near).clamp_min(0).max()) / step)))
    jitter = (torch.rand(R, 1, generator=gen) if randomized else torch.full((R, 1), 0.5)).to(o)
    t = near[:, None] + (torch.arange(n_max, device=dev)[None] + jitter) * step                    # [R, n_max]
    ok = t < far[:, None]
    x = o[:, None] + t[..., None] * d[:, None]
    ri, si = torch.nonzero(ok, as_tuple=True)
    xs = x[ri, si]
    keep = body.distance(xs, canonical=canonical, upper=threshold) < threshold
    ri, si, xs = ri[keep], si[keep], xs[keep]
    ds = d[ri]
    out = {"n_samples": int(len(ri))}
    if len(ri) == 0:
        z = o.new_zeros(R)
        out.update(comp_rgb=background.expand(R, 3).clone(), opacity=z, depth=z, valid=z.bool(),
                   sdf=o.new_zeros(0), grad=o.new_zeros(0, 3))
        return out
    if canonical:
        xc, M = xs, torch.eye(3, device=dev).expand(len(xs), 3, 3)
    else:
        xc, M = body.to_canonical(xs)
    sdf, g_c, h = field.sdf_and_grad(xc, create_graph=create_graph)
    g_w = torch.einsum("nji,nj->ni", M, g_c)                                            # Mᵀ ∇_c f
    n_w = F.normalize(g_w, dim=-1)
    rgb = field.color(h, F.normalize(g_c, dim=-1), F.normalize(torch.einsum("nij,nj->ni", M, ds), dim=-1))
    # NeuS eq. 13 with cosine annealing
    inv_s = field.inv_s
    true_cos = (ds * n_w).sum(-1)
    iter_cos = -(F.relu(-true_cos * 0.5 + 0.5) * (1.0 - cos_anneal_ratio) + F.relu(-true_cos) * cos_anneal_ratio)
    prev = torch.sigmoid((sdf - iter_cos * step * 0.5) * inv_s)
    nxt = torch.sigmoid((sdf + iter_cos * step * 0.5) * inv_s)
    alpha = ((prev - nxt + 1e-5) / (prev + 1e-5)).clamp(0.0, 1.0)
    # NeuS eq. 12: T_i = Π_{j<i}(1 − α_j), weights T_i α_i, on the padded [R, n_max] layout
    A = o.new_zeros(R, n_max).index_put((ri, si), alpha)
    trans = torch.cumprod(torch.cat([o.new_ones(R, 1), 1.0 - A + 1e-10], 1), 1)[:, :-1]
    w = (trans * A)[ri, si]
    opacity = o.new_zeros(R).index_add(0, ri, w)
    comp = o.new_zeros(R, 3).index_add(0, ri, w[:, None] * rgb) + (1.0 - opacity)[:, None] * background
    depth = o.new_zeros(R).index_add(0, ri, w * t[ri, si])
    valid = torch.zeros(R, dtype=torch.bool, device=dev).index_fill(0, ri, True)
    out.update(comp_rgb=comp, opacity=opacity, depth=depth, valid=valid, sdf=sdf, grad=g_w)
    return out


def render_image(field: CanonicalField, body: FrameBody, cams, index: int, background=(1.0, 1.0, 1.0),
                 step: float = 0.01, threshold: float = 0.05, chunk: int = 4096, canonical: bool = False) -> tuple:
    """Render camera ``index`` of ``cams`` (:class:`Cameras`): (rgb [H, W, 3], opacity [H, W]). Only pixels in the
    body's projected box are traced; the rest are background."""
    H, W = cams.height, cams.width
    verts = body.verts_c if canonical else body.verts
    dev = verts.device
    bg = torch.as_tensor(background, dtype=torch.float32, device=dev)
    rgb = bg.expand(H, W, 3).clone()
    acc = torch.zeros(H, W, device=dev)
    uv, _ = cams[index].project(verts)
    x0, y0 = [int(max(0, math.floor(float(v)) - 3)) for v in uv[0].min(0).values]
    x1, y1 = int(min(W, math.ceil(float(uv[0, :, 0].max())) + 3)), int(min(H, math.ceil(float(uv[0, :, 1].max())) + 3))
    if x1 <= x0 or y1 <= y0:
        return rgb, acc
    yy, xx = torch.meshgrid(torch.arange(y0, y1, device=dev), torch.arange(x0, x1, device=dev), indexing="ij")
    px, py = xx.reshape(-1), yy.reshape(-1)
    ci = torch.full_like(px, index)
    o, d = camera_rays(cams, ci, px, py)
    for s in range(0, len(px), chunk):
        out = render_rays(field, body, o[s:s + chunk], d[s:s + chunk], bg, step, threshold, randomized=False,
                          create_graph=False, canonical=canonical)
        rgb[py[s:s + chunk], px[s:s + chunk]] = out["comp_rgb"].detach()
        acc[py[s:s + chunk], px[s:s + chunk]] = out["opacity"].detach()
    return rgb.clamp(0, 1), acc
