"""Pure-PyTorch 3D Gaussian splatting rasterizer (the CPU path; differentiable by autograd).

Follows 3DGS (Kerbl et al., SIGGRAPH 2023) and gsplat's conventions:

Differentiable w.r.t. means, quats, scales, opacities and colours (autograd through the projection; a
hand-written backward pass for the blending).

1. :func:`project_gaussians` — EWA splatting (Zwicker et al. 2001): ``Σ = R S Sᵀ Rᵀ`` (3DGS Eq. 6), camera-space
   ``Σ' = J W Σ Wᵀ Jᵀ`` (3DGS Eq. 5) with J the Jacobian of the pinhole projection at the (x/z, y/z-clipped)
   mean, ``+ eps2d · I`` low-pass filter, conic = ``Σ'⁻¹``, radius = ``ceil(3.33 √Σ'_ii)`` per axis.
2. :func:`bin_tiles` — every (camera, Gaussian) is assigned to the 16 × 16 tiles its radius box touches; the
   (tile, Gaussian) pairs are sorted by tile, then by depth (3DGS §6, the radix-sort key "tile | depth").
3. :func:`composite_tiles` — front-to-back alpha blending (3DGS Eq. 3): ``C = Σ_i c_i α_i T_i``,
   ``T_i = Π_{j<i}(1 − α_j)``, ``α_i = min(0.999, o_i exp(−σ_i))``, ``σ = ½ dᵀ Σ'⁻¹ d``; Gaussians with
   α < 1/255 are skipped; a pixel stops before the Gaussian that would take T to ≤ 1e-4.
   Tiles are processed in chunks, each tile's sorted list padded to the chunk's length and cut into depth
   segments; transmittance within a segment is a cumprod of (1 − α); tiles whose pixels have all terminated
   drop out of later segments (early termination). Peak memory is bounded by ``max_pairs_per_chunk``
   pixel–Gaussian evaluations at a time; under autograd a hand-written backward pass (below) either reuses the
   forward pass's alpha/transmittance (up to ``keep_budget`` evaluations) or recomputes them per chunk.

α is evaluated in gsplat's float expression (``σ = ½(a dx² + c dy²) + b dx dy`` from the pixel's offset to the mean,
``α = min(0.999, o e^{−σ})``), so that float32 renders stay within ~1e-5 of float64 ones.

Same branches as the compiled backend (:mod:`.rasterize_cpu`), bit for bit: the 3DGS cut-offs (α ≥ 1/255, stop
before T ≤ 1e-4, the 0.999 clamp) are discontinuous, so a one-ulp difference in α or T at a pixel sitting on a
cut-off changes that pixel by up to ~1e-3. Both backends therefore compute the quantities the decisions read
from the same float operations in the same order: the pixel offset d and σ as the kernel does
(:func:`_segment_alpha`), e^{−σ} by the kernel's own polynomial (:func:`exp_neg`, not ``torch.exp``), and T as
the running product rounded after every factor (:func:`_segment_blend`). The projection is bitwise equal too
(float64, rounded once). The transmittance (alpha) images are then identical to the last bit and colours differ
only by summation order (≤ ~1e-6). This is gsplat's rule unchanged (``alpha < 1/255`` skips, ``T < 1e-4``
stops), applied to an e^{−σ} within 2.9e-6 (relative) of the exact one. The backward pass writes
the same α as ``exp(−F·H)`` with per-pixel features F = (u², uv, v², u, v, 1) and per-(tile, Gaussian) quadratic
coefficients H that fold in −log(o) (:func:`_quad_coeffs`), so ∂L/∂H is one batched matmul per segment.

Tile-size independence: with o ≤ 1, α ≥ 1/255 implies σ ≤ ln 255, i.e. |dx| ≤ √(2 ln 255 · Σ'_xx) =
3.329 √Σ'_xx < r_x (and likewise in y), so every pixel a Gaussian can reach lies inside its radius box, which
the tile binning covers exactly. The image therefore does not depend on the tile size, and binning may use the
tighter opacity-aware box √(2 ln(255·o) Σ'_ii) (as gsplat's CUDA projection does) without changing a pixel.
"""
from __future__ import annotations

