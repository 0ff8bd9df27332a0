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
    pts = clouds[0] if len(clouds) == 1 else (torch.cat(clouds) if clouds else torch.zeros(0, 3))
    n_pts = pts.shape[0]
    # one contiguous row per axis: the column views of an [N, F] cloud are strided, and every pass over a
    # strided column costs several times a pass over a contiguous one
    xyz = pts[:, :3].t().contiguous()
    # cell index per axis (the same division as mmdet3d's), linearised as ((b·nz + z)·ny + y)·nx + x; a point
    # is kept when every axis is inside the grid (NaN and ±inf compare false)
    total = len(clouds) * nx * ny * (nz if ndim == 3 else 1)
    key_dtype = torch.int32 if total < 2**31 - 1 else torch.int64   # a 32-bit radix sort is about twice as fast
    sizes = {0: nx, 1: ny, 2: nz}
    keys = inside = None
    if len(clouds) > 1:
        keys = torch.cat([torch.full((p.shape[0],), b, dtype=key_dtype, device=device)
                          for b, p in enumerate(clouds)])
    for a in ((2, 1, 0) if ndim == 3 else (1, 0)):
        f = xyz[a].sub(point_range[a]).div_(voxel_size[a]).floor_()
        ok = (f >= 0).logical_and_(f < sizes[a])
        inside = ok if inside is None else inside.logical_and_(ok)
        cell = f.clamp_(0, sizes[a] - 1).to(key_dtype)
        keys = cell if keys is None else keys.mul_(sizes[a]).add_(cell)
    if ndim == 2:   # pillars still drop points outside the z range
        f = xyz[2].sub(point_range[2]).div_(voxel_size[2])
        inside.logical_and_(f >= 0).logical_and_(f < nz)
    # non-finite values: a finite total rules them out (an overflowing total only takes the exact check)
    num_non_finite = 0
    if n_pts and not (bool(torch.isfinite(xyz.sum())) and
                      (pts.shape[1] == 3 or bool(torch.isfinite(pts[:, 3:].sum())))):
        finite = torch.isfinite(pts).all(dim=1)
        num_non_finite = int(n_pts - finite.sum())
        if num_non_finite:
            inside &= finite
            warnings.warn(f"voxelize: dropped {num_non_finite} of {n_pts} points with NaN/inf values",
                          RuntimeWarning, stacklevel=2)
    num_in = int(inside.sum())
    num_out_of_range = n_pts - num_non_finite - num_in
    if ndim == 3:
        spatial_shape = (nz, ny, nx)
        meta = dict(voxel_size=tuple(voxel_size[::-1]), origin=tuple(point_range[:3][::-1]))
    else:
        spatial_shape = (ny, nx)
        meta = dict(voxel_size=tuple(voxel_size[1::-1]), origin=tuple(point_range[1::-1]))
    # dropped points get a key past every real one, so after a (stable, radix) sort the kept points come first
    # and all dropped ones form one last run; run-length encoding of the sorted keys gives the voxels (no
    # boolean indexing, no torch.unique)
    if num_in < n_pts:
        keys.masked_fill_(~inside, torch.iinfo(key_dtype).max)
    sorted_keys, order = torch.sort(keys, stable=True)
    uniq, run, counts = torch.unique_consecutive(sorted_keys, return_inverse=True, return_counts=True)
    m = uniq.numel() - (1 if num_in < n_pts else 0)            # voxels; row m (if any) collects dropped points
    uniq, counts = uniq[:m], counts[:m]
    coords = _delinearize(uniq.long(), spatial_shape)
    voxel_of_point = torch.empty_like(order).scatter_(0, order, run)
    if reduce == "none":
        feats = pts.new_zeros(m, 0)
    elif reduce == "max":
        feats = scatter_reduce(pts, voxel_of_point, m + 1, "max")[:m]
    else:   # sums accumulate in the points' own order, straight from the cloud (no gathered copy)
        feats = pts.new_zeros(m + 1, pts.shape[1]).index_add_(0, voxel_of_point, pts)[:m]
        if reduce == "mean":
            feats /= counts.unsqueeze(1).to(feats.dtype)
    point2voxel = voxel_of_point.masked_fill_(voxel_of_point == m, -1) if num_in < n_pts else voxel_of_point
    tensor = SparseTensor(feats, coords, spatial_shape, len(clouds), check=False, **meta)
    if return_stats:
        stats = dict(num_points=int(pts.shape[0]), num_voxels=m, num_non_finite=num_non_finite,
                     num_out_of_range=num_out_of_range)
        return tensor, point2voxel, stats
    return tensor, point2voxel
