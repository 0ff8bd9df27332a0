"""Tests of the compiled CPU backend (``rasterize(..., backend="cpu")``) against the pure-torch backend.

Parity: images ≤ 1e-5, gradients ≤ 1e-4 relative (max |difference| / max |reference| per tensor), on scenes with
early termination, clamped alphas, backgrounds, several tiles and Gaussians straddling tile borders; finite
differences in float64; bad input behaves the same on every backend. The kernel library is built on first use
(~2-8 s) and cached in ~/.cache/perception3d (or $PERCEPTION3D_CACHE).
"""
from __future__ import annotations

import warnings

import pytest
import torch

from perception3d.rendering import rasterize
from perception3d.rendering import rasterize_cpu
from test_rasterize import naive_rasterize, random_scene
from _gradcheck import central_difference

pytestmark = pytest.mark.skipif(not rasterize_cpu.available(),
                                reason=f"compiled backend unavailable: {rasterize_cpu.BUILD_INFO.get('error')}")

NAMES = ["means", "quats", "scales", "opacities", "colors"]


def _hard_scene(dtype=torch.float64, sh_degree=None, seed=0, n=80, width=37, height=29):
    """Two cameras, 37 × 29 (partial edge tiles), half the Gaussians near-opaque and large (pixels terminate,
    alphas clamp at 0.999), the rest small and spread over tile borders."""
    s = random_scene(n=n, n_cams=2, width=width, height=height, dtype=dtype, seed=seed, sh_degree=sh_degree)
    s["opacities"][: n // 2] = 1.0  # o·e^{-σ} ≥ 0.999 near the centres: the clamp is active
    s["scales"][: n // 2] *= 2
    return s


def _run(s, backend, render_mode="RGB", backgrounds=None, sh_degree=None, tile_size=8, seed=1):
    """Render with grads enabled; loss = Σ w·colour + Σ alpha with fixed random weights. Returns
    (colours, alphas, meta, {name: grad}, means2d grad)."""
    ins = {k: s[k].clone().requires_grad_(True) for k in NAMES}
    out, alpha, meta = rasterize(**{**s, **ins}, sh_degree=sh_degree, backgrounds=backgrounds,
                                 render_mode=render_mode, backend=backend, tile_size=tile_size)
    meta["means2d"].retain_grad()
    w = torch.rand(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(seed))
    ((out * w).sum() + alpha.sum()).backward()
    return out.detach(), alpha.detach(), meta, {k: ins[k].grad for k in NAMES}, meta["means2d"].grad


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("dtype,sh_degree,mode,tile", [
    (torch.float64, None, "RGB", 8), (torch.float64, 3, "RGB+ED", 16), (torch.float32, None, "RGB", 16),
    (torch.float32, 2, "RGB+D", 8)])
def test_cpu_equals_torch_backend(dtype, sh_degree, mode, tile):
    s = _hard_scene(dtype, sh_degree)
    bg = torch.tensor([[0.2, 0.3, 0.4], [1.0, 0.0, 0.5]], dtype=dtype)
    ref = _run(s, "torch", mode, bg, sh_degree, tile)
    out = _run(s, "cpu", mode, bg, sh_degree, tile)
    assert out[2]["backend"] == "cpu" and ref[2]["backend"] == "torch"
    # the scene exercises termination, clamping and empty pixels
    assert (ref[1] > 1 - 1e-3).sum() > 20 and (ref[1] < 1e-6).sum() > 20
    torch.testing.assert_close(out[0][..., :3], ref[0][..., :3], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], ref[1], atol=1e-5, rtol=0)
    if mode != "RGB":  # depth channel: metres, compare relatively
        torch.testing.assert_close(out[0][..., 3:], ref[0][..., 3:], atol=1e-5, rtol=1e-5)
    for k in NAMES:
        assert _rel(out[3][k], ref[3][k]) <= 1e-4, k
    assert _rel(out[4], ref[4]) <= 1e-4
    # meta: the same keys and projection outputs on both backends (DefaultStrategy reads them)
    assert set(out[2]) == set(ref[2])
    assert torch.equal(out[2]["radii"], ref[2]["radii"])
    assert torch.equal(out[2]["flatten_ids"], ref[2]["flatten_ids"])


def test_cpu_equals_naive_dense_and_stops_early():
    s = _hard_scene()
    stats = {}
    ref_c, ref_a = naive_rasterize(**s, stats=stats)
    assert stats["stopped"] > 20  # pixels that terminated (T would fall ≤ 1e-4)
    out_c, out_a, _ = rasterize(**s, backend="cpu")
    torch.testing.assert_close(out_c, ref_c, atol=1e-10, rtol=0)
    torch.testing.assert_close(out_a, ref_a, atol=1e-10, rtol=0)


@pytest.mark.parametrize("mode", ["D", "ED"])
def test_depth_only_modes_and_packed_flag(mode):
    s = _hard_scene(n=40)
    ref = rasterize(**s, render_mode=mode, backend="torch")
    out = rasterize(**s, render_mode=mode, backend="cpu", packed=True)  # packed is ignored off gsplat
    assert out[0].shape == ref[0].shape == (2, 29, 37, 1)
    torch.testing.assert_close(out[0], ref[0], atol=1e-8, rtol=1e-8)


def test_gradients_match_finite_differences():
    s = random_scene(n=8, n_cams=1, width=20, height=18, seed=5, sh_degree=1)
    s["means"] = s["means"] * 0.4
    s["scales"] = s["scales"] + 0.1
    s["opacities"][:2] = 0.999
    w = torch.rand(1, 18, 20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def loss_fn(*xs):
        out, alpha, _ = rasterize(**{**s, **dict(zip(NAMES, xs))}, sh_degree=1, render_mode="RGB+ED",
                                  backend="cpu", tile_size=8)
        return (out * w).sum() + alpha.sum()

    inputs = [s[n].clone().requires_grad_(True) for n in NAMES]
    grads = torch.autograd.grad(loss_fn(*inputs), inputs)
    for k, (name, x) in enumerate(zip(NAMES, inputs)):
        for j in torch.randperm(x.numel(), generator=torch.Generator().manual_seed(k))[:8].tolist():
            fd = central_difference(loss_fn, inputs, k, j)
            an = float(grads[k].reshape(-1)[j])
            assert abs(fd - an) <= 1e-4 * max(1.0, abs(fd)), f"{name}[{j}]: analytic {an} vs numeric {fd}"


def test_auto_picks_cpu_and_threads_agree():
    s = _hard_scene(torch.float32)
    out1, a1, meta = rasterize(**s)
    assert meta["backend"] == "cpu"
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        r2 = _run(s, "cpu")
        torch.set_num_threads(1)
        r1 = _run(s, "cpu")
    finally:
        torch.set_num_threads(n)
    # tiles are independent and each pair is written by one thread: only torch's own ops (projection, SH)
    # may round differently with the thread count
    torch.testing.assert_close(r1[0], r2[0], atol=1e-6, rtol=0)
    for k in NAMES:
        assert _rel(r1[3][k], r2[3][k]) <= 1e-5, k


def test_falls_back_to_torch_with_one_warning(monkeypatch):
    import perception3d.rendering.rasterize as R  # noqa: F401
    mod = __import__("sys").modules["perception3d.rendering.rasterize"]
    monkeypatch.setattr(rasterize_cpu, "available", lambda: False)
    monkeypatch.setattr(mod, "_warned_fallback", False)
    s = _hard_scene(n=20)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        _, _, m1 = rasterize(**s)
        _, _, m2 = rasterize(**s, backend="cpu")
    assert m1["backend"] == m2["backend"] == "torch"
    assert sum("compiled CPU backend is unavailable" in str(r.message) for r in rec) == 1


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_bad_and_degenerate_input_same_on_every_backend(backend):
    s = _hard_scene(n=30)
    bg = torch.tensor([[0.2, 0.3, 0.4], [1.0, 0.0, 0.5]], dtype=torch.float64)
    # NaN means: a clear error naming the argument (before any backend runs)
    bad = s["means"].clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="means contains NaN"):
        rasterize(**{**s, "means": bad}, backend=backend)
    # zero scales: a 0.3 px-wide splat from the low-pass filter, finite everywhere and the same on both backends
    z = {**s, "scales": torch.zeros_like(s["scales"])}
    r = _run(z, backend, backgrounds=bg)
    ref = _run(z, "torch", backgrounds=bg)
    assert all(torch.isfinite(t).all() for t in (r[0], r[1], *r[3].values()))
    torch.testing.assert_close(r[0], ref[0], atol=1e-10, rtol=0)
    assert r[1].max() > 0.1
    # non-normalised quaternions render exactly like their normalised versions
    q = {**s, "quats": s["quats"] * 7.5}
    qn = {**s, "quats": torch.nn.functional.normalize(s["quats"], dim=-1)}
    torch.testing.assert_close(rasterize(**q, backend=backend)[0], rasterize(**qn, backend=backend)[0],
                               atol=1e-10, rtol=0)
    # camera behind every Gaussian: background, zero alpha, zero (not NaN) gradients
    behind = {**s, "means": s["means"] - torch.tensor([0.0, 0.0, 10.0], dtype=torch.float64)}
    r = _run(behind, backend, backgrounds=bg)
    torch.testing.assert_close(r[0], bg[:, None, None, :].expand(2, 29, 37, 3))
    assert r[1].abs().max() == 0 and (r[2]["radii"] == 0).all()
    assert all((g == 0).all() for g in r[3].values())
    # empty model
    e = random_scene(n=0, dtype=torch.float64)
    out, alpha, meta = rasterize(**e, backgrounds=bg, backend=backend)
    torch.testing.assert_close(out, bg[:, None, None, :].expand(2, 30, 40, 3))
    assert alpha.abs().max() == 0 and meta["radii"].shape == (2, 0, 2)
    with pytest.raises(ValueError, match="backend"):
        rasterize(**s, backend="numba")


def test_build_info_reports_cached_library():
    assert rasterize_cpu.available()
    info = rasterize_cpu.BUILD_INFO
    assert info["path"].endswith(".so") and info["seconds"] >= 0 and isinstance(info["built"], bool)