import math
import torch
from torch import Tensor

from ..structures.rotation import quat_to_rotmat

__all__ = ["covariance_3d", "project_gaussians", "bin_tiles", "composite_tiles",
           "ALPHA_MIN", "ALPHA_MAX", "T_MIN"]

ALPHA_MIN = 1.0 / 255.0  # skip Gaussians fainter than this at a pixel (3DGS forward.cu)
ALPHA_MAX = 0.999  # clamp of a single Gaussian's alpha
T_MIN = 1e-4  # a pixel is done before its transmittance would fall to or below this
SIGMA_CUT = 6.0  # e^{-6} < 1/255: beyond σ = 6 no Gaussian (o ≤ 1) reaches the 1/255 cut, so e^{-σ} is needed on [0, 6]


def _f32(num: float, den: float) -> float:
    """num / den rounded once to float32 (as the C++ ``num##f / den##f``), as a Python float."""
    return float(torch.tensor(num, dtype=torch.float32) / torch.tensor(den, dtype=torch.float32))


_EXP_F32 = tuple(_f32(1.0, d) for d in (6.0, 24.0, 120.0, 720.0, 5040.0, 40320.0))
_EXP_F64 = tuple(1.0 / d for d in (6.0, 24.0, 120.0, 720.0, 5040.0, 40320.0, 362880.0, 3628800.0, 39916800.0))


def exp_neg(s: Tensor) -> Tensor:
    """e^{−s} for s in [0, SIGMA_CUT] (float32 or float64), the very function of the compiled backend
    (``exp_neg`` in ``csrc/rasterize_cpu.cpp``), operation for operation: the Taylor polynomial of e^{−x} at
    x = s/16 (degree 8 in float32, 11 in float64; Estrin's scheme) squared four times. Each torch op here is one
    correctly rounded IEEE operation, as each C++ operation is (the library is built with ``-ffp-contract=off``),
    so both backends get bitwise the same α = min(0.999, o·e^{−σ}) and hence take the same branch at every
    cut-off (α ≥ 1/255, T > 1e-4, the 0.999 clamp).

    Accuracy against the exact e^{−s} on [0, 6] (every float32 in [2⁻¹⁰, 6] against long double;
    ``tests/test_rasterize.py::test_exp_neg_matches_exp``): float32 relative error ≤ 2.9e-6 (≤ 42 ulp, 5.4 on
    average; torch.exp: ≤ 0.6 ulp), float64 ≤ 3.7e-13. Against the float32 parity bar (images ≤ 1e-5) that is
    small: a pixel moves by at most ~3e-6 relative (α and T are what the compiled backend has always used)."""
    flat = s.reshape(-1)
    if s.device.type != "cpu":  # the blocks below help CPU caches; on a GPU they would only add launches
        return _exp_neg_block(flat).view(s.shape)
    out = torch.empty_like(s)
    res = out.view(-1)
    for i in range(0, flat.numel(), _EXP_BLOCK):  # blocks that stay in cache: ~10x faster than whole tensors
        res[i:i + _EXP_BLOCK] = _exp_neg_block(flat[i:i + _EXP_BLOCK])
    return out


_EXP_BLOCK = 1 << 15


