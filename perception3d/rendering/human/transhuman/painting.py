"""Painted body (TransHuman Sec. 3.1): the posed body's vertices are projected into the reference views, each
visible vertex takes the image feature under it, and the painted vertices are carried back to canonical space,
where they form a :class:`~perception3d.sparse.SparseTensor` (batch index = reference view). Tokens are the
k-means groups of that canonical painted body (Sec. 3.2)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ....sparse import SparseTensor
from ..canonical import canonical_sparse_tensor
from .kmeans import pool_by_label

__all__ = ["project", "sample_feature_map", "vertex_visibility", "paint_body", "painted_tokens"]


def project(points: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """points [N, 3] world → (uv [V, N, 2] pixels in the house convention (pixel centres at +0.5), depth [V, N])
    for V cameras (viewmats [V, 4, 4] world → camera, Ks [V, 3, 3])."""
    cam = points @ viewmats[:, :3, :3].transpose(1, 2) + viewmats[:, None, :3, 3]
    z = cam[..., 2]
    pix = cam @ Ks.transpose(1, 2)
    return pix[..., :2] / z.clamp_min(1e-6)[..., None], z


def sample_feature_map(feat: torch.Tensor, uv: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinear features under pixels: feat [V, C, h, w] covering the W × H image with its corner samples on the
    corner pixel centres (a map upsampled to W × H with ``align_corners=True`` would be sampled at the same place),
    uv [V, N, 2] in the house convention (centres at +0.5) → [V, N, C]. Border padding, as the authors'
    ``sample_from_feature_map``."""
    gx = (uv[..., 0] - 0.5) / max(width - 1, 1) * 2 - 1
    gy = (uv[..., 1] - 0.5) / max(height - 1, 1) * 2 - 1
    grid = torch.stack([gx, gy], -1)[:, :, None]
    out = F.grid_sample(feat, grid.to(feat.dtype), mode="bilinear", padding_mode="border", align_corners=True)
    return out[..., 0].transpose(1, 2)


def vertex_visibility(uv: torch.Tensor, depth: torch.Tensor, width: int, height: int, cell: int = 4,
                      tol: float = 0.03) -> torch.Tensor:
    """Which vertices each view sees (the authors rasterise SMPL for a ``vizmap``): a z-buffer of the vertices on
    a grid of ``cell``-pixel cells; a vertex is visible when it is inside the image and no nearer than ``tol``
    metres behind the nearest vertex of its cell. uv [V, N, 2], depth [V, N] → bool [V, N]."""
    Vn, N = depth.shape
    gw, gh = -(-width // cell), -(-height // cell)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < width) & (uv[..., 1] >= 0) & (uv[..., 1] < height) & (depth > 0)
    ix = (uv[..., 0] / cell).long().clamp(0, gw - 1)
    iy = (uv[..., 1] / cell).long().clamp(0, gh - 1)
    flat = ix + gw * iy + gw * gh * torch.arange(Vn, device=uv.device)[:, None]
    zbuf = torch.full((Vn * gw * gh,), float("inf"), dtype=depth.dtype, device=depth.device)
    d = torch.where(inside, depth, torch.full_like(depth, float("inf")))
    zbuf = zbuf.scatter_reduce(0, flat.flatten(), d.flatten(), reduce="amin")
    return inside & (depth <= zbuf[flat] + tol)


def paint_body(verts_world: torch.Tensor, verts_canonical: torch.Tensor, features: Callable,
               viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
               voxel_size: float = 0.005) -> tuple[SparseTensor, torch.Tensor, torch.Tensor]:
    """Paint the body from V reference views.

    Args:
        verts_world: [N, 3] posed vertices (world); verts_canonical: [N, 3] the same vertices in the T-pose.
        features: ``features(uv [V, N, 2]) → [V, N, C]`` the per-view image features under pixels (the encoder's
            "holder" features).
    Returns:
        (painted SparseTensor in canonical space: batch = view, feats [M, C] the mean painted feature of the
         vertices in each voxel (an occluded vertex paints zeros, as the authors' ``big_holder``);
         vertex2voxel [V·N] each vertex's row; visibility bool [V, N]).
    """
    uv, z = project(verts_world, viewmats, Ks)
    vis = vertex_visibility(uv, z, width, height)
    f = features(uv)
    painted = f * vis[..., None].to(f.dtype)                                              # [V, N, C]
    st, v2v = canonical_sparse_tensor([verts_canonical] * f.shape[0], list(painted), voxel_size=voxel_size)
    return st, v2v, vis


def painted_tokens(st: SparseTensor, vertex2voxel: torch.Tensor, labels: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Group the painted body into k-means tokens: each token is the mean feature of its vertices, read from the
    voxels they fell in (vertices closer than a voxel — 5 mm by default — share their mean painted feature; the
    authors pool the vertices directly). st: painted SparseTensor (batch = view), vertex2voxel [V·N], labels [N]
    → [V, k, C]."""
    Vn = st.batch_size
    if bool((vertex2voxel < 0).any()):
        raise ValueError("painted_tokens: some vertices fell outside the canonical grid")
    per_vertex = st.feats[vertex2voxel].view(Vn, -1, st.feats.shape[1])
    return pool_by_label(per_vertex, labels, num_tokens)
