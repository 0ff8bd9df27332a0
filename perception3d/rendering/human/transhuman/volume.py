"""Rays of a camera, their entry/exit through the body's 3-D box, stratified samples and volume rendering
(NeRF, Mildenhall et al. 2020, Eq. 3: C = Σ_i T_i (1 − exp(−σ_i δ_i)) c_i, T_i = Π_{j<i} (1 − α_j)) — the
rendering the TransHuman authors use (ReLU density, sigmoid colour, last interval 1e10)."""
from __future__ import annotations

import math
from typing import Optional

import torch

__all__ = ["camera_rays", "ray_box", "sample_along_rays", "composite", "body_box", "render_rays", "near_body"]


def camera_rays(viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through every pixel centre (house convention: centres at +0.5): origins, directions [H·W, 3] (world;
    directions not normalised, z = 1 in camera space, as the authors')."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32) + 0.5,
                            torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
    d_cam = pix @ torch.linalg.inv(K.float()).T
    R, t = viewmat[:3, :3].float(), viewmat[:3, 3].float()
    d = d_cam @ R                       # Rᵀ d_cam
    o = (-R.T @ t).expand_as(d)
    return o.contiguous(), d


def body_box(verts: torch.Tensor, pad: tuple[float, float, float] = (0.0, 0.0, 0.05)) -> torch.Tensor:
    """The authors' 3-D box of a posed body: the vertices' bounds grown by ``pad`` (their default: 5 cm along
    world z only). verts [N, 3] → [2, 3]."""
    p = torch.as_tensor(pad, dtype=verts.dtype)
    return torch.stack([verts.min(0).values - p, verts.max(0).values + p])


def ray_box(o: torch.Tensor, d: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab test: (near [R], far [R], hit bool [R]) of rays o, d [R, 3] with an axis-aligned box [2, 3]."""
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (box[0] - o) * inv, (box[1] - o) * inv
    near = torch.minimum(t0, t1).max(-1).values.clamp_min(0)
    far = torch.maximum(t0, t1).min(-1).values
    return near, far, far > near


def sample_along_rays(near: torch.Tensor, far: torch.Tensor, n: int, perturb: bool,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """z values [R, n] evenly spaced in [near, far], jittered within their intervals when ``perturb``."""
    t = torch.linspace(0, 1, n, dtype=near.dtype)
    z = near[:, None] * (1 - t) + far[:, None] * t
    if perturb:
        mids = 0.5 * (z[:, 1:] + z[:, :-1])
        lo, hi = torch.cat([z[:, :1], mids], 1), torch.cat([mids, z[:, -1:]], 1)
        z = lo + (hi - lo) * torch.rand(z.shape, generator=generator, dtype=z.dtype)
    return z


def composite(raw: torch.Tensor, z: torch.Tensor, d: torch.Tensor,
              last_interval: Optional[float] = 1e10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """raw [R, n, 4] (rgb logits, σ) → (rgb [R, 3] on black, accumulated opacity [R], expected depth [R]).
    ``last_interval``: the length given to the last sample (the authors' and NeRF's 1e10 make it opaque whenever
    σ > 0); ``None`` repeats the previous interval (mip-NeRF: the ray ends at the far bound, and what is left of
    the transmittance shows the black background)."""
    dz = z[:, 1:] - z[:, :-1]
    last = dz[:, -1:] if last_interval is None else torch.full_like(z[:, :1], last_interval)
    delta = torch.cat([dz, last], 1) * d.norm(dim=-1, keepdim=True)
    alpha = 1 - torch.exp(-torch.relu(raw[..., 3]) * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], 1), 1)[:, :-1]
    w = alpha * trans
    return (w[..., None] * torch.sigmoid(raw[..., :3])).sum(1), w.sum(1), (w * z).sum(1)


def render_rays(query, o: torch.Tensor, d: torch.Tensor, box: torch.Tensor, n_samples: int = 64,
                perturb: bool = False, chunk: int = 4096, keep=None,
                generator: torch.Generator | None = None, last_interval: Optional[float] = 1e10) -> dict:
    """Volume-render rays o, d [R, 3] through ``box`` [2, 3] with ``query(pts [P, 3], viewdir [P, 3]) → raw
    [P, 4]``; ``keep(pts) → bool [P]`` may mark samples to skip (zero density, not evaluated). Rays that miss the
    box are black; ``last_interval`` as in :func:`composite`. → dict(rgb [R, 3], acc [R], depth [R], hit bool [R])."""
    R = o.shape[0]
    rgb, acc, depth = o.new_zeros(R, 3), o.new_zeros(R), o.new_zeros(R)
    near, far, hit = ray_box(o, d, box)
    idx = torch.nonzero(hit).flatten()
    per = max(1, chunk // n_samples)
    for s in range(0, idx.numel(), per):
        j = idx[s:s + per]
        z = sample_along_rays(near[j], far[j], n_samples, perturb, generator)
        pts = (o[j, None] + d[j, None] * z[..., None]).reshape(-1, 3)
        vd = torch.nn.functional.normalize(d[j], dim=-1)[:, None].expand(-1, n_samples, -1).reshape(-1, 3)
        if keep is None:
            raw = query(pts, vd)
        else:
            k = keep(pts)
            raw = pts.new_zeros(pts.shape[0], 4)
            if bool(k.any()):
                raw = raw.index_put((k,), query(pts[k], vd[k]))
        c, a, dep = composite(raw.view(len(j), n_samples, 4), z, d[j], last_interval)
        rgb = rgb.index_put((j,), c)
        acc, depth = acc.index_put((j,), a), depth.index_put((j,), dep)
    return dict(rgb=rgb, acc=acc, depth=depth, hit=hit)


def near_body(verts: torch.Tensor, radius: float, cell: float = 0.02):
    """A test ``keep(pts [P, 3]) → bool [P]``: is the point within about ``radius`` of a body vertex (the authors'
    fast inference keeps samples within 0.1 m of the body). Vertices mark the cells of a ``cell``-metre grid, which
    are dilated by ⌈radius / cell⌉ cells (a cube: it keeps slightly more than the ball, never less)."""
    r = max(1, math.ceil(radius / cell))
    lo = verts.min(0).values - (r + 1) * cell
    n = ((verts.max(0).values + (r + 1) * cell - lo) / cell).ceil().long() + 1
    idx = ((verts - lo) / cell).long()
    occ = torch.zeros(*n.tolist(), dtype=torch.float32)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = 1.0
    # Dilation by a (2r+1)³ cube, done as three 1-D max-pools (a cube's max is separable: the same grid as one
    # max_pool3d of kernel 2r+1, about (2r+1)² times fewer comparisons; the 3-D pool was ~0.3 CPU-s per call).
    occ = occ[None, None]
    for k, p in (((2 * r + 1, 1, 1), (r, 0, 0)), ((1, 2 * r + 1, 1), (0, r, 0)), ((1, 1, 2 * r + 1), (0, 0, r))):
        occ = torch.nn.functional.max_pool3d(occ, k, 1, p)
    occ = occ[0, 0] > 0

    def keep(p: torch.Tensor) -> torch.Tensor:
        i = ((p - lo) / cell).floor().long()
        inside = ((i >= 0) & (i < n)).all(-1)
        i = torch.where(inside[:, None], i, torch.zeros_like(i))
        return inside & occ[i[:, 0], i[:, 1], i[:, 2]]

    return keep
