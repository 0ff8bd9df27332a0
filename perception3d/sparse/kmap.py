"""Kernel maps ("rulebooks"): which input site feeds which output site through which kernel offset.

A kernel offset is indexed k = row-major over `kernel_size` (k = (iz * Ky + iy) * Kx + ix for D = 3), the
same order as the kernel axes of spconv 2.x weights [C_out, *kernel_size, C_in]. For every kind of map,
input site i feeds output site o through offset index k exactly when (per spatial axis)

    i = o * stride - padding + idx_k * dilation                                  (cross-correlation, F.convNd)

which for submanifold convolution (stride 1, output sites = input sites) reads i = o + (idx_k - (K - 1) / 2) * dilation.

Maps are cached on the coordinate set (`CoordSet.kmaps`), keyed by (kind, kernel_size, stride, padding,
dilation), so a stack of SubM convolutions on one tensor pays for the neighbour search once.
"""
from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .tensor import CoordSet


@dataclass(eq=False)
class KernelMap:
    """Pairs grouped by kernel offset.

    in_idx, out_idx: int64 [P], pairs of offset k occupy `slice(starts[k], starts[k] + counts[k])`.
    counts: pairs per offset (python ints, so slicing needs no device sync).
    n_out: number of output sites.
    identity: offset index whose map is the identity (the centre of a SubM kernel); its pairs are not stored.
    """

    in_idx: torch.Tensor
    out_idx: torch.Tensor
    counts: list
    n_out: int
    identity: Optional[int] = None

    @property
    def kernel_volume(self) -> int:
        return len(self.counts)

    @property
    def starts(self) -> list:
        out, s = [], 0
        for c in self.counts:
            out.append(s)
            s += c
        return out

    @property
    def num_pairs(self) -> int:
        """Pairs including the identity offset (each of the n_out sites once)."""
        return int(self.in_idx.numel()) + (self.n_out if self.identity is not None else 0)

    def transposed(self, n_out: int) -> "KernelMap":
        """The same pairs read backwards (for inverse convolution): in and out swapped."""
        return KernelMap(self.out_idx, self.in_idx, list(self.counts), n_out, self.identity)


def kernel_offsets(kernel_size: Sequence[int], device=None) -> torch.Tensor:
    """[K, D] integer kernel indices in row-major order (the weight layout's order)."""
    grid = list(itertools.product(*[range(k) for k in kernel_size]))
    return torch.tensor(grid, dtype=torch.long, device=device).reshape(len(grid), len(kernel_size))


def conv_output_shape(spatial_shape, kernel_size, stride, padding, dilation) -> tuple:
    """floor((S + 2p - d (k - 1) - 1) / s) + 1 per axis, as F.convNd."""
    out = []
    for s, k, st, p, d in zip(spatial_shape, kernel_size, stride, padding, dilation):
        size = (s + 2 * p - d * (k - 1) - 1) // st + 1
        if size <= 0:
            raise ValueError(f"sparse conv: kernel {tuple(kernel_size)} with stride {tuple(stride)}, padding "
                             f"{tuple(padding)}, dilation {tuple(dilation)} gives an empty output for spatial shape "
                             f"{tuple(spatial_shape)}")
        out.append(size)
    return tuple(out)


