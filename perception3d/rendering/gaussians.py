"""The 3D Gaussian scene model of 3DGS (Kerbl et al. 2023, §4).

Parameters are stored un-activated, as in the original code and in gsplat's trainers, in a
``torch.nn.ParameterDict`` (the layout ``gsplat.strategy.DefaultStrategy`` edits in place):

=============  ==============  ==============================================
key            shape           activation
=============  ==============  ==============================================
means          [N, 3]          —
scales         [N, 3]          exp  (log-scales)
quats          [N, 4]          normalise (w, x, y, z)
opacities      [N]             sigmoid (logits)
sh0            [N, 1, 3]       SH DC coefficient (colour = SH·C0 + 0.5)
shN            [N, K − 1, 3]   higher SH bands, K = (sh_degree + 1)²
=============  ==============  ==============================================

The PLY file (3DGS layout) is read and written by :mod:`perception3d.io.ply`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from perception3d.deprecation import moved_names
from perception3d.io import ply
from perception3d.sparse import SparseTensor

from .anchors import neighbour_scales, voxel_anchors
from .rasterize import rasterize
from .sh import num_sh_bases, rgb_to_sh

__all__ = ["GaussianModel", "knn_scales"]

# the PLY functions lived here before perception3d.io.ply
__getattr__ = moved_names(__name__, {"load_ply": "perception3d.io.ply", "save_ply": "perception3d.io.ply"})

PathLike = Union[str, Path]


def knn_scales(points: Tensor, k: int = 3) -> Tensor:
    """Initial isotropic scale per point: √(mean squared distance to its k nearest neighbours), as 3DGS's
    ``distCUDA2`` initialisation, found through kernel-map neighbourhoods (:func:`~.anchors.neighbour_scales`;
    one anchor per point). points [N, 3] → [N]."""
    points = torch.as_tensor(points)
    p = points.detach().float()
    if len(p) < 2:
        return torch.full((len(p),), 0.01, dtype=points.dtype)
    if not bool(torch.isfinite(p).all()):
        raise ValueError("knn_scales: points contain NaN/inf")
    return neighbour_scales(voxel_anchors(p), k).to(points.dtype)


class GaussianModel(nn.Module):
    """N anisotropic 3D Gaussians with SH colour (3DGS §4).

    Args:
        params: dict of tensors with the keys of the module docstring (un-activated values).
        sh_degree: the largest SH degree stored (``shN`` holds (sh_degree + 1)² − 1 bands).
    """

    def __init__(self, params: dict, sh_degree: int = 3):
        super().__init__()
        n = params["means"].shape[0]
        K = num_sh_bases(sh_degree)
        expect = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "opacities": (n,), "sh0": (n, 1, 3),
                  "shN": (n, K - 1, 3)}
        for key, shape in expect.items():
            if key not in params:
                raise ValueError(f"GaussianModel: params lacks '{key}'")
            if tuple(params[key].shape) != shape:
                raise ValueError(f"GaussianModel: params['{key}'] must be {list(shape)}, "
                                 f"got {list(params[key].shape)}")
        self.sh_degree = sh_degree
        self.params = nn.ParameterDict({k: nn.Parameter(torch.as_tensor(params[k]).float().clone())
                                        for k in expect})

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def from_points(cls, points: Tensor, rgb: Optional[Tensor] = None, sh_degree: int = 3,
                    init_opacity: float = 0.1, init_scale: float = 1.0,
                    voxel_size: Optional[float] = None) -> "GaussianModel":
        """Gaussians at the anchors of ``points`` [N, 3] (SfM, LiDAR or random points; colours ``rgb`` [N, 3] in
        [0, 1], grey if None): :func:`~.anchors.voxel_anchors` (``voxel_size`` None: one Gaussian per point, as
        3DGS; a size in metres: one per occupied voxel), then :meth:`from_anchors`."""
        return cls.from_anchors(voxel_anchors(points, rgb, voxel_size), sh_degree, init_opacity, init_scale)

    @classmethod
    def from_anchors(cls, anchors: SparseTensor, sh_degree: int = 3, init_opacity: float = 0.1,
                     init_scale: float = 1.0) -> "GaussianModel":
        """One Gaussian per anchor (a SparseTensor with feats [M, 6] = x, y, z, r, g, b, as ``voxel_anchors``
        makes): isotropic scale ``init_scale`` × the kernel-map 3-nearest-neighbour distance
        (:func:`~.anchors.neighbour_scales`), identity rotation, opacity ``init_opacity`` (3DGS §5.1)."""
        points, rgb = anchors.feats[:, :3].float(), anchors.feats[:, 3:6].float()
        n = points.shape[0]
        s = neighbour_scales(anchors).float() * init_scale
        params = {
            "means": points,
            "scales": torch.log(s)[:, None].repeat(1, 3),
            "quats": torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1),
            "opacities": torch.logit(torch.full((n,), float(init_opacity))),
            "sh0": rgb_to_sh(rgb)[:, None, :],
            "shN": torch.zeros(n, num_sh_bases(sh_degree) - 1, 3),
        }
        return cls(params, sh_degree)

    @classmethod
    def random(cls, n: int, center, extent: float, sh_degree: int = 3, init_opacity: float = 0.1,
               init_scale: float = 1.0, generator: Optional[torch.Generator] = None,
               keep: Optional[Callable[[Tensor], Tensor]] = None, voxel_size: Optional[float] = None
               ) -> "GaussianModel":
        """``n`` Gaussians uniformly in the cube ``center ± extent`` with random colours (for scenes without
        SfM points, e.g. NeRF-synthetic, as 3DGS does with 100k points). ``keep`` maps the points [n, 3] to the
        ones to keep (e.g. carving by object masks) before the colours are drawn; ``voxel_size`` as
        :meth:`from_points`."""
        c = torch.as_tensor(center, dtype=torch.float32).reshape(1, 3)
        pts = (torch.rand(n, 3, generator=generator) * 2 - 1) * extent + c
        if keep is not None:
            pts = keep(pts)
        rgb = torch.rand(len(pts), 3, generator=generator)
        return cls.from_points(pts, rgb, sh_degree, init_opacity, init_scale, voxel_size)

    # -- activated views ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.params["means"].shape[0])

    @property
    def means(self) -> Tensor:
        return self.params["means"]

    @property
    def scales(self) -> Tensor:
        """[N, 3] linear scales."""
        return torch.exp(self.params["scales"])

    @property
    def quats(self) -> Tensor:
        return self.params["quats"]

    @property
    def opacities(self) -> Tensor:
        """[N] in (0, 1)."""
        return torch.sigmoid(self.params["opacities"])

    @property
    def sh(self) -> Tensor:
        """[N, K, 3] all SH coefficients."""
        return torch.cat([self.params["sh0"], self.params["shN"]], 1)

    def render(self, viewmats: Tensor, Ks: Tensor, width: int, height: int, sh_degree: Optional[int] = None,
               background: Optional[Tensor] = None, render_mode: str = "RGB", **kwargs):
        """Render C views; returns ``rasterize``'s (colors [C, H, W, X], alphas [C, H, W, 1], meta).

        ``background`` is [3] or [C, 3]; ``sh_degree`` defaults to the model's."""
        C = viewmats.shape[0]
        bg = None
        if background is not None:
            bg = torch.as_tensor(background, dtype=torch.float32, device=viewmats.device)
            bg = bg.reshape(-1, 3).expand(C, 3)
        deg = self.sh_degree if sh_degree is None else sh_degree
        return rasterize(self.means, self.quats, self.scales, self.opacities, self.sh, viewmats, Ks, width,
                         height, sh_degree=deg, backgrounds=bg, render_mode=render_mode, **kwargs)

    # -- files ----------------------------------------------------------------------------------------------
    def save_ply(self, path: PathLike) -> None:
        ply.save_ply(path, {k: v.detach() for k, v in self.params.items()})

    @classmethod
    def load_ply(cls, path: PathLike) -> "GaussianModel":
        params, deg = ply.load_ply(path)
        return cls(params, deg)

    def load_params(self, params: dict) -> None:
        """Replace all parameters (N may change, e.g. when resuming after densification)."""
        for k in list(self.params.keys()):
            self.params[k] = nn.Parameter(torch.as_tensor(params[k]).float().clone())
