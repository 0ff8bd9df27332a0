"""Depth Anything (Yang et al., CVPR 2024; v2: NeurIPS 2024) as a monocular depth prior, run from a LOCAL
checkpoint of the authors' released weights (``depth_anything_vits14.pth`` for v1,
``depth_anything_v2_vit{s,b,l}.pth`` for v2; nothing is downloaded).

The network is written here from the papers and the authors' code, with the parameter names of their checkpoints
so that ``load_state_dict`` takes the file as released:

* **encoder** ``pretrained.*`` — DINOv2 (Oquab et al., 2023): a ViT with 14 × 14 patches, a class token, learned
  position embeddings for a 37 × 37 grid (518 px) resized bicubically to the input's grid, and pre-norm blocks
  ``x + γ₁ · Attn(LN(x))``, ``x + γ₂ · MLP(LN(x))`` with LayerScale γ;
* **decoder** ``depth_head.*`` — DPT (Ranftl et al., ICCV 2021): the patch tokens of four blocks (v1: the last
  four; v2: blocks 2, 5, 8, 11 of ViT-S/B and 4, 11, 17, 23 of ViT-L) are *reassembled* into maps at 1/4, 1/8,
  1/16 and 1/32 of the image (1 × 1 projection, then 4× / 2× transposed convolution, identity, stride-2
  convolution), projected to ``features`` channels and *fused* coarse to fine by residual convolution units
  with 2× bilinear upsampling; the head upsamples to the input size and outputs one non-negative channel, the
  affine-invariant inverse depth (disparity).

Sizes (encoder: embed dim, blocks, heads; head: ``features``, reassemble channels; parameters as the authors'
README gives them): ViT-S 384 / 12 / 6, 64, (48, 96, 192, 384), 24.8 M; ViT-B 768 / 12 / 12, 128,
(96, 192, 384, 768), 97.5 M; ViT-L 1024 / 24 / 16, 256, (256, 512, 1024, 1024), 335.3 M.

As a :class:`~.base.DepthPrior` (``type="depth_anything"``) it returns, as CoherentGS's data preparation does,
the relative depth ``1 / (disparity / max + 0.2)``; it is affine-invariant (``metric = False``), so the trainers
align it to features triangulated with the known cameras before use.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import DepthMap, DepthPrior

__all__ = ["ENCODERS", "DepthAnythingNet", "DepthAnythingDepth", "encoder_of"]

# encoder → (embed dim, blocks, heads, DPT features, reassemble channels)
ENCODERS = {
    "vits": (384, 12, 6, 64, (48, 96, 192, 384)),
    "vitb": (768, 12, 12, 128, (96, 192, 384, 768)),
    "vitl": (1024, 24, 16, 256, (256, 512, 1024, 1024)),
}
# the blocks whose tokens the DPT head reads: v2 (dpt.py's intermediate_layer_idx), v1 the last four
_V2_BLOCKS = {"vits": (2, 5, 8, 11), "vitb": (2, 5, 8, 11), "vitl": (4, 11, 17, 23)}
PATCH, BASE_GRID = 14, 37  # 518 / 14
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def encoder_of(state_dict: dict) -> str:
    """The encoder size of a Depth Anything state dict, from its embedding width."""
    if "pretrained.cls_token" not in state_dict:
        raise ValueError("Depth Anything: the checkpoint has no 'pretrained.cls_token' (not a DINOv2 encoder)")
    dim = int(state_dict["pretrained.cls_token"].shape[-1])
    for name, spec in ENCODERS.items():
        if spec[0] == dim:
            return name
    raise ValueError(f"Depth Anything: no ViT-S/B/L encoder has embedding width {dim}")


# -- DINOv2 encoder ---------------------------------------------------------------------------------------------
class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class _Block(nn.Module):
    """Pre-norm transformer block with LayerScale: x + γ₁ Attn(LN(x)), then x + γ₂ MLP(LN(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = _Attention(dim, heads), _Mlp(dim, 4 * dim)
        self.ls1, self.ls2 = _LayerScale(dim), _LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH, PATCH)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _DINOv2(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int):
        super().__init__()
        self.patch_embed = _PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, BASE_GRID * BASE_GRID + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused at inference, part of the checkpoint
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def position_embedding(self, rows: int, cols: int) -> Tensor:
        """The 37 × 37 grid's embeddings resized to rows × cols patches (bicubic; DINOv2 scales by
        (n + 0.1) / 37 so that floating-point rounding cannot lose a row)."""
        pos = self.pos_embed.float()
        if rows == cols == BASE_GRID:
            return pos
        grid = pos[:, 1:].reshape(1, BASE_GRID, BASE_GRID, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((rows + 0.1) / BASE_GRID, (cols + 0.1) / BASE_GRID),
                             mode="bicubic", antialias=False)
        if tuple(grid.shape[-2:]) != (rows, cols):
            raise RuntimeError(f"Depth Anything: position embeddings resized to {tuple(grid.shape[-2:])}, "
                               f"expected {(rows, cols)}")
        return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)], 1)

    def intermediate(self, x: Tensor, blocks: Sequence[int]) -> list[Tensor]:
        """The final-norm'd patch tokens [B, rows·cols, D] after each block in ``blocks``."""
        B, _, H, W = x.shape
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(B, -1, -1), t], 1)
        t = t + self.position_embedding(H // PATCH, W // PATCH).to(t.dtype)
        out = []
        for k, blk in enumerate(self.blocks):
            t = blk(t)
            if k in blocks:
                out.append(self.norm(t)[:, 1:])
        return out


# -- DPT decoder ------------------------------------------------------------------------------------------------
class _ResidualConvUnit(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(ch, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class _FusionBlock(nn.Module):
    """DPT fusion: (coarser path + RCU(skip)) → RCU → bilinear resize (align_corners) → 1 × 1 conv."""

    def __init__(self, ch: int):
        super().__init__()
        self.resConfUnit1, self.resConfUnit2 = _ResidualConvUnit(ch), _ResidualConvUnit(ch)
        self.out_conv = nn.Conv2d(ch, ch, 1)

    def forward(self, path: Tensor, skip: Optional[Tensor] = None, size=None) -> Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        kw = {"size": tuple(size)} if size is not None else {"scale_factor": 2}
        return self.out_conv(F.interpolate(path, **kw, mode="bilinear", align_corners=True))


class _DPTHead(nn.Module):
    def __init__(self, dim: int, features: int, channels: Sequence[int]):
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(dim, c, 1) for c in channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(channels[0], channels[0], 4, 4),   # 1/14 → ~1/4 of the image
            nn.ConvTranspose2d(channels[1], channels[1], 2, 2),   # → ~1/8
            nn.Identity(),                                         # 1/14
            nn.Conv2d(channels[3], channels[3], 3, 2, 1),         # → ~1/28
        ])
        s = nn.Module()
        for k, c in enumerate(channels, 1):
            setattr(s, f"layer{k}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        for k in range(1, 5):
            setattr(s, f"refinenet{k}", _FusionBlock(features))
        s.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        s.output_conv2 = nn.Sequential(nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(),
                                       nn.Conv2d(32, 1, 1), nn.ReLU(), nn.Identity())
        self.scratch = s

    def forward(self, tokens: list[Tensor], rows: int, cols: int) -> Tensor:
        s = self.scratch
        maps = []
        for k, t in enumerate(tokens):  # reassemble: tokens → image-like maps at four scales
            x = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], rows, cols)
            maps.append(getattr(s, f"layer{k + 1}_rn")(self.resize_layers[k](self.projects[k](x))))
        l1, l2, l3, l4 = maps
        p = s.refinenet4(l4, size=l3.shape[2:])
        p = s.refinenet3(p, l3, size=l2.shape[2:])
        p = s.refinenet2(p, l2, size=l1.shape[2:])
        p = s.refinenet1(p, l1)
        p = F.interpolate(s.output_conv1(p), (rows * PATCH, cols * PATCH), mode="bilinear", align_corners=True)
        return s.output_conv2(p)


