"""E-3DSNN: Efficient 3D Recognition with Event-driven Spike Sparse Convolution (Qiu et al., AAAI 2025).

The paper's parts, as named there:

* **Spike Voxel Coding (SVC)** — points → voxels (mean of the point features in a voxel) → an encoding
  layer (SubM conv + BN on the real-valued voxel features) → spikes. :class:`SpikeVoxelCoding`.
* **Spike Sparse Convolution (SSC)** — ``y = BN(SparseConv(SN(u)))`` where ``SN`` is the
  integer multi-spike neuron (``layers/spiking.py``); residuals are added to the membrane potential *before*
  the next spike (``u_{l+1} = SSC(u_l) + u_l``). :class:`SpikeSparseConv`.
* **Event-driven execution** — at inference a spike is an event: an SSC gathers only the input sites whose
  spike vector is non-zero (silent sites contribute nothing to ``Σ_k W_k s_i``), so the work falls with the
  firing rate. Identical to the plain path (``set_event_driven``; ``event_driven_conv``).
* Networks (layer shapes as the authors' ``SNN_3dv`` / ``E_3DSNN_seg`` in their Pointcept code):
  :class:`E3DSNN` (classification backbone: stem + 4 × [k2s2 down-SSC + residual SSC blocks] + 1×1 conv +
  mean over voxels; E3DSNN-T = stem 16, stages [16, 32, 64, 128] × 1 block, 1,874,216 parameters),
  :class:`E3DSNNUNet` (SemanticKITTI segmenter: the same encoder + inverse-conv decoder with spiking
  linear fusion of the skips), and :class:`SpikingVoxelBackBone8x` (this package's own design, not the
  paper's detector: OpenPCDet's ``VoxelBackBone8x`` layout rebuilt from SSC blocks so that a spiking backbone
  drops into the CenterPoint detector).

Every SSC can record per-layer synaptic operations (SOPs, Σ spikes × fan-out) and the equivalent ANN's MACs
(``set_recording(model)``, ``conv_stats(model)``); ``tools/snn_energy.py`` turns them into energy.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from perception3d.models.layers.spiking import LIFNeuron, MultiSpike, SpikingNeuron
from perception3d.models.layers.z_pad import pad_z_one
from perception3d.registry import MODELS
from perception3d.sparse import (SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d, gather_gemm_scatter,
                                 inverse_kmap, strided_kmap, subm_kmap)

from .voxel_input import PointVoxelInput

__all__ = ["SpikeSparseConv", "SpikeLinear", "SpikeResBlock", "SpikeDownBlock", "SpikeUpBlock",
           "SpikeVoxelCoding", "E3DSNN", "E3DSNNUNet", "SpikingVoxelBackBone8x", "event_driven_conv",
           "set_event_driven", "set_recording", "conv_stats", "conv_kmap"]

IntOrSeq = Union[int, Sequence[int]]


def _bn(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)        # the authors' norm_fn


def _neuron(kind: str, max_spike: float) -> SpikingNeuron:
    if kind == "multispike":
        return MultiSpike(max_spike)
    if kind == "lif":
        return LIFNeuron(time_steps=int(max_spike))
    raise ValueError(f"E-3DSNN: neuron must be 'multispike' or 'lif', got {kind!r}")


# ----------------------------------------------------------------------------------------------- event-driven
def conv_kmap(conv: nn.Module, x: SparseTensor):
    """The kernel map ``conv`` uses on ``x`` (cached on the coordinate set) and a function that wraps
    ``[n_out, C_out]`` features into the output SparseTensor (same coords/stride as ``conv(x)``)."""
    if conv.subm:
        kmap = subm_kmap(x.coord_set, conv.kernel_size, conv.dilation)
        return kmap, (lambda f: x.replace(feats=f))
    if conv.inverse:
        kmap, parent, conv_stride = inverse_kmap(x.coord_set, conv.kernel_size, conv.indice_key)
        stride = tuple(s // c for s, c in zip(x.stride, conv_stride))
        return kmap, (lambda f: x.with_coords(f, parent, stride))
    kmap, out_cs = strided_kmap(x.coord_set, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                                conv.indice_key)
    stride = tuple(s * c for s, c in zip(x.stride, conv.stride))
    return kmap, (lambda f: x.with_coords(f, out_cs, stride))


def _pair_bounds(kmap) -> Tensor:
    """[K + 1] start of each offset's pairs in the map's pair arrays, then the total (cached on the map)."""
    b = getattr(kmap, "_e3d_bounds", None)
    if b is None:
        b = torch.tensor([0] + list(kmap.counts), device=kmap.in_idx.device).cumsum(0)
        kmap._e3d_bounds = b
    return b


@torch.no_grad()
def event_driven_conv(conv: nn.Module, s: SparseTensor, max_active: float = 1.0) -> SparseTensor:
    """``conv(s)`` computed from the active (non-zero) input sites only — inference, no autograd.

    ``out[o] = Σ_k Σ_{(i→o) ∈ map_k, s_i ≠ 0} s_i W_k (+ bias)``: pairs whose input site is silent are dropped
    before the gather, so the gather/GEMM/scatter work is proportional to the number of active sites.
    When more than ``max_active`` of the sites are active, filtering the pairs costs more than it saves, and
    the plain path (same result) runs instead.
    """
    feats = s.feats
    active = (feats != 0).any(dim=1)
    idx = active.nonzero().squeeze(1)
    if idx.numel() > max_active * feats.shape[0]:
        return conv(s)
    kmap, wrap = conv_kmap(conv, s)
    c_out, c_in = conv.out_channels, conv.in_channels
    w = conv.weight.reshape(c_out, -1, c_in).permute(1, 2, 0).to(feats.dtype).contiguous()   # [K, C_in, C_out]
    out = feats.new_zeros(kmap.n_out, c_out)
    if idx.numel():
        feats_a = feats.index_select(0, idx).contiguous()
        remap = torch.full((feats.shape[0],), -1, dtype=torch.long, device=feats.device)
        remap[idx] = torch.arange(idx.numel(), device=feats.device)
        if kmap.identity is not None:                      # SubM centre: the identity pairs of the active sites
            out.index_copy_(0, idx, feats_a @ w[kmap.identity])
        if kmap.in_idx.numel():
            pos = active.index_select(0, kmap.in_idx).nonzero().squeeze(1)      # pairs fed by an active site
            bounds = torch.searchsorted(pos, _pair_bounds(kmap))                 # pairs stay grouped by offset
            counts = (bounds[1:] - bounds[:-1]).tolist()
            gather_gemm_scatter(out, feats_a, w, remap.index_select(0, kmap.in_idx.index_select(0, pos)),
                                kmap.out_idx.index_select(0, pos), counts, kmap.identity)
    if conv.bias is not None:
        out += conv.bias.to(out.dtype)
    return wrap(out)


# ------------------------------------------------------------------------------------------------ SSC layers
class SpikeSparseConv(nn.Module):
    """Spike Sparse Convolution: ``spike → sparse conv → BN`` (the paper's SSC; the authors' layer order).

    Args:
        conv_type: ``"subm"`` (SubMConv3d), ``"spconv"`` (strided SparseConv3d) or ``"inverse"``.
        spike: put a spiking neuron before the conv (False: an encoding layer on real-valued input).
        norm: append BatchNorm1d(eps=1e-3, momentum=0.01).
        neuron: ``"multispike"`` (integer spikes 0…max_spike) or ``"lif"`` (T = max_spike steps).
    Attribute ``event_driven`` (off by default): in eval mode run :func:`event_driven_conv` (which falls back to
    the plain path when more than ``event_max_active`` of the input sites fire).
    When ``record`` is on, ``stats`` sums ``sops`` (Σ_i s_i·fan-out_i·C_out), ``macs`` (pairs·C_in·C_out, the
    equivalent ANN), ``pairs``, ``sites_in``, ``active_sites_in``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrSeq = 3, stride: IntOrSeq = 1,
                 padding: IntOrSeq = 0, conv_type: str = "subm", indice_key: Optional[str] = None,
                 spike: bool = True, norm: bool = True, bias: bool = False, neuron: str = "multispike",
                 max_spike: float = 4.0) -> None:
        super().__init__()
        self.spike = _neuron(neuron, max_spike) if spike else None
        if conv_type == "subm":
            self.conv = SubMConv3d(in_channels, out_channels, kernel_size, padding=padding, bias=bias,
                                   indice_key=indice_key)
        elif conv_type == "spconv":
            self.conv = SparseConv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                     bias=bias, indice_key=indice_key)
        elif conv_type == "inverse":
            self.conv = SparseInverseConv3d(in_channels, out_channels, kernel_size, indice_key=indice_key,
                                            bias=bias)
        else:
            raise ValueError(f"SpikeSparseConv: conv_type must be 'subm', 'spconv' or 'inverse', got {conv_type!r}")
        self.bn = _bn(out_channels) if norm else None
        self.event_driven = False
        self.event_max_active = 0.8       # above this active-site fraction the plain path is cheaper
        self.record = False
        self.reset_stats()

    def reset_stats(self) -> None:
        self.stats: Dict[str, float] = dict(sops=0.0, macs=0.0, pairs=0.0, sites_in=0.0, active_sites_in=0.0,
                                            calls=0.0)

    @torch.no_grad()
    def _record(self, s: SparseTensor) -> None:
        kmap, _ = conv_kmap(self.conv, s)
        n = s.feats.shape[0]
        fan = torch.bincount(kmap.in_idx, minlength=n).to(s.feats.dtype)
        if kmap.identity is not None:
            fan = fan + 1
        c_in, c_out = self.conv.in_channels, self.conv.out_channels
        st = self.stats
        if self.spike is not None:      # spikes: each unit of spike value is one accumulate per fan-out synapse
            st["sops"] += float((s.feats.sum(1) * fan).sum()) * c_out
        st["macs"] += float(kmap.num_pairs) * c_in * c_out
        st["pairs"] += float(kmap.num_pairs)
        st["sites_in"] += n
        st["active_sites_in"] += float((s.feats != 0).any(1).sum())
        st["calls"] += 1

    def forward(self, x: SparseTensor) -> SparseTensor:
        s = self.spike(x) if self.spike is not None else x
        if self.record:
            self._record(s)
        if self.event_driven and self.spike is not None and not self.training and not torch.is_grad_enabled():
            y = event_driven_conv(self.conv, s, self.event_max_active)
        else:
            y = self.conv(s)
        return y.replace(feats=self.bn(y.feats)) if self.bn is not None else y