def _exp_neg_block(s: Tensor) -> Tensor:
    """:func:`exp_neg` of a 1-D block, in place where possible; the C++ operations in their order (``a − b`` as
    ``(−b) + a`` and ``a·b`` as ``b·a``: the same correctly rounded results)."""
    x = s * 0.0625
    x2 = x * x
    x4 = x2 * x2
    x8 = x4 * x4
    if s.dtype == torch.float64:
        c6, c24, c120, c720, c5040, c40320, c9f, c10f, c11f = _EXP_F64
        p89 = torch.mul(x, c9f).neg_().add_(c40320)
        pab = torch.mul(x, c11f).neg_().add_(c10f).mul_(x2)
        x8.mul_(p89.add_(pab))  # x8 · p8b
    else:
        c6, c24, c120, c720, c5040, c40320 = _EXP_F32
        x8.mul_(c40320)
    p23 = torch.mul(x, c6).neg_().add_(0.5).mul_(x2)  # x2 · p23
    p45 = torch.mul(x, c120).neg_().add_(c24)
    p67 = torch.mul(x, c5040).neg_().add_(c720).mul_(x2)  # x2 · p67
    p47 = p45.add_(p67).mul_(x4)  # x4 · p47
    p = x.neg_().add_(1.0).add_(p23).add_(p47).add_(x8)  # ((p01 + x2 p23) + x4 p47) + x8 p8b
    return p.mul_(p).mul_(p).mul_(p).mul_(p)  # squared four times


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

    The arithmetic is float64 whatever the input dtype, rounded once at the end (as the compiled backend does):
    in float32, Σ'⁻¹ of a thin Gaussian loses digits in det Σ' = ac − b², which moved pixels by ~1e-5.
    """
    dt = means.dtype
    means, quats, scales, viewmats, Ks = (x.double() for x in (means, quats, scales, viewmats, Ks))
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
    conics = torch.stack([c / det, -b / det, a / det], -1).to(dt)
    means2d, tz, cov2d = means2d.to(dt), tz.to(dt), cov2d.to(dt)

    with torch.no_grad():
        a, c = cov2d[..., 0, 0], cov2d[..., 1, 1]
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


_PAD = 1e4  # constant term of a padded slot: alpha = exp(-1e4) = 0


def _quad_coeffs(mu: Tensor, conic: Tensor, opac: Tensor) -> Tensor:
    """Per (tile, Gaussian) coefficients H [..., 6] such that, for a pixel at tile-local (u, v),
    ``F(u, v) · H = σ − log(o)`` with F = (u², uv, v², u, v, 1) and σ = ½ dᵀ Σ'⁻¹ d, d = (u, v) − μ'.

    So ``alpha = exp(−F·H)`` is ``o · exp(−σ)``: one batched matmul per segment evaluates every pixel
    against every Gaussian. mu [..., 2] is the mean relative to the tile origin (values stay small, so
    float32 keeps ~1e-5 absolute accuracy in σ)."""
    a, b, c = conic.unbind(-1)
    mx, my = mu.unbind(-1)
    const = 0.5 * a * mx * mx + 0.5 * c * my * my + b * mx * my - torch.log(opac.clamp_min(1e-30))
    return torch.stack([0.5 * a, b, 0.5 * c, -(a * mx + b * my), -(c * my + b * mx), const], -1)


def _pixel_features(tile_size: int, dtype, device) -> Tensor:
    """F [tile_size², 6] = (u², uv, v², u, v, 1) at the tile's pixel centres (row-major)."""
    iy, ix = torch.meshgrid(torch.arange(tile_size, device=device), torch.arange(tile_size, device=device),
                            indexing="ij")
    u = ix.reshape(-1).to(dtype) + 0.5
    v = iy.reshape(-1).to(dtype) + 0.5
    return torch.stack([u * u, u * v, v * v, u, v, torch.ones_like(u)], -1)


def _lanes(tile_size: int) -> int:
    """Pixels per SIMD chunk of a tile row in the compiled backend (``forward_tile<F, LANES>``)."""
    return 8 if tile_size <= 8 else 16


