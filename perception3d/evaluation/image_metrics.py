"""Image-quality metrics for novel-view synthesis: PSNR, SSIM, their masked variants, LPIPS (AlexNet). PSNR, SSIM
and the masked variants are defined in :mod:`perception3d.ops.image_quality` (and exported by
:mod:`perception3d.evaluation`); this module adds LPIPS.

Images are float ``[H, W, 3]`` (or ``[B, H, W, 3]``) in [0, 1], numpy or torch; masks ``[H, W]`` bool/0-1.

* :func:`psnr` — ``−10 log10(MSE)`` over all pixels and channels (data range 1).
* :func:`psnr_masked` — PSNR-M (SpaRe): the MSE over the mask's pixels only (all three channels).
* :func:`ssim` — Wang et al. 2004, Eq. 13: Gaussian window 11 × 11, σ = 1.5, ``K1 = 0.01, K2 = 0.03``,
  per channel, averaged. ``padding="valid"`` (default) averages the SSIM map over the positions where the
  whole window fits (pytorch-msssim's ``ssim`` and scikit-image's ``structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False)``); ``padding="same"`` zero-pads by 5 and averages over every pixel
  (the ``ssim`` in 3DGS's ``utils/loss_utils.py``), which gives slightly different numbers.
* :func:`ssim_masked` — SSIM-M (SpaRe): SSIM of the crop to the tight bounding box of the mask.
* :class:`LPIPS` / :func:`lpips` — Zhang et al. 2018, LPIPS v0.1 with the AlexNet trunk: inputs mapped to
  [−1, 1] and normalised by the scaling layer, 5 ReLU outputs of AlexNet's ``features`` (64, 192, 384, 256,
  256 channels), unit-normalised over channels, squared difference, a 1 × 1 linear layer per stage
  (``lin{k}.model.1.weight`` [1, C_k, 1, 1] in ``alex.pth``), spatial mean, sum over stages (Eq. 1).
  Needs local weight files; without them the metric is *not computed* (``None``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn

from perception3d.deprecation import moved_names
from perception3d.ops.image_quality import ImageLike, _crop, _mask, _pair
from perception3d.ops.image_quality import mask_bbox as _mask_bbox

__all__ = ["LPIPS", "lpips", "load_lpips"]

# PSNR, SSIM and their masked variants moved down to ops.image_quality (one SSIM for training and evaluation, and
# the human fields' evaluation in rendering/ uses them); perception3d.evaluation exports them
__getattr__ = moved_names(__name__, {n: "perception3d.ops.image_quality"
                                     for n in ("psnr", "ssim", "psnr_masked", "ssim_masked", "mask_bbox")})


# ----------------------------------------------------------------------------------------------------------
# LPIPS (AlexNet, v0.1)
# ----------------------------------------------------------------------------------------------------------
def _alexnet_features() -> nn.Sequential:
    """AlexNet's convolutional trunk with torchvision's layer indices (so ``features.N.*`` keys load)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),  # 0, 1, 2
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),  # 3, 4, 5
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=False),  # 6, 7
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=False),  # 8, 9
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=False),  # 10, 11
    )


