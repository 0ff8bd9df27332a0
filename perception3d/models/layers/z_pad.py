"""OpenPCDet's extra empty z level of the 3-D sparse backbones (``sparse_shape = grid_size[::-1] + [1, 0, 0]``)."""
from __future__ import annotations

from perception3d.sparse import SparseTensor

__all__ = ["pad_z_one"]


def pad_z_one(x: SparseTensor) -> SparseTensor:
    """The same voxels on a grid one z level taller: spatial_shape (Z, Y, X) → (Z + 1, Y, X), so that the z strides
    of CenterPoint-Voxel / E-3DSNN end at 2 levels for the official 40-level grid (41 → 21 → 11 → 5 → 2)."""
    z, y, w = x.spatial_shape
    return SparseTensor(x.feats, x.coords, (z + 1, y, w), x.batch_size, stride=x.stride, voxel_size=x.voxel_size,
                        origin=x.origin, check=False)
