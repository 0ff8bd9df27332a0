"""The initial Gaussians' anchors as a :class:`~perception3d.sparse.SparseTensor` (3DGS §5.1 initialisation on the
package's one sparse datatype).

1. :func:`voxel_anchors` — ``voxelize()`` the start cloud (SfM points, LiDAR points, or random / carved points).
   By default every point is an anchor (3DGS's one Gaussian per start point), placed on a grid of 1/1024 of the
   cloud's largest side (coordinates may repeat); with an anchor ``voxel_size`` there is one anchor per occupied
   voxel, its position and colour the mean of its points (Scaffold-GS-style anchors; fewer Gaussians).
2. :func:`neighbour_scales` — 3DGS's initial scale (the authors' ``distCUDA2``: √ of the mean squared distance to
   the 3 nearest other points), with the candidates taken from kernel-map neighbourhoods instead of a k-d tree.

   At level ℓ = 0, 1, … the anchors are grouped in coarse cells of stride s = 2^ℓ (anchor voxel index // s, one
   ``SparseTensor`` of stride s); the 3 × 3 × 3 submanifold kernel map of that coarse set gives each coarse cell its
   occupied neighbours, and an anchor's candidates are every anchor in its own coarse cell and in those. The 3 × 3 × 3
   block contains every point closer than s·c (c the voxel size) to the anchor in every axis, so once the k-th
   nearest candidate is closer than s·c (or the block spans the whole grid), those k are the k nearest of *all*
   anchors. The rule is therefore exact, not approximate: the same k distances as a brute-force search, summed in the
   same order (``tests/test_gaussian_anchors.py`` checks equality). Anchors not settled at a level (isolated ones)
   go on to the next, coarser level; dense regions settle at fine levels with few candidates each.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from perception3d.sparse import SparseTensor
from perception3d.sparse.kmap import subm_kmap
from perception3d.sparse.voxelize import voxelize

__all__ = ["voxel_anchors", "neighbour_scales", "GRID_CELLS"]

GRID_CELLS = 1024  # the grid of one-anchor-per-point: the cloud's largest side / GRID_CELLS
_MIN_D2 = 1e-7  # floor of the mean squared distance (3DGS clamps distCUDA2's result at 1e-7)
_LONELY_SCALE = 0.01  # the scale of a single anchor (no neighbour to measure)
_PAIR_BUDGET = 1 << 22  # candidate pairs evaluated at a time (bounds the peak memory)


def voxel_anchors(points: Tensor, rgb: Optional[Tensor] = None,
                  voxel_size: Optional[Union[float, Sequence[float]]] = None) -> SparseTensor:
    """Anchors of the start cloud: points [N, 3] (and colours rgb [N, 3] in [0, 1], grey if None) → a SparseTensor
    (batch 1, coords (b, z, y, x), ``voxel_size`` / ``origin`` set) with feats [M, 6] = (x, y, z, r, g, b).

    ``voxel_size`` None: one anchor per point, in the points' order, on a grid of the cloud's largest side /
    ``GRID_CELLS`` (coords repeat where points share a cell). A size in metres (one value or x, y, z): one anchor
    per occupied voxel, the mean of its points. Non-finite points are dropped by ``voxelize`` (with its counted
    warning)."""
    merge = voxel_size is not None
    points = torch.as_tensor(points, dtype=torch.float32)
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"voxel_anchors: points must be [N, 3], got {tuple(points.shape)}")
    n = points.shape[0]
    rgb = torch.full((n, 3), 0.5) if rgb is None else torch.as_tensor(rgb, dtype=torch.float32)
    if rgb.shape != (n, 3):
        raise ValueError(f"voxel_anchors: rgb must be [N, 3] = [{n}, 3], got {tuple(rgb.shape)}")
    finite = torch.isfinite(points).all(1)
    lo = points[finite].amin(0) if bool(finite.any()) else torch.zeros(3)
    hi = points[finite].amax(0) if bool(finite.any()) else torch.zeros(3)
    if voxel_size is None:
        side = float((hi - lo).max())
        voxel_size = side / GRID_CELLS if side > 0 else 1.0
    vs = [float(voxel_size)] * 3 if isinstance(voxel_size, (int, float)) else [float(v) for v in voxel_size]
    if len(vs) != 3 or not all(v > 0 for v in vs):
        raise ValueError(f"voxel_anchors: voxel_size must be positive (one value or x, y, z), got {voxel_size}")
    # cells per axis so that the largest point falls inside: voxelize's own float32 floor((hi − lo) / c), + 1 for
    # that cell, + 1 spare (an exact multiple like 1.0 / 0.1 can round either way)
    cells = [int(((hi[a] - lo[a]) / vs[a]).floor()) + 2 for a in range(3)]
    if cells[0] * cells[1] * cells[2] >= 2 ** 62:
        raise ValueError(f"voxel_anchors: voxel_size {vs} gives a {cells} grid over the cloud's extent, past the "
                         f"int64 keys; use a larger voxel_size")
    point_range = [float(lo[a]) for a in range(3)] + [float(lo[a]) + cells[a] * vs[a] for a in range(3)]
    feats = torch.cat([points, rgb], 1)
    voxels, point2voxel = voxelize(feats, vs, point_range, reduce="mean")
    if merge:
        return voxels
    kept = point2voxel >= 0
    return SparseTensor(feats[kept], voxels.coords[point2voxel[kept]], voxels.spatial_shape, 1,
                        voxel_size=voxels.voxel_size, origin=voxels.origin, check=False)


def _csr(group: Tensor, n_groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Members grouped: (order, start [n_groups], count [n_groups]) with group g's members order[start:start+count]."""
    order = torch.argsort(group, stable=True)
    count = torch.bincount(group, minlength=n_groups)
    start = torch.cumsum(count, 0) - count
    return order, start, count