class SpikeLinear(nn.Module):
    """``spike → Linear → BN`` on features (the point-wise fusion of the decoder)."""

    def __init__(self, in_features: int, out_features: int, neuron: str = "multispike",
                 max_spike: float = 4.0) -> None:
        super().__init__()
        self.spike = _neuron(neuron, max_spike)
        self.linear = nn.Linear(in_features, out_features)
        self.bn = _bn(out_features)
        self.record = False
        self.reset_stats()

    def reset_stats(self) -> None:
        self.stats = dict(sops=0.0, macs=0.0, pairs=0.0, sites_in=0.0, active_sites_in=0.0, calls=0.0)

    def forward(self, f: Tensor) -> Tensor:
        s = self.spike(f)
        if self.record:
            with torch.no_grad():
                n, o = s.shape[0], self.linear.out_features
                self.stats["sops"] += float(s.sum()) * o
                self.stats["macs"] += float(n) * self.linear.in_features * o
                self.stats["pairs"] += n
                self.stats["sites_in"] += n
                self.stats["active_sites_in"] += float((s != 0).any(1).sum())
                self.stats["calls"] += 1
        return self.bn(self.linear(s))


class SpikeResBlock(nn.Module):
    """The authors' residual SSC block: ``u1 = SSC(u) + u``; ``out = SSC(SSC(u1)) + u1`` (3 SubM 3³ convs)."""

    def __init__(self, channels: int, indice_key: Optional[str] = None, **neuron_kw) -> None:
        super().__init__()
        self.ssc1 = SpikeSparseConv(channels, channels, 3, padding=1, indice_key=indice_key, **neuron_kw)
        self.ssc2 = SpikeSparseConv(channels, channels, 3, padding=1, indice_key=indice_key, **neuron_kw)
        self.ssc3 = SpikeSparseConv(channels, channels, 3, padding=1, indice_key=indice_key, **neuron_kw)

    def forward(self, x: SparseTensor) -> SparseTensor:
        u1 = x.replace(feats=self.ssc1(x).feats + x.feats)
        return u1.replace(feats=self.ssc3(self.ssc2(u1)).feats + u1.feats)


