"""The per-scene baseline: a plain NeRF (Mildenhall et al. 2020; coarse network only, no body model, no prior)
fitted to the same few reference views TransHuman sees, inside the same body box, rendered the same way. It is
what a user without a generalisable model would do with 3 views of a new person.

Density and compositing follow mip-NeRF (Barron et al. 2021, its implementation choices): σ = softplus(x − 1)
instead of NeRF's ReLU, and the last sample gets an ordinary interval (no 1e10 one). A ReLU density on a black
background can die everywhere (every pre-activation below zero: an empty, black render with no gradient to leave
it); a softplus always has a gradient, and its −1 shift starts the field nearly empty."""
from __future__ import annotations

import time
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .encoding import nerf_embed, nerf_embed_dim
from .volume import camera_rays, ray_box, render_rays

__all__ = ["PerSceneNeRF", "fit_nerf", "LAST_INTERVAL"]

LAST_INTERVAL = None   # mip-NeRF: the last sample gets the previous interval (see volume.composite)


class PerSceneNeRF(nn.Module):
    """``forward(pts [P, 3], viewdir [P, 3]) → raw [P, 4]`` (rgb logits, σ ≥ 0): NeRF's MLP (positional encoding
    with 10 / 4 frequencies, ``depth`` ReLU layers of ``width`` with a skip of the input at the middle, σ from
    position only, colour from a feature and the view direction), with mip-NeRF's density softplus(x − 1)."""

    def __init__(self, width: int = 128, depth: int = 6, xyz_freqs: int = 10, view_freqs: int = 4,
                 center: Optional[torch.Tensor] = None, scale: float = 1.0) -> None:
        super().__init__()
        self.xyz_freqs, self.view_freqs, self.skip = xyz_freqs, view_freqs, depth // 2
        din = nerf_embed_dim(xyz_freqs)
        self.layers = nn.ModuleList([nn.Linear(din if i == 0 else width + (din if i == self.skip else 0), width)
                                     for i in range(depth)])
        self.sigma = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        self.view = nn.Linear(width + nerf_embed_dim(view_freqs), width // 2)
        self.rgb = nn.Linear(width // 2, 3)
        self.register_buffer("center", torch.zeros(3) if center is None else center.float())
        self.scale = float(scale)

    def forward(self, pts: torch.Tensor, viewdir: torch.Tensor) -> torch.Tensor:
        e = nerf_embed((pts - self.center) / self.scale, self.xyz_freqs)
        h = e
        for i, layer in enumerate(self.layers):
            h = F.relu(layer(torch.cat([h, e], -1) if i == self.skip and i > 0 else h))
        c = F.relu(self.view(torch.cat([self.feature(h), nerf_embed(viewdir, self.view_freqs)], -1)))
        sigma = F.softplus(self.sigma(h) - 1.0)   # mip-NeRF's shifted softplus: never a dead density
        return torch.cat([self.rgb(c), sigma], -1)


def fit_nerf(images: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, box: torch.Tensor,
             cpu_seconds: float, n_rays: int = 1024, n_samples: int = 64, lr: float = 5e-4,
             max_steps: Optional[int] = None, seed: int = 0, **net_kw) -> tuple[PerSceneNeRF, dict]:
    """Fit a :class:`PerSceneNeRF` to V views (images [V, H, W, 3]) with an MSE loss on random rays inside the
    box, for ``cpu_seconds`` of process CPU time (or ``max_steps``). → (model, dict(steps, cpu_seconds, loss))."""
    torch.manual_seed(seed)
    V, H, W, _ = images.shape
    os_, ds_, cs_ = [], [], []
    for v in range(V):
        o, d = camera_rays(viewmats[v], Ks[v], W, H)
        hit = ray_box(o, d, box)[2]
        os_.append(o[hit]), ds_.append(d[hit]), cs_.append(images[v].reshape(-1, 3)[hit])
    o, d, c = torch.cat(os_), torch.cat(ds_), torch.cat(cs_)
    center = box.mean(0)
    net = PerSceneNeRF(center=center, scale=float((box[1] - box[0]).max() / 2), **net_kw)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    t0, step, loss = time.process_time(), 0, float("nan")
    while time.process_time() - t0 < cpu_seconds and (max_steps is None or step < max_steps):
        j = torch.randint(o.shape[0], (min(n_rays, o.shape[0]),), generator=g)
        out = render_rays(net, o[j], d[j], box, n_samples, perturb=True, chunk=1 << 30, generator=g,
                          last_interval=LAST_INTERVAL)
        l = F.mse_loss(out["rgb"], c[j])
        opt.zero_grad()
        l.backward()
        opt.step()
        step, loss = step + 1, l.item()
    net.eval()
    return net, dict(steps=step, cpu_seconds=time.process_time() - t0, loss=loss)