def _expand(start: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """For rows r with ranges [start_r, start_r + count_r): (row of each element, element index) [Σ count]."""
    row = torch.repeat_interleave(torch.arange(len(count)), count)
    first = torch.cumsum(count, 0) - count
    return row, start[row] + (torch.arange(int(count.sum())) - first[row])


def _k_smallest(values: Tensor, row: Tensor, n_rows: int, k: int) -> Tensor:
    """[n_rows, k] the k smallest ``values`` [P] of each row (``row`` [P]), ascending, +inf where a row has fewer:
    k rounds of a per-row minimum, each taking out one element that attains it (cheaper than sorting P pairs)."""
    vals = values.clone()
    out = torch.full((n_rows, k), float("inf"), dtype=values.dtype)
    index = torch.arange(len(vals))
    for r in range(k):
        low = torch.full((n_rows,), float("inf"), dtype=vals.dtype).scatter_reduce(0, row, vals, "amin")
        out[:, r] = low
        hit = (vals == low[row]) & torch.isfinite(vals)
        pick = torch.full((n_rows,), -1, dtype=torch.long).scatter_reduce(0, row[hit], index[hit], "amax")
        vals[pick[pick >= 0]] = float("inf")
    return out


def neighbour_scales(anchors: SparseTensor, k: int = 3) -> Tensor:
    """3DGS's initial scale per anchor (module doc): √(mean squared distance to its k nearest other anchors),
    floored at √1e-7; a lone anchor gets 0.01 and one with fewer than k others averages over those it has.

    ``anchors``: a 3-D SparseTensor of batch size 1 with ``voxel_size`` set, positions in ``feats[:, :3]`` (as
    :func:`voxel_anchors` makes). Coordinates may repeat (several anchors in one voxel). Returns float64 [M]."""
    if anchors.ndim != 3 or anchors.voxel_size is None or anchors.feats.shape[1] < 3:
        raise ValueError("neighbour_scales: anchors must be a 3-D SparseTensor with voxel_size set and positions "
                         "in feats[:, :3]")
    pos = anchors.feats[:, :3].detach().double()
    m = pos.shape[0]
    if m <= 1:
        return torch.full((m,), _LONELY_SCALE, dtype=torch.float64)
    cell = min(anchors.voxel_size)
    fine = anchors.coords[:, 1:].long()
    best = torch.full((m, k), float("inf"), dtype=torch.float64)   # k smallest squared distances, ascending
    found = torch.zeros(m, dtype=torch.long)
    todo = torch.arange(m)
    s = 1
    while len(todo):
        # coarse cells of stride s and their 3 × 3 × 3 submanifold kernel map
        shape = tuple((d + s - 1) // s for d in anchors.spatial_shape)
        ckeys = ((fine[:, 0] // s) * shape[1] + fine[:, 1] // s) * shape[2] + fine[:, 2] // s
        uniq, cell_of = torch.unique(ckeys, return_inverse=True)
        cz = uniq // (shape[1] * shape[2])
        cy = (uniq // shape[2]) % shape[1]
        cx = uniq % shape[2]
        ccoords = torch.stack([torch.zeros_like(cz), cz, cy, cx], 1).int()
        coarse = SparseTensor(pos.new_zeros(len(uniq), 0), ccoords, shape, 1, stride=s, check=False)
        km = subm_kmap(coarse.coord_set, (3, 3, 3), (1, 1, 1))
        n_cells = len(uniq)
        nb_out = torch.cat([torch.arange(n_cells), km.out_idx])             # each cell is its own neighbour
        nb_in = torch.cat([torch.arange(n_cells), km.in_idx])
        nb_order, nb_start, nb_count = _csr(nb_out, n_cells)
        a_order, a_start, a_count = _csr(cell_of, n_cells)
        # an anchor's candidates: every anchor in the cells next to its own (nb_count ≤ 27 cells)
        c_todo = cell_of[todo]
        n_cand = torch.zeros(n_cells, dtype=torch.long).index_add_(0, nb_out, a_count[nb_in])[c_todo]
        total = int(n_cand.sum())
        cuts = torch.arange(_PAIR_BUDGET, total, _PAIR_BUDGET) if total > _PAIR_BUDGET else n_cand[:0]
        bounds = torch.searchsorted(torch.cumsum(n_cand, 0), cuts, right=True).tolist()
        for lo, hi in zip([0] + bounds, bounds + [len(todo)]):
            if hi <= lo:
                continue
            u = todo[lo:hi]
            r1, j = _expand(nb_start[c_todo[lo:hi]], nb_count[c_todo[lo:hi]])   # (anchor row, neighbour slot)
            nb = nb_in[nb_order[j]]
            r2, jj = _expand(a_start[nb], a_count[nb])                            # (slot row, candidate slot)
            row = r1[r2]
            a = u[row]
            b = a_order[jj]
            keep = a != b
            row, a, b = row[keep], a[keep], b[keep]
            d2 = ((pos[a] - pos[b]) ** 2).sum(-1)
            best[u] = _k_smallest(d2, row, hi - lo, k)
            found[u] = torch.bincount(row, minlength=hi - lo).clamp(max=k)
        # settled: the k-th candidate is closer than s·c (minus a float margin for the cell assignment), or the
        # 3 × 3 × 3 block spans the whole coarse grid (every anchor was a candidate)
        cover = (s - 1e-3) * cell
        ccell = torch.stack([cz, cy, cx], 1)[cell_of[todo]]
        spans = ((ccell <= 1) & (ccell >= torch.tensor(shape) - 2)).all(1)
        done = spans | ((found[todo] == k) & (best[todo, k - 1] < cover * cover))
        todo = todo[~done]
        s *= 2
    d2 = torch.where(found[:, None] == k, best, best.nan_to_num(posinf=0.0))
    mean = torch.where(found == k, d2.mean(1), d2.sum(1) / found.clamp(min=1))
    return torch.sqrt(mean.clamp(min=_MIN_D2))
