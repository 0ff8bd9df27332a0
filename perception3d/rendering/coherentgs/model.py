"""CoherentGS's structured Gaussians (Paliwal et al., ECCV 2024, §4.1): one Gaussian per pixel of each input
view, held as a 2-D :class:`~perception3d.sparse.SparseTensor` whose coordinates are the pixels (view, y, x) and
whose features are the Gaussians' parameters; rendering reads the Gaussians from that tensor.

Each Gaussian sits on the ray through its pixel, so its position is one number, the depth (§4.1, X = o + d r):

    d = d₀ · s_v + t_v                                       during the depth alignment (per-view scale, offset)
    d = d₀ + S · d_ref · Σ_k M_k tanh(f_θ(γ(v))_k) / Σ_k M_k    afterwards (single-view constraint: the decoder)

with d₀ the initial depth, M_k the depth-layer masks and f_θ the :class:`~.decoder.SparseImplicitDecoder`.
The opacity logit is a fixed start plus 100 · Σ_k M_k tanh(g_φ(γ(v))_k) / Σ_k M_k from a second decoder; the
colour is the pixel's (SH DC, fixed as in the authors' code) plus trainable higher SH bands; the radius is the
pixel's footprint at its depth × ``radius_mult``, reset from the depth during the first part of training. There is
no densification or pruning: the set of Gaussians is the set of pixel sites.

Feature layout of the tensor :meth:`CoherentGaussians.decode` returns (C = 9 + 3 (sh_degree + 1)²):
``[depth | opacity logit | log-scale × 3 | quaternion × 4 | SH × 3K]``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from perception3d.sparse import SparseTensor

from ..gaussians import GaussianModel
from ..rasterize import rasterize
from ..sh import num_sh_bases, rgb_to_sh
from .decoder import PixelPyramid, SparseImplicitDecoder, layer_widths, view_code

__all__ = ["CoherentGaussians"]


class CoherentGaussians(nn.Module):
    """Per-pixel Gaussians of V views + their two implicit decoders.

    Args:
        viewmats, Ks: [V, 4, 4] world → camera and [V, 3, 3] intrinsics of the training views (OpenCV, pixel
            centres at +0.5).
        images: [V, H, W, 3] colours in [0, 1]; depth: [V, H, W] initial depth d₀ (> 0).
        sites: [V, H, W] bool, the pixels that hold a Gaussian; layers: [V, K, H, W] one-hot depth-layer masks.
        sh_degree, radius_mult, init_opacity: see :class:`~.config.CoherentGSModelConfig`.
        ngf, opacity_ngf, finest_level, embed_freqs, depth_residual_scale, opacity_residual_scale: the decoders.
        train_colors: make the SH DC colour a parameter too.
    """

    def __init__(self, viewmats: Tensor, Ks: Tensor, images: Tensor, depth: Tensor, sites: Tensor, layers: Tensor,
                 sh_degree: int = 3, radius_mult: float = 1.2, init_opacity: float = 0.5, ngf: int = 15,
                 opacity_ngf: int = 10, finest_level: int = 0, embed_freqs: int = 10,
                 depth_residual_scale: float = 1.0, opacity_residual_scale: float = 100.0,
                 train_colors: bool = False):
        super().__init__()
        V, H, W = depth.shape
        coords = sites.nonzero().int()  # (view, y, x), row-major = the SparseTensor's sorted order
        if len(coords) == 0:
            raise ValueError("CoherentGaussians: no pixel site holds a Gaussian")
        v, y, x = coords.long().unbind(1)
        self.num_views, self.height, self.width = V, H, W
        self.sh_degree = int(sh_degree)
        self.active_sh_degree = 0
        self.radius_mult = float(radius_mult)
        self.depth_residual_scale = float(depth_residual_scale)
        self.opacity_residual_scale = float(opacity_residual_scale)
        self.grid = SparseTensor(torch.zeros(len(coords), 1), coords, (H, W), V)
        self.pyramid = PixelPyramid(self.grid)
        self.stage = "align"  # "align": d₀ s_v + t_v; "decoder": d₀ + residual; "fixed": d₀
        uv1 = torch.stack([x.float() + 0.5, y.float() + 0.5, torch.ones_like(x, dtype=torch.float32)], 1)
        rays = torch.einsum("nij,nj->ni", torch.linalg.inv(Ks.double()).float()[v], uv1)
        c2w = torch.linalg.inv(viewmats.double()).float()
        self.register_buffer("rays", rays)                        # [N, 3] camera-frame ray with z = 1
        self.register_buffer("c2w", c2w)                          # [V, 4, 4]
        self.register_buffer("view", v)                           # [N]
        self.register_buffer("focal", Ks[:, 1, 1].float())        # [V] f_y in pixels (the footprint)
        self.register_buffer("depth0", depth[v, y, x].float())    # [N] d₀
        self.register_buffer("layers", layers.permute(0, 2, 3, 1)[v, y, x].float())  # [N, K] M_k
        self.register_buffer("opacity0", torch.full((len(coords),), float(torch.logit(torch.tensor(init_opacity)))))
        self.register_buffer("code", view_code(V, embed_freqs))   # [V, 2F] γ(v)
        d0 = depth[v, y, x]
        self.d_ref = float(d0[d0 > 0].median()) if (d0 > 0).any() else 1.0  # length unit of residuals and losses
        sh0 = rgb_to_sh(images[v, y, x].float())[:, None, :]
        if train_colors:
            self.sh0 = nn.Parameter(sh0)
        else:
            self.register_buffer("sh0", sh0)
        n = len(coords)
        self.shN = nn.Parameter(torch.zeros(n, num_sh_bases(self.sh_degree) - 1, 3))
        self.scales = nn.Parameter(torch.zeros(n, 3))
        self.quats = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1))
        self.mono_scale = nn.Parameter(torch.ones(V))    # s_v (authors' monodepth_scaling)
        self.mono_offset = nn.Parameter(torch.zeros(V))  # t_v (authors' monodepth_offset)
        levels = self.pyramid.coarsest - finest_level + 1
        K = layers.shape[1]
        self.decoder = SparseImplicitDecoder(self.code.shape[1], K, layer_widths(levels, ngf), finest_level)
        self.decoder_opac = SparseImplicitDecoder(self.code.shape[1], K, layer_widths(levels, opacity_ngf),
                                                  finest_level)
        self.reset_scales()

    def __len__(self) -> int:
        return int(self.depth0.shape[0])

    # -- the Gaussians ------------------------------------------------------------------------------------------
    def _layered(self, out: Tensor) -> Tensor:
        """Σ_k M_k tanh(out_k) / Σ_k M_k → [N]."""
        m = self.layers
        return (torch.tanh(out) * m).sum(1) / (m.sum(1) + 1e-10)

    def depth(self) -> Tensor:
        """[N] the Gaussians' depths in the current stage (module doc)."""
        if self.stage == "align":
            return self.depth0 * self.mono_scale[self.view] + self.mono_offset[self.view] * self.d_ref
        if self.stage == "decoder":
            res = self._layered(self.decoder(self.pyramid, self.code))
            return self.depth0 + self.depth_residual_scale * self.d_ref * res
        return self.depth0

    def opacity_logit(self) -> Tensor:
        if self.stage == "decoder":
            learned = self._layered(self.decoder_opac(self.pyramid, self.code))
            return self.opacity0 + self.opacity_residual_scale * learned
        return self.opacity0

    @torch.no_grad()
    def reset_scales(self) -> None:
        """Radius = the pixel's footprint (d / 2f) × radius_mult, isotropic (authors' ``set_scaling``)."""
        d = self.depth().clamp_min(1e-8)
        r = d / (2 * self.focal[self.view]) * self.radius_mult
        self.scales.data[:] = torch.log(r)[:, None]

    @torch.no_grad()
    def bake_alignment(self) -> None:
        """d₀ ← d₀ s_v + t_v and leave the alignment stage (authors' ``update_initz_so``)."""
        self.depth0.copy_(self.depth())
        self.stage = "decoder"
        self.reset_scales()

    def means(self, depth: Tensor) -> Tensor:
        """[N, 3] world positions of depths [N] along the pixels' rays."""
        pc = self.rays * depth[:, None]
        R, t = self.c2w[:, :3, :3], self.c2w[:, :3, 3]
        return torch.einsum("nij,nj->ni", R[self.view], pc) + t[self.view]

    def decode(self) -> SparseTensor:
        """The per-pixel Gaussians as the SparseTensor (feature layout in the module doc)."""
        sh = torch.cat([self.sh0, self.shN], 1).reshape(len(self), -1)
        feats = torch.cat([self.depth()[:, None], self.opacity_logit()[:, None], self.scales, self.quats, sh], 1)
        return self.grid.replace(feats=feats)

    def unpack(self, g: SparseTensor) -> dict:
        """SparseTensor of :meth:`decode` → GaussianModel-style un-activated params (means, scales, quats,
        opacities, sh0, shN)."""
        f = g.feats
        K = num_sh_bases(self.sh_degree)
        sh = f[:, 9:].reshape(-1, K, 3)
        return {"means": self.means(f[:, 0]), "scales": f[:, 2:5], "quats": f[:, 5:9], "opacities": f[:, 1],
                "sh0": sh[:, :1], "shN": sh[:, 1:], "depth": f[:, 0]}

    def render(self, viewmats: Tensor, Ks: Tensor, width: int, height: int, sh_degree: Optional[int] = None,
               background: Optional[Tensor] = None, render_mode: str = "RGB", gaussians: Optional[dict] = None,
               **kwargs):
        """Render C views through the SparseTensor (same contract as :meth:`GaussianModel.render`);
        ``gaussians`` = an :meth:`unpack` result to reuse."""
        p = self.unpack(self.decode()) if gaussians is None else gaussians
        dev, asked = self.depth0.device, viewmats.device  # cameras elsewhere (evaluation on CPU): moved, and back
        C = viewmats.shape[0]
        bg = None
        if background is not None:
            bg = torch.as_tensor(background, dtype=torch.float32, device=dev).reshape(-1, 3).expand(C, 3)
        deg = self.active_sh_degree if sh_degree is None else sh_degree
        out = rasterize(p["means"], p["quats"], torch.exp(p["scales"]), torch.sigmoid(p["opacities"]),
                        torch.cat([p["sh0"], p["shN"]], 1), viewmats.to(dev), Ks.to(dev), width, height,
                        sh_degree=deg, backgrounds=bg, render_mode=render_mode, **kwargs)
        if asked == dev:
            return out
        return out[0].to(asked), out[1].to(asked), out[2]

    @torch.no_grad()
    def export(self) -> GaussianModel:
        """The current Gaussians as a plain :class:`GaussianModel` (what checkpoints store as ``params``)."""
        p = self.unpack(self.decode())
        return GaussianModel({k: v.detach().cpu() for k, v in p.items()}, self.sh_degree)

    def save_ply(self, path) -> None:
        self.export().save_ply(path)

    def to(self, *args, **kwargs):  # the pyramid and grid are not buffers
        out = super().to(*args, **kwargs)
        dev = self.depth0.device
        self.grid = self.grid.to(dev)
        self.pyramid = self.pyramid.to(dev)
        return out
