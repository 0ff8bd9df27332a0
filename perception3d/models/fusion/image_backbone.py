"""SparseFusion's camera feature extractor: an in-house ResNet-18/50 (He et al., CVPR 2016) + FPN (Lin et al.,
CVPR 2017), built from scratch in torchvision's parameter layout.

* :class:`ImageResNet`: ``conv1`` 7×7/2 → ``bn1`` → ReLU → max-pool 3×3/2 → ``layer1`` … ``layer4`` (BasicBlock for
  depth 18/34, Bottleneck with the stride on the 3×3 conv — torchvision's "ResNet v1.5" / mmdet's
  ``style='pytorch'`` — for 50/101). Returns the C2…C5 maps at strides 4, 8, 16, 32. The module and parameter
  names are torchvision's, so a local torchvision (or mmdet ``img_backbone.``-prefixed) checkpoint loads with
  :func:`load_image_backbone_checkpoint`; nothing is ever downloaded, and without a checkpoint the network starts
  from Kaiming initialisation (logged).
* :class:`ImageFPN`: 1×1 lateral convs, top-down nearest upsampling + sum (FPN eq. in Sec. 3: ``P_i = L_i(C_i) +
  up(P_{i+1})``), 3×3 output convs, and max-pooled extra levels (mmdet's ``FPN`` with ``add_extra_convs=False``).

The authors' nuScenes model: ResNet-50 (``frozen_stages=1``, ``norm_eval=True``) + FPN(256, ``num_outs=5``) =
23,508,032 + 3,344,384 = 26,852,416 parameters — this build has exactly that count (``tests/test_sparsefusion.py``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from perception3d.registry import MODELS

__all__ = ["ImageResNet", "ImageFPN", "load_image_backbone_checkpoint"]

logger = logging.getLogger(__name__)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + idt)


_ARCH = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
         101: (Bottleneck, (3, 4, 23, 3))}


def load_image_backbone_checkpoint(module: nn.Module, path: Union[str, Path]) -> List[str]:
    """Load a local torchvision-layout ResNet checkpoint into ``module`` (no download, ever).

    Accepts a bare state dict, ``{"state_dict": ...}`` / ``{"model": ...}``, and keys prefixed ``img_backbone.``
    or ``backbone.`` (mmdet / mmdet3d checkpoints). ``fc.*`` (the classifier) is ignored. Returns the module keys
    that the file did not provide. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the
    key for a shape mismatch or for a file that provides none of the module's parameters.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image backbone checkpoint {path} not found (weights are never downloaded)")
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    clean = {}
    for k, v in sd.items():
        for p in ("module.", "img_backbone.", "backbone."):
            if k.startswith(p):
                k = k[len(p):]
        if not k.startswith("fc."):
            clean[k] = v
    own = module.state_dict()
    hit = [k for k in clean if k in own]
    if not hit:
        raise ValueError(f"{path}: no key matches the image backbone (expected torchvision ResNet names such as "
                         f"'conv1.weight', 'layer1.0.bn1.running_mean')")
    for k in hit:
        if tuple(clean[k].shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: '{k}' has shape {tuple(clean[k].shape)}, the backbone expects "
                             f"{tuple(own[k].shape)} (wrong depth?)")
    module.load_state_dict({k: clean[k] for k in hit}, strict=False)
    missing = [k for k in own if k not in clean]
    logger.info("image backbone: loaded %d tensors from %s (%d missing)", len(hit), path, len(missing))
    return missing


@MODELS.register_module()
class ImageResNet(nn.Module):
    """ResNet C2…C5 feature extractor. Input [N, 3, H, W] → list of [N, C_i, H / s_i, W / s_i], s = 4, 8, 16, 32
    (C = 64·e, 128·e, 256·e, 512·e with e = 1 for depth 18/34, 4 for 50/101).

    Args:
        depth: 18, 34, 50 or 101. out_indices: which of the four stages to return.
        frozen_stages: -1 none; 0 the stem; i ≥ 1 also ``layer1``…``layer_i`` (no gradients, BN in eval).
        norm_eval: keep every BatchNorm in eval mode while training (mmdet's ``norm_eval``, the authors' setting).
        pretrained: a local checkpoint path (torchvision layout) or None (random init, logged).
    """

    def __init__(self, depth: int = 50, out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, pretrained: Optional[str] = None):
        super().__init__()
        if depth not in _ARCH:
            raise ValueError(f"ImageResNet: depth must be one of {sorted(_ARCH)}, got {depth}")
        block, layers = _ARCH[depth]
        self.out_indices, self.frozen_stages, self.norm_eval = tuple(out_indices), int(frozen_stages), norm_eval
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        self.out_channels = []
        for i, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != planes * block.expansion:
                down = nn.Sequential(nn.Conv2d(cin, planes * block.expansion, 1, stride, bias=False),
                                     nn.BatchNorm2d(planes * block.expansion))
            blocks = [block(cin, planes, stride, down)]
            cin = planes * block.expansion
            blocks += [block(cin, planes) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.out_channels.append(cin)
        self.out_channels = [self.out_channels[i] for i in self.out_indices]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if pretrained:
            load_image_backbone_checkpoint(self, pretrained)
        else:
            logger.info("ImageResNet-%d: no checkpoint given, random (Kaiming) initialisation", depth)
        self._freeze()

    def _frozen_modules(self) -> List[nn.Module]:
        mods: List[nn.Module] = []
        if self.frozen_stages >= 0:
            mods += [self.conv1, self.bn1]
        mods += [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]
        return mods

    def _freeze(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "ImageResNet":
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"ImageResNet: expected images [N, 3, H, W], got {tuple(x.shape)}")
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            if i in self.out_indices:
                outs.append(x)
        return outs


@MODELS.register_module()
class ImageFPN(nn.Module):
    """Feature pyramid: ``P_i = conv3x3(lateral_i(C_i) + upsample(P_{i+1} before its conv))``, then
    ``num_outs - len(in_channels)`` extra levels by max-pool 1/2 (mmdet's ``FPN``, ``add_extra_convs=False``).

    Shapes: list of [N, C_i, H_i, W_i] → list of ``num_outs`` maps [N, out_channels, H_i, W_i].
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, num_outs: Optional[int] = None):
        super().__init__()
        self.num_outs = int(num_outs) if num_outs is not None else len(in_channels)
        if self.num_outs < len(in_channels):
            raise ValueError(f"ImageFPN: num_outs {self.num_outs} < number of inputs {len(in_channels)}")
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(feats) != len(self.lateral_convs):
            raise ValueError(f"ImageFPN: {len(feats)} inputs, built for {len(self.lateral_convs)}")
        lat = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(lat) - 1, 0, -1):  # top-down pathway
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="nearest")
        outs = [conv(x) for conv, x in zip(self.fpn_convs, lat)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs
