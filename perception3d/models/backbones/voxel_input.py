"""What the point-cloud segmentation backbones share at their input: raw points (or an already voxelised
:class:`~perception3d.sparse.SparseTensor`) → voxels with the mean of their points' features, and an optional
normalisation of those raw features."""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

from torch import Tensor, nn

from perception3d.sparse import SparseTensor, voxelize


class SparseInputNorm(nn.BatchNorm1d):
    """BatchNorm1d without affine over a SparseTensor's *input* features (raw point columns: metres beside an
    intensity), so that every column reaches the first convolution at unit scale.  The input statistics do not drift
    during training, so the running statistics are a cumulative average (``momentum=None``): right from the first
    batch on, where a momentum of 0.01 needs hundreds of steps before eval mode sees the columns at unit scale."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-3, momentum=None, affine=False)

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace(feats=super().forward(x.feats))


class PointVoxelInput:
    """Mixin of a backbone with ``voxel_size`` / ``point_range`` (x, y, z order) and, optionally, an
    ``input_norm`` (:class:`SparseInputNorm` or None): :meth:`voxelize` and :meth:`input_voxels`."""

    voxel_size: Tuple[float, ...]
    point_range: Tuple[float, ...]

    def voxelize(self, points: Union[Tensor, List[Tensor]]) -> Tuple[SparseTensor, Tensor]:
        """Points [N, C] (or one tensor per sample) → (voxels with the mean of their points, point → voxel [N])."""
        return voxelize(points, self.voxel_size, self.point_range, reduce="mean")

    def input_voxels(self, points: Union[Tensor, List[Tensor], SparseTensor]
                     ) -> Tuple[SparseTensor, Optional[Tensor]]:
        """The backbone's input voxels (normalised when it has an ``input_norm``) and the point → voxel map
        (None when given a SparseTensor)."""
        x, p2v = (points, None) if isinstance(points, SparseTensor) else self.voxelize(points)
        norm = getattr(self, "input_norm", None)
        return (x if norm is None else norm(x)), p2v
