"""MetaCap's two stages: **meta-learning** the canonical field's weights over frames (and subjects) with Reptile,
then **fine-tuning** them on a few views of an unseen frame, with the occlusion handling of the body model.

Losses of one step (the authors' ``system.loss``, weights in ``loss``):

    L = λ_rgb · Huber_δ=0.1(C, C_gt)  (rays that kept a sample)     λ_rgb = 10
      + λ_mask · BCE(clamp(O, 1e-3, 1 − 1e-3), M_gt)                 λ_mask = 0.1
      + λ_eik · mean (|∇_x f| − 1)²          (eikonal, IGR)           λ_eik = 0.1
      + λ_sp · mean exp(−τ |f|)              (sparsity)               λ_sp = 0.01, τ = 1

with a random background colour per step composited into the ground truth (``background_color: random``).

Reptile (Nichol et al. 2018, Algorithm 1, as MetaCap meta-learns its field): per outer step, a random
(subject, frame) task; φ ← θ; ``inner_steps`` (24) Adam steps on φ (lr 0.01, β = (0.9, 0.99), ε = 1e-15; during
the first ``warmup_steps_inner`` (50) outer steps the inner lr ramps linearly from 1 % over 500 inner steps, as the authors'
LinearLR); then θ ← θ + ε (φ − θ), implemented as the authors do: an SGD step (lr ε = 1.0) on the "gradient"
θ − φ.

Fine-tuning (the authors' ``neus-system`` finetune configs): Adam lr 0.01, β = (0.9, 0.99), ε = 1e-15, decayed
exponentially to 0.1× over the run, 256 rays per step from the input views.

Occlusion handling (MetaCap's, for sparse and monocular inputs; the authors' ``compute_occlusion``): the body-model
vertices that no input view sees (the body mesh's depth map of each view unprojected, a vertex seen when a depth
point lies next to it; the occluded set grown by ``rings`` vertex rings: the authors' two Laplacian passes on their
dense template, one ring of our 2.5 cm template is as wide) mark the body parts the inputs say nothing about; the
prior (the field before fine-tuning) is rendered in canonical space from ``proxy_views`` cameras around the body, and
the pixels of those proxy images that show occluded parts (or background) are added as extra canonical-space
rays, ``rays × occlusion rate`` per step, so the unseen side keeps the prior's appearance and shape.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ..mesh_raster import rasterize_mesh
from .field import CanonicalField
from .frames import FrameBody, FrameData, camera_rays, canonical_body, sample_rays
from .neus import render_image, render_rays

__all__ = ["metacap_loss", "train_step", "reptile", "finetune", "ProxyRays", "occlusion_proxies",
           "visible_vertices", "psnr"]

DEFAULT_LOSS = dict(rgb_huber=10.0, mask=0.1, eikonal=0.1, sparsity=0.01, sparsity_scale=1.0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def metacap_loss(out: dict, rgb: torch.Tensor, mask: torch.Tensor, w: dict) -> torch.Tensor:
    """The weighted loss of a batch of rendered rays (module docstring)."""
    loss = out["comp_rgb"].new_zeros(())
    v = out["valid"]
    if w["rgb_huber"] > 0 and v.any():
        loss = loss + w["rgb_huber"] * F.huber_loss(out["comp_rgb"][v], rgb[v], delta=0.1)
    if w["mask"] > 0:
        loss = loss + w["mask"] * F.binary_cross_entropy(out["opacity"].clamp(1e-3, 1 - 1e-3), mask)
    if len(out["sdf"]):
        if w["eikonal"] > 0:
            loss = loss + w["eikonal"] * ((out["grad"].norm(dim=-1) - 1.0) ** 2).mean()
        if w["sparsity"] > 0:
            loss = loss + w["sparsity"] * torch.exp(-w["sparsity_scale"] * out["sdf"].abs()).mean()
    return loss


@dataclass
class ProxyRays:
    """Canonical-space supervision rays of the occlusion handling: origins, dirs [P, 3], rgb [P, 3] (on black),
    mask [P], the canonical body, and the occlusion rate (fraction of body vertices no input view sees)."""

    o: torch.Tensor
    d: torch.Tensor
    rgb: torch.Tensor
    mask: torch.Tensor
    body: FrameBody
    rate: float


def train_step(field: CanonicalField, opt: torch.optim.Optimizer, frame: FrameData, n_rays: int,
               gen: torch.Generator, render_cfg: dict, loss_w: dict, cams: Optional[Sequence[int]] = None,
               proxy: Optional[ProxyRays] = None, global_step: int = 0) -> float:
    """One optimisation step on ``n_rays`` random rays of ``frame`` (+ occlusion proxy rays); returns the loss."""
    o, d, rgb, m = sample_rays(frame, n_rays, gen, cams)
    bg = torch.rand(3, generator=gen).to(rgb)
    rgb = rgb * m[:, None] + bg * (1 - m[:, None])
    r = dict(step=render_cfg["step"], threshold=render_cfg["threshold"],
             cos_anneal_ratio=min(1.0, global_step / render_cfg["cos_anneal_end"]) if render_cfg.get(
                 "cos_anneal_end") else 1.0)
    out = render_rays(field, frame.body, o, d, bg, gen=gen, **r)
    loss = metacap_loss(out, rgb, m, loss_w)
    if proxy is not None and proxy.rate > 0 and len(proxy.o):
        k = max(1, int(n_rays * proxy.rate))
        i = torch.randint(len(proxy.o), (k,), generator=gen).to(proxy.o.device)
        pm = proxy.mask[i]
        prgb = proxy.rgb[i] + bg * (1 - pm[:, None])
        pout = render_rays(field, proxy.body, proxy.o[i], proxy.d[i], bg, gen=gen, canonical=True, **r)
        loss = loss + metacap_loss(pout, prgb, pm, loss_w)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _adam(params, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99), eps=1e-15)


def reptile(field: CanonicalField, tasks: Sequence[FrameData], outer_steps: int, gen: torch.Generator,
            render_cfg: dict, loss_w: dict = DEFAULT_LOSS, inner_steps: int = 24, inner_lr: float = 0.01,
            outer_lr: float = 1.0, warmup_steps_inner: int = 50, rays: int = 256, start_step: int = 0,
            callback: Optional[Callable[[int, float], None]] = None) -> CanonicalField:
    """Meta-learn ``field`` in place over ``tasks`` (frames of one or more subjects) for outer steps
    ``start_step`` … ``outer_steps − 1``; ``callback(step, last inner loss)`` after each outer step."""
    outer = torch.optim.SGD(field.parameters(), lr=outer_lr)
    for step in range(start_step, outer_steps):
        task = tasks[int(torch.randint(len(tasks), (1,), generator=gen))]
        learner = copy.deepcopy(field)                                        # φ ← θ
        inner = _adam(learner.parameters(), inner_lr)
        sched = (torch.optim.lr_scheduler.LinearLR(inner, start_factor=0.01, end_factor=1.0, total_iters=500)
                 if step < warmup_steps_inner else None)
        loss = float("nan")
        for _ in range(inner_steps):
            loss = train_step(learner, inner, task, rays, gen, render_cfg, loss_w, global_step=step)
            if sched is not None:
                sched.step()
        outer.zero_grad(set_to_none=True)
        for p, q in zip(field.parameters(), learner.parameters()):
            p.grad = p.detach() - q.detach()                                  # θ − φ
        outer.step()                                                          # θ ← θ − ε (θ − φ)
        if callback is not None:
            callback(step, loss)
    return field


def finetune(field: CanonicalField, frame: FrameData, steps: int, gen: torch.Generator, render_cfg: dict,
             loss_w: dict = DEFAULT_LOSS, lr: float = 0.01, final_lr_factor: float = 0.1, rays: int = 256,
             proxy: Optional[ProxyRays] = None, evaluate: Optional[Callable[[CanonicalField], dict]] = None,
             eval_steps: Sequence[int] = ()) -> list[dict]:
    """Fine-tune ``field`` in place on all cameras of ``frame`` (the input views). ``evaluate(field)`` runs before
    the steps listed in ``eval_steps`` (and after the last); returns the history [{step, loss, seconds, ...}]."""
    opt = _adam(field.parameters(), lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=final_lr_factor ** (1.0 / max(steps, 1)))
    history, t_train, loss = [], 0.0, float("nan")
    marks = sorted(set(int(s) for s in eval_steps if 0 <= s < steps)) + [steps]
    for step in range(steps + 1):
        if evaluate is not None and step in marks:
            history.append({"step": step, "loss": loss, "train_seconds": t_train, **evaluate(field)})
        if step == steps:
            break
        t0 = time.process_time()
        loss = train_step(field, opt, frame, rays, gen, render_cfg, loss_w, proxy=proxy, global_step=step)
        sched.step()
        t_train += time.process_time() - t0
    return history


# ----------------------------------------------------------------------------------------------------------
# Occlusion handling
# ----------------------------------------------------------------------------------------------------------
def visible_vertices(frame: FrameData, tol: float = 0.004) -> torch.Tensor:
    """bool [V]: body-model vertices that at least one of the frame's cameras sees. As the authors: the body mesh's
    depth map of each view is unprojected to points, and a vertex is visible when one of them lies within
    ``tol`` (4 mm) of it — plus the pixel footprint at the vertex's depth (0.75 · z / f), since our views are coarser
    than their 4 mm."""
    from scipy.spatial import cKDTree

    body, cams = frame.body, frame.cameras
    vis = torch.zeros(len(body.verts), dtype=torch.bool, device=body.verts.device)
    for c in range(len(cams)):
        vm = cams.viewmats[c]
        vc = body.verts @ vm[:3, :3].T + vm[:3, 3]
        ras = rasterize_mesh(vc, body.faces, cams.Ks[c], cams.width, cams.height)
        py, px = torch.nonzero(ras.mask, as_tuple=True)
        if len(py) == 0:
            continue
        o, d = camera_rays(cams, torch.full_like(px, c), px, py)
        # depth is camera z: the point on the ray at z = depth
        z_dir = (d @ cams.camtoworlds[c][:3, 2])
        pts = o + d * (ras.depth[py, px] / z_dir)[:, None]
        f = float(cams.Ks[c][0, 0])
        dist, _ = cKDTree(pts.double().cpu().numpy()).query(body.verts.double().cpu().numpy(), k=1)
        vis |= torch.from_numpy(dist).to(vc) < tol + 0.75 * vc[:, 2].clamp_min(0) / f
    return vis


def _grow(flag: torch.Tensor, faces: torch.Tensor, rings: int) -> torch.Tensor:
    for _ in range(rings):
        hit = flag[faces].any(1)
        flag = flag.clone()
        flag[faces[hit].reshape(-1)] = True
    return flag


@torch.no_grad()
def _proxy_cameras(body_c: FrameBody, n: int, size: int):
    from perception3d.structures.cameras import Cameras, orbit_path

    v = body_c.verts
    centre = (v.min(0).values + v.max(0).values) / 2
    extent = float((v.max(0).values - v.min(0).values).max())
    radius = 3.0
    c2w = orbit_path(centre.cpu(), radius, n, elevation=10.0, up=(0.0, 1.0, 0.0))
    f = size * radius / (1.1 * extent)
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    return Cameras.from_camtoworlds(c2w, K.expand(n, 3, 3), size, size).to(v.device)


def occlusion_proxies(prior: CanonicalField, frame: FrameData, render_cfg: dict, proxy_views: int = 8,
                      size: int = 64, rings: int = 1) -> ProxyRays:
    """Build the canonical-space proxy rays of the occlusion handling (module docstring) from the prior field and
    the input views of ``frame``."""
    occluded = _grow(~visible_vertices(frame), frame.body.faces, rings)
    body_c = canonical_body(frame.body)
    cams = _proxy_cameras(body_c, proxy_views, size)
    os_, ds, rgbs, ms = [], [], [], []
    for c in range(len(cams)):
        vm = cams.viewmats[c]
        ras = rasterize_mesh(body_c.verts @ vm[:3, :3].T + vm[:3, 3], body_c.faces, cams.Ks[c], size, size)
        fid = ras.face_id
        use = torch.ones_like(fid, dtype=torch.bool)
        occluded = occluded.to(fid.device)
        on = fid >= 0
        use[on] = occluded[body_c.faces[fid[on]]].any(1)
        rgb, acc = render_image(prior, body_c, cams, c, background=(0.0, 0.0, 0.0), step=render_cfg["step"],
                                threshold=render_cfg["threshold"], canonical=True)
        # keep the body's neighbourhood only (the box around its silhouette), as the training rays' tight crops
        ys, xs = torch.nonzero(on, as_tuple=True)
        if len(ys) == 0:
            continue
        box = torch.zeros_like(use)
        box[max(0, int(ys.min()) - 3):int(ys.max()) + 4, max(0, int(xs.min()) - 3):int(xs.max()) + 4] = True
        py, px = torch.nonzero(use & box, as_tuple=True)
        o, d = camera_rays(cams, torch.full_like(px, c), px, py)
        os_.append(o)
        ds.append(d)
        rgbs.append(rgb[py, px])
        ms.append((acc[py, px] > 0.5).float())
    cat = (lambda xs, w: torch.cat(xs) if xs else torch.zeros(0, w, device=body_c.verts.device))
    return ProxyRays(cat(os_, 3), cat(ds, 3), cat(rgbs, 3), cat(ms, 1).reshape(-1), body_c,
                     float(occluded.float().mean()))