def _segment_alpha(H: Tensor, aux: Tensor, tile_size: int):
    """alpha before/after the 3DGS cut-offs for one segment of S Gaussians in A tiles, bit for bit as the compiled
    backend computes it: d = pixel centre − mean in the kernel's order (x: ``(x0 + cs + ½ − μx) + (x − cs)`` with
    cs the SIMD chunk start of column x; y: ``y + ½ − μy``), ``σ = ½(a dx² + c dy²) + b dx dy`` (gsplat's float
    expression: small numbers, no cancellation), ``α = min(0.999, o·e^{−σ})`` with σ clamped to [0, 6] and the
    same e^{−σ} (:func:`exp_neg`), cut below 1/255. H [A, S, 6] (:func:`_quad_coeffs`: a = 2 H₀, b = H₁,
    c = 2 H₂, exactly), aux [A, S, 5] = (mean x, mean y, opacity, tile origin x, y), the means in image pixels
    (0 for the pads, whose opacity 0 gives α = 0). Returns raw (o e^{−σ}) and alpha, both [A, P, S] with
    P = tile_size² pixels row-major."""
    A, S = H.shape[:2]
    dt, dev = H.dtype, H.device
    ix = torch.arange(tile_size, device=dev)
    cs = ix // _lanes(tile_size) * _lanes(tile_size)
    mx, my, op, x0, y0 = (aux[:, None, :, k] for k in range(5))  # [A, 1, S]
    dx = (((x0 + cs[None, :, None].to(dt)) + 0.5) - mx) + (ix - cs)[None, :, None].to(dt)  # [A, ts, S] (column)
    dy = ((y0 + ix[None, :, None].to(dt)) + 0.5) - my  # [A, ts, S] (row)
    dx, dy = dx[:, None], dy[:, :, None]  # [A, 1, ts, S], [A, ts, 1, S]
    a, b, c = (2.0 * H[:, None, None, :, 0], H[:, None, None, :, 1], 2.0 * H[:, None, None, :, 2])
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    raw = (op[:, None] * exp_neg(sigma.clamp_(0.0, SIGMA_CUT))).reshape(A, tile_size * tile_size, S)
    alpha = torch.clamp_max(raw, ALPHA_MAX)
    alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
    return raw, alpha


def _segment_blend(alpha: Tensor, T0: Tensor):
    """Front-to-back blending of one segment (3DGS Eq. 3) from transmittance T0 [A, P] (0 for done pixels).
    Returns w = α_i T_i · [i contributes], Tc = T_i · [i contributes], contrib, T_incl (all [A, P, S]).

    T_incl is the running product ``T ← T·(1 − α_i)`` rounded after every factor, in list order, exactly as the
    compiled kernel carries each pixel's T (``torch.cumprod`` would accumulate in double and round differently),
    so the T ≤ 1e-4 termination is decided on the same bits by both backends."""
    S = alpha.shape[-1]
    om = torch.neg(alpha.permute(2, 0, 1), out=torch.empty(S, *T0.shape, dtype=alpha.dtype, device=alpha.device))
    om.add_(1.0)  # 1 − α, [S, A, P] contiguous (one slice per step)
    Tb = torch.empty(S + 1, *T0.shape, dtype=alpha.dtype, device=alpha.device)
    Tb[0] = T0
    for i in range(S):
        torch.mul(Tb[i], om[i], out=Tb[i + 1])
    T_incl = Tb[1:].permute(1, 2, 0)  # T after each Gaussian
    contrib = T_incl > T_MIN  # a prefix: the pixel stops before the Gaussian taking T to <= 1e-4
    Tc = torch.where(contrib, Tb[:-1].permute(1, 2, 0), 0.0)  # T in front of each contributing Gaussian
    return alpha * Tc, Tc, contrib, T_incl


