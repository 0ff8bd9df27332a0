"""Body vertices in canonical (T-pose) space as a :class:`~perception3d.sparse.SparseTensor`.

The human fields start from the body's vertices carrying features (Neural Body's structured latent codes,
TransHuman's painted vertex features, MetaCap's canonical voxel grid): the vertices are voxelised on a grid around
the canonical body (Neural Body's choice: 5 mm cells, a 5 cm margin, a grid size rounded up to a multiple of 32
so that strided sparse convs divide it), and each occupied voxel holds the mean feature of its vertices.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from ...sparse import SparseTensor
from ...sparse.voxelize import voxelize

__all__ = ["canonical_sparse_tensor", "canonical_bounds"]


def canonical_bounds(vertices: torch.Tensor, voxel_size: float = 0.005, padding: float = 0.05,
                     multiple_of: int = 32) -> tuple[float, ...]:
    """Grid range (x0, y0, z0, x1, y1, z1) around vertices [..., V, 3]: their box grown by ``padding`` on every
    side, the size then rounded up so each axis has a multiple of ``multiple_of`` cells of ``voxel_size``."""
    v = vertices.reshape(-1, 3).detach()
    lo = v.min(0).values - padding
    hi = v.max(0).values + padding
    n = [math.ceil(float(hi[i] - lo[i]) / voxel_size / multiple_of) * multiple_of for i in range(3)]
    lo = [float(x) for x in lo]
    return (*lo, *(lo[i] + n[i] * voxel_size for i in range(3)))


def canonical_sparse_tensor(vertices: Union[torch.Tensor, Sequence[torch.Tensor]],
                            features: Optional[Union[torch.Tensor, Sequence[torch.Tensor]]] = None,
                            voxel_size: float = 0.005, bounds: Optional[Sequence[float]] = None,
                            padding: float = 0.05, multiple_of: int = 32) -> tuple[SparseTensor, torch.Tensor]:
    """Voxelise canonical body vertices with their features.

    Args:
        vertices: [V, 3], [B, V, 3] or a list of B [V_b, 3] canonical (T-pose) vertices in metres.
        features: matching [V, C] / [B, V, C] / list of [V_b, C] per-vertex features; None: the voxel holds the
            mean position of its vertices (3 channels).
        voxel_size: cell edge in metres (cubic cells).
        bounds: grid range (x0, y0, z0, x1, y1, z1); default :func:`canonical_bounds` over all vertices.
    Returns:
        (SparseTensor with coords (b, z, y, x), feats [N, C] the mean feature per voxel, voxel_size and origin set;
         vertex2voxel [ΣV] each vertex's row in it, −1 for a vertex outside ``bounds``).
    """
    verts = list(vertices) if not isinstance(vertices, torch.Tensor) or vertices.ndim == 3 else [vertices]
    if features is None:
        feats = [v[:, :0] for v in verts]
    else:
        feats = list(features) if not isinstance(features, torch.Tensor) or features.ndim == 3 else [features]
    if len(feats) != len(verts):
        raise ValueError(f"canonical_sparse_tensor: {len(verts)} vertex sets but {len(feats)} feature sets")
    for b, (v, f) in enumerate(zip(verts, feats)):
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"canonical_sparse_tensor: vertices[{b}] must be [V, 3], got {tuple(v.shape)}")
        if f.ndim != 2 or f.shape[0] != v.shape[0]:
            raise ValueError(f"canonical_sparse_tensor: features[{b}] must be [{v.shape[0]}, C], got {tuple(f.shape)}")
    if bounds is None:
        bounds = canonical_bounds(torch.cat(verts), voxel_size, padding, multiple_of)
    clouds = [torch.cat([v, f.to(v.dtype)], 1) for v, f in zip(verts, feats)]
    st, v2v = voxelize(clouds if len(clouds) > 1 else clouds[0], [voxel_size] * 3, list(bounds), reduce="mean")
    keep = slice(0, 3) if features is None else slice(3, None)
    return st.replace(feats=st.feats[:, keep]), v2v