class SpikeDownBlock(nn.Module):
    """k2s2 down-sampling SSC followed by ``depth`` residual SSC blocks."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, indice_key: Optional[str] = None,
                 **neuron_kw) -> None:
        super().__init__()
        self.down = SpikeSparseConv(in_channels, out_channels, 2, stride=2, conv_type="spconv",
                                    indice_key=indice_key, **neuron_kw)
        self.blocks = nn.ModuleList([SpikeResBlock(out_channels, **neuron_kw) for _ in range(depth)])

    def forward(self, x: SparseTensor) -> SparseTensor:
        x = self.down(x)
        for blk in self.blocks:
            x = blk(x)
        return x


class SpikeUpBlock(nn.Module):
    """Inverse k2 SSC back to the skip's sites, then ``x + fuse([x, skip])`` with
    ``fuse = SpikeLinear → SpikeLinear`` (the authors' UpBlock)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, indice_key: str,
                 **neuron_kw) -> None:
        super().__init__()
        self.up = SpikeSparseConv(in_channels, out_channels, 2, conv_type="inverse", indice_key=indice_key,
                                  **neuron_kw)
        self.fuse1 = SpikeLinear(skip_channels + out_channels, out_channels, **neuron_kw)
        self.fuse2 = SpikeLinear(out_channels, out_channels, **neuron_kw)

    def forward(self, x: SparseTensor, skip: SparseTensor) -> SparseTensor:
        x = self.up(x)
        f = self.fuse2(self.fuse1(torch.cat([x.feats, skip.feats], dim=1)))
        return x.replace(feats=f + x.feats)


