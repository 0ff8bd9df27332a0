"""`SparseTensor`: the one datatype that every model and renderer in perception3d passes around.

Layout (DESIGN §1), chosen to equal spconv's so that conversion needs no copy or permutation:

    coords        int32 [N, 1 + D]   column 0 = batch index, then the D spatial indices in the order of
                                     `spatial_shape` ((b, z, y, x) for D = 3, (b, y, x) for D = 2)
    feats         float [N, C]       same device as coords
    spatial_shape tuple[int, ...]    grid size per spatial axis at this tensor's stride
    batch_size    int
    stride        tuple[int, ...]    input-grid cells spanned by one index step (1 at the input)
    voxel_size, origin               optional metric size of one input cell / grid origin, in the
                                     spatial-axis order of `spatial_shape` (z, y, x for D = 3)

Tensors made by `replace(feats=...)` share their coordinate set, and with it the kernel-map cache
(`CoordSet.kmaps`), so a stack of submanifold convolutions searches neighbours once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import torch

IntOrSeq = Union[int, Sequence[int]]


def _tuple(value: Optional[IntOrSeq | Sequence[float]], ndim: int, name: str, cast=int):
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return tuple(cast(value) for _ in range(ndim))
    out = tuple(cast(v) for v in value)
    if len(out) != ndim:
        raise ValueError(f"{name} must have {ndim} entries (one per spatial axis), got {len(out)}: {value!r}")
    return out


@dataclass(eq=False)
class CoordSet:
    """A coordinate set and everything derived from it: sorted keys, cached kernel maps, parents.

    `kmaps` caches what was built on this set (see kmap.py): ("subm", kernel_size, dilation) → the submanifold
    `KernelMap`; ("conv", kernel_size, stride, padding, dilation) → (KernelMap, weak reference to the output
    CoordSet) of a strided conv/pool (weak, so that input and output sets form no reference cycle).
    `parents` lives on the *output* set of a strided conv/pool: it maps that conv's ("conv", kernel_size, stride,
    padding, dilation) key, and ("key", indice_key) when one was given, to (input CoordSet, KernelMap, stride),
    so that an inverse convolution can go back up (spconv's `indice_key`, found without one).
    """

    coords: torch.Tensor
    spatial_shape: tuple
    batch_size: int
    kmaps: dict = field(default_factory=dict)
    parents: dict = field(default_factory=dict)
    _sorted: Optional[tuple] = None

    def keys(self) -> torch.Tensor:
        """Linear int64 key of every coordinate: ((b * Z + z) * Y + y) * X + x."""
        return linearize(self.coords, self.spatial_shape)

    def sorted_keys(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(sorted keys, permutation into coords); computed once per coordinate set."""
        if self._sorted is None:
            keys = self.keys()
            sorted_keys, perm = torch.sort(keys, stable=True)
            self._sorted = (sorted_keys, perm)
        return self._sorted


def linearize(coords: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """int64 key per row of `coords` [N, 1 + D] (batch first), row-major over (b, *spatial_shape)."""
    c = coords.long()
    key = c[:, 0]
    for axis, size in enumerate(spatial_shape):
        key = key * int(size) + c[:, axis + 1]
    return key


class SparseTensor:
    """A batch of sparse D-dimensional feature grids, D = 1 … 4 (the models use 2 and 3; the sparse conv, pooling and
    kernel maps work for any D). See the module docstring for the layout.

    Args:
        feats: [N, C] floating features.
        coords: [N, 1 + D] integer coordinates (batch, *spatial); stored as int32.
        spatial_shape: grid size per spatial axis.
        batch_size: number of batch entries (coords[:, 0] < batch_size).
        stride: input-grid cells per index step, int or one per axis.
        voxel_size, origin: optional metric cell size and grid origin, per spatial axis in `spatial_shape` order.
        check: validate the input (default). Internal ops that build valid tensors pass False.
        allow_duplicates: permit repeated coordinates (not allowed by default; checked when `check`).
        check_nan: also reject non-finite features.
    """

    __slots__ = ("feats", "coords", "spatial_shape", "batch_size", "stride", "voxel_size", "origin",
                 "coord_set", "__weakref__")

    def __init__(self, feats: torch.Tensor, coords: torch.Tensor, spatial_shape: Sequence[int],
                 batch_size: int, stride: IntOrSeq = 1, voxel_size=None, origin=None, *,
                 check: bool = True, allow_duplicates: bool = False, check_nan: bool = False,
                 coord_set: Optional[CoordSet] = None) -> None:
        if not isinstance(feats, torch.Tensor):
            raise TypeError(f"SparseTensor.feats must be a torch.Tensor, got {type(feats).__name__}")
        if not isinstance(coords, torch.Tensor):
            raise TypeError(f"SparseTensor.coords must be a torch.Tensor, got {type(coords).__name__}")
        spatial_shape = tuple(int(s) for s in spatial_shape)
        ndim = len(spatial_shape)
        if ndim not in (1, 2, 3, 4):
            raise ValueError(f"SparseTensor.spatial_shape must have 1-4 axes, got {spatial_shape}")
        self.spatial_shape = spatial_shape
        self.batch_size = int(batch_size)
        self.stride = _tuple(stride, ndim, "SparseTensor.stride")
        self.voxel_size = _tuple(voxel_size, ndim, "SparseTensor.voxel_size", float)
        self.origin = _tuple(origin, ndim, "SparseTensor.origin", float)
        if check:
            coords = _check(feats, coords, spatial_shape, self.batch_size, allow_duplicates, check_nan)
        elif coords.dtype != torch.int32 or not coords.is_contiguous():
            coords = coords.to(torch.int32).contiguous()
        self.feats = feats
        self.coords = coords
        if coord_set is None:
            coord_set = CoordSet(coords, spatial_shape, self.batch_size)
        self.coord_set = coord_set

    # ------------------------------------------------------------------ properties
    @property
    def ndim(self) -> int:
        """Number of spatial axes D."""
        return len(self.spatial_shape)

    @property
    def num_channels(self) -> int:
        return self.feats.shape[1]

    @property
    def device(self) -> torch.device:
        return self.feats.device

    @property
    def dtype(self) -> torch.dtype:
        return self.feats.dtype

    def __len__(self) -> int:
        return self.coords.shape[0]

    def __repr__(self) -> str:
        return (f"SparseTensor(N={len(self)}, C={self.num_channels}, spatial_shape={self.spatial_shape}, "
                f"batch_size={self.batch_size}, stride={self.stride}, dtype={self.dtype}, device={self.device})")

    # ------------------------------------------------------------------ derived tensors
    def replace(self, feats: Optional[torch.Tensor] = None, **kwargs: Any) -> "SparseTensor":
        """A new tensor with other features (same sites, shares the kernel-map cache) or metadata."""
        if feats is None:
            feats = self.feats
        if feats.dim() != 2 or feats.shape[0] != self.coords.shape[0]:
            raise ValueError(f"replace(feats=...) needs [{self.coords.shape[0]}, C] features, got {tuple(feats.shape)}")
        meta = dict(stride=self.stride, voxel_size=self.voxel_size, origin=self.origin)
        unknown = set(kwargs) - set(meta)
        if unknown:
            raise TypeError(f"replace() got unknown fields {sorted(unknown)}; allowed: feats, {sorted(meta)}")
        meta.update(kwargs)
        return SparseTensor(feats, self.coords, self.spatial_shape, self.batch_size, check=False,
                            coord_set=self.coord_set, **meta)

    def with_coords(self, feats: torch.Tensor, coord_set: CoordSet, stride) -> "SparseTensor":
        """A tensor on another coordinate set that keeps this one's metadata (used by strided ops)."""
        return SparseTensor(feats, coord_set.coords, coord_set.spatial_shape, coord_set.batch_size, stride=stride,
                            voxel_size=self.voxel_size, origin=self.origin, check=False, coord_set=coord_set)

    def to(self, *args: Any, **kwargs: Any) -> "SparseTensor":
        """Like `Tensor.to`: moves feats (and coords, for a device) or casts feats (for a dtype)."""
        feats = self.feats.to(*args, **kwargs)
        if feats.device == self.coords.device:
            return self.replace(feats=feats)
        coords = self.coords.to(feats.device)
        return SparseTensor(feats, coords, self.spatial_shape, self.batch_size, self.stride, self.voxel_size,
                            self.origin, check=False)

    def dense(self, channels_first: bool = True) -> torch.Tensor:
        """Scatter to a dense grid: [B, C, *spatial_shape] (or [B, *spatial_shape, C] if not channels_first).

        Differentiable with respect to feats. Duplicated coordinates (if allowed) are summed.
        """
        B, C = self.batch_size, self.num_channels
        numel = B
        for s in self.spatial_shape:
            numel *= s
        flat = self.feats.new_zeros(numel, C)
        flat = flat.index_add(0, linearize(self.coords, self.spatial_shape), self.feats)
        out = flat.view(B, *self.spatial_shape, C)
        if channels_first:
            out = out.movedim(-1, 1).contiguous()
        return out

    @staticmethod
    def from_dense(x: torch.Tensor, stride: IntOrSeq = 1, voxel_size=None, origin=None,
                   mask: Optional[torch.Tensor] = None) -> "SparseTensor":
        """From a dense [B, C, *spatial] tensor; the active sites are those with any non-zero channel
        (or those where `mask` [B, *spatial] is true)."""
        if x.dim() < 3:
            raise ValueError(f"from_dense needs [B, C, *spatial], got shape {tuple(x.shape)}")
        if mask is None:
            mask = (x != 0).any(dim=1)
        elif tuple(mask.shape) != (x.shape[0], *x.shape[2:]):
            raise ValueError(f"from_dense: mask must be {(x.shape[0], *x.shape[2:])}, got {tuple(mask.shape)}")
        coords = mask.nonzero().to(torch.int32)
        feats = x.movedim(1, -1)[mask]
        return SparseTensor(feats, coords, x.shape[2:], x.shape[0], stride, voxel_size, origin, check=False)

    def split_batches(self) -> list["SparseTensor"]:
        """One single-entry tensor per batch index (batch column reset to 0)."""
        out = []
        b = self.coords[:, 0]
        for i in range(self.batch_size):
            sel = (b == i).nonzero().squeeze(1)
            coords = self.coords[sel].clone()
            coords[:, 0] = 0
            out.append(SparseTensor(self.feats[sel], coords, self.spatial_shape, 1, self.stride,
                                    self.voxel_size, self.origin, check=False))
        return out

    @staticmethod
    def cat(tensors: Sequence["SparseTensor"]) -> "SparseTensor":
        """Concatenate along the batch axis (batch indices of later tensors are offset)."""
        if len(tensors) == 0:
            raise ValueError("SparseTensor.cat needs at least one tensor")
        first = tensors[0]
        for i, t in enumerate(tensors[1:], 1):
            if t.spatial_shape != first.spatial_shape or t.stride != first.stride:
                raise ValueError(f"SparseTensor.cat: tensor {i} has spatial_shape {t.spatial_shape} / stride "
                                 f"{t.stride}, tensor 0 has {first.spatial_shape} / {first.stride}")
            if t.num_channels != first.num_channels:
                raise ValueError(f"SparseTensor.cat: tensor {i} has {t.num_channels} channels, tensor 0 has "
                                 f"{first.num_channels}")
        coords, offset = [], 0
        for t in tensors:
            c = t.coords.clone()
            c[:, 0] += offset
            coords.append(c)
            offset += t.batch_size
        return SparseTensor(torch.cat([t.feats for t in tensors]), torch.cat(coords), first.spatial_shape, offset,
                            first.stride, first.voxel_size, first.origin, check=False)

    # ------------------------------------------------------------------ spconv interop
    def to_spconv(self):
        """A `spconv.pytorch.SparseConvTensor` sharing feats and coords (no copy)."""
        try:
            import spconv.pytorch as spconv
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("to_spconv() needs spconv (pip install 'perception3d[spconv]')") from e
        return spconv.SparseConvTensor(self.feats, self.coords, list(self.spatial_shape), self.batch_size)

    @staticmethod
    def from_spconv(t, stride: IntOrSeq = 1, voxel_size=None, origin=None) -> "SparseTensor":
        """From a `spconv.pytorch.SparseConvTensor` (no copy)."""
        return SparseTensor(t.features, t.indices, tuple(t.spatial_shape), t.batch_size, stride, voxel_size, origin,
                            check=False)


def _check(feats: torch.Tensor, coords: torch.Tensor, spatial_shape: tuple, batch_size: int,
           allow_duplicates: bool, check_nan: bool) -> torch.Tensor:
    """Validate user input once, at the boundary; return coords as int32."""
    ndim = len(spatial_shape)
    if coords.dtype.is_floating_point or coords.dtype == torch.bool or coords.is_complex():
        raise TypeError(f"SparseTensor.coords must be an integer tensor, got dtype {coords.dtype}")
    if coords.dim() != 2 or coords.shape[1] != 1 + ndim:
        raise ValueError(f"SparseTensor.coords must be [N, {1 + ndim}] (batch, {ndim} spatial indices for "
                         f"spatial_shape {spatial_shape}), got shape {tuple(coords.shape)}")
    if not feats.dtype.is_floating_point:
        raise TypeError(f"SparseTensor.feats must be a floating-point tensor, got dtype {feats.dtype}")
    if feats.dim() != 2 or feats.shape[0] != coords.shape[0]:
        raise ValueError(f"SparseTensor.feats must be [N, C] with N = {coords.shape[0]} (rows of coords), "
                         f"got shape {tuple(feats.shape)}")
    if feats.device != coords.device:
        raise ValueError(f"SparseTensor.feats is on {feats.device} but coords is on {coords.device}")
    if batch_size < 0 or any(s <= 0 for s in spatial_shape):
        raise ValueError(f"SparseTensor: batch_size must be >= 0 and spatial_shape positive, got {batch_size}, "
                         f"{spatial_shape}")
    if coords.shape[0] > 0:
        if coords.dtype == torch.int64 and int(coords.max()) > 2**31 - 1:
            raise ValueError("SparseTensor.coords has values that do not fit in int32")
        mins = coords.min(dim=0).values.tolist()
        maxs = coords.max(dim=0).values.tolist()
        if mins[0] < 0 or maxs[0] >= batch_size:
            raise ValueError(f"SparseTensor.coords: batch index must be in [0, batch_size={batch_size}), "
                             f"found range [{mins[0]}, {maxs[0]}]")
        for axis in range(ndim):
            if mins[axis + 1] < 0 or maxs[axis + 1] >= spatial_shape[axis]:
                raise ValueError(f"SparseTensor.coords: spatial axis {axis} must be in [0, {spatial_shape[axis]}), "
                                 f"found range [{mins[axis + 1]}, {maxs[axis + 1]}]")
        if not allow_duplicates:
            keys = linearize(coords, spatial_shape)
            if torch.unique(keys).numel() != keys.numel():
                raise ValueError(f"SparseTensor.coords has {keys.numel() - torch.unique(keys).numel()} duplicate "
                                 "coordinates (pass allow_duplicates=True only if you mean it)")
        if check_nan and not bool(torch.isfinite(feats).all()):
            bad = (~torch.isfinite(feats)).any(dim=1).sum().item()
            raise ValueError(f"SparseTensor.feats has non-finite values in {bad} rows")
    # contiguous: spconv reads indices by raw pointer and silently misreads a strided view (e.g. nonzero()'s)
    return coords.to(torch.int32).contiguous()
