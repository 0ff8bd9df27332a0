"""DSVT: Dynamic Sparse Voxel Transformer with Rotated Sets (Wang et al., CVPR 2023), pure PyTorch.

Structure (names follow the paper; ``dsvt_input_layer.py`` holds the coordinate-only parts):

    DSVT (backbone)                        SparseTensor (b, z, y, x) → SparseTensor on the last stage's grid
      input_layer: DSVTInputLayer          window partition, dynamic set partition (Eq. 3), pooling indices,
                                           learned in-window position embeddings
      stage s, block b (DSVTBlock)         two DSVTEncoderLayers: y-major sets, then x-major sets (rotated
                                           sets, §3.1); block b attends in window configuration b % 2
                                           (base window, then the hybrid ×2 window shifted — §3.1 "hybrid window")
        DSVTEncoderLayer → SetAttention    multi-head self-attention inside each set + FFN (post-norm)
      AttentionPooling (dsvt_pooling.py)   between stages of DSVT-V (§3.3)

Every layer, norm and residual of the authors' model is here with the same shapes (their
``DSVT`` / ``DSVTBlock`` / ``DSVT_EncoderLayer`` / ``SetAttention``), so parameter counts agree; the block
counter that alternates the window configuration runs across stages, as theirs does.
"""
from __future__ import annotations

import re
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception3d.registry import MODELS
from perception3d.sparse import gelu as sparse_gelu

from .dsvt_input_layer import DSVTInputLayer, SetPartition, StageInfo
from .dsvt_pooling import AttentionPooling, attend

__all__ = ["DSVT", "DSVTBlock", "DSVTEncoderLayer", "SetAttention"]

_ACT = {"relu": F.relu, "gelu": sparse_gelu}  # GELU with row-bucketed shapes: bounded oneDNN cache
# the authors' module names → ours: stage_{s}.{b} / residual_norm_stage_{s}.{b} / stage_{s}_reduction
_AUTHORS_KEYS = [(re.compile(r"^residual_norm_stage_(\d+)\."), r"residual_norms.\1."),
                 (re.compile(r"^stage_(\d+)_reduction\."), None),
                 (re.compile(r"^stage_(\d+)\."), r"stages.\1.")]


def _rename_authors_keys(state_dict: dict, prefix: str) -> int:
    """Rename, in place, the keys under ``prefix`` written by the authors' ``DSVT`` to this module's names;
    returns how many were renamed (0 for a state dict of this package)."""
    count = 0
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        for pattern, repl in _AUTHORS_KEYS:
            m = pattern.match(rest)
            if m is None:
                continue
            if repl is None:                    # stage_{s}_reduction → poolings.{s}
                new = f"poolings.{m.group(1)}." + rest[m.end():]
            else:
                new = pattern.sub(repl, rest, count=1)
            state_dict[prefix + new] = state_dict.pop(key)
            count += 1
            break
    return count


class SetAttention(nn.Module):
    """Self-attention inside every set, then a feed-forward network; post-norm residuals (authors' SetAttention).

    Queries and keys are feature + position embedding, values the feature. Projections are applied once per
    voxel and then gathered into sets (equal to projecting the gathered copies, fewer FLOPs).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, activation: str = "gelu") -> None:
        super().__init__()
        if activation not in _ACT:
            raise ValueError(f"DSVT: activation must be one of {sorted(_ACT)}, got {activation!r}")
        self.self_attn = nn.MultiheadAttention(d_model, nhead, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.activation = _ACT[activation]

    def forward(self, src: Tensor, pos: Tensor, inds: Tensor, mask: Tensor, back: Tensor) -> Tensor:
        """src, pos [N, C]; inds / mask [T, τ] (one ordering of a ``SetPartition``); back [N] → [N, C]."""
        c = src.shape[1]
        w, b = self.self_attn.in_proj_weight, self.self_attn.in_proj_bias
        qk_in = src + pos
        q = F.linear(qk_in, w[:c], b[:c])[inds]
        k = F.linear(qk_in, w[c:2 * c], b[c:2 * c])[inds]
        v = F.linear(src, w[2 * c:], b[2 * c:])[inds]
        out = attend(self.self_attn, q, k, v, mask)                      # [T, τ, C]
        src2 = out.reshape(-1, c)[back]                                   # set space → voxel space
        src = self.norm1(src + src2)
        src = self.norm2(src + self.linear2(self.activation(self.linear1(src))))
        return src


class DSVTEncoderLayer(nn.Module):
    """SetAttention with one more residual + LayerNorm around it (authors' DSVT_EncoderLayer)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, activation: str = "gelu") -> None:
        super().__init__()
        self.win_attn = SetAttention(d_model, nhead, dim_feedforward, activation)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor, inds: Tensor, mask: Tensor, back: Tensor) -> Tensor:
        return self.norm(self.win_attn(src, pos, inds, mask, back) + src)