# ------------------------------------------------------------------------------------------------ SVC + stem
class SpikeVoxelCoding(PointVoxelInput, nn.Module):
    """Spike Voxel Coding: points ``[N, F]`` (list, one per sample) → voxels (mean features) → stem.

    Stem (the authors'): ``SubM3³(F→C) → BN`` (encoding of the real-valued voxel features), then two SSCs
    ``spike → SubM3³(C→C) → BN``. ``voxel_size``/``point_range`` in x, y, z order. ``forward`` returns
    (SparseTensor of membrane potentials [M, C], point2voxel [N_total]).
    """

    def __init__(self, in_channels: int, channels: int, voxel_size: Sequence[float],
                 point_range: Sequence[float], num_spike_layers: int = 2, **neuron_kw) -> None:
        super().__init__()
        self.voxel_size, self.point_range = tuple(voxel_size), tuple(point_range)
        self.encode = SpikeSparseConv(in_channels, channels, 3, padding=1, spike=False, indice_key="stem")
        self.layers = nn.ModuleList([SpikeSparseConv(channels, channels, 3, padding=1, indice_key="stem",
                                                     **neuron_kw) for _ in range(num_spike_layers)])

    def forward(self, points: Union[Tensor, List[Tensor], SparseTensor]):
        x, p2v = self.input_voxels(points)
        x = self.encode(x)
        for layer in self.layers:
            x = layer(x)
        return x, p2v


# ------------------------------------------------------------------------------------------------ networks
@MODELS.register_module()
class E3DSNN(nn.Module):
    """E-3DSNN classification network (the authors' ``SNN_3dv``).

    stem (SVC) → for each stage: k2s2 down-SSC + ``depth`` residual blocks → ``SubM 1×1 (C→num_classes)``
    on the real-valued membrane potential → mean over each sample's voxels → logits ``[B, num_classes]``.
    E3DSNN-T: ``embed_channels=16, enc_channels=(16, 32, 64, 128), enc_depth=(1, 1, 1, 1)``;
    E3DSNN-S: ``24, (24, 48, 96, 160)``. ``num_classes=0`` returns the pooled features instead.
    """

    def __init__(self, in_channels: int = 6, num_classes: int = 40, embed_channels: int = 16,
                 enc_channels: Sequence[int] = (16, 32, 64, 128), enc_depth: Sequence[int] = (1, 1, 1, 1),
                 voxel_size: Sequence[float] = (0.01, 0.01, 0.01),
                 point_range: Sequence[float] = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5),
                 neuron: str = "multispike", max_spike: float = 4.0) -> None:
        super().__init__()
        if len(enc_channels) != len(enc_depth):
            raise ValueError(f"E3DSNN: enc_channels {list(enc_channels)} and enc_depth {list(enc_depth)} differ in length")
        kw = dict(neuron=neuron, max_spike=max_spike)
        self.svc = SpikeVoxelCoding(in_channels, embed_channels, voxel_size, point_range, **kw)
        chans = [embed_channels] + list(enc_channels)
        self.enc = nn.ModuleList([SpikeDownBlock(chans[i], chans[i + 1], enc_depth[i], indice_key=f"spconv{i}", **kw)
                                  for i in range(len(enc_channels))])
        self.num_classes = num_classes
        self.final = SubMConv3d(chans[-1], num_classes, 1, bias=True) if num_classes > 0 else None
        self.apply(_init_weights)

    def forward_features(self, points) -> SparseTensor:
        x, _ = self.svc(points)
        for stage in self.enc:
            x = stage(x)
        return x

    def forward(self, points) -> Tensor:
        """points: list of ``[N_b, in_channels]`` (or a voxelized SparseTensor) → ``[B, num_classes]``."""
        x = self.forward_features(points)
        if self.final is not None:
            x = self.final(x)
        return _mean_per_sample(x)


