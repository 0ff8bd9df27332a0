"""Optical flow priors: OpenCV DIS (built in, no weights) and the learned models' loaders.

DIS — Dense Inverse Search (Kroeger et al., ECCV 2016): coarse-to-fine patch-based inverse-compositional
search followed by variational refinement, ``cv2.DISOpticalFlow_create``. CoherentGS uses a learned flow
(FlowFormer++) for its correspondence loss; DIS is the weight-free stand-in, with a forward–backward check
(:func:`flow_consistency`) to mask the pixels it gets wrong.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import FlowPrior, ImageLike, to_uint8_gray

__all__ = ["DISFlow", "flow_consistency", "warp_by_flow"]

_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


class DISFlow(FlowPrior):
    """OpenCV DIS optical flow (weight-free).

    Args:
        preset: "ultrafast" | "fast" | "medium" (OpenCV's ``DISOPTICAL_FLOW_PRESET_*``).
        finest_scale: finest pyramid level the search runs at (0 = full resolution; the preset's when None).
        variational_iterations: refinement iterations per level (the preset's when None).
    """

    name = "dis"

    def __init__(self, preset: str = "medium", finest_scale=None, variational_iterations=None):
        if preset not in _PRESETS:
            raise ValueError(f"DISFlow: preset must be one of {sorted(_PRESETS)}, got {preset!r}")
        self.preset, self.finest_scale, self.variational_iterations = preset, finest_scale, variational_iterations

    def _dis(self):
        import cv2

        dis = cv2.DISOpticalFlow_create(_PRESETS[self.preset])
        if self.finest_scale is not None:
            dis.setFinestScale(int(self.finest_scale))
        if self.variational_iterations is not None:
            dis.setVariationalRefinementIterations(int(self.variational_iterations))
        return dis

    def flow(self, image0: ImageLike, image1: ImageLike) -> torch.Tensor:
        g0, g1 = to_uint8_gray(image0, "image0"), to_uint8_gray(image1, "image1")
        if g0.shape != g1.shape:
            raise ValueError(f"DISFlow: images differ in size: {g0.shape} vs {g1.shape}")
        f = self._dis().calc(g0, g1, None)
        return torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32))

    def describe(self) -> dict:
        return {"type": self.name, "preset": self.preset, "weights": None}


def warp_by_flow(image1: ImageLike, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image1`` [H, W, C] at ``x + flow(x)`` (bilinear, border replicate) → [H, W, C]: with the flow
    from image0 to image1, the result looks like image0."""
    import cv2

    a = image1.detach().cpu().numpy() if isinstance(image1, torch.Tensor) else np.asarray(image1)
    f = flow.detach().cpu().numpy() if isinstance(flow, torch.Tensor) else np.asarray(flow)
    H, W = f.shape[:2]
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    out = cv2.remap(a.astype(np.float32), gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return torch.from_numpy(out.reshape(a.shape))


def flow_consistency(flow01: torch.Tensor, flow10: torch.Tensor, tol: float = 1.0) -> torch.Tensor:
    """Forward–backward check: [H, W] bool, True where following flow01 then flow10 returns within ``tol``
    pixels (+ 5 % of the flow's length) of the start and lands inside image1."""
    back = warp_by_flow(flow10, flow01)
    err = (flow01 + back).norm(dim=-1)
    H, W = flow01.shape[:2]
    gx, gy = torch.meshgrid(torch.arange(W), torch.arange(H), indexing="xy")
    x1, y1 = gx + flow01[..., 0], gy + flow01[..., 1]
    inside = (x1 >= 0) & (x1 <= W - 1) & (y1 >= 0) & (y1 <= H - 1)
    return inside & (err <= tol + 0.05 * flow01.norm(dim=-1))