class _CompositeChunk(torch.autograd.Function):
    """Blend B tiles. Inputs: H [B, L, 6] (padded with const = _PAD), colors [B, L, D], aux [B, L, 5] (mean,
    opacity — 0 for pads — and the tile origin; see :func:`_segment_alpha`), counts [B], Fp [P, 6] pixel
    features, segment (int). Outputs: colors [B, P, D], final transmittance [B, P].

    Forward keeps nothing of size B·P·L; backward recomputes each segment and applies the analytic gradient of
    C = Σ c_i α_i T_i, T_N = Π (1 − α_i):
        ∂L/∂c_i = α_i T_i g_C,
        ∂L/∂α_i = T_i (c_i·g_C) − (Σ_{j>i} w_j c_j·g_C + g_T T_N) / (1 − α_i),
    with Σ_{j>i} = (total) − (prefix up to i), as gsplat's backward kernel does back to front."""

    @staticmethod
    def _walk(H, aux, counts, Fp, segment, visit):
        B, L = H.shape[:2]
        P = Fp.shape[0]
        ts = math.isqrt(P)
        T = torch.ones(B, P, dtype=H.dtype, device=H.device)
        done = torch.zeros(B, P, dtype=torch.bool, device=H.device)
        for s0 in range(0, L, segment):
            act = ((counts > s0) & ~done.all(1)).nonzero().squeeze(1)  # early termination of whole tiles
            n = act.numel()
            if n == 0:
                break
            if n == B:
                act = slice(None)  # all tiles still active: views instead of gathers
            s1 = min(s0 + segment, L)
            raw, alpha = _segment_alpha(H[act, s0:s1], aux[act, s0:s1], ts)
            T0 = torch.where(done[act], 0.0, T[act])
            w, Tc, contrib, T_incl = _segment_blend(alpha, T0)
            visit(act, s0, s1, raw, alpha, w, Tc, contrib)
            # T after the segment's last contributor (contrib is a prefix, T_incl non-increasing): its bits, as
            # the compiled kernel keeps them; done pixels keep theirs
            n_c = contrib.sum(-1, keepdim=True)
            T_last = T_incl.gather(-1, (n_c - 1).clamp_min(0))[..., 0]
            T[act] = torch.where(n_c[..., 0] > 0, T_last, T[act])
            done[act] = done[act] | (T_incl[..., -1] <= T_MIN)
        return T

    @staticmethod
    def forward(ctx, H, colors, aux, counts, Fp, segment, keep_budget):
        B, L, D = colors.shape
        out = torch.zeros(B, Fp.shape[0], D, dtype=colors.dtype, device=colors.device)
        # Keep the per-segment alpha / transmittance for the backward pass when they fit in the budget
        # (pixel–Gaussian evaluations); otherwise the backward pass recomputes them.
        keep = any(ctx.needs_input_grad[:2]) and B * L * Fp.shape[0] <= keep_budget
        saved = []

        def visit(act, s0, s1, raw, alpha, w, Tc, contrib):
            out[act] += torch.bmm(w, colors[act, s0:s1])
            if keep:
                saved.append((act, s0, s1, alpha, Tc, raw < ALPHA_MAX))

        T = _CompositeChunk._walk(H, aux, counts, Fp, segment, visit)
        ctx.save_for_backward(H, colors, aux, counts, Fp, out, T)
        ctx.segment = segment
        ctx.saved = saved if keep else None
        ctx.kept = B * L * Fp.shape[0] if keep else 0
        return out, T

    @staticmethod
    def backward(ctx, g_out, g_T):
        H, colors, aux, counts, Fp, out, T_final = ctx.saved_tensors
        g_out = torch.zeros_like(out) if g_out is None else g_out
        g_T = torch.zeros_like(T_final) if g_T is None else g_T
        dH = torch.zeros_like(H)
        dcol = torch.zeros_like(colors)
        total = (out * g_out).sum(-1)  # Σ_j w_j c_j·g per pixel
        prefix = torch.zeros_like(total)
        tail = g_T * T_final

        def grads(act, s0, s1, alpha, Tc, unclamped):
            # Tc = T_i · [i contributes]; w = α_i Tc
            g = g_out[act]  # [A, P, D]
            cs = colors[act, s0:s1]  # [A, S, D]
            cg = torch.bmm(g, cs.transpose(1, 2))  # c_i · g per pixel [A, P, S]
            w = alpha * Tc
            pre = torch.cumsum(w * cg, -1) + prefix[act, :, None]
            after = total[act, :, None] - pre  # Σ_{j>i} w_j c_j·g
            d_alpha = Tc * cg - torch.where(Tc > 0, (after + tail[act, :, None]) / (1.0 - alpha), 0.0)
            d_sig = torch.where(unclamped, -(alpha * d_alpha), 0.0)  # α = o e^{−σ} = exp(−F·H) unless clamped / cut
            dH[act, s0:s1] += torch.bmm(d_sig.transpose(1, 2), Fp.expand(g.shape[0], *Fp.shape))
            dcol[act, s0:s1] += torch.bmm(w.transpose(1, 2), g)
            prefix[act] = pre[..., -1]

        if ctx.saved is not None:
            for item in ctx.saved:
                grads(*item)
            ctx.saved = None
        else:
            _CompositeChunk._walk(H, aux, counts, Fp, ctx.segment,
                                  lambda act, s0, s1, raw, alpha, w, Tc, contrib:
                                  grads(act, s0, s1, alpha, Tc, raw < ALPHA_MAX))
        return dH, dcol, None, None, None, None, None


