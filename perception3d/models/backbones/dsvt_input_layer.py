"""DSVT's input layer: everything that depends only on voxel coordinates (Wang et al., CVPR 2023).

The parts of the paper, one function each, all plain tensor ops (argsort, cumsum, scatter, gather, boolean
masks), so the whole partition traces into an ONNX graph with a dynamic voxel count and no custom op:

- ``window_partition``        §3.1: voxels → (shifted) windows; in-window coordinates.
- ``dynamic_set_partition``   §3.1, Eq. 3: a window with N voxels gets S = ⌈N/τ⌉ sets of exactly τ slots,
                              set j taking the voxels at sorted positions ⌊(jτ + k)·N/(Sτ)⌋, k = 0…τ−1;
                              repeated positions are masked. Rotated sets (§3.1, Fig. 3): the same slots
                              read through two orderings, y-major (first layer) and x-major (second layer).
- ``pooling_index``           §3.3: which pooled voxel and which slot of its region each voxel goes to.
- ``PositionEmbeddingLearned``  the learned embedding of in-window coordinates (authors' MLP).
- ``DSVTInputLayer``          runs the above for every stage and both window configurations.

Conventions: ``coords`` are [N, 4] (b, z, y, x) as in ``SparseTensor``; window shapes, shifts and pooling
strides are given in (x, y, z) order as in the paper's and the authors' configs; ``grid_size`` is (X, Y, Z).
The in-window rank is the authors' ``get_inner_win_inds_cuda`` (a CUDA op) done by a sort on a unique key
(window id · V + in-window linear index), so it is deterministic and needs neither a stable sort nor
``torch.unique``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from perception3d.deprecation import moved_names

__all__ = ["window_partition", "dynamic_set_partition", "SetPartition", "pooling_index", "PoolingIndex",
           "PositionEmbeddingLearned", "StageInfo", "DSVTInputLayer"]

__getattr__ = moved_names(__name__, {"DynamicVoxelPFN": "perception3d.models.voxel_encoders"})  # the old path


def _first_flags(sorted_keys: Tensor) -> Tensor:
    """[N] bool: True where a run of equal sorted keys starts (export-friendly: no in-place write)."""
    head = torch.ones_like(sorted_keys[:1], dtype=torch.bool)
    return torch.cat([head, sorted_keys[1:] != sorted_keys[:-1]])


def window_partition(coords: Tensor, grid_size: Sequence[int], window: Sequence[int],
                     shift: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Assign voxels to windows of shape ``window`` after shifting the grid by ``shift`` (§3.1).

    Args:
        coords: [N, 4] int (b, z, y, x).
        grid_size: (X, Y, Z) of this stage.
        window: (wx, wy, wz).
        shift: (sx, sy, sz); the z shift is ignored when the window spans the whole height (as the authors).
    Returns:
        win_ids: [N] int64, unique per (batch, window).
        coors_in_win: [N, 3] int64 (z, y, x) inside the window.
    """
    X, Y, Z = (int(v) for v in grid_size)
    wx, wy, wz = (int(v) for v in window)
    sx, sy, sz = (int(v) for v in shift)
    if wz == Z:
        sz = 0
    # one extra window per axis so that a shifted grid still fits (authors' max_num_win + 1)
    nwx, nwy, nwz = math.ceil(X / wx) + 1, math.ceil(Y / wy) + 1, math.ceil(Z / wz) + 1
    c = coords.long()
    x, y, z = c[:, 3] + sx, c[:, 2] + sy, c[:, 1] + sz
    win_ids = (c[:, 0] * (nwx * nwy * nwz) + (x // wx) * (nwy * nwz) + (y // wy) * nwz + z // wz)
    coors_in_win = torch.stack([z % wz, y % wy, x % wx], dim=1)
    return win_ids, coors_in_win


class SetPartition(NamedTuple):
    """The dynamic sets of one window configuration, read in the two rotated orderings.

    inds: [2, T, τ] voxel index of every slot; inds[0] = y-major ordering, inds[1] = x-major ordering.
    mask: [T, τ] bool, True where a slot repeats the previous slot's position (a padded repeat): it is
        ignored as a key. Repeats are contiguous in a set and never cross a set boundary (N > (S−1)τ).
    back: [2, N] flat slot index (into T·τ) of each voxel's first slot, per ordering: where its output is
        read from after set attention (every voxel has exactly one such slot).
    """

    inds: Tensor
    mask: Tensor
    back: Tensor


def dynamic_set_partition(win_ids: Tensor, coors_in_win: Tensor, window: Sequence[int],
                          set_size: int) -> SetPartition:
    """Dynamic set partition (Eq. 3) with rotated (y-major / x-major) orderings.

    Args:
        win_ids: [N] int64 window id per voxel (from ``window_partition``).
        coors_in_win: [N, 3] (z, y, x) in-window coordinates.
        window: (wx, wy, wz) of this configuration.
        set_size: τ.
    Returns:
        ``SetPartition`` with T = Σ_windows ⌈N_w/τ⌉ sets (T ≤ N).
    """
    tau = int(set_size)
    wx, wy, wz = (int(v) for v in window)
    vol = wx * wy * wz
    n = win_ids.shape[0]
    z, y, x = coors_in_win[:, 0], coors_in_win[:, 1], coors_in_win[:, 2]
    # Rotated sets: y-major ("sort y") and x-major ("sort x") in-window orderings, as the authors' get_set.
    key_y = win_ids * vol + (y * (wx * wz) + x * wz + z)
    key_x = win_ids * vol + (x * (wy * wz) + y * wz + z)
    order_y = torch.argsort(key_y)
    order_x = torch.argsort(key_x)
    # Windows are contiguous runs of the sorted order (the same runs for both orderings).
    new_win = _first_flags(win_ids[order_y])
    cw_sorted = torch.cumsum(new_win.long(), 0) - 1                       # contiguous window id per position
    ones = torch.ones_like(cw_sorted)
    count = torch.zeros_like(cw_sorted).scatter_add(0, cw_sorted, ones)   # N_w (0 past the last window)
    start = torch.cumsum(count, 0) - count                                 # first sorted position of window
    nsets = torch.div(count + (tau - 1), tau, rounding_mode="floor")       # S_w = ceil(N_w / τ)
    set_start = torch.cumsum(nsets, 0) - nsets
    total = nsets.sum()                                                    # T ≤ N
    # window of every set: mark each window's first set, cumulate (works on N candidates, keep the first T)
    marks = torch.zeros_like(torch.cat([cw_sorted, cw_sorted[:1]])).scatter_add(
        0, set_start, torch.ones_like(set_start))
    cand = torch.arange(n, device=win_ids.device)
    set_win = (torch.cumsum(marks[:n], 0) - 1).clamp(max=n - 1)
    valid = cand < total
    set_win = set_win[valid]
    j = cand[valid] - set_start[set_win]                                  # set index inside its window
    n_w, s_w = count[set_win], nsets[set_win]
    # Eq. 3: slot k of set j reads sorted position floor((j·τ + k)·N_w / (S_w·τ)), exact integer math
    m = j[:, None] * tau + torch.arange(tau, device=win_ids.device)[None, :]
    pos = torch.div(m * n_w[:, None], (s_w * tau)[:, None], rounding_mode="floor")
    mask = torch.cat([torch.zeros_like(pos[:, :1], dtype=torch.bool), pos[:, 1:] == pos[:, :-1]], dim=1)
    flat = start[set_win][:, None] + pos
    inds = torch.stack([order_y[flat], order_x[flat]])
    # back: the first slot holding sorted rank r is m* = ceil(r·S·τ / N) (slots advance by ≤ 1 position)
    rank_sorted = cand - start[cw_sorted]
    backs = []
    for order in (order_y, order_x):
        spos = torch.zeros_like(order).scatter(0, order, cand)            # sorted position of each voxel
        cw, r = cw_sorted[spos], rank_sorted[spos]
        first = torch.div(r * nsets[cw] * tau + count[cw] - 1, count[cw], rounding_mode="floor")
        backs.append(set_start[cw] * tau + first)
    return SetPartition(inds, mask, torch.stack(backs))


class PoolingIndex(NamedTuple):
    """Where each voxel of stage s goes in stage s + 1 (§3.3).

    pool_ids: [N] int64 pooled voxel of each voxel (0 … M−1).
    slot: [N] int64 slot of the voxel inside its pooling region (0 … sx·sy·sz − 1, authors' order x, y, z).
    coords: [M, 4] (b, z, y, x) coordinates of the pooled voxels, sorted by (b, z, y, x).
    """

    pool_ids: Tensor
    slot: Tensor
    coords: Tensor


def pooling_index(coords: Tensor, grid_size: Sequence[int], stride: Sequence[int]) -> PoolingIndex:
    """Group voxels into pooling regions of ``stride`` = (sx, sy, sz) cells (plain ops, no unique).

    Args:
        coords: [N, 4] (b, z, y, x) of this stage; grid_size (X, Y, Z) of this stage.
    """
    X, Y, Z = (int(v) for v in grid_size)
    sx, sy, sz = (int(v) for v in stride)
    xp, yp, zp = math.ceil(X / sx), math.ceil(Y / sy), math.ceil(Z / sz)
    c = coords.long()
    b, z, y, x = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    pooled = torch.stack([b, z // sz, y // sy, x // sx], dim=1)
    key = ((pooled[:, 0] * zp + pooled[:, 1]) * yp + pooled[:, 2]) * xp + pooled[:, 3]
    order = torch.argsort(key)
    new = _first_flags(key[order])
    gid_sorted = torch.cumsum(new.long(), 0) - 1
    pool_ids = torch.zeros_like(gid_sorted).scatter(0, order, gid_sorted)
    slot = (x % sx) * (sy * sz) + (y % sy) * sz + z % sz
    return PoolingIndex(pool_ids, slot, pooled[order[new]])


class PositionEmbeddingLearned(nn.Module):
    """Learned absolute embedding of in-window coordinates: Linear → BN → ReLU → Linear (authors' MLP)."""

    def __init__(self, in_dim: int, num_pos_feats: int) -> None:
        super().__init__()
        self.position_embedding_head = nn.Sequential(
            nn.Linear(in_dim, num_pos_feats), nn.BatchNorm1d(num_pos_feats), nn.ReLU(inplace=True),
            nn.Linear(num_pos_feats, num_pos_feats))

    def forward(self, xyz: Tensor) -> Tensor:
        """[N, in_dim] → [N, num_pos_feats]."""
        return self.position_embedding_head(xyz)


@dataclass
class StageInfo:
    """All coordinate-derived tensors of one stage.

    coords: [N_s, 4] (b, z, y, x); partitions[c] / coors_in_win[c]: window configuration c (0 = base window,
    no shift; 1 = hybrid window ×hybrid_factor, shifted); pool: how this stage's voxels were pooled from the
    previous stage (None for stage 0).
    """

    coords: Tensor
    partitions: list = field(default_factory=list)
    coors_in_win: list = field(default_factory=list)
    pool: PoolingIndex | None = None


class DSVTInputLayer(nn.Module):
    """Window/set partition of every stage, pooling indices between stages, and the position embeddings.

    Args:
        grid_size: (X, Y, Z) of the input grid (authors' ``sparse_shape``).
        window_shape: per stage (wx, wy, wz) of the base window.
        hybrid_factor: (hx, hy, hz); the second window configuration of a stage is window·factor.
        shifts_list: per stage [shift of config 0, shift of config 1], each (sx, sy, sz).
        set_info: per stage (τ, number of blocks).
        d_model: per stage channels.
        downsample_stride: per stage transition (sx, sy, sz); len = stages − 1.
        normalize_pos: scale in-window offsets to [−π, π] (authors' option; False in their Waymo configs).

    Position embeddings: ``posembed_layers[stage][block][layer]``, one MLP per encoder layer (2 per block).
    The input is 3-D (x, y, z offsets) when the stage's grid has Z > 1, else 2-D.
    """

    def __init__(self, grid_size: Sequence[int], window_shape: Sequence[Sequence[int]],
                 hybrid_factor: Sequence[int], shifts_list: Sequence[Sequence[Sequence[int]]],
                 set_info: Sequence[Sequence[int]], d_model: Sequence[int],
                 downsample_stride: Sequence[Sequence[int]] = (), normalize_pos: bool = False) -> None:
        super().__init__()
        n_stage = len(d_model)
        for name, v, want in (("window_shape", window_shape, n_stage), ("shifts_list", shifts_list, n_stage),
                              ("set_info", set_info, n_stage), ("downsample_stride", downsample_stride,
                                                                 n_stage - 1)):
            if len(v) != want:
                raise ValueError(f"DSVT config: {name} has {len(v)} entries, expected {want} "
                                 f"(d_model lists {n_stage} stages)")
        self.num_stages = n_stage
        self.set_info = [tuple(int(v) for v in s) for s in set_info]
        self.window_shapes = [[tuple(int(v) for v in w), tuple(int(v) * int(h) for v, h in zip(w, hybrid_factor))]
                              for w in window_shape]
        self.shifts = [[tuple(int(v) for v in s) for s in sh] for sh in shifts_list]
        self.downsample_stride = [tuple(int(v) for v in s) for s in downsample_stride]
        self.normalize_pos = bool(normalize_pos)
        self.grid_sizes = [tuple(int(v) for v in grid_size)]
        for ds in self.downsample_stride:
            last = self.grid_sizes[-1]
            self.grid_sizes.append(tuple(math.ceil(g / s) for g, s in zip(last, ds)))
        self.posembed_layers = nn.ModuleList()
        for s in range(n_stage):
            in_dim = 3 if self.grid_sizes[s][2] > 1 else 2
            self.posembed_layers.append(nn.ModuleList(
                nn.ModuleList(PositionEmbeddingLearned(in_dim, int(d_model[s])) for _ in range(2))
                for _ in range(self.set_info[s][1])))

    @torch.no_grad()
    def partition(self, coords: Tensor) -> list[StageInfo]:
        """Coordinates → per-stage window/set partitions and pooling indices (no parameters involved)."""
        infos = []
        for s in range(self.num_stages):
            if s == 0:
                info = StageInfo(coords.long())
            else:
                pool = pooling_index(infos[-1].coords, self.grid_sizes[s - 1], self.downsample_stride[s - 1])
                info = StageInfo(pool.coords, pool=pool)
            for c in range(2):
                win_ids, cin = window_partition(info.coords, self.grid_sizes[s], self.window_shapes[s][c],
                                                self.shifts[s][c])
                info.partitions.append(dynamic_set_partition(win_ids, cin, self.window_shapes[s][c],
                                                             self.set_info[s][0]))
                info.coors_in_win.append(cin)
            infos.append(info)
        return infos

    def pos_embed(self, stage: int, block: int, layer: int, config: int, coors_in_win: Tensor) -> Tensor:
        """Embedding for encoder layer ``layer`` of ``block`` in ``stage``, from the in-window coordinates of
        the window configuration ``config`` that this block actually attends in. [N, 3] → [N, d_model].

        The authors' code (their issue #50, "TODO: bug to be fixed, mismatch of pos_embed") feeds layer i
        with coordinates of configuration i, while block b attends in configuration b % 2: in every shifted
        block the first layer's embedding describes the unshifted window, and in every unshifted block the
        second layer's embedding describes the shifted one. We index the MLP the same way (one per
        stage/block/layer, so parameter counts and checkpoints keep their shapes) but always give it the
        coordinates of the window the layer's sets come from. ``DSVT(authors_pos_embed=True)`` calls this with
        ``config = layer`` instead, which is the authors' behaviour exactly.
        """
        wx, wy, wz = self.window_shapes[stage][config]
        zc = coors_in_win[:, 0].float() - wz / 2
        yc = coors_in_win[:, 1].float() - wy / 2
        xc = coors_in_win[:, 2].float() - wx / 2
        if self.normalize_pos:
            xc, yc = xc / wx * 2 * 3.1415, yc / wy * 2 * 3.1415
            zc = zc / wz * 2 * 3.1415
        embed = self.posembed_layers[stage][block][layer]
        in_dim = embed.position_embedding_head[0].in_features
        loc = torch.stack([xc, yc, zc] if in_dim == 3 else [xc, yc], dim=-1)
        return embed(loc)
