"""Normal priors for LM-Gaussian's normal loss (§IV-C, Eq. 9).

* ``"shipped"`` — the monocular normal maps an LM-Gaussian scene ships (``normal_maps/normal_<name>.png``: Marigold
  normals written as RGB ``(n + 1) · 127`` in Marigold's camera frame, x right, y up, z towards the viewer).
  They are converted to the house camera frame (OpenCV: x right, y down, z forward), i.e. (x, −y, −z). (The
  authors read these PNGs with ``cv2.imread``, so their loss sees the channels in BGR order; we read RGB.)
* ``"depth"`` — normals of the depth prior's surface (:func:`~.losses.depth_to_normal`) on its valid pixels: a
  weight-free normal prior for scenes that ship none.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .losses import depth_to_normal

__all__ = ["read_normal_map", "shipped_normal", "depth_normal_prior"]


def read_normal_map(path, size: tuple[int, int]) -> torch.Tensor:
    """A Marigold normal PNG → unit normals [H, W, 3] in the OpenCV camera frame at ``size`` (W, H). A missing
    file, a file that is not a 3-channel image, or one whose aspect ratio differs from the image's is an error
    naming the file."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"normal map not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if bgr is None:
        raise ValueError(f"{path}: cannot read the normal map")
    if bgr.ndim != 3 or bgr.shape[2] < 3:
        raise ValueError(f"{path}: a normal map must be a 3-channel image, got shape {bgr.shape}")
    fh, fw = bgr.shape[:2]
    if abs(fw / fh - size[0] / size[1]) > 0.02 * size[0] / size[1]:
        raise ValueError(f"{path}: normal map is {fw}x{fh}, which does not have the aspect ratio of its image "
                         f"({size[0]}x{size[1]})")
    rgb = cv2.cvtColor(bgr[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32)
    if (fw, fh) != tuple(size):
        rgb = cv2.resize(rgb, tuple(int(v) for v in size), interpolation=cv2.INTER_AREA)
    n = torch.from_numpy(rgb / 127.0 - 1.0)
    n = n * torch.tensor([1.0, -1.0, -1.0])  # Marigold (x right, y up, z to the viewer) → OpenCV
    return F.normalize(n, dim=-1)


def shipped_normal(scene, i: int) -> Optional[torch.Tensor]:
    """View ``i``'s shipped normal map (:func:`read_normal_map`), or None when the scene format has none."""
    paths = scene.extras.get("normal_paths")
    if not paths:
        return None
    return read_normal_map(paths[i], (scene.width, scene.height))


def depth_normal_prior(depth: torch.Tensor, valid: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """Normals [H, W, 3] of a depth prior's surface and their valid mask (the pixel and its 4 neighbours have
    depth)."""
    n = depth_to_normal(depth, K)
    v = valid.float()[None, None]
    ok = -F.max_pool2d(-v, 3, 1, 1)[0, 0] > 0.5  # erosion: every neighbour valid
    return n, ok
