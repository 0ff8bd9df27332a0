"""Instance candidates (queries) carried as a :class:`~perception3d.sparse.SparseTensor`.

SparseFusion's candidates — the LiDAR branch's top-K heatmap peaks and the camera candidates moved into the LiDAR
frame — are a sparse set of BEV locations with a feature each. Carried as a 2D ``SparseTensor`` (coords
``(b, y, x)`` = the BEV cell of each candidate, feats = its feature) they share the package's datatype: a sparse
conv or a scatter to a dense BEV map works on them directly. Two candidates may share a cell (a LiDAR and a camera
candidate of the same object), so duplicates are allowed; the exact (sub-cell) position travels alongside.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch

from perception3d.sparse import SparseTensor

__all__ = ["candidates_to_sparse", "sparse_to_candidates"]


def candidates_to_sparse(pos: torch.Tensor, feats: torch.Tensor, bev_shape: Sequence[int],
                         voxel_size: Sequence[float] = (1.0, 1.0),
                         origin: Sequence[float] = (0.0, 0.0)) -> Tuple[SparseTensor, torch.Tensor]:
    """Candidates → ``(SparseTensor, pos_flat)``.

    Args:
        pos: [B, K, 2] BEV positions (x, y) in cells of the BEV map (continuous; cell i spans [i, i + 1)).
        feats: [B, C, K] features (the layout of the query features in TransFusion-style heads).
        bev_shape: (H, W) = (ny, nx) of the BEV map; voxel_size / origin: metres of one cell and of its corner,
            in (y, x) order, kept on the tensor so a head can go back to metres.
    Returns:
        the SparseTensor (N = B K rows, batch-major, coords (b, y, x) clamped into the map) and ``pos_flat``
        [N, 2], the exact positions in the same row order.
    """
    if pos.ndim != 3 or pos.shape[-1] != 2 or feats.ndim != 3 or feats.shape[0] != pos.shape[0] \
            or feats.shape[2] != pos.shape[1]:
        raise ValueError(f"candidates_to_sparse: pos [B, K, 2] and feats [B, C, K] must agree, got "
                         f"{tuple(pos.shape)} and {tuple(feats.shape)}")
    b, k, _ = pos.shape
    h, w = (int(s) for s in bev_shape)
    cell = torch.floor(pos.detach()).long()
    x = cell[..., 0].clamp(0, w - 1)
    y = cell[..., 1].clamp(0, h - 1)
    bidx = torch.arange(b, device=pos.device)[:, None].expand(b, k)
    coords = torch.stack([bidx, y, x], dim=-1).reshape(-1, 3).int()
    st = SparseTensor(feats.permute(0, 2, 1).reshape(b * k, -1), coords, (h, w), b, voxel_size=tuple(voxel_size),
                      origin=tuple(origin), allow_duplicates=True)
    return st, pos.reshape(b * k, 2)


def sparse_to_candidates(st: SparseTensor, k: int) -> torch.Tensor:
    """Back to [B, C, K] features (the rows must be batch-major with K per sample, as made above)."""
    if st.feats.shape[0] != st.batch_size * k:
        raise ValueError(f"sparse_to_candidates: {st.feats.shape[0]} rows is not batch_size {st.batch_size} x {k}")
    return st.feats.reshape(st.batch_size, k, -1).permute(0, 2, 1)
