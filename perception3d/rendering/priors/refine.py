"""Image refiners for LM-Gaussian's iterative refinement stage.

LM-Gaussian refines renders of virtual views with a video-diffusion model; that needs weights
(:mod:`.learned`). The built-in :class:`ClassicalRefiner` is a weight-free refinement: non-local-means
denoising of the render's floaters and speckle (Buades et al., CVPR 2005, ``cv2.fastNlMeansDenoisingColored``),
then Reinhard colour transfer (Reinhard et al., 2001: per-channel mean / std in CIE Lab) onto the statistics of
the captured reference images, so a refined render keeps its geometry and takes the captures' colours.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .base import ImageLike, ImageRefiner, to_numpy_image

__all__ = ["ClassicalRefiner"]


class ClassicalRefiner(ImageRefiner):
    """Denoise + colour transfer (module doc). ``strength`` is the NL-means filter strength (0–255 scale);
    ``colour_transfer`` False keeps the render's colours."""

    name = "classical"

    def __init__(self, strength: float = 5.0, colour_transfer: bool = True):
        self.strength, self.colour_transfer = float(strength), bool(colour_transfer)

    def describe(self) -> dict:
        return {"type": self.name, "strength": self.strength, "colour_transfer": self.colour_transfer,
                "weights": None}

    def refine(self, image: ImageLike, references: Sequence[ImageLike] = ()) -> torch.Tensor:
        import cv2

        img = (np.clip(to_numpy_image(image, "image"), 0, 1) * 255 + 0.5).astype(np.uint8)
        if self.strength > 0:
            img = cv2.fastNlMeansDenoisingColored(img, None, self.strength, self.strength, 5, 15)
        out = img.astype(np.float32) / 255.0
        if self.colour_transfer and len(references):
            lab = cv2.cvtColor(out, cv2.COLOR_RGB2LAB)
            ref = np.concatenate([cv2.cvtColor(to_numpy_image(r, "reference"), cv2.COLOR_RGB2LAB).reshape(-1, 3)
                                  for r in references])
            mu, sd = lab.reshape(-1, 3).mean(0), lab.reshape(-1, 3).std(0) + 1e-6
            lab = (lab - mu) / sd * ref.std(0) + ref.mean(0)
            out = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
        return torch.from_numpy(np.ascontiguousarray(np.clip(out, 0, 1), dtype=np.float32))
