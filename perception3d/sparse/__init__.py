"""perception3d.sparse: the SparseTensor datatype, voxelisation, kernel maps and sparse conv/pool modules.

Imports nothing else of the package (DESIGN §2): everything above builds on this.
"""
from .backend import get_backend, set_backend, spconv_available, use_backend
from .conv import (SparseConv2d, SparseConv3d, SparseInverseConv2d, SparseInverseConv3d, SubMConv2d,
                   SubMConv3d)
from .functional import gather_gemm_scatter, gelu, sparse_conv, sparse_pool
from .kmap import KernelMap, conv_output_shape, inverse_kmap, strided_kmap, subm_kmap
from .pool import SparseAvgPool2d, SparseAvgPool3d, SparseMaxPool2d, SparseMaxPool3d, global_pool
from .scatter import scatter_reduce
from .sequential import SparseSequential
from .tensor import CoordSet, SparseTensor, linearize
from .voxelize import grid_shape, voxelize

__all__ = [
    "SparseTensor", "CoordSet", "linearize", "voxelize", "grid_shape", "scatter_reduce",
    "SubMConv3d", "SparseConv3d", "SparseInverseConv3d", "SubMConv2d", "SparseConv2d", "SparseInverseConv2d",
    "SparseMaxPool3d", "SparseAvgPool3d", "SparseMaxPool2d", "SparseAvgPool2d", "global_pool", "SparseSequential",
    "sparse_conv", "sparse_pool", "gather_gemm_scatter", "gelu",
    "KernelMap", "subm_kmap", "strided_kmap", "inverse_kmap", "conv_output_shape",
    "get_backend", "set_backend", "use_backend", "spconv_available",
]
