"""The TransHuman / Neural Body evaluation protocol (the authors' ``lib/evaluators/if_nerf.py``):

* the body's 3-D box (vertex bounds, ±5 cm along z) is projected into the target view (``mask_at_box``: the
  pixels whose ray enters the box); only those pixels are rendered;
* **PSNR** over the pixels inside the box;
* the prediction and the ground truth are pasted on black outside the box and cropped to the box's 2-D bounding
  rectangle; **SSIM** on that crop (scikit-image, 7 × 7 uniform window, sample covariance — the authors' call,
  whose float images get scikit-image's old default data range of 2), **LPIPS** on the crop when local weights are
  given (the authors use LPIPS-VGG; this package's LPIPS is the AlexNet variant and needs local weight files —
  without them LPIPS is reported as None).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from perception3d.ops.image_quality import mask_bbox, psnr_masked

if TYPE_CHECKING:  # the annotation only: rendering does not import evaluation (DESIGN §2)
    from perception3d.evaluation.image_metrics import LPIPS

__all__ = ["evaluate_view"]


def evaluate_view(pred: torch.Tensor, gt: torch.Tensor, mask_at_box: torch.Tensor,
                  lpips_net: Optional[LPIPS] = None) -> dict:
    """pred, gt [H, W, 3] in [0, 1]; mask_at_box bool [H, W] → dict(psnr, ssim, lpips or None)."""
    from skimage.metrics import structural_similarity

    m = mask_at_box.bool()
    if not bool(m.any()):
        raise ValueError("evaluate_view: the body box is not in the view (empty mask_at_box)")
    p = torch.where(m[..., None], pred.float(), torch.zeros_like(pred.float()))
    g = torch.where(m[..., None], gt.float(), torch.zeros_like(gt.float()))
    out = {"psnr": psnr_masked(p, g, m)}
    y0, y1, x0, x1 = mask_bbox(m)
    pc, gc = p[y0:y1, x0:x1].double().numpy(), g[y0:y1, x0:x1].double().numpy()
    side = min(pc.shape[:2])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"evaluate_view: the body box covers {side} pixel(s) across, too few for SSIM")
    out["ssim"] = float(structural_similarity(pc, gc, channel_axis=-1, data_range=2.0, win_size=win))
    out["lpips"] = None
    if lpips_net is not None:
        with torch.no_grad():
            t = lambda a: torch.from_numpy(a).float().permute(2, 0, 1)[None]  # noqa: E731
            out["lpips"] = float(lpips_net(t(pc), t(gc))[0])
    return out