class DSVTBlock(nn.Module):
    """Two encoder layers over rotated sets of one window configuration: y-major, then x-major (§3.1)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, activation: str = "gelu") -> None:
        super().__init__()
        self.encoder_list = nn.ModuleList(
            DSVTEncoderLayer(d_model, nhead, dim_feedforward, activation) for _ in range(2))

    def forward(self, src: Tensor, part: SetPartition, pos: Sequence[Tensor]) -> Tensor:
        """src [N, C]; ``part`` = the block's window configuration; pos[i] = embedding for layer i."""
        for i, layer in enumerate(self.encoder_list):
            src = layer(src, pos[i], part.inds[i], part.mask, part.back[i])
        return src


@MODELS.register_module()
class DSVT(nn.Module):
    """Dynamic Sparse Voxel Transformer backbone (DSVT-P with one stage, DSVT-V with pooled stages).

    Args (the authors' Waymo values in ``configs/dsvt_waymo.py`` / ``configs/dsvt_voxel_waymo.py``):
        grid_size: (X, Y, Z) input grid, e.g. (468, 468, 1) for DSVT-P.
        window_shape: per stage (wx, wy, wz).
        hybrid_factor: (hx, hy, hz) of the second (shifted) window configuration.
        shifts_list: per stage [(sx, sy, sz) of config 0, of config 1].
        set_info: per stage (set size τ, number of blocks).
        d_model, nhead, dim_feedforward: per stage.
        downsample_stride: per stage transition (sx, sy, sz) (DSVT-V); [] for DSVT-P.
        activation: 'gelu' | 'relu'. dropout: must be 0 (the authors' Waymo value; kept for config parity).
        reduction_type: 'attention' (the only pooling the authors' Waymo models use).
        pool_mask_empty: False (default, the authors' code): empty cells of a pooling region are zero-filled and
            take part in the max and the attention; True masks them out (a deviation, see ``dsvt_pooling.py``).
        normalize_pos: authors' option (False on Waymo).
        authors_pos_embed: False (default): both layers of a block get the position embedding of the window
            configuration the block attends in (a fix, see ``DSVTInputLayer.pos_embed``). True: the authors'
            code exactly, layer i gets configuration i's (their issue #50); use it to reproduce the outputs of
            an official checkpoint. Loading a state dict in the authors' key layout (``stage_0.…``,
            ``residual_norm_stage_0.…``, ``stage_0_reduction.…``) renames its keys to ours and, with this flag
            off, warns that the outputs differ from the authors' model.

    Input: ``SparseTensor`` with coords (b, z, y, x), spatial_shape (Z, Y, X) = grid_size reversed, C = d_model[0].
    Output: ``SparseTensor`` of the last stage (spatial_shape of that stage), ready for ``PointPillarScatter``.
    """

    def __init__(self, grid_size: Sequence[int], window_shape: Sequence[Sequence[int]],
                 set_info: Sequence[Sequence[int]], d_model: Sequence[int], nhead: Sequence[int],
                 dim_feedforward: Sequence[int], hybrid_factor: Sequence[int] = (2, 2, 1),
                 shifts_list: Sequence | None = None, downsample_stride: Sequence[Sequence[int]] = (),
                 activation: str = "gelu", dropout: float = 0.0, reduction_type: str = "attention",
                 pool_mask_empty: bool = False, normalize_pos: bool = False,
                 authors_pos_embed: bool = False) -> None:
        super().__init__()
        n = len(d_model)
        self.authors_pos_embed = bool(authors_pos_embed)
        if dropout != 0.0:
            raise ValueError("DSVT: dropout must be 0.0 (the authors' Waymo setting; no dropout is implemented)")
        if reduction_type != "attention":
            raise ValueError(f"DSVT: reduction_type {reduction_type!r} not supported; use 'attention'")
        for name, v in (("nhead", nhead), ("dim_feedforward", dim_feedforward)):
            if len(v) != n:
                raise ValueError(f"DSVT config: {name} has {len(v)} entries, d_model has {n}")
        if shifts_list is None:
            shifts_list = [[(0, 0, 0), tuple(w // 2 for w in ws)] for ws in window_shape]
        self.input_layer = DSVTInputLayer(grid_size, window_shape, hybrid_factor, shifts_list, set_info, d_model,
                                          downsample_stride, normalize_pos)
        self.num_stages = n
        self.grid_size = tuple(int(v) for v in grid_size)
        self.stages = nn.ModuleList()
        self.residual_norms = nn.ModuleList()
        self.poolings = nn.ModuleList()
        for s in range(n):
            nblocks = int(set_info[s][1])
            self.stages.append(nn.ModuleList(
                DSVTBlock(d_model[s], nhead[s], dim_feedforward[s], activation) for _ in range(nblocks)))
            self.residual_norms.append(nn.ModuleList(nn.LayerNorm(d_model[s]) for _ in range(nblocks)))
            if s < n - 1:
                if d_model[s + 1] != d_model[s]:
                    raise ValueError("DSVT: attention pooling keeps the width; d_model must be equal across stages")
                vol = 1
                for v in downsample_stride[s]:
                    vol *= int(v)
                self.poolings.append(AttentionPooling(d_model[s], vol, 8, pool_mask_empty))
        self.in_channels = int(d_model[0])
        self.out_channels = int(d_model[-1])
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Xavier-uniform on every matrix, as the authors (their pooling pos_embedding included)."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Accept the authors' key layout too (renamed in place), warning when the outputs will differ."""
        renamed = _rename_authors_keys(state_dict, prefix)
        if renamed and not self.authors_pos_embed:
            warnings.warn(
                f"DSVT: {prefix or 'the'} state dict is in the authors' (OpenPCDet DSVT) layout ({renamed} keys "
                f"renamed). Their layer i used window configuration i's position embedding (their issue #50); "
                f"this model gives both layers of a block its own configuration's, so its outputs differ from "
                f"the authors' model. Set authors_pos_embed=True (backbone_3d.authors_pos_embed=True) to "
                f"reproduce them exactly.", UserWarning, stacklevel=2)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    @property
    def out_grid_size(self) -> tuple:
        """(X, Y, Z) of the last stage."""
        return self.input_layer.grid_sizes[-1]

    def forward_tensors(self, feats: Tensor, coords: Tensor) -> tuple[Tensor, Tensor]:
        """The whole backbone on plain tensors (what ``tools/export_onnx.py`` traces).

        feats [N, d_model[0]], coords [N, 4] (b, z, y, x) → (feats [M, C], coords [M, 4] int64 of the last stage).
        """
        infos: list[StageInfo] = self.input_layer.partition(coords)
        x = feats
        block_id = 0
        for s in range(self.num_stages):
            info = infos[s]
            if s > 0:
                x = self.poolings[s - 1](x, info.pool)
            for b, block in enumerate(self.stages[s]):
                config = block_id % 2                       # window shift alternates between blocks
                part = info.partitions[config]
                if self.authors_pos_embed:                  # authors: layer i embeds configuration i
                    pos = [self.input_layer.pos_embed(s, b, i, i, info.coors_in_win[i]) for i in range(2)]
                else:                                       # fix: both layers embed the block's configuration
                    pos = [self.input_layer.pos_embed(s, b, i, config, info.coors_in_win[config]) for i in range(2)]
                x = self.residual_norms[s][b](block(x, part, pos) + x)
                block_id += 1
        return x, infos[-1].coords

    def forward(self, x):
        """SparseTensor → SparseTensor of the last stage.

        Accepts voxels (D = 3: (b, z, y, x), spatial_shape (Z, Y, X)) or pillars (D = 2: (b, y, x), (Y, X), for
        Z = 1). The output has the input's D when the last stage has one z level, else D = 3.
        """
        from perception3d.sparse import SparseTensor
        gx, gy, gz = self.grid_size
        coords = x.coords
        if len(x.spatial_shape) == 2:
            if gz != 1:
                raise ValueError(f"DSVT: a 2-D (pillar) input needs grid_size z = 1, config has {self.grid_size}")
            coords = torch.cat([coords[:, :1], torch.zeros_like(coords[:, :1]), coords[:, 1:]], dim=1)
            shape = (1,) + tuple(x.spatial_shape)
        else:
            shape = tuple(x.spatial_shape)
        if shape != (gz, gy, gx):
            raise ValueError(f"DSVT: input spatial_shape {tuple(x.spatial_shape)} does not match grid_size "
                             f"(X, Y, Z) = {self.grid_size}; check voxel_size / point_cloud_range")
        if x.feats.shape[1] != self.in_channels:
            raise ValueError(f"DSVT: input has {x.feats.shape[1]} channels, d_model[0] = {self.in_channels}")
        feats, out = self.forward_tensors(x.feats, coords)
        ox, oy, oz = self.out_grid_size
        stride = tuple(int(v) for v in (x.stride or (1,) * len(x.spatial_shape)))
        if len(x.spatial_shape) == 2 and oz == 1:
            return SparseTensor(feats, out[:, [0, 2, 3]].int(), (oy, ox), x.batch_size, stride=stride,
                                voxel_size=x.voxel_size, origin=x.origin, check=False)
        zs = stride[0] * (gz // oz if oz else 1) if len(stride) == 3 else 1
        stride3 = (zs,) + stride[-2:]
        return SparseTensor(feats, out.int(), (oz, oy, ox), x.batch_size, stride=stride3,
                            voxel_size=x.voxel_size if len(x.spatial_shape) == 3 else None,
                            origin=x.origin if len(x.spatial_shape) == 3 else None, check=False)