def composite_tiles(means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor, radii: Tensor,
                    flatten_ids: Tensor, tile_offsets: Tensor, width: int, height: int, tile_size: int,
                    n_cameras: int, max_pairs_per_chunk: int = 1 << 20, segment: int = 32,
                    keep_budget: int = 1 << 25):
    """Alpha-composite binned Gaussians into images (3DGS Eq. 3), tile chunk by tile chunk.

    Args:
        means2d [C, N, 2], conics [C, N, 3], opacities [C, N], colors [C, N, D]; radii [C, N, 2] (unused here:
        the 1/255 cut already confines a Gaussian to its radius box, since 3.33 > √(2 ln 255) = 3.329 and o ≤ 1);
        flatten_ids, tile_offsets from :func:`bin_tiles`.
        max_pairs_per_chunk: pixel–Gaussian evaluations held at once (bounds peak memory, forward and backward).
        segment: Gaussians per tile handled per step (granularity of early termination).
        keep_budget: pixel–Gaussian evaluations whose alpha/transmittance the forward pass may keep for the
            backward pass (9 bytes each in float32); beyond it the backward pass recomputes them.
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
        m2, con, op, col = means2d.reshape(-1, 2), conics.reshape(-1, 3), opacities.reshape(-1), colors.reshape(-1, D)
        Fp = _pixel_features(tile_size, dtype, dev)
        outs, Ts, chunk_tiles = [], [], []
        i = 0
        while i < tiles.numel():
            L = int(counts[tiles[i]])
            B = max(1, max_pairs_per_chunk // (P * min(L, segment)))
            sel = tiles[i:i + B]
            i += B
            cnt = counts[sel]
            ar = torch.arange(L, device=dev)
            inlist = ar[None] < cnt[:, None]  # [B, L]
            pos = torch.where(inlist, tile_offsets[sel, None] + ar[None], torch.zeros_like(ar)[None])
            g = flatten_ids[pos] if flatten_ids.numel() else pos
            t_in_cam = sel % (th * tw)
            org = torch.stack([(t_in_cam % tw) * tile_size, (t_in_cam // tw) * tile_size], -1).to(dtype)
            H = _quad_coeffs(m2[g] - org[:, None, :], con[g], op[g])
            H = torch.where(inlist[..., None], H, torch.tensor([0, 0, 0, 0, 0, _PAD], dtype=dtype, device=dev))
            with torch.no_grad():
                aux = torch.cat([m2[g], op[g][..., None]], -1)
                aux = torch.where(inlist[..., None], aux, torch.zeros_like(aux))
                aux = torch.cat([aux, org[:, None, :].expand(-1, L, -1)], -1)
            o, T = _CompositeChunk.apply(H, col[g], aux, cnt, Fp, segment, keep_budget)
            if torch.is_grad_enabled() and (H.requires_grad or col.requires_grad):
                keep_budget -= int(sel.numel()) * L * P
            outs.append(o)
            Ts.append(T)
            chunk_tiles.append(sel)
        sel = torch.cat(chunk_tiles)
        out = out.index_copy(0, sel, torch.cat(outs))
        trans = trans.index_copy(0, sel, torch.cat(Ts))
    img = out.reshape(C, th, tw, tile_size, tile_size, D).permute(0, 1, 3, 2, 4, 5)
    img = img.reshape(C, th * tile_size, tw * tile_size, D)[:, :height, :width]
    T = trans.reshape(C, th, tw, tile_size, tile_size).permute(0, 1, 3, 2, 4)
    T = T.reshape(C, th * tile_size, tw * tile_size)[:, :height, :width]
    return img, T
