"""The four prior interfaces the sparse-view methods use, and what each returns.

* :class:`DepthPrior` — per-view depth (CoherentGS's depth initialisation, LM-Gaussian's depth-guided init and
  Pearson depth loss).
* :class:`FlowPrior` — dense optical flow between two images (CoherentGS's flow-based correspondence loss).
* :class:`PosePrior` — camera poses from images (LM-Gaussian's DUSt3R stage; also a check of given poses).
* :class:`ImageRefiner` — improves a rendered image (LM-Gaussian's iterative refinement stage).

Every prior says what it is through :meth:`describe` (recorded in the trainer's log, checkpoint and
``metrics.json``). Images are float32 [H, W, 3] in [0, 1] (torch or numpy), intrinsics 3 × 3 in the house
convention (pixel centres at +0.5, :mod:`perception3d.structures.cameras`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

__all__ = ["DepthMap", "RelativePose", "DepthPrior", "FlowPrior", "PosePrior", "ImageRefiner",
           "PriorUnavailableError", "SceneMemo", "to_uint8_gray", "to_numpy_image"]

ImageLike = Union[torch.Tensor, np.ndarray]


class SceneMemo:
    """Results computed from a scene, kept per (scene, key) so that a prior asked again about the same views does
    not recompute them. An entry holds its scene, so the scene's ``id`` is not reused while the entry lives;
    the memo is emptied when it holds ``size`` entries."""

    def __init__(self, size: int):
        self.size = int(size)
        self._entries: dict = {}

    def get(self, scene, key, compute):
        """The value memoised for ``(scene, key)``, else ``compute()`` (stored)."""
        hit = self._entries.get((id(scene), key))
        if hit is not None and hit[0] is scene:
            return hit[1]
        if len(self._entries) >= self.size:
            self._entries = {}
        value = compute()
        self._entries[(id(scene), key)] = (scene, value)
        return value


class PriorUnavailableError(RuntimeError):
    """A prior that cannot run here (its network is not built in, or its weights are absent / wrong)."""


@dataclass
class DepthMap:
    """One view's depth from a :class:`DepthPrior`.

    Attributes:
        depth: [H, W] float32 camera-z depth (0 where unknown). In scene units when ``metric``; otherwise
            affine-invariant (true depth ≈ a · depth + b for unknown a > 0, b) and must be aligned
            (:func:`~perception3d.rendering.priors.depth.align_scale_shift`) before use as depth.
        confidence: [H, W] float32 in [0, 1] (0 = do not use), or None when every pixel is valid.
        metric: see ``depth``.
        source: which prior produced it (e.g. "plane_sweep", "lmgaussian:dust3r").
    """

    depth: torch.Tensor
    confidence: Optional[torch.Tensor]
    metric: bool
    source: str

    @property
    def valid(self) -> torch.Tensor:
        """[H, W] bool: depth known and confidence > 0."""
        v = self.depth > 0
        return v if self.confidence is None else v & (self.confidence > 0)


@dataclass
class RelativePose:
    """Pose of camera 1 relative to camera 0: ``x_1 = R x_0 + t`` (OpenCV axes). From images alone the
    translation's length is unknown: ``t`` is a unit vector unless stated otherwise."""

    R: np.ndarray  # [3, 3]
    t: np.ndarray  # [3]
    n_matches: int
    n_inliers: int

    @property
    def matrix(self) -> np.ndarray:
        """[4, 4] camera-0 → camera-1 transform."""
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.R, self.t
        return m


class DepthPrior(ABC):
    """Depth for the views of a :class:`~perception3d.rendering.scenes.Scene`."""

    name: str = "depth"
    metric: bool = False  # True when the depth is in the scene's units (multi-view methods)

    @abstractmethod
    def estimate(self, scene, i: int, ids: Optional[Sequence[int]] = None) -> DepthMap:
        """Depth of view ``i`` at the scene's image size; ``ids`` are the views it may use (multi-view priors:
        the training views; monocular ones ignore them)."""

    def describe(self) -> dict:
        return {"type": self.name, "metric": self.metric}


class FlowPrior(ABC):
    """Dense optical flow: ``flow[y, x] = (du, dv)`` such that ``image1[y + dv, x + du] ≈ image0[y, x]``."""

    name: str = "flow"

    @abstractmethod
    def flow(self, image0: ImageLike, image1: ImageLike) -> torch.Tensor:
        """[H, W, 3] images → [H, W, 2] float32 flow from image0 to image1 in pixels."""

    def describe(self) -> dict:
        return {"type": self.name}


class PosePrior(ABC):
    """Camera poses from images."""

    name: str = "pose"

    @abstractmethod
    def relative_pose(self, image0: ImageLike, image1: ImageLike, K0, K1) -> RelativePose:
        """Pose of view 1 relative to view 0 (unit translation)."""

    @abstractmethod
    def estimate_poses(self, images: Sequence[ImageLike], Ks) -> torch.Tensor:
        """World → camera [N, 4, 4] for N ≥ 2 images with intrinsics Ks [N, 3, 3]; the world frame is view 0's
        camera and the distance between views 0 and 1 is 1 (a similarity away from any other reconstruction)."""

    def describe(self) -> dict:
        return {"type": self.name}


class ImageRefiner(ABC):
    """Makes a rendered image look more like the captured ones (LM-Gaussian's refinement stage)."""

    name: str = "refiner"

    @abstractmethod
    def refine(self, image: ImageLike, references: Sequence[ImageLike] = ()) -> torch.Tensor:
        """[H, W, 3] render (+ optional captured reference images) → refined [H, W, 3] float32 in [0, 1]."""

    def describe(self) -> dict:
        return {"type": self.name}


def to_numpy_image(image: ImageLike, where: str = "image") -> np.ndarray:
    """float [H, W, 3] in [0, 1] (torch or numpy) → float32 numpy, checked."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"{where} must be [H, W, 3], got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{where} contains NaN or Inf")
    return a


def to_uint8_gray(image: ImageLike, where: str = "image") -> np.ndarray:
    """[H, W, 3] float in [0, 1] → uint8 [H, W] luminance (OpenCV's feature and flow functions take it)."""
    import cv2

    a = to_numpy_image(image, where)
    return cv2.cvtColor((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)
