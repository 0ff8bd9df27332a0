"""Gradients of the torch rasterizer's hand-written backward on the paths a random scene rarely reaches, against
central finite differences (float64): early termination (T would fall to ≤ 1e-4) across several depth segments,
the alpha clamp (o·exp(−σ) > 0.999), a background colour (gradient through the final transmittance, and into the
background itself) and several tile chunks; both with kept intermediates and with the backward pass recomputing
them.  Spies on the module's blending helpers prove that each path was really taken in the rendered scene."""
from __future__ import annotations

import math

import pytest
import torch

from perception3d.rendering import rasterize
from perception3d.rendering import rasterize_torch as rt
from _gradcheck import central_difference

W, H = 24, 20


def layered_scene():
    """Ten Gaussians stacked in depth in front of the image centre (opacity 0.95–0.9998: pixels there terminate,
    the two most opaque clamp) and four fainter ones elsewhere; one camera looking down +z."""
    g = torch.Generator().manual_seed(3)
    d = torch.float64
    n_stack, n_rest = 10, 4
    stack = torch.stack([torch.full((n_stack,), 0.02, dtype=d), torch.full((n_stack,), -0.03, dtype=d),
                         torch.linspace(-0.6, 0.6, n_stack, dtype=d)], -1)
    stack[:, :2] += (torch.rand(n_stack, 2, generator=g, dtype=d) - 0.5) * 0.1
    f, cx, cy = 1.1 * W, W / 2 + 0.25, H / 2 - 0.35
    for i in (0, 1):          # the two most opaque project onto the centre of pixel (12, 9): alpha clamps there
        z = float(stack[i, 2]) + 3.0
        stack[i, 0], stack[i, 1] = (12.5 - cx) * z / f, (9.5 - cy) * z / f
    rest = (torch.rand(n_rest, 3, generator=g, dtype=d) - 0.5) * torch.tensor([1.6, 1.2, 0.4], dtype=d)
    means = torch.cat([stack, rest])
    n = n_stack + n_rest
    quats = torch.randn(n, 4, generator=g, dtype=d)
    scales = torch.rand(n, 3, generator=g, dtype=d) * 0.05 + 0.12
    scales[:2] = 0.3
    opac = torch.cat([torch.tensor([0.9998, 0.9996], dtype=d), torch.linspace(0.95, 0.97, n_stack - 2, dtype=d),
                      torch.rand(n_rest, generator=g, dtype=d) * 0.5 + 0.3])
    colors = torch.rand(n, 3, generator=g, dtype=d)
    viewmat = torch.eye(4, dtype=d)
    viewmat[:3, 3] = torch.tensor([0.0, 0.0, 3.0], dtype=d)
    K = torch.tensor([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=d)
    bg = torch.tensor([[0.2, 0.7, 0.4]], dtype=d)
    return dict(means=means, quats=quats, scales=scales, opacities=opac, colors=colors,
                viewmats=viewmat[None], Ks=K[None], width=W, height=H), bg


@pytest.fixture
def path_spy(monkeypatch):
    """Counts, over one render, clamped alphas, terminated pixels, segments visited and tile chunks."""
    seen = dict(clamped=0, terminated=0, segments=0, chunks=0)
    real_alpha, real_blend, real_apply = rt._segment_alpha, rt._segment_blend, rt._CompositeChunk.apply

    def alpha(*args):
        raw, a = real_alpha(*args)
        seen["clamped"] += int((raw > rt.ALPHA_MAX).sum())
        seen["segments"] += 1
        return raw, a

    def blend(a, T0):
        out = real_blend(a, T0)
        seen["terminated"] += int(((out[3] <= rt.T_MIN) & (T0[..., None] > rt.T_MIN)).any(-1).sum())
        return out

    def apply(*args):
        seen["chunks"] += 1
        return real_apply(*args)
    monkeypatch.setattr(rt, "_segment_alpha", alpha)
    monkeypatch.setattr(rt, "_segment_blend", blend)
    monkeypatch.setattr(rt._CompositeChunk, "apply", apply)
    return seen


@pytest.mark.parametrize("keep_budget", [1 << 25, 0], ids=["kept", "recomputed"])
def test_gradients_on_termination_clamp_background_and_chunks(path_spy, keep_budget):
    scene, bg = layered_scene()
    names = ["means", "quats", "scales", "opacities", "colors", "bg"]
    wimg = torch.rand(1, H, W, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    walpha = torch.rand(1, H, W, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def loss_fn(*xs):
        kw = dict(scene)
        kw.update(zip(names[:-1], xs[:-1]))
        img, alpha, _ = rasterize(**kw, backgrounds=xs[-1], backend="torch", tile_size=8, segment=2,
                                  max_pairs_per_chunk=300, keep_budget=keep_budget)
        return (img * wimg).sum() + (alpha * walpha).sum()

    inputs = [scene[n].clone().requires_grad_(True) for n in names[:-1]] + [bg.clone().requires_grad_(True)]
    loss = loss_fn(*inputs)
    # the paths under test were taken in this render
    assert path_spy["clamped"] > 0 and path_spy["terminated"] > 0
    assert path_spy["chunks"] >= 3 and path_spy["segments"] > path_spy["chunks"]
    grads = torch.autograd.grad(loss, inputs)
    with torch.no_grad():
        for k, (name, x) in enumerate(zip(names, inputs)):
            # every entry of the two clamped Gaussians, a mid-stack one, a far one and another, and the background
            per = x[0].numel()
            rows = [0] if name == "bg" else [0, 1, 6, 9, 12]
            for j in [r * per + c for r in rows for c in range(per)]:
                fd = central_difference(loss_fn, inputs, k, j)
                an = float(grads[k].reshape(-1)[j])
                assert math.isclose(an, fd, rel_tol=1e-4, abs_tol=1e-5), f"{name}[{j}]: analytic {an} vs {fd}"
    assert float(grads[-1].abs().sum()) > 0 and float(grads[3][:2].abs().sum()) > 0


def test_terminated_pixel_ignores_gaussians_behind(path_spy):
    """Behind a pixel that terminated, a further Gaussian changes nothing there and gets zero gradient from it."""
    scene, bg = layered_scene()
    far = dict(scene)
    far["means"] = torch.cat([scene["means"], torch.tensor([[0.02, -0.03, 1.5]], dtype=torch.float64)])
    for k in ("quats", "scales", "colors"):
        far[k] = torch.cat([scene[k], scene[k][:1]])
    far["opacities"] = torch.cat([scene["opacities"], torch.tensor([0.9], dtype=torch.float64)])
    colors = far["colors"].clone().requires_grad_(True)
    far["colors"] = colors
    img, alpha, _ = rasterize(**far, backgrounds=bg, backend="torch", tile_size=8, segment=2)
    cy, cx = H // 2, W // 2
    assert float(alpha[0, cy, cx, 0]) > 1 - 1e-3
    img[0, cy, cx].sum().backward()
    assert float(colors.grad[-1].abs().sum()) == 0.0 and float(colors.grad[0].abs().sum()) > 0