def _mean_per_sample(x: SparseTensor) -> Tensor:
    b = x.coords[:, 0].long()
    out = x.feats.new_zeros(x.batch_size, x.feats.shape[1]).index_add_(0, b, x.feats)
    cnt = torch.bincount(b, minlength=x.batch_size).clamp(min=1).to(out.dtype)
    return out / cnt[:, None]


@MODELS.register_module()
class E3DSNNUNet(nn.Module):
    """E-3DSNN segmentation U-Net (the authors' ``E_3DSNN_seg``): encoder as :class:`E3DSNN`, decoder of
    :class:`SpikeUpBlock` (inverse k2 convs through the encoder's kernel maps), final SubM 1×1 to the classes.

    ``forward(points)`` → (per-voxel logits SparseTensor at stride 1, point2voxel).
    Base config (SemanticKITTI): in 4, embed 64, enc (64, 128, 128, 256) × (2, 2, 2, 2), dec 256 × 4.
    """

    def __init__(self, in_channels: int = 4, num_classes: int = 19, embed_channels: int = 64,
                 enc_channels: Sequence[int] = (64, 128, 128, 256), enc_depth: Sequence[int] = (2, 2, 2, 2),
                 dec_channels: Sequence[int] = (256, 256, 256, 256),
                 voxel_size: Sequence[float] = (0.05, 0.05, 0.05),
                 point_range: Sequence[float] = (-35.2, -35.2, -4.0, 35.2, 35.2, 2.0),
                 neuron: str = "multispike", max_spike: float = 4.0) -> None:
        super().__init__()
        n = len(enc_channels)
        if len(enc_depth) != n or len(dec_channels) != n:
            raise ValueError("E3DSNNUNet: enc_channels, enc_depth and dec_channels must have the same length")
        kw = dict(neuron=neuron, max_spike=max_spike)
        self.svc = SpikeVoxelCoding(in_channels, embed_channels, voxel_size, point_range, **kw)
        chans = [embed_channels] + list(enc_channels)
        self.enc = nn.ModuleList([SpikeDownBlock(chans[i], chans[i + 1], enc_depth[i], indice_key=f"spconv{i}", **kw)
                                  for i in range(n)])
        self.dec = nn.ModuleList([SpikeUpBlock(enc_channels[-1] if i == n - 1 else dec_channels[i + 1], chans[i],
                                               dec_channels[i], indice_key=f"spconv{i}", **kw) for i in range(n)])
        self.final = SubMConv3d(dec_channels[0], num_classes, 1, bias=True)
        self.apply(_init_weights)

    def forward(self, points) -> Tuple[SparseTensor, Optional[Tensor]]:
        x, p2v = self.svc(points)
        skips = [x]
        for stage in self.enc:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(len(self.dec))):
            x = self.dec[i](x, skips.pop())
        return self.final(x), p2v


