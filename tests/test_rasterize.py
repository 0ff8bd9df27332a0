"""Tests of the rasterizer (perception3d.rendering.rasterize, torch backend).

The reference for compositing is a NAIVE DENSE compositor written here: every Gaussian against every pixel,
sorted by depth, one Gaussian at a time, with 3DGS's cut-offs. Projection and SH are checked against
gsplat's pure-torch reference implementation (``gsplat.cuda._torch_impl``) when gsplat is installed.
"""
from __future__ import annotations

import math

import pytest
import torch

from perception3d.rendering import rasterize
from perception3d.rendering.rasterize_torch import project_gaussians
from perception3d.rendering.sh import eval_sh
from _gradcheck import central_difference

try:
    from gsplat.cuda import _torch_impl as gs_ref
except Exception:  # pragma: no cover
    gs_ref = None


def naive_rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree=None,
                    backgrounds=None, eps2d=0.3, near_plane=0.01, far_plane=1e10, stats=None):
    """Dense reference: projection (gsplat's torch reference if present), then per pixel, every Gaussian in
    depth order: alpha = min(0.999, o·exp(−σ)), skip σ < 0 or alpha < 1/255 or outside the radius box,
    stop before T would fall to ≤ 1e-4. Returns colors [C, H, W, D], alphas [C, H, W, 1]."""
    if gs_ref is not None:
        covars, _ = gs_ref._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
        radii, means2d, depths, conics, _ = gs_ref._fully_fused_projection(
            means, covars, viewmats, Ks, width, height, eps2d, near_plane, far_plane)
    else:
        radii, means2d, depths, conics, _ = project_gaussians(means, quats, scales, viewmats, Ks, width, height,
                                                              eps2d, near_plane, far_plane)
    C = viewmats.shape[0]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=means.dtype), torch.arange(width, dtype=means.dtype),
                            indexing="ij")
    px, py = xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5
    out_c, out_a = [], []
    for c in range(C):
        if sh_degree is not None:
            campos = torch.linalg.inv(viewmats[c])[:3, 3]
            feats = torch.clamp_min(eval_sh(sh_degree, means - campos, colors) + 0.5, 0)
        else:
            feats = colors
        img = torch.zeros(height * width, feats.shape[-1], dtype=means.dtype)
        T = torch.ones(height * width, dtype=means.dtype)
        done = torch.zeros(height * width, dtype=torch.bool)
        valid = (radii[c] > 0).all(-1)
        order = [int(i) for i in torch.argsort(depths[c]) if valid[i]]
        for i in order:
            dx, dy = px - means2d[c, i, 0], py - means2d[c, i, 1]
            a, b, cc = conics[c, i]
            sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
            alpha = torch.clamp_max(opacities[i] * torch.exp(-sigma), 0.999)
            ok = (~done & (sigma >= 0) & (alpha >= 1 / 255)
                  & (dx.abs() < radii[c, i, 0]) & (dy.abs() < radii[c, i, 1]))
            nextT = T * (1 - alpha)
            stop = ok & (nextT <= 1e-4)
            done = done | stop
            ok = ok & ~stop
            w = torch.where(ok, alpha * T, torch.zeros_like(T))
            img = img + w[:, None] * feats[i]
            T = torch.where(ok, nextT, T)
        if stats is not None:
            stats["stopped"] = stats.get("stopped", 0) + int(done.sum())
        if backgrounds is not None:
            img = img + T[:, None] * backgrounds[c]
        out_c.append(img.reshape(height, width, -1))
        out_a.append((1 - T).reshape(height, width, 1))
    return torch.stack(out_c), torch.stack(out_a)


def random_scene(n=60, n_cams=2, width=40, height=30, dtype=torch.float64, seed=0, sh_degree=None):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 2.0
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.15 + 0.02
    opacities = torch.rand(n, generator=g, dtype=dtype) * 0.9 + 0.05
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g, dtype=dtype)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g, dtype=dtype) * 0.3
    viewmats = torch.eye(4, dtype=dtype).repeat(n_cams, 1, 1)
    for c in range(n_cams):
        ang = 0.4 * c
        R = torch.tensor([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]],
                         dtype=dtype)
        viewmats[c, :3, :3] = R
        viewmats[c, :3, 3] = torch.tensor([0.1 * c, -0.05, 3.0], dtype=dtype)
    f = 0.9 * width
    Ks = torch.tensor([[f, 0, width / 2 + 0.3], [0, f, height / 2 - 0.2], [0, 0, 1]], dtype=dtype).repeat(n_cams, 1, 1)
    return dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors, viewmats=viewmats,
                Ks=Ks, width=width, height=height)