class DepthAnythingNet(nn.Module):
    """Depth Anything v1 / v2 (module doc): images [B, 3, H, W], ImageNet-normalised, H and W multiples of 14 →
    affine-invariant inverse depth [B, H, W] (≥ 0)."""

    def __init__(self, encoder: str = "vits", version: int = 2):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"Depth Anything: encoder must be one of {sorted(ENCODERS)}, got {encoder!r}")
        if version not in (1, 2):
            raise ValueError(f"Depth Anything: version must be 1 or 2, got {version!r}")
        dim, depth, heads, features, channels = ENCODERS[encoder]
        self.encoder, self.version = encoder, version
        self.blocks_read = _V2_BLOCKS[encoder] if version == 2 else tuple(range(depth - 4, depth))
        self.pretrained = _DINOv2(dim, depth, heads)
        self.depth_head = _DPTHead(dim, features, channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % PATCH or x.shape[-2] % PATCH:
            raise ValueError(f"Depth Anything: image size {tuple(x.shape[-2:])} is not a multiple of {PATCH}")
        rows, cols = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        tokens = self.pretrained.intermediate(x, self.blocks_read)
        return F.relu(self.depth_head(tokens, rows, cols)).squeeze(1)


def network_size(h: int, w: int, short_side: int = 518) -> tuple[int, int]:
    """The authors' input size: scaled (aspect kept) so that both sides are at least ``short_side``, each
    rounded to a multiple of 14 (up when rounding would go below ``short_side``)."""
    scale = max(short_side / h, short_side / w)

    def fit(x: float) -> int:
        y = round(x / PATCH) * PATCH
        return int(math.ceil(x / PATCH) * PATCH) if y < short_side else int(y)

    return fit(scale * h), fit(scale * w)


class DepthAnythingDepth(DepthPrior):
    """The Depth Anything prior (``type="depth_anything"``, ``checkpoint=PATH``, optional ``version`` 1 / 2
    and ``input_size``): a :class:`DepthAnythingNet` with the checkpoint's weights (module doc)."""

    name = "depth_anything"
    metric = False

    def __init__(self, state_dict: dict, path: str = "", version: int = 2, input_size: int = 518):
        enc = encoder_of(state_dict)
        self.net = DepthAnythingNet(enc, int(version)).eval()
        missing, unexpected = self.net.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: not a Depth Anything {enc} checkpoint as released — missing "
                             f"{sorted(missing)[:4]}{'…' if len(missing) > 4 else ''}, unexpected "
                             f"{sorted(unexpected)[:4]}{'…' if len(unexpected) > 4 else ''}")
        self.path, self.input_size = str(path), int(input_size)

    def describe(self) -> dict:
        return {"type": self.name, "metric": False, "encoder": self.net.encoder, "version": self.net.version,
                "input_size": self.input_size, "weights": self.path}

    @torch.no_grad()
    def disparity(self, image: Tensor) -> Tensor:
        """[H, W, 3] RGB in [0, 1] → the network's inverse depth [H, W] at the image's size (authors'
        ``infer_image``: bicubic resize, ImageNet normalisation, bilinear back)."""
        import cv2
        import numpy as np

        H, W = image.shape[:2]
        nh, nw = network_size(H, W, self.input_size)
        x = cv2.resize(image.float().numpy().astype(np.float32), (nw, nh), interpolation=cv2.INTER_CUBIC)
        x = (torch.from_numpy(x) - torch.tensor(_MEAN)) / torch.tensor(_STD)
        d = self.net(x.permute(2, 0, 1)[None].float())
        return F.interpolate(d[:, None], (H, W), mode="bilinear", align_corners=True)[0, 0]

    def estimate(self, scene, i: int, ids: Optional[Sequence[int]] = None) -> DepthMap:
        disp = self.disparity(scene.image(i)).clamp_min(0)
        depth = 1.0 / (disp / disp.max().clamp_min(1e-8) + 0.2)  # CoherentGS's data preparation
        return DepthMap(depth.float(), None, False, f"depth_anything_v{self.net.version}_{self.net.encoder}")
