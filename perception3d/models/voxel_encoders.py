"""Point → voxel encoders, on ``perception3d.sparse.voxelize`` (dynamic voxelisation: no point cap per voxel).

- ``DynamicVFE``: voxel feature = mean of its points' features (OpenPCDet ``MeanVFE`` on dynamic voxels);
  output a 3D SparseTensor (b, z, y, x).
- ``DynamicPillarVFE``: PointPillars' PFN on dynamic pillars (OpenPCDet ``DynamicPillarVFE``): each point gets
  [its features, xyz − cluster mean, xyz − pillar centre] (+ ‖xyz‖), then ``PFNLayer`` s (Linear → BN → ReLU,
  max over the pillar; every layer but the last concatenates the pillar max back onto each point).
  Output a 2D SparseTensor (b, y, x) with ``num_filters[-1]`` channels (pillars from ``voxelize(ndim=2)``).
- ``DynamicVoxelPFN``: the same PFN on 3-D voxels (DSVT-V's ``DynPillarVFE3D``); output (b, z, y, x).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from perception3d.registry import MODELS

__all__ = ["DynamicVFE", "DynamicPillarVFE", "DynamicVoxelPFN", "PFNLayer"]

Points = Union[torch.Tensor, Sequence[torch.Tensor]]


def _as_list(points: Points, num_point_features: int, tanh_dims: Sequence[int] = ()) -> list[torch.Tensor]:
    """Per-frame [N, >= F] tensors → [N, F] float32, with ``tanh`` applied to the columns ``tanh_dims``."""
    pts = [points] if isinstance(points, torch.Tensor) else list(points)
    out = []
    for i, p in enumerate(pts):
        if p.dim() != 2 or p.shape[1] < num_point_features:
            raise ValueError(f"points[{i}]: expected [N, >={num_point_features}], got {tuple(p.shape)}")
        p = p[:, :num_point_features].float()
        if tanh_dims:
            p = p.clone()
            p[:, list(tanh_dims)] = torch.tanh(p[:, list(tanh_dims)])
        out.append(p)
    return out


def _check_tanh_dims(tanh_dims: Optional[Sequence[int]], num_point_features: int, name: str) -> tuple:
    dims = tuple(int(d) for d in (tanh_dims or ()))
    bad = [d for d in dims if not 3 <= d < num_point_features]
    if bad:
        raise ValueError(f"{name}: points_tanh_dim {list(dims)} must index feature columns 3 … "
                         f"{num_point_features - 1} (not x, y, z), got {bad}")
    return dims


@MODELS.register_module()
class DynamicVFE(nn.Module):
    """Mean of point features per voxel. Returns a SparseTensor (b, z, y, x), C = num_point_features.

    Args:
        voxel_size: (vx, vy, vz) metres. point_cloud_range: (x0, y0, z0, x1, y1, z1).
        num_point_features: how many leading point columns to use (Waymo: 5 = x, y, z, intensity, elongation).
        points_tanh_dim: feature columns squashed by ``tanh`` first (OpenPCDet/DSVT Waymo: [3, 4], intensity and
            elongation, applied in their data loader; here in the model so training and inference agree).
    """

    def __init__(self, voxel_size: Sequence[float], point_cloud_range: Sequence[float],
                 num_point_features: int = 5, points_tanh_dim: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)
        self.num_point_features = int(num_point_features)
        self.points_tanh_dim = _check_tanh_dims(points_tanh_dim, self.num_point_features, "DynamicVFE")
        self.num_out_features = self.num_point_features

    def forward(self, points: Points):
        from perception3d.sparse import voxelize
        pts = _as_list(points, self.num_point_features, self.points_tanh_dim)
        st, _ = voxelize(pts, voxel_size=self.voxel_size, point_range=self.point_cloud_range, reduce="mean")
        return st


class PFNLayer(nn.Module):
    """Linear (no bias) → BatchNorm1d → ReLU on points, max per pillar; non-last layers concat the max back."""

    def __init__(self, in_channels: int, out_channels: int, last_layer: bool) -> None:
        super().__init__()
        self.last = last_layer
        c = out_channels if last_layer else out_channels // 2
        self.linear = nn.Linear(in_channels, c, bias=False)
        self.norm = nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor, inverse: torch.Tensor, num_pillars: int) -> torch.Tensor:
        """x [N, C_in] per point, inverse [N] pillar of each point → [N, C_out] (or [P, C_out] when last)."""
        from perception3d.sparse import scatter_reduce
        x = torch.relu(self.norm(self.linear(x)))
        x_max = scatter_reduce(x, inverse, num_pillars, reduce="max")
        if self.last:
            return x_max
        return torch.cat([x, x_max[inverse]], dim=1)


@MODELS.register_module()
class DynamicPillarVFE(nn.Module):
    """Dynamic PointPillars encoder (OpenPCDet ``DynamicPillarVFE``), output a 2D SparseTensor (b, y, x).

    Args:
        voxel_size: (vx, vy, vz); vz usually spans the whole z range (one pillar per (x, y) cell).
        point_cloud_range: (x0, y0, z0, x1, y1, z1).
        num_point_features: leading point columns used (xyz + extras).
        num_filters: PFN widths, e.g. DSVT-P [192, 192].
        with_distance: append ‖xyz‖ per point. use_absolute_xyz: keep raw xyz among the features.
        points_tanh_dim: feature columns squashed by ``tanh`` before the PFN (DSVT's Waymo loader: [3, 4],
            intensity and elongation; set in ``configs/dsvt_waymo.py``). None: raw features.
    """

    def __init__(self, voxel_size: Sequence[float], point_cloud_range: Sequence[float],
                 num_point_features: int = 5, num_filters: Sequence[int] = (64,), with_distance: bool = False,
                 use_absolute_xyz: bool = True, points_tanh_dim: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)
        self.num_point_features = int(num_point_features)
        self.points_tanh_dim = _check_tanh_dims(points_tanh_dim, self.num_point_features, type(self).__name__)
        self.with_distance, self.use_absolute_xyz = with_distance, use_absolute_xyz
        c = self.num_point_features + (6 if use_absolute_xyz else 3) + (1 if with_distance else 0)
        z_levels = round((self.point_cloud_range[5] - self.point_cloud_range[2]) / self.voxel_size[2])
        if z_levels != 1:
            raise ValueError(f"DynamicPillarVFE: voxel_size z={self.voxel_size[2]} must span the z range "
                             f"{self.point_cloud_range[2]}..{self.point_cloud_range[5]} (one pillar per cell)")
        filters = [c] + list(num_filters)
        self.pfn_layers = nn.ModuleList(
            PFNLayer(filters[i], filters[i + 1], last_layer=(i == len(filters) - 2)) for i in range(len(filters) - 1))
        self.num_out_features = filters[-1]

    _ndim = 2   # pillars: (b, y, x); the 3-D subclass keeps z

    def forward(self, points: Points):
        from perception3d.sparse import scatter_reduce, voxelize
        pts = _as_list(points, self.num_point_features, self.points_tanh_dim)
        st, p2v = voxelize(pts, voxel_size=self.voxel_size, point_range=self.point_cloud_range, reduce="none",
                           ndim=self._ndim)
        allp = torch.cat(pts, dim=0)
        keep = p2v >= 0
        allp, inv = allp[keep], p2v[keep]
        n_cells = st.coords.shape[0]
        xyz = allp[:, :3]
        f_cluster = xyz - scatter_reduce(xyz, inv, n_cells, reduce="mean")[inv]
        # offset to the cell centre; a pillar's z index is 0, so its z centre is the middle of the z range
        cell = st.coords[inv, 1:].to(xyz.dtype).flip(1)                   # (x, y[, z])
        if self._ndim == 2:
            cell = torch.cat([cell, cell.new_zeros(cell.shape[0], 1)], dim=1)
        vs = torch.tensor(self.voxel_size, dtype=xyz.dtype, device=xyz.device)
        lo = torch.tensor(self.point_cloud_range[:3], dtype=xyz.dtype, device=xyz.device)
        f_center = xyz - ((cell + 0.5) * vs + lo)
        feats = [allp if self.use_absolute_xyz else allp[:, 3:], f_cluster, f_center]
        if self.with_distance:
            feats.append(xyz.norm(dim=1, keepdim=True))
        x = torch.cat(feats, dim=1)
        for pfn in self.pfn_layers:
            x = pfn(x, inv, n_cells)
        return st.replace(feats=x)


@MODELS.register_module()
class DynamicVoxelPFN(DynamicPillarVFE):
    """The PFN of ``DynamicPillarVFE`` on 3-D voxels (authors' ``DynPillarVFE3D`` for DSVT-V).

    Same features per point ([point, xyz − voxel mean, xyz − voxel centre]) and layers; the voxel centre
    includes z and the output keeps the z axis: SparseTensor (b, z, y, x), spatial_shape (Z, Y, X).
    (The forward is ``DynamicPillarVFE``'s with ``_ndim = 3``.)
    """

    _ndim = 3

    def __init__(self, voxel_size: Sequence[float], point_cloud_range: Sequence[float], **kwargs) -> None:
        pillar = (voxel_size[0], voxel_size[1], float(point_cloud_range[5]) - float(point_cloud_range[2]))
        super().__init__(pillar, point_cloud_range, **kwargs)
        self.voxel_size = tuple(float(v) for v in voxel_size)