# ------------------------------------------------------------------------------------------------ (a) parity
@pytest.mark.parametrize("tile_size,seg,chunk", [(16, 64, 1 << 22), (8, 3, 2000)])
def test_torch_backend_equals_naive_dense(tile_size, seg, chunk):
    s = random_scene(n=80, n_cams=2, width=37, height=29)
    s["opacities"][:40] = 0.999  # near-opaque and large, so that pixels terminate (T would fall ≤ 1e-4)
    s["scales"][:40] *= 2
    bg = torch.tensor([[0.2, 0.3, 0.4], [1.0, 0.0, 0.5]], dtype=torch.float64)
    stats = {}
    ref_c, ref_a = naive_rasterize(**s, backgrounds=bg, stats=stats)
    assert stats["stopped"] > 20 and (ref_a < 1e-6).sum() > 50  # both termination and empty pixels occur
    out_c, out_a, meta = rasterize(**s, backgrounds=bg, backend="torch", tile_size=tile_size, segment=seg,
                                   max_pairs_per_chunk=chunk)
    assert out_c.shape == (2, 29, 37, 3) and out_a.shape == (2, 29, 37, 1)
    torch.testing.assert_close(out_c, ref_c, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_a, ref_a, atol=1e-5, rtol=0)


def test_sh_and_depth_modes_equal_naive():
    s = random_scene(n=50, n_cams=1, width=24, height=20, sh_degree=3, seed=3)
    ref_c, ref_a = naive_rasterize(**s, sh_degree=3)
    out, alpha, meta = rasterize(**s, sh_degree=3, render_mode="RGB+ED", backend="torch")
    torch.testing.assert_close(out[..., :3], ref_c, atol=1e-5, rtol=0)
    # expected depth = Σ w z / Σ w: composite the depths with the naive renderer
    depths = (s["means"] @ s["viewmats"][0, :3, :3].T + s["viewmats"][0, :3, 3])[:, 2:3]
    s2 = dict(s, colors=depths)
    ref_d, _ = naive_rasterize(**s2)
    torch.testing.assert_close(out[..., 3:], ref_d / ref_a.clamp(min=1e-10), atol=1e-5, rtol=0)
    d, _, _ = rasterize(**s, sh_degree=3, render_mode="D", backend="torch")
    torch.testing.assert_close(d, ref_d, atol=1e-5, rtol=0)


def test_per_camera_colors_and_batching():
    s = random_scene(n=40, n_cams=2, width=20, height=16, seed=7)
    per_cam = torch.stack([s["colors"], 1.0 - s["colors"]])  # [C, N, 3]
    out, alpha, _ = rasterize(**{**s, "colors": per_cam})
    for c in range(2):
        one = {**s, "viewmats": s["viewmats"][c:c + 1], "Ks": s["Ks"][c:c + 1], "colors": per_cam[c]}
        o, a, _ = rasterize(**one)
        torch.testing.assert_close(out[c:c + 1], o, atol=1e-10, rtol=0)
        torch.testing.assert_close(alpha[c:c + 1], a, atol=1e-10, rtol=0)


def test_float32_matches_float64():
    s = random_scene(n=80, n_cams=1, width=32, height=32)
    out64, a64, _ = rasterize(**s)
    s32 = {k: (v.float() if torch.is_tensor(v) else v) for k, v in s.items()}
    out32, a32, _ = rasterize(**s32)
    torch.testing.assert_close(out32.double(), out64, atol=1e-4, rtol=0)


