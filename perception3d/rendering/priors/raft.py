"""RAFT (Teed & Deng, "RAFT: Recurrent All-Pairs Field Transforms for Optical Flow", ECCV 2020) as an optical-flow
prior, run from a LOCAL checkpoint of the authors' released weights (``raft-things.pth``, ``raft-sintel.pth``,
``raft-kitti.pth``, ``raft-chairs.pth``; nothing is downloaded).

Written here from the paper and the authors' code, with the parameter names of their checkpoints:

* **feature encoder** ``fnet`` (instance norm) and **context encoder** ``cnet`` (batch norm): a 7 × 7 stride-2
  convolution and three stages of two residual blocks (64, 96, 128 channels; strides 1, 2, 2), then a 1 × 1
  convolution, at 1/8 of the image (§3.1);
* **4D correlation volume** of all pairs of 1/8-resolution features, ⟨g(I₁), g(I₂)⟩ / √D, average-pooled into a
  4-level pyramid (Eq. 1–2), and the **lookup** of a (2r + 1)² window (r = 4) around the current
  correspondence at each level (§3.2; the window is read in the authors' order, rows of dy × columns of dx added
  to (x, y));
* **update operator**: a motion encoder of the correlation features and the flow, a separable ConvGRU (1 × 5 then
  5 × 1) whose hidden state starts at tanh of half the context features, a flow head giving Δf, and the mask head
  for the **convex upsampling** of the 1/8 flow to full resolution (§3.3), iterated ``iters`` times.

Input sides are padded to multiples of 8 by edge replication (the authors' ``InputPadder``) and the flow is cropped
back. Only the full-size model is built; a ``raft-small.pth`` checkpoint is refused by name.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import FlowPrior, ImageLike

__all__ = ["RAFTNet", "RAFTFlow"]

HIDDEN, CONTEXT, LEVELS, RADIUS = 128, 128, 4, 4


def _norm(kind: str, ch: int) -> nn.Module:
    return nn.BatchNorm2d(ch) if kind == "batch" else nn.InstanceNorm2d(ch)


class _ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm1, self.norm2 = _norm(norm, cout), _norm(norm, cout)
        self.downsample = None
        if stride != 1:  # the checkpoints hold this norm under both names
            self.norm3 = _norm(norm, cout)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride), self.norm3)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x))))))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class _Encoder(nn.Module):
    """7 × 7 / 2 convolution, residual stages of 64 / 96 / 128 channels (strides 1, 2, 2), 1 × 1 output."""

    def __init__(self, out: int, norm: str):
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(3, 64, 7, 2, 3), _norm(norm, 64)
        stages, cin = [], 64
        for ch, stride in ((64, 1), (96, 2), (128, 2)):
            stages.append(nn.Sequential(_ResidualBlock(cin, ch, norm, stride), _ResidualBlock(ch, ch, norm)))
            cin = ch
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = nn.Conv2d(128, out, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class _MotionEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        planes = LEVELS * (2 * RADIUS + 1) ** 2
        self.convc1, self.convc2 = nn.Conv2d(planes, 256, 1), nn.Conv2d(256, 192, 3, padding=1)
        self.convf1, self.convf2 = nn.Conv2d(2, 128, 7, padding=3), nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow: Tensor, corr: Tensor) -> Tensor:
        c = F.relu(self.convc2(F.relu(self.convc1(corr))))
        f = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat([F.relu(self.conv(torch.cat([c, f], 1))), flow], 1)


class _SepConvGRU(nn.Module):
    """ConvGRU run twice, with 1 × 5 then 5 × 1 kernels."""

    def __init__(self, hidden: int, inp: int):
        super().__init__()
        for k, (ks, pad) in ((1, ((1, 5), (0, 2))), (2, ((5, 1), (2, 0)))):
            for gate in "zrq":
                setattr(self, f"conv{gate}{k}", nn.Conv2d(hidden + inp, hidden, ks, padding=pad))

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        for k in (1, 2):
            hx = torch.cat([h, x], 1)
            z = torch.sigmoid(getattr(self, f"convz{k}")(hx))
            r = torch.sigmoid(getattr(self, f"convr{k}")(hx))
            q = torch.tanh(getattr(self, f"convq{k}")(torch.cat([r * h, x], 1)))
            h = (1 - z) * h + z * q
        return h


class _FlowHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(HIDDEN, 256, 3, padding=1), nn.Conv2d(256, 2, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class _UpdateBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = _MotionEncoder()
        self.gru = _SepConvGRU(HIDDEN, 128 + HIDDEN)
        self.flow_head = _FlowHead()
        self.mask = nn.Sequential(nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(), nn.Conv2d(256, 64 * 9, 1))

    def forward(self, net: Tensor, inp: Tensor, corr: Tensor, flow: Tensor):
        net = self.gru(net, torch.cat([inp, self.encoder(flow, corr)], 1))
        return net, 0.25 * self.mask(net), self.flow_head(net)


def _pixel_grid(n: int, h: int, w: int, device) -> Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([xs, ys], 0).float()[None].repeat(n, 1, 1, 1)  # [N, 2 (x, y), h, w]


class _CorrPyramid:
    """All-pairs correlation of two feature maps, pooled into LEVELS levels (Eq. 1–2), and its lookup."""

    def __init__(self, f1: Tensor, f2: Tensor):
        n, d, h, w = f1.shape
        corr = torch.matmul(f1.reshape(n, d, h * w).transpose(1, 2), f2.reshape(n, d, h * w)) / d ** 0.5
        corr = corr.reshape(n * h * w, 1, h, w)
        self.levels = [corr]
        for _ in range(LEVELS - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.levels.append(corr)

    def __call__(self, coords: Tensor) -> Tensor:
        n, _, h, w = coords.shape
        r = torch.linspace(-RADIUS, RADIUS, 2 * RADIUS + 1, device=coords.device)
        window = torch.stack(torch.meshgrid(r, r, indexing="ij"), -1).view(1, 2 * RADIUS + 1, 2 * RADIUS + 1, 2)
        centre = coords.permute(0, 2, 3, 1).reshape(n * h * w, 1, 1, 2)
        out = []
        for k, corr in enumerate(self.levels):
            xy = centre / 2 ** k + window
            H, W = corr.shape[-2:]
            grid = torch.cat([2 * xy[..., :1] / (W - 1) - 1, 2 * xy[..., 1:] / (H - 1) - 1], -1)
            out.append(F.grid_sample(corr, grid, align_corners=True).view(n, h, w, -1))
        return torch.cat(out, -1).permute(0, 3, 1, 2).contiguous()


class RAFTNet(nn.Module):
    """RAFT (module doc): two images [N, 3, H, W] in 0…255, H and W multiples of 8 → the flow [N, 2, H, W]
    from the first to the second after ``iters`` updates (``flow_init``: [N, 2, H/8, W/8] to start from)."""

    def __init__(self):
        super().__init__()
        self.fnet = _Encoder(256, "instance")
        self.cnet = _Encoder(HIDDEN + CONTEXT, "batch")
        self.update_block = _UpdateBlock()

    @staticmethod
    def upsample(flow: Tensor, mask: Tensor) -> Tensor:
        """Convex upsampling (§3.3): each full-resolution flow is a softmax-weighted combination of the 3 × 3
        coarse neighbours' flows (× 8)."""
        n, _, h, w = flow.shape
        mask = torch.softmax(mask.view(n, 1, 9, 8, 8, h, w), dim=2)
        up = F.unfold(8 * flow, [3, 3], padding=1).view(n, 2, 9, 1, 1, h, w)
        return (mask * up).sum(2).permute(0, 1, 4, 2, 5, 3).reshape(n, 2, 8 * h, 8 * w)

    def forward(self, image1: Tensor, image2: Tensor, iters: int = 12, flow_init: Optional[Tensor] = None) -> Tensor:
        if image1.shape[-2] % 8 or image1.shape[-1] % 8:
            raise ValueError(f"RAFT: image size {tuple(image1.shape[-2:])} is not a multiple of 8")
        if min(image1.shape[-2:]) < 128:  # the coarsest correlation level (1/64) needs 2 cells a side
            raise ValueError(f"RAFT: image size {tuple(image1.shape[-2:])} is below 128 px a side")
        x1, x2 = 2 * (image1 / 255.0) - 1, 2 * (image2 / 255.0) - 1
        f1, f2 = self.fnet(torch.cat([x1, x2], 0)).float().chunk(2, 0)
        corr = _CorrPyramid(f1, f2)
        net, inp = self.cnet(x1).split([HIDDEN, CONTEXT], 1)
        net, inp = torch.tanh(net), torch.relu(inp)
        n, _, h, w = f1.shape
        coords0 = _pixel_grid(n, h, w, x1.device)
        coords1 = coords0.clone() if flow_init is None else coords0 + flow_init
        up = None
        for _ in range(int(iters)):
            coords1 = coords1.detach()
            net, mask, delta = self.update_block(net, inp, corr(coords1), coords1 - coords0)
            coords1 = coords1 + delta
            up = self.upsample(coords1 - coords0, mask)
        return up