@MODELS.register_module()
class SpikingVoxelBackBone8x(nn.Module):
    """Spiking ``VoxelBackBone8x`` (OpenPCDet layout, every block an SSC ``spike → conv → BN``).

    This package's design, not the paper's detector: the paper's KITTI detection figures come from the
    authors' own network, which is not reproduced here. This backbone applies the paper's SSC block and
    residual rule to OpenPCDet's ``VoxelBackBone8x`` layer layout so that a spiking backbone can be tried in
    ``CenterPoint``; its accuracy and energy are this package's measurements, not the paper's figures.

    conv_input: SubM3³ → C (encoding, real-valued input) · conv1: SSC SubM(C) · conv2: SSC SparseConv3³/2 → 2C,
    2 × SSC SubM · conv3: → 4C, 2 × SubM · conv4: SparseConv3³/2 (z padding 0) → 4C, 2 × SubM ·
    conv_out: SSC SparseConv (3, 1, 1)/(2, 1, 1) → out_channels. With ``residual=True`` the SubM SSCs of a
    stage add their input (E-3DSNN's residual-before-spike rule). ``z_pad_one`` adds OpenPCDet's extra empty z
    level (Z = 40 → 2 output levels, so ``HeightCompression`` gives out_channels × 2 BEV channels).

    Same contract as ``VoxelResBackBone8x``: SparseTensor (b, z, y, x) in, SparseTensor at stride (16, 8, 8) out,
    ``num_out_features``; the multi-scale features of the last call are kept in ``multi_scale_3d_features``
    (``x_conv1`` … ``x_conv4``) and returned as a second value when ``return_multiscale=True``.
    """

    def __init__(self, in_channels: int, base_channels: int = 16, out_channels: int = 128, last_pad: int = 0,
                 residual: bool = True, return_multiscale: bool = False, z_pad_one: bool = True,
                 neuron: str = "multispike", max_spike: float = 4.0) -> None:
        super().__init__()
        self.z_pad_one = z_pad_one
        kw = dict(neuron=neuron, max_spike=max_spike)
        c = [base_channels, base_channels * 2, base_channels * 4, base_channels * 4]
        self.residual, self.return_multiscale = residual, return_multiscale
        self.conv_input = SpikeSparseConv(in_channels, c[0], 3, padding=1, spike=False, indice_key="subm1")
        subm = lambda ch, key: SpikeSparseConv(ch, ch, 3, padding=1, indice_key=key, **kw)
        down = lambda ci, co, pad, key: SpikeSparseConv(ci, co, 3, stride=2, padding=pad, conv_type="spconv",
                                                        indice_key=key, **kw)
        self.conv1 = nn.ModuleList([subm(c[0], "subm1")])
        self.conv2 = nn.ModuleList([down(c[0], c[1], 1, "spconv2"), subm(c[1], "subm2"), subm(c[1], "subm2")])
        self.conv3 = nn.ModuleList([down(c[1], c[2], 1, "spconv3"), subm(c[2], "subm3"), subm(c[2], "subm3")])
        self.conv4 = nn.ModuleList([down(c[2], c[3], (0, 1, 1), "spconv4"), subm(c[3], "subm4"),
                                    subm(c[3], "subm4")])
        self.conv_out = SpikeSparseConv(c[3], out_channels, (3, 1, 1), stride=(2, 1, 1), padding=last_pad,
                                        conv_type="spconv", indice_key="spconv_down2", **kw)
        self.num_out_features = out_channels
        self.multi_scale_3d_features: Dict[str, SparseTensor] = {}
        self.apply(_init_weights)

    def _stage(self, layers: nn.ModuleList, x: SparseTensor) -> SparseTensor:
        for layer in layers:
            y = layer(x)
            x = y.replace(feats=y.feats + x.feats) if (self.residual and layer.conv.subm
                                                     and y.feats.shape == x.feats.shape) else y
        return x

    def forward(self, x: SparseTensor):
        if self.z_pad_one:     # OpenPCDet: sparse_shape = grid_size[::-1] + [1, 0, 0] (one extra empty z level)
            x = pad_z_one(x)
        x = self.conv_input(x)
        feats = {}
        for name in ("conv1", "conv2", "conv3", "conv4"):
            x = self._stage(getattr(self, name), x)
            feats[f"x_{name}"] = x
        out = self.conv_out(x)
        self.multi_scale_3d_features = feats
        return (out, feats) if self.return_multiscale else out


def _init_weights(m: nn.Module) -> None:
    """The authors' init: trunc-normal(0.02) SubM and Linear weights, zero biases, BN (1, 0)."""
    if isinstance(m, (nn.Linear, SubMConv3d)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm1d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------------------------ switches
def set_event_driven(model: nn.Module, on: bool = True, max_active: Optional[float] = None) -> None:
    """Turn the event-driven inference path of every SSC in ``model`` on or off (optionally set the
    active-site fraction above which an SSC uses the plain path)."""
    for m in model.modules():
        if isinstance(m, SpikeSparseConv):
            m.event_driven = on
            if max_active is not None:
                m.event_max_active = max_active


def set_recording(model: nn.Module, on: bool = True) -> None:
    """Record firing (neurons) and SOPs/MACs (SSC and spiking linear layers); counters are zeroed."""
    for m in model.modules():
        if isinstance(m, (SpikingNeuron, SpikeSparseConv, SpikeLinear)):
            m.record = on
            m.reset_stats()


def conv_stats(model: nn.Module) -> Dict[str, Dict[str, float]]:
    """Per-layer ``{sops, macs, pairs, sites_in, active_sites_in, calls, spiking}`` of SSC / SpikeLinear layers."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, (SpikeSparseConv, SpikeLinear)):
            st = dict(m.stats)
            st["spiking"] = float(getattr(m, "spike", None) is not None)
            out[name] = st
    return out