class LPIPS(nn.Module):
    """LPIPS v0.1, AlexNet trunk. ``forward(pred, gt)`` takes [B, 3, H, W] in [0, 1] and returns [B]."""

    # layer index after which each of the 5 compared ReLU outputs is taken (lpips' slices 0-1, 2-4, 5-7, 8-9, 10-11)
    TAPS = (1, 4, 7, 9, 11)
    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        self.features = _alexnet_features()
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, lin_path: Union[str, Path], alexnet_path: Union[str, Path]) -> "LPIPS":
        """Load ``alex.pth`` (keys ``lin{k}.model.1.weight``, from the lpips package) and AlexNet weights
        (torchvision's ``alexnet-owt-7be5be79.pth``: keys ``features.{i}.weight/bias``; extra keys ignored)."""
        lin = _load_state(lin_path)
        for k, conv in enumerate(self.lins):
            key = next((n for n in (f"lin{k}.model.1.weight", f"lin{k}.model.0.weight", f"lins.{k}.weight")
                        if n in lin), None)
            if key is None:
                raise ValueError(f"{lin_path}: no weight for LPIPS linear layer {k} (expected 'lin{k}.model.1.weight')")
            if tuple(lin[key].shape) != tuple(conv.weight.shape):
                raise ValueError(f"{lin_path}: {key} has shape {tuple(lin[key].shape)}, "
                                 f"expected {tuple(conv.weight.shape)}")
            conv.weight.data.copy_(lin[key].float())
        alex = _load_state(alexnet_path)
        for i, layer in enumerate(self.features):
            if not isinstance(layer, nn.Conv2d):
                continue
            for part in ("weight", "bias"):
                key = next((n for n in (f"features.{i}.{part}", f"{i}.{part}") if n in alex), None)
                if key is None:
                    raise ValueError(f"{alexnet_path}: missing AlexNet key 'features.{i}.{part}'")
                tgt = getattr(layer, part)
                if tuple(alex[key].shape) != tuple(tgt.shape):
                    raise ValueError(f"{alexnet_path}: {key} has shape {tuple(alex[key].shape)}, "
                                     f"expected {tuple(tgt.shape)}")
                tgt.data.copy_(alex[key].float())
        return self

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        x0 = ((pred * 2 - 1) - self.shift) / self.scale
        x1 = ((gt * 2 - 1) - self.shift) / self.scale
        total = torch.zeros(pred.shape[0], device=pred.device, dtype=pred.dtype)
        k = 0
        for i, layer in enumerate(self.features):
            x0, x1 = layer(x0), layer(x1)
            if i in self.TAPS:
                f0 = x0 / (x0.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                f1 = x1 / (x1.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                total = total + self.lins[k]((f0 - f1) ** 2).mean(dim=(1, 2, 3))
                k += 1
        return total


def _load_state(path: Union[str, Path]) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS weight file not found: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: cannot load a torch state dict ({e})") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return {k.removeprefix("module."): v for k, v in sd.items()}


_LPIPS_CACHE: dict = {}
LPIPS_MIN_SIZE = 32


def _grow_box(box: tuple[int, int, int, int], H: int, W: int, min_size: int) -> tuple[int, int, int, int]:
    """Grow each side of ``(y0, y1, x0, x1)`` shorter than ``min_size`` about its centre, kept inside H × W."""
    def grow(a: int, b: int, n: int) -> tuple[int, int]:
        if b - a >= min_size or n <= min_size:
            return (a, b) if b - a >= min_size else (0, n)
        a = max(0, (a + b) // 2 - min_size // 2)
        a = min(a, n - min_size)
        return a, a + min_size

    (y0, y1), (x0, x1) = grow(box[0], box[1], H), grow(box[2], box[3], W)
    return y0, y1, x0, x1


def load_lpips(lin_path: Optional[Union[str, Path]], alexnet_path: Optional[Union[str, Path]]) -> Optional[LPIPS]:
    """An :class:`LPIPS` with local weights, cached per path pair; ``None`` when either path is None."""
    if lin_path is None or alexnet_path is None:
        return None
    key = (str(lin_path), str(alexnet_path))
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = LPIPS().load_weights(lin_path, alexnet_path)
    return _LPIPS_CACHE[key]


def lpips(pred: ImageLike, gt: ImageLike, net: Optional[LPIPS], mask: Optional[ImageLike] = None) -> Optional[float]:
    """LPIPS distance of one image pair ([H, W, 3] in [0, 1]); with ``mask`` the crop to the mask's tight
    bounding box (LPIPS-M; a box side under ``LPIPS_MIN_SIZE`` = 32 px, too small for AlexNet's pooling, is
    grown about its centre to 32 px within the image). Returns None (not computed) when ``net`` is None."""
    if net is None:
        return None
    p, g = _pair(pred, gt)
    if mask is not None:
        _mask(mask, p.shape[1:3])
        box = _grow_box(_mask_bbox(mask), p.shape[1], p.shape[2], LPIPS_MIN_SIZE)
        p, g = _crop(p, box), _crop(g, box)
    if min(p.shape[1:3]) < LPIPS_MIN_SIZE:
        raise ValueError(f"lpips: image {tuple(p.shape[1:3])} is smaller than {LPIPS_MIN_SIZE} px")
    dev = next(net.parameters()).device
    with torch.no_grad():
        out = net(p.permute(0, 3, 1, 2).float().to(dev), g.permute(0, 3, 1, 2).float().to(dev))
    return float(out.mean())
