"""Point-cloud augmentation for semantic segmentation (labels ride along untouched), as the segmentation authors
use it (Pointcept's ``RandomRotate`` / ``RandomFlip`` / ``RandomScale`` / ``RandomJitter`` / ``PointClip``, and
Mix3D, Nekrasov et al. 3DV 2021: two augmented scenes concatenated into one training sample).

``augment`` dict keys (all optional): ``rotate_z`` (True: uniform in [−π, π); or ``(lo, hi)`` radians),
``rotate_p`` (probability of the rotation, default 1), ``flip`` (legacy: flip y with p 0.5), ``flip_x`` /
``flip_y`` (probability of mirroring that axis), ``scale`` ``(lo, hi)``, ``jitter`` (sigma, clipped at 4 sigma).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = ["augment_xyz", "apply_point_range", "check_augment", "mixed_sample"]

_KEYS = {"rotate_z", "rotate_p", "flip", "flip_x", "flip_y", "scale", "jitter"}


def check_augment(augment: Optional[Dict], where: str) -> Optional[Dict]:
    """A copy of ``augment`` after checking its keys (a typo would silently turn an augmentation off)."""
    if not augment:
        return None
    unknown = set(augment) - _KEYS
    if unknown:
        raise ValueError(f"{where}: unknown augment key(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
    return dict(augment)


def augment_xyz(xyz: np.ndarray, aug: Dict, rng: np.random.Generator) -> np.ndarray:
    """Augment ``xyz`` [N, 3] (float32) with the transforms named in ``aug`` (see the module docstring)."""
    rz = aug.get("rotate_z")
    if rz and rng.random() < aug.get("rotate_p", 1.0):
        lo, hi = (-np.pi, np.pi) if rz is True else rz
        a = rng.uniform(lo, hi)
        c, s = np.cos(a), np.sin(a)
        xyz = xyz @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32).T
    flips = {1: aug.get("flip_y", 0.5 if aug.get("flip") else 0.0), 0: aug.get("flip_x", 0.0)}
    for axis in (1, 0):
        if flips[axis] and rng.random() < flips[axis]:
            xyz = xyz.copy()
            xyz[:, axis] = -xyz[:, axis]
    if aug.get("scale"):
        xyz = xyz * rng.uniform(*aug["scale"])
    if aug.get("jitter"):
        j = aug["jitter"]
        xyz = xyz + np.clip(rng.normal(scale=j, size=xyz.shape), -4 * j, 4 * j)
    return xyz.astype(np.float32)


def apply_point_range(points: np.ndarray, labels: np.ndarray, point_range: Optional[Sequence[float]],
                      mode: str = "drop") -> Tuple[np.ndarray, np.ndarray]:
    """Keep points inside ``point_range`` (x0, y0, z0, x1, y1, z1): ``"drop"`` the others, or ``"clip"`` their
    coordinates onto the range's faces (the authors' SemanticKITTI handling, Pointcept ``PointClip``: every point
    keeps a prediction)."""
    if point_range is None:
        return points, labels
    r = np.asarray(point_range, np.float32)
    if mode == "clip":
        points = points.copy()
        points[:, :3] = np.clip(points[:, :3], r[:3], r[3:] - 1e-3)
        return points, labels
    if mode != "drop":
        raise ValueError(f"point range mode must be 'drop' or 'clip', got {mode!r}")
    keep = ((points[:, :3] >= r[:3]) & (points[:, :3] < r[3:])).all(1)
    return points[keep], labels[keep]


def mixed_sample(sample: Callable[[int, np.random.Generator], Tuple[np.ndarray, np.ndarray]], idx: int, n: int,
                 mix_prob: float) -> Tuple[np.ndarray, np.ndarray]:
    """``sample(idx, rng)`` → (points, labels); with probability ``mix_prob`` (Mix3D) concatenated with the sample
    of another random index.  The generator is seeded from numpy's global stream, so that ``SeededDataset``
    makes the result a function of (seed, epoch, index)."""
    rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
    pts, seg = sample(idx, rng)
    if mix_prob > 0 and n > 1 and rng.random() < mix_prob:
        other = int(rng.integers(0, n - 1))
        p2, s2 = sample(other + (other >= idx), rng)
        pts, seg = np.concatenate([pts, p2]), np.concatenate([seg, s2])
    return pts, seg
