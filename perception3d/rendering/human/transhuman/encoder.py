"""Image encoder (TransHuman Sec. 3.1 / 3.4): the first three stages of ResNet-18 (stem, layer1, layer2 — the
authors' ``SpatialEncoder`` with ``num_layers=3``), each read at image positions as if upsampled to the image size
and concatenated (64 + 64 + 128 = 256 channels), plus the raw RGB lifted to 128 channels by a 1×1 conv (the FDI's
fine-grained appearance): the 384-channel **pixel-aligned** feature. A 1×1 conv reduces it to the token width (192)
for **painting** the body.

ImageNet weights are not downloaded: ``weights`` may name a local torchvision ``resnet18`` state dict (the authors
start from it); without one the trunk starts from random initialisation, and the trainer logs which it used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .painting import sample_feature_map

__all__ = ["ImageEncoder"]


class ImageEncoder(nn.Module):
    """``forward(images)`` → feature maps; :meth:`pixel_features` samples the 384-channel features under pixels,
    :meth:`holder` reduces them to the token width."""

    pixel_dim = 384

    def __init__(self, token_dim: int = 192, weights: Optional[Union[str, Path]] = None) -> None:
        super().__init__()
        # the ResNet-18 stages of SparseFusion's image backbone (torchvision's layout; imported here, when a model
        # is built, because perception3d.models is a large import)
        from perception3d.models.fusion.image_backbone import BasicBlock

        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2, nn.Sequential(nn.Conv2d(64, 128, 1, 2, bias=False),
                                                                        nn.BatchNorm2d(128))),
                                    BasicBlock(128, 128))
        self.upsample_color = nn.Conv2d(3, 128, 1)             # raw colour → 128 channels (fine-grained detail)
        self.reduction = nn.Conv2d(self.pixel_dim, token_dim, 1)   # pixel features → painted-vertex features
        self.pretrained = False
        if weights is not None:
            self.load_trunk(weights)

    def load_trunk(self, path: Union[str, Path]) -> None:
        """Load ``conv1``/``bn1``/``layer1``/``layer2`` from a local torchvision resnet18 state dict (the rest of
        the file — layer3, layer4, fc — is ignored)."""
        from perception3d.models.fusion.image_backbone import load_image_backbone_checkpoint

        missing = [k for k in load_image_backbone_checkpoint(self, path) if k.split(".")[0] in
                   ("conv1", "bn1", "layer1", "layer2")]
        if missing:
            raise ValueError(f"{path}: not a resnet18 state dict (missing {missing[:3]} ...)")
        self.pretrained = True

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [V, 3, H, W] → the maps [conv1 64 @ H/2, layer1 64 @ H/4, layer2 128 @ H/8, images 3 @ H]."""
        x0 = F.relu(self.bn1(self.conv1(images)))
        x1 = self.layer1(F.max_pool2d(x0, 3, 2, 1))
        x2 = self.layer2(x1)
        return [x0, x1, x2, images]

    def pixel_features(self, maps: list[torch.Tensor], uv: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """The 384-channel pixel-aligned features under pixels uv [V, N, 2] → [V, N, 384].

        The authors upsample every map to the image size (bilinear, align_corners) and sample there; sampling each
        map directly at the corresponding position is the same at pixel centres and avoids materialising
        V × 384 × H × W (the 1 × 1 colour lift commutes with sampling, so it is applied after)."""
        x0, x1, x2, img = (sample_feature_map(m, uv, width, height) for m in maps)
        return torch.cat([x0, x1, x2, F.linear(img, self.upsample_color.weight[:, :, 0, 0],
                                               self.upsample_color.bias)], -1)

    def holder(self, pixel: torch.Tensor) -> torch.Tensor:
        """Painting features [..., 384] → [..., token_dim] (the authors' 1 × 1 ``reduction_layer``)."""
        return F.linear(pixel, self.reduction.weight[:, :, 0, 0], self.reduction.bias)
