"""The metric geometry of a dense bird's-eye-view feature map, read off the :class:`SparseTensor` it came from.

A detector's BEV map [B, C, H, W] covers the same ground as the voxel grid its points were voxelised into; one
cell spans ``voxel_size × stride`` metres of the sparse tensor that was scattered to it, times the 2-D
backbone's down- or up-sampling. Heads that turn cells into metres (CenterHead's targets and box decoding) take
that geometry from here instead of a restated ``out_size_factor`` in the config, so the two cannot disagree.
"""
from __future__ import annotations

from dataclasses import dataclass

from perception3d.sparse import SparseTensor


@dataclass(frozen=True)
class BEVGrid:
    """Geometry of a BEV map [B, C, H, W]: ``cell`` (x, y) metres of one cell, ``origin`` (x, y) metres of
    cell (0, 0)'s corner, ``shape`` (H, W)."""

    cell: tuple[float, float]
    origin: tuple[float, float]
    shape: tuple[int, int]

    @classmethod
    def from_sparse(cls, st: SparseTensor) -> "BEVGrid":
        """The grid of ``st``'s last two spatial axes (y, x) at its stride: what ``HeightCompression`` /
        ``PointPillarScatter`` scatter it onto. ``st`` must carry ``voxel_size`` and ``origin`` (the voxel
        encoders set them from the config's voxel size and point-cloud range)."""
        if st.voxel_size is None or st.origin is None:
            raise ValueError("BEVGrid: the sparse tensor has no voxel_size / origin; build it with voxelize() or "
                             "pass voxel_size= and origin= to SparseTensor")
        vy, vx = st.voxel_size[-2:]
        sy, sx = (st.stride or (1, 1))[-2:]
        oy, ox = st.origin[-2:]
        h, w = st.spatial_shape[-2:]
        return cls((vx * sx, vy * sy), (ox, oy), (int(h), int(w)))

    def resampled(self, shape: tuple[int, int]) -> "BEVGrid":
        """The same ground at ``shape`` (H', W') cells, as a 2-D backbone's strides and up-sampling leave it."""
        h, w = int(shape[0]), int(shape[1])
        if h <= 0 or w <= 0:
            raise ValueError(f"BEVGrid.resampled: shape must be positive, got {shape}")
        return BEVGrid((self.cell[0] * (self.shape[1] / w), self.cell[1] * (self.shape[0] / h)), self.origin, (h, w))