def test_exp_neg_matches_exp():
    """The compositors' e^{−σ} (the compiled kernel's polynomial, shared by the torch backend) against the exact
    value on [0, 6] (long double): float32 within 2.9e-6 relative (≤ 42 ulp), float64 within 4e-13; σ = 0 gives
    exactly 1."""
    import numpy as np

    from perception3d.rendering.rasterize_torch import exp_neg

    rnd = torch.rand(200_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 6
    s = torch.cat([torch.linspace(0, 6, 200_001, dtype=torch.float64), rnd])
    for dt, rel, ulps in ((torch.float32, 2.9e-6, 42), (torch.float64, 4e-13, None)):
        x = s.to(dt)
        e = exp_neg(x).numpy().astype(np.longdouble)
        ex = np.exp(-x.numpy().astype(np.longdouble))
        err = np.abs(e - ex)
        assert float((err / ex).max()) <= rel, dt
        if ulps is not None:
            assert float((err / np.spacing(ex.astype(np.float32))).max()) <= ulps
        assert float(exp_neg(torch.zeros(1, dtype=dt))) == 1.0


# ------------------------------------------------------------------------------------------ (b) projection
@pytest.mark.skipif(gs_ref is None, reason="gsplat not installed")
def test_projection_equals_gsplat_torch_reference():
    s = random_scene(n=200, n_cams=3, width=64, height=48)
    s["means"][:5, 2] = -3.5  # behind the camera: culled
    s["means"][5:8, 0] = 9.0  # far outside the image: clipped J, culled
    covars, _ = gs_ref._quat_scale_to_covar_preci(s["quats"], s["scales"], compute_preci=False)
    r_ref, m_ref, d_ref, c_ref, _ = gs_ref._fully_fused_projection(
        s["means"], covars, s["viewmats"], s["Ks"], 64, 48, 0.3, 0.01, 1e10)
    radii, means2d, depths, conics, _ = project_gaussians(s["means"], s["quats"], s["scales"], s["viewmats"],
                                                          s["Ks"], 64, 48)
    v = (r_ref > 0).all(-1)
    assert v.sum() > 100 and (~v).sum() > 5
    assert torch.equal(radii, r_ref.to(torch.int32))
    torch.testing.assert_close(means2d, m_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(depths, d_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(conics[v], c_ref[v], atol=1e-5, rtol=1e-6)
    # and through rasterize()'s meta, float32
    s32 = {k: (v_.float() if torch.is_tensor(v_) else v_) for k, v_ in s.items()}
    s32["width"], s32["height"] = 64, 48
    _, _, meta = rasterize(**s32)
    assert meta["radii"].shape == (3, 200, 2) and meta["n_cameras"] == 3 and meta["width"] == 64
    torch.testing.assert_close(meta["means2d"].double(), m_ref, atol=1e-3, rtol=1e-5)


# ----------------------------------------------------------------------------------------- (c) gradients
@pytest.mark.parametrize("keep_budget", [1 << 25, 0])  # backward from kept intermediates / recomputed
def test_gradients_match_finite_differences(keep_budget):
    s = random_scene(n=6, n_cams=1, width=12, height=10, seed=5, sh_degree=1)
    s["means"] = s["means"] * 0.4
    s["scales"] = s["scales"] + 0.1
    names = ["means", "quats", "scales", "opacities", "colors"]
    w = torch.rand(1, 10, 12, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def loss_fn(*xs):
        kw = dict(s)
        kw.update(zip(names, xs))
        out, alpha, _ = rasterize(**kw, sh_degree=1, render_mode="RGB+ED", backend="torch", segment=4,
                                  keep_budget=keep_budget)
        return (out * w).sum() + alpha.sum()

    inputs = [s[n].clone().requires_grad_(True) for n in names]
    loss = loss_fn(*inputs)
    grads = torch.autograd.grad(loss, inputs)
    for k, (name, x) in enumerate(zip(names, inputs)):
        idx = torch.randperm(x.numel(), generator=torch.Generator().manual_seed(k))[:8]
        for j in idx.tolist():
            fd = central_difference(loss_fn, inputs, k, j)
            an = float(grads[k].reshape(-1)[j])
            assert abs(fd - an) <= 1e-4 * max(1.0, abs(fd)), f"{name}[{j}]: analytic {an} vs numeric {fd}"


def test_means2d_grad_for_densification():
    s = random_scene(n=30, n_cams=2, width=20, height=20, dtype=torch.float32)
    means = s["means"].requires_grad_(True)
    out, _, meta = rasterize(**s)
    meta["means2d"].retain_grad()
    out.sum().backward()
    g = meta["means2d"].grad
    assert g.shape == (2, 30, 2) and g.abs().sum() > 0
    assert means.grad is not None


# ------------------------------------------------------------------------------------------------- (d) SH
@pytest.mark.skipif(gs_ref is None, reason="gsplat not installed")
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_equals_gsplat(degree):
    g = torch.Generator().manual_seed(degree)
    dirs = torch.randn(500, 3, generator=g, dtype=torch.float64)
    coeffs = torch.randn(500, 16, 3, generator=g, dtype=torch.float64)
    ref = gs_ref._spherical_harmonics(degree, dirs, coeffs)
    torch.testing.assert_close(eval_sh(degree, dirs, coeffs), ref, atol=1e-10, rtol=1e-10)


# ------------------------------------------------------------------------------------------ (e) bad input
def test_bad_inputs_raise_value_error_naming_argument():
    s = random_scene(n=10, dtype=torch.float32)
    cases = {
        "means": dict(means=torch.zeros(10, 2)),
        "quats": dict(quats=torch.zeros(9, 4)),
        "scales": dict(scales=torch.zeros(10, 3, dtype=torch.float64)),
        "opacities": dict(opacities=torch.full((10,), float("nan"))),
        "opacities must lie": dict(opacities=torch.full((10,), 1.5)),
        "colors": dict(colors=torch.zeros(11, 3)),
        "viewmats": dict(viewmats=torch.zeros(2, 3, 4)),
        "Ks": dict(Ks=torch.zeros(3, 3, 3)),
        "width": dict(width=0),
        "render_mode": dict(render_mode="RGBD"),
    }
    for name, bad in cases.items():
        with pytest.raises(ValueError, match=name):
            rasterize(**{**s, **bad})
    with pytest.raises(ValueError, match="means"):
        rasterize(**{**s, "means": torch.zeros(10, 3, dtype=torch.int64)})
    with pytest.raises(ValueError, match="colors.*sh_degree"):
        rasterize(**s, sh_degree=1)
    with pytest.raises(ValueError, match="sh_degree"):
        rasterize(**{**s, "colors": torch.zeros(10, 1, 3)}, sh_degree=1)
    with pytest.raises(ValueError, match="backgrounds"):
        rasterize(**s, backgrounds=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="backend"):
        rasterize(**s, backend="cuda")


def test_empty_scene_renders_background():
    s = random_scene(n=0, dtype=torch.float32)
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5]])
    out, alpha, meta = rasterize(**s, backgrounds=bg)
    assert out.shape == (2, 30, 40, 3)
    torch.testing.assert_close(out, bg[:, None, None, :].expand(2, 30, 40, 3))
    assert alpha.abs().max() == 0 and meta["radii"].shape == (2, 0, 2)