def _rgb255(image: ImageLike, what: str) -> Tensor:
    a = image.detach().cpu() if isinstance(image, Tensor) else torch.from_numpy(np.asarray(image))
    if a.dim() == 2:
        a = a[..., None].expand(*a.shape, 3)
    if a.dim() != 3 or a.shape[-1] not in (3, 4):
        raise ValueError(f"RAFT: {what} must be [H, W, 3], got {tuple(a.shape)}")
    a = a[..., :3].float()
    return a if image.dtype in (torch.uint8, np.uint8) else a * 255.0


class RAFTFlow(FlowPrior):
    """The RAFT prior (``type="raft"``, ``checkpoint=PATH``, optional ``iters``, default 24 as the authors'
    Sintel / KITTI evaluation): a :class:`RAFTNet` with the checkpoint's weights, in eval mode."""

    name = "raft"

    def __init__(self, state_dict: dict, path: str = "", iters: int = 24):
        if any(k.startswith("fnet.conv2") and v.shape[0] == 128 for k, v in state_dict.items()):
            raise ValueError(f"{path}: a RAFT-small checkpoint; only the full RAFT model is built")
        self.net = RAFTNet().eval()
        missing, unexpected = self.net.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: not a RAFT checkpoint as released — missing {sorted(missing)[:4]}, "
                             f"unexpected {sorted(unexpected)[:4]}")
        if int(iters) < 1:
            raise ValueError(f"RAFT: iters must be >= 1, got {iters}")
        self.path, self.iters = str(path), int(iters)

    def describe(self) -> dict:
        return {"type": self.name, "iters": self.iters, "weights": self.path}

    @torch.no_grad()
    def flow(self, image0: ImageLike, image1: ImageLike) -> Tensor:
        a, b = _rgb255(image0, "image0"), _rgb255(image1, "image1")
        if a.shape != b.shape:
            raise ValueError(f"RAFT: images differ in size: {tuple(a.shape)} vs {tuple(b.shape)}")
        H, W = a.shape[:2]
        ph, pw = (-H) % 8, (-W) % 8
        pad = [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]  # the authors' InputPadder (Sintel mode)
        x = [F.pad(t.permute(2, 0, 1)[None], pad, mode="replicate") for t in (a, b)]
        f = self.net(x[0], x[1], iters=self.iters)[0]
        return f[:, pad[2]:pad[2] + H, pad[0]:pad[0] + W].permute(1, 2, 0).contiguous()
