"""Pure-PyTorch 3D Gaussian splatting rasterizer (the CPU path; differentiable by autograd).

Follows 3DGS (Kerbl et al., SIGGRAPH 2023) and gsplat's conventions:

1. :func:`project_gaussians` — EWA splatting (Zwicker et al. 2001): ``Σ = R S Sᵀ Rᵀ`` (3DGS Eq. 6), camera-space
   ``Σ' = J W Σ Wᵀ Jᵀ`` (3DGS Eq. 5) with J the Jacobian of the pinhole projection at the (x/z, y/z-clipped)
   mean, ``+ eps2d · I`` low-pass filter, conic = ``Σ'⁻¹``, radius = ``ceil(3.33 √Σ'_ii)`` per axis.
2. :func:`bin_tiles` — every (camera, Gaussian) is assigned to the 16 × 16 tiles its radius box touches; the
   (tile, Gaussian) pairs are sorted by tile, then by depth (3DGS §6, the radix-sort key "tile | depth").
3. :func:`composite_tiles` — front-to-back alpha blending (3DGS Eq. 3): ``C = Σ_i c_i α_i T_i``,
   ``T_i = Π_{j<i}(1 − α_j)``, ``α_i = min(0.999, o_i exp(−σ_i))``, ``σ = ½ dᵀ Σ'⁻¹ d``; Gaussians with
   α < 1/255 (or σ < 0) are skipped; a pixel stops before the Gaussian that would take T to ≤ 1e-4.
   Tiles are processed in chunks, each tile's sorted list padded to the chunk's length and cut into depth
   segments; transmittance within a segment is a cumprod of (1 − α); tiles whose pixels have all terminated
   drop out of later segments (early termination). Peak memory is bounded by ``max_pairs_per_chunk``
   pixel–Gaussian evaluations at a time (plus, under autograd, what autograd keeps, unless ``checkpoint``).

One deliberate difference from gsplat's CUDA kernel: a Gaussian contributes only to pixels whose centre lies
inside its radius box (|dx| < r_x, |dy| < r_y). The tile binning covers that box exactly, so the image does not
depend on the tile size; gsplat instead evaluates a Gaussian on every pixel of every touched tile (the extra
contributions are ≲ 1/255 · opacity and mostly fall under the 1/255 cut).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

__all__ = ["quat_to_rotmat", "covariance_3d", "project_gaussians", "bin_tiles", "composite_tiles",
           "ALPHA_MIN", "ALPHA_MAX", "T_MIN"]

ALPHA_MIN = 1.0 / 255.0  # skip Gaussians fainter than this at a pixel (3DGS forward.cu)
ALPHA_MAX = 0.999  # clamp of a single Gaussian's alpha
T_MIN = 1e-4  # a pixel is done before its transmittance would fall to or below this


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """[..., 4] quaternions (w, x, y, z), any norm → [..., 3, 3] rotation matrices."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    R = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1)
    return R.reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """3DGS Eq. 6: ``Σ = R S Sᵀ Rᵀ``. quats [N, 4], scales [N, 3] (linear, not log) → [N, 3, 3]."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def project_gaussians(means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor, Ks: Tensor,
                      width: int, height: int, eps2d: float = 0.3, near_plane: float = 0.01,
                      far_plane: float = 1e10, radius_clip: float = 0.0):
    """EWA projection of N 3D Gaussians into C pinhole cameras (what gsplat's ``fully_fused_projection`` does).

    Args:
        means [N, 3], quats [N, 4] (wxyz), scales [N, 3]; viewmats [C, 4, 4] world → camera; Ks [C, 3, 3].
    Returns:
        radii [C, N, 2] int32 (0 = culled), means2d [C, N, 2], depths [C, N] (camera z),
        conics [C, N, 3] (upper triangle of Σ'⁻¹: a, b, c), covars2d [C, N, 2, 2] (with eps2d added).
    """
    covars = covariance_3d(quats, scales)  # [N, 3, 3]
    R = viewmats[:, :3, :3]  # [C, 3, 3]
    t = viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C, N, 3]
    covars_c = torch.einsum("cij,njk,clk->cnil", R, covars, R)  # W Σ Wᵀ

    tx, ty, tz = means_c.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # Clip the point at which J is evaluated to 1.3 × the image's half-extent (gsplat/3DGS), so that Gaussians
    # far outside the frustum do not get huge 2D footprints.
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    txc = tz * torch.clamp(tx / tz, min=-lim_x_neg, max=lim_x_pos)
    tyc = tz * torch.clamp(ty / tz, min=-lim_y_neg, max=lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * txc / tz ** 2,
                     zero, fy / tz, -fy * tyc / tz ** 2], -1).reshape(tz.shape + (2, 3))
    cov2d = J @ covars_c @ J.transpose(-1, -2)  # 3DGS Eq. 5
    cov2d = cov2d + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)  # low-pass filter
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], -1)

    a, b, c = cov2d[..., 0, 0], 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 1, 1]
    det = (a * c - cov2d[..., 0, 1] * cov2d[..., 1, 0]).clamp(min=1e-10)
    conics = torch.stack([c / det, -b / det, a / det], -1)

    with torch.no_grad():
        radius = torch.stack([torch.ceil(3.33 * a.sqrt()), torch.ceil(3.33 * c.sqrt())], -1)
        valid = (det > 0) & (tz > near_plane) & (tz < far_plane)
        if radius_clip > 0:
            valid &= ~((radius[..., 0] <= radius_clip) & (radius[..., 1] <= radius_clip))
        m2 = means2d.detach()
        inside = ((m2[..., 0] + radius[..., 0] > 0) & (m2[..., 0] - radius[..., 0] < width)
                  & (m2[..., 1] + radius[..., 1] > 0) & (m2[..., 1] - radius[..., 1] < height))
        valid &= inside & torch.isfinite(radius).all(-1)
        radius = torch.where(valid[..., None], radius, torch.zeros_like(radius))
        radii = radius.to(torch.int32)
    return radii, means2d, tz, conics, cov2d


@torch.no_grad()
def bin_tiles(means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, tile_width: int,
              tile_height: int):
    """Assign projected Gaussians to tiles and sort each tile's list front to back.

    Args:
        means2d [C, N, 2], radii [C, N, 2] (int, 0 = culled), depths [C, N].
    Returns:
        flatten_ids [P] int64 indices into the flattened [C·N] arrays, grouped by tile
        (tile id = c · tile_h · tile_w + ty · tile_w + tx), depth-ascending within a tile;
        tile_offsets [C · tile_h · tile_w + 1] int64 (the pairs of tile t are ``offsets[t]:offsets[t+1]``).
    """
    C, N = depths.shape
    n_tiles = C * tile_height * tile_width
    dev = means2d.device
    valid = (radii > 0).all(-1).reshape(-1)
    ids = valid.nonzero().squeeze(1)  # flattened (c, n)
    if ids.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=dev), torch.zeros(n_tiles + 1, dtype=torch.long, device=dev)
    # front to back: sort the visible Gaussians by depth once; the stable tile sort below keeps that order
    ids = ids[torch.sort(depths.reshape(-1)[ids], stable=True).indices]
    cam = ids // N
    m = means2d.reshape(-1, 2)[ids].double()
    r = radii.reshape(-1, 2)[ids].double()
    x0 = torch.floor((m[:, 0] - r[:, 0]) / tile_size).clamp(0, tile_width).long()
    x1 = torch.ceil((m[:, 0] + r[:, 0]) / tile_size).clamp(0, tile_width).long()
    y0 = torch.floor((m[:, 1] - r[:, 1]) / tile_size).clamp(0, tile_height).long()
    y1 = torch.ceil((m[:, 1] + r[:, 1]) / tile_size).clamp(0, tile_height).long()
    nx = x1 - x0
    cnt = nx * (y1 - y0)
    item = torch.repeat_interleave(torch.arange(ids.numel(), device=dev), cnt)
    start = torch.cumsum(cnt, 0) - cnt
    local = torch.arange(item.numel(), device=dev) - start[item]
    tx = x0[item] + local % nx[item]
    ty = y0[item] + local // nx[item]
    tile = (cam[item] * tile_height + ty) * tile_width + tx
    tile, perm = torch.sort(tile, stable=True)
    flatten_ids = ids[item[perm]]
    counts = torch.bincount(tile, minlength=n_tiles)
    offsets = torch.zeros(n_tiles + 1, dtype=torch.long, device=dev)
    offsets[1:] = torch.cumsum(counts, 0)
    return flatten_ids, offsets


def _composite_chunk(means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor, radii: Tensor,
                     pix: Tensor, ids: Tensor, counts: Tensor, segment: int):
    """Blend one chunk of B tiles. pix [B, P, 2] pixel centres; ids [B, L] sorted flattened Gaussian ids
    (padded), counts [B] valid lengths. Returns colors [B, P, D] and final transmittance [B, P]."""
    B, P = pix.shape[:2]
    L = ids.shape[1]
    D = colors.shape[-1]
    out = torch.zeros(B, P, D, dtype=colors.dtype, device=colors.device)
    T = torch.ones(B, P, dtype=means2d.dtype, device=means2d.device)
    done = torch.zeros(B, P, dtype=torch.bool, device=means2d.device)
    for s0 in range(0, L, segment):
        # early termination: only tiles that still have Gaussians left and a pixel that is not done
        act = ((counts > s0) & ~done.all(1)).nonzero().squeeze(1)
        if act.numel() == 0:
            break
        s1 = min(s0 + segment, L)
        g = ids[act, s0:s1]  # [A, S]
        inlist = (torch.arange(s0, s1, device=ids.device)[None] < counts[act, None])
        g = torch.where(inlist, g, torch.zeros_like(g))
        mu, con, op, rad = means2d[g], conics[g], opacities[g], radii[g]  # [A, S, ...]
        p = pix[act]  # [A, P, 2]
        dx = p[:, :, None, 0] - mu[:, None, :, 0]  # [A, P, S]
        dy = p[:, :, None, 1] - mu[:, None, :, 1]
        sigma = (0.5 * (con[:, None, :, 0] * dx * dx + con[:, None, :, 2] * dy * dy)
                 + con[:, None, :, 1] * dx * dy)
        alpha = torch.clamp_max(op[:, None, :] * torch.exp(-sigma), ALPHA_MAX)
        with torch.no_grad():
            keep = (inlist[:, None, :] & (sigma >= 0) & (alpha >= ALPHA_MIN)
                    & (dx.abs() < rad[:, None, :, 0]) & (dy.abs() < rad[:, None, :, 1]))
        alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
        T0 = T[act] * (~done[act]).to(T.dtype)  # done pixels get T = 0 here, so nothing more contributes
        T_incl = torch.cumprod(1.0 - alpha, dim=-1) * T0[..., None]  # T after each Gaussian
        with torch.no_grad():
            contrib = T_incl > T_MIN  # a prefix: the pixel stops before the Gaussian taking T to <= 1e-4
        T_excl = torch.cat([T0[..., None], T_incl[..., :-1]], -1)  # T_i of 3DGS Eq. 3
        w = alpha * T_excl * contrib.to(alpha.dtype)
        seg_out = torch.einsum("aps,asd->apd", w, colors[g])
        T_end = T[act] * torch.prod(1.0 - alpha * contrib.to(alpha.dtype), dim=-1)
        out = out.index_add(0, act, seg_out)
        T = T.index_copy(0, act, T_end)
        done = done.index_copy(0, act, done[act] | (T_incl[..., -1] <= T_MIN))
    return out, T


def composite_tiles(means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor, radii: Tensor,
                    flatten_ids: Tensor, tile_offsets: Tensor, width: int, height: int, tile_size: int,
                    n_cameras: int, max_pairs_per_chunk: int = 1 << 22, segment: int = 64,
                    checkpoint: bool = False):
    """Alpha-composite binned Gaussians into images (3DGS Eq. 3), tile chunk by tile chunk.

    Args:
        means2d [C, N, 2], conics [C, N, 3], opacities [C, N], colors [C, N, D], radii [C, N, 2];
        flatten_ids, tile_offsets from :func:`bin_tiles`.
        max_pairs_per_chunk: pixel–Gaussian evaluations held at once (bounds peak memory).
        segment: Gaussians per tile handled per step (granularity of early termination).
        checkpoint: recompute each chunk in the backward pass instead of storing it (bounds training memory).
    Returns:
        colors [C, H, W, D] (no background), transmittance [C, H, W] (1 − alpha).
    """
    C, N, D = colors.shape
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    n_tiles = C * th * tw
    dev, dtype = means2d.device, means2d.dtype
    P = tile_size * tile_size
    out = torch.zeros(n_tiles, P, D, dtype=colors.dtype, device=dev)
    trans = torch.ones(n_tiles, P, dtype=dtype, device=dev)
    counts = tile_offsets[1:] - tile_offsets[:-1]
    tiles = counts.nonzero().squeeze(1)
    if tiles.numel() > 0:
        # longest lists first, so each chunk pads to a similar length
        tiles = tiles[torch.sort(counts[tiles], descending=True, stable=True).indices]
        flat = (means2d.reshape(-1, 2), conics.reshape(-1, 3), opacities.reshape(-1), colors.reshape(-1, D),
                radii.reshape(-1, 2).to(dtype))
        iy, ix = torch.meshgrid(torch.arange(tile_size, device=dev), torch.arange(tile_size, device=dev),
                                indexing="ij")
        local = torch.stack([ix.reshape(-1), iy.reshape(-1)], -1).to(dtype) + 0.5  # pixel centres
        outs, Ts, done_tiles = [], [], []
        i = 0
        while i < tiles.numel():
            L = int(counts[tiles[i]])
            B = max(1, max_pairs_per_chunk // (P * min(L, segment)))
            sel = tiles[i:i + B]
            i += B
            cnt = counts[sel]
            L = int(cnt.max())
            ar = torch.arange(L, device=dev)
            pos = (tile_offsets[sel, None] + ar[None]).clamp(max=max(flatten_ids.numel() - 1, 0))
            ids = flatten_ids[pos]
            t_in_cam = sel % (th * tw)
            org = torch.stack([(t_in_cam % tw) * tile_size, (t_in_cam // tw) * tile_size], -1).to(dtype)
            pix = org[:, None, :] + local[None]
            if checkpoint and torch.is_grad_enabled():
                o, T = _checkpoint(_composite_chunk, *flat, pix, ids, cnt, segment, use_reentrant=False)
            else:
                o, T = _composite_chunk(*flat, pix, ids, cnt, segment)
            outs.append(o)
            Ts.append(T)
            done_tiles.append(sel)
        sel = torch.cat(done_tiles)
        out = out.index_copy(0, sel, torch.cat(outs))
        trans = trans.index_copy(0, sel, torch.cat(Ts))
    img = out.reshape(C, th, tw, tile_size, tile_size, D).permute(0, 1, 3, 2, 4, 5)
    img = img.reshape(C, th * tile_size, tw * tile_size, D)[:, :height, :width]
    T = trans.reshape(C, th, tw, tile_size, tile_size).permute(0, 1, 3, 2, 4)
    T = T.reshape(C, th * tile_size, tw * tile_size)[:, :height, :width]
    return img, T