def subm_kmap(cs: CoordSet, kernel_size: Sequence[int], dilation: Sequence[int]) -> KernelMap:
    """Submanifold map: output sites = input sites; odd kernels only (centre-aligned).

    Offsets come in mirror pairs (k, K − 1 − k): if i is o's neighbour at +d then o is i's neighbour at −d, so
    only the first half is searched and the second half is the same pairs swapped. The centre is the identity.
    """
    key = ("subm", tuple(kernel_size), tuple(dilation))
    hit = cs.kmaps.get(key)
    if hit is not None:
        return hit
    if any(k % 2 == 0 for k in kernel_size):
        raise ValueError(f"SubMConv needs odd kernel sizes, got {tuple(kernel_size)}")
    device = cs.coords.device
    n = cs.coords.shape[0]
    offsets = kernel_offsets(kernel_size, device)
    half = torch.tensor([(k - 1) // 2 for k in kernel_size], device=device)
    disp = (offsets - half) * torch.tensor(list(dilation), device=device)  # [K, D]
    K = offsets.shape[0]
    centre = K // 2
    first = disp[:centre]                                                   # the half searched for
    # In linear-key space a displacement is a constant: key(c + d) = key(c) + Σ_a d_a · stride_a, valid while
    # every axis stays inside the grid. Offsets that differ only along the last axis (x) are searched together:
    # one binary search finds where the smallest x lands, and since keys are distinct integers the match for an
    # x displacement larger by j lies at most j places further on (a few gathers instead of another search).
    strides, acc = [], 1
    for size in reversed(cs.spatial_shape):
        strides.append(acc)
        acc *= size
    strides = strides[::-1]
    sorted_keys, perm = cs.sorted_keys()
    c_sorted = cs.coords[perm, 1:]                                          # [N, D] in key order
    bounds: dict = {}

    def inside(axis: int, d: int) -> Optional[torch.Tensor]:
        if d == 0:
            return None
        if (axis, d) not in bounds:
            col = c_sorted[:, axis]
            bounds[(axis, d)] = (col >= -d) if d < 0 else (col < cs.spatial_shape[axis] - d)
        return bounds[(axis, d)]

    groups: dict = {}
    for k, d in enumerate(first.tolist()):
        groups.setdefault(tuple(d[:-1]), []).append((k, d[-1]))
    pos = torch.zeros((centre, n), dtype=torch.long, device=device)
    found = torch.zeros((centre, n), dtype=torch.bool, device=device)
    for prefix, members in groups.items() if n else ():
        base = sum(p * st for p, st in zip(prefix, strides[:-1]))
        dx_min = min(dx for _, dx in members)
        start = torch.searchsorted(sorted_keys, sorted_keys + (base + dx_min))
        for k, dx in members:
            target = sorted_keys + (base + dx)
            for m in range(dx - dx_min + 1):
                cand = (start + m).clamp_(max=n - 1)
                eq = sorted_keys[cand] == target
                pos[k] = torch.where(eq, cand, pos[k])
                found[k] |= eq
            for axis, d in enumerate(prefix + (dx,)):
                ok = inside(axis, d)
                if ok is not None:
                    found[k] &= ok
    k_idx, row = found.nonzero(as_tuple=True)                               # k-major, as nonzero is row-major
    nb = perm[pos[k_idx, row]]                                              # the neighbour at +d ...
    me = perm[row]                                                          # ... feeds the site searched from
    half_counts = torch.bincount(k_idx, minlength=centre).tolist() if centre else []
    # mirror offsets K-1-k take the same pairs swapped, in reverse offset order
    mirrored_in, mirrored_out = [], []
    for k in reversed(range(centre)):
        s0 = sum(half_counts[:k])
        mirrored_in.append(me[s0:s0 + half_counts[k]])
        mirrored_out.append(nb[s0:s0 + half_counts[k]])
    in_idx = torch.cat([nb] + mirrored_in)
    out_idx = torch.cat([me] + mirrored_out)
    counts = half_counts + [0] + half_counts[::-1]
    kmap = KernelMap(in_idx, out_idx, counts, n, identity=centre)
    cs.kmaps[key] = kmap
    return kmap


def strided_kmap(cs: CoordSet, kernel_size, stride, padding, dilation, indice_key: Optional[str] = None
                 ) -> tuple[KernelMap, CoordSet]:
    """Regular (strided) conv/pool map; output sites are every site the receptive fields touch (as spconv).

    The output coordinate set is sorted by linear key, and remembers its parent so that an inverse conv can
    go back (see `inverse_kmap`).
    """
    key = ("conv", tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation))
    hit = cs.kmaps.get(key)
    out_hit = hit[1]() if hit is not None else None
    if out_hit is not None:
        if indice_key is not None:
            out_hit.parents[("key", indice_key)] = (cs, hit[0], tuple(stride))
        return hit[0], out_hit
    out_shape = conv_output_shape(cs.spatial_shape, kernel_size, stride, padding, dilation)
    device = cs.coords.device
    K, n, D = _volume(kernel_size), cs.coords.shape[0], len(kernel_size)
    # The condition i = o * stride - padding + idx * dilation holds per axis, so each axis is solved alone for
    # its kernel indices ([k_a, N]: which idx land on an output site, and that site's share of the linear key),
    # and the [K, N] answer is their broadcast product in row-major offset order (k = (iz * Ky + iy) * Kx + ix).
    valid = torch.ones((1,) * D + (n,), dtype=torch.bool, device=device)
    keys = cs.coords[:, 0].long().view((1,) * D + (n,))
    for a in range(D):
        idx = torch.arange(kernel_size[a], device=device).unsqueeze(1)                    # [k_a, 1]
        num = cs.coords[:, a + 1].long().unsqueeze(0) + padding[a] - idx * dilation[a]     # [k_a, N] = o * stride
        o = torch.div(num, stride[a], rounding_mode="floor")
        ok = (num - o * stride[a] == 0) & (o >= 0) & (o < out_shape[a])
        shape = [1] * D + [n]
        shape[a] = kernel_size[a]
        valid = valid & ok.view(shape)
        keys = keys * out_shape[a] + o.view(shape)                    # linearize's row-major key, axis by axis
    valid, keys = valid.reshape(K, n), keys.reshape(K, n)
    k_of_pair = valid.nonzero()                                       # [P, 2] (k, input row), k-major order
    out_keys = keys[valid]
    uniq, inverse = torch.unique(out_keys, sorted=True, return_inverse=True)
    out_coords = _delinearize(uniq, out_shape)
    counts = torch.bincount(k_of_pair[:, 0], minlength=K).tolist()
    kmap = KernelMap(k_of_pair[:, 1].contiguous(), inverse.contiguous(), counts, int(uniq.numel()))
    out_cs = CoordSet(out_coords, out_shape, cs.batch_size)
    out_cs._sorted = (uniq, torch.arange(uniq.numel(), device=device))
    out_cs.parents[key] = (cs, kmap, tuple(stride))
    if indice_key is not None:
        out_cs.parents[("key", indice_key)] = (cs, kmap, tuple(stride))
    # the output set points up to its input (strongly: an inverse conv goes back up); the input's cache points
    # down to the output weakly, so that the two do not form a reference cycle: a cycle is freed only by Python's
    # cyclic collector, which runs rarely once many objects live, and held every scan's maps (~60 MB for
    # CenterPoint mini) until then, so resident memory crept up over a long bag or training
    cs.kmaps[key] = (kmap, weakref.ref(out_cs))
    return kmap, out_cs


def inverse_kmap(cs: CoordSet, kernel_size, indice_key: Optional[str] = None, stride=None
                 ) -> tuple[KernelMap, CoordSet, tuple]:
    """Map of the inverse of the strided conv that produced `cs`: output sites = that conv's input sites.

    The producing conv is found by `indice_key` when given (spconv's way), else as the one producer with this
    kernel size (and stride, if given). Returns (map, the producer's input CoordSet, the producer's stride).
    """
    if indice_key is not None and ("key", indice_key) in cs.parents:
        parent, fwd, st = cs.parents[("key", indice_key)]
        if len(fwd.counts) != _volume(kernel_size):
            raise ValueError(f"SparseInverseConv: indice_key {indice_key!r} was made by a conv with "
                             f"{len(fwd.counts)} kernel offsets, this one has kernel {tuple(kernel_size)}")
        return fwd.transposed(parent.coords.shape[0]), parent, st
    found = [v for k, v in cs.parents.items() if k[0] == "conv" and k[1] == tuple(kernel_size)
             and (stride is None or k[2] == tuple(stride))]
    if len(found) != 1:
        known = [dict(kernel_size=k[1], stride=k[2], padding=k[3], dilation=k[4]) for k in cs.parents if k[0] == "conv"]
        what = "no" if not found else "more than one"
        raise ValueError(f"SparseInverseConv (kernel {tuple(kernel_size)}, indice_key={indice_key!r}): {what} strided "
                         f"SparseConv/pool with that kernel produced this tensor; producers known: {known}. "
                         "Give the producing conv and this one the same indice_key.")
    parent, fwd, st = found[0]
    return fwd.transposed(parent.coords.shape[0]), parent, st


def _volume(kernel_size) -> int:
    v = 1
    for k in kernel_size:
        v *= int(k)
    return v


def _delinearize(keys: torch.Tensor, spatial_shape) -> torch.Tensor:
    cols = []
    rest = keys
    for size in reversed(spatial_shape):
        cols.append(rest % size)
        rest = torch.div(rest, size, rounding_mode="floor")
    cols.append(rest)
    return torch.stack(list(reversed(cols)), dim=1).to(torch.int32)
