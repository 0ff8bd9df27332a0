"""Dynamic voxelisation: points → SparseTensor, with no cap on the number of voxels or points per voxel.

Ranges and sizes are given in x, y, z order (as mmdet3d configs write them); the SparseTensor's spatial axes
are (z, y, x) (spconv's order), so `spatial_shape = (nz, ny, nx)` and a voxel's coords are (b, z, y, x).
With `ndim=2` (pillars) the z axis is dropped: coords (b, y, x), spatial_shape (ny, nx).
"""
from __future__ import annotations

import warnings
from typing import Sequence, Union

import torch

from .scatter import scatter_reduce
from .tensor import SparseTensor
from .kmap import _delinearize

PointsLike = Union[torch.Tensor, Sequence[torch.Tensor]]


def grid_shape(voxel_size: Sequence[float], point_range: Sequence[float]) -> tuple[int, int, int]:
    """(nx, ny, nz) = round((max − min) / voxel_size), as mmdet3d computes its grid."""
    if len(voxel_size) != 3 or len(point_range) != 6:
        raise ValueError(f"voxel_size needs 3 values (x, y, z) and point_range 6 (x0, y0, z0, x1, y1, z1); got "
                         f"{list(voxel_size)} and {list(point_range)}")
    if any(v <= 0 for v in voxel_size) or any(point_range[i + 3] <= point_range[i] for i in range(3)):
        raise ValueError(f"voxel_size must be positive and point_range max > min; got {list(voxel_size)}, "
                         f"{list(point_range)}")
    return tuple(max(1, int(round((point_range[i + 3] - point_range[i]) / voxel_size[i]))) for i in range(3))


def voxelize(points: PointsLike, voxel_size: Sequence[float], point_range: Sequence[float],
             reduce: str = "mean", *, ndim: int = 3, return_stats: bool = False):
    """Voxelise one cloud ([N, F], batch size 1) or a list of clouds (one batch entry each).

    Points outside `point_range` and points with a non-finite value are dropped (non-finite ones with a
    warning that gives the count). Features of a voxel are the `reduce` ("mean", "max", "sum") of its
    points' F columns; "none" gives a [M, 0] feature matrix for encoders that scatter their own features.

    Returns:
        (SparseTensor, point2voxel) — point2voxel [N_total] int64 is each point's voxel row, −1 if dropped
        (rows of a list input are concatenated in order). With return_stats=True a third value, a dict with
        num_points, num_voxels, num_non_finite, num_out_of_range.
    """
    if reduce not in ("mean", "max", "sum", "none"):
        raise ValueError(f"voxelize: reduce must be 'mean', 'max', 'sum' or 'none', got {reduce!r}")
    if ndim not in (2, 3):
        raise ValueError(f"voxelize: ndim must be 3 (voxels) or 2 (pillars), got {ndim}")
    clouds = [points] if isinstance(points, torch.Tensor) else list(points)
    for i, p in enumerate(clouds):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"voxelize: cloud {i} is a {type(p).__name__}, expected a torch.Tensor")
        if p.dim() != 2 or p.shape[1] < 3:
            raise ValueError(f"voxelize: cloud {i} must be [N, F >= 3] (x, y, z first), got {tuple(p.shape)}")
        if not p.dtype.is_floating_point:
            raise TypeError(f"voxelize: cloud {i} has dtype {p.dtype}; points must be floating point")
        if p.shape[1] != clouds[0].shape[1]:
            raise ValueError(f"voxelize: cloud {i} has {p.shape[1]} features, cloud 0 has {clouds[0].shape[1]}")
    nx, ny, nz = grid_shape(voxel_size, point_range)
    device = clouds[0].device if clouds else torch.device("cpu")
    pts = torch.cat(clouds) if clouds else torch.zeros(0, 3)
    batch = torch.cat([torch.full((p.shape[0],), b, dtype=torch.long, device=device) for b, p in enumerate(clouds)]) \
        if clouds else torch.zeros(0, dtype=torch.long)

    n_pts = pts.shape[0]
    finite = None
    num_non_finite = 0
    if not bool(torch.isfinite(pts).all()):
        finite = torch.isfinite(pts).all(dim=1)
        num_non_finite = int(n_pts - finite.sum())
        warnings.warn(f"voxelize: dropped {num_non_finite} of {n_pts} points with NaN/inf values",
                      RuntimeWarning, stacklevel=2)
    # cell index per axis; a point is kept when every axis is inside the grid (NaN compares false)
    keys = batch.clone()
    inside = None
    axes = (2, 1, 0) if ndim == 3 else (1, 0)
    sizes = {0: nx, 1: ny, 2: nz}
    for a in axes:
        f = torch.floor((pts[:, a] - point_range[a]) / voxel_size[a])
        ok = (f >= 0) & (f < sizes[a])
        inside = ok if inside is None else inside & ok
        keys = keys * sizes[a] + f.clamp_(0, sizes[a] - 1).long()
    if ndim == 2:   # pillars still drop points outside the z range
        f = (pts[:, 2] - point_range[2]) / voxel_size[2]
        inside &= (f >= 0) & (f < nz)
    if finite is not None:
        inside &= finite
    num_in = int(inside.sum())
    num_out_of_range = n_pts - num_non_finite - num_in
    if ndim == 3:
        spatial_shape = (nz, ny, nx)
        meta = dict(voxel_size=tuple(voxel_size[::-1]), origin=tuple(point_range[:3][::-1]))
    else:
        spatial_shape = (ny, nx)
        meta = dict(voxel_size=tuple(voxel_size[1::-1]), origin=tuple(point_range[1::-1]))
    # dropped points get a key past every real one, so after a (stable, radix) sort the kept points come
    # first; run-length encoding of the sorted keys gives the voxels: no boolean indexing, no torch.unique
    if num_in < n_pts:
        keys.masked_fill_(~inside, torch.iinfo(torch.int64).max)
    total = len(clouds) * nx * ny * (nz if ndim == 3 else 1)
    if total < 2**31 - 1:        # a 32-bit radix sort is about twice as fast
        keys = keys.clamp_(max=2**31 - 1).to(torch.int32)
    sorted_keys, order = torch.sort(keys, stable=True)
    order = order[:num_in]
    uniq, run, counts = torch.unique_consecutive(sorted_keys[:num_in], return_inverse=True, return_counts=True)
    coords = _delinearize(uniq.long(), spatial_shape)
    point2voxel = torch.full((n_pts,), -1, dtype=torch.long, device=device)
    point2voxel[order] = run
    if reduce == "none":
        feats = pts.new_zeros(uniq.numel(), 0)
    else:
        kept = pts.index_select(0, order)
        if reduce == "max":
            feats = scatter_reduce(kept, run, uniq.numel(), "max")
        else:
            feats = pts.new_zeros(uniq.numel(), pts.shape[1]).index_add_(0, run, kept)
            if reduce == "mean":
                feats /= counts.unsqueeze(1).to(feats.dtype)
    tensor = SparseTensor(feats, coords, spatial_shape, len(clouds), check=False, **meta)
    if return_stats:
        stats = dict(num_points=int(pts.shape[0]), num_voxels=int(uniq.numel()), num_non_finite=num_non_finite,
                     num_out_of_range=num_out_of_range)
        return tensor, point2voxel, stats
    return tensor, point2voxel
