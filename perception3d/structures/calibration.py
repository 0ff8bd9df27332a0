"""Camera ↔ LiDAR geometry for multi-camera rigs (nuScenes, Waymo cameras): compose, project, unproject.

Conventions (mmdet3d's, used by its nuScenes infos and by BEVFusion / SparseFusion):

* ``cam2img``  [3, 3] intrinsics ``K`` (OpenCV camera: x right, y down, z forward), held as a 4×4
  ``[[K, 0], [0, 1]]`` when composed;
* ``lidar2cam`` [4, 4] rigid LiDAR → camera transform;
* ``lidar2img = cam2img_4x4 @ lidar2cam`` [4, 4]: a homogeneous LiDAR point ``p`` maps to
  ``q = lidar2img @ [p, 1]`` and the pixel is ``(q0 / q2, q1 / q2)`` with depth ``q2`` (the camera z);
* pixels are continuous coordinates (the centre of the top-left pixel is (0.5, 0.5) when ``K``'s principal
  point follows that convention; this module does not shift anything).

Augmentations move the matrices with the data they move (BEVFusion's ``lidar_aug_matrix`` / ``img_aug_matrix``):
a global 3D transform ``T`` of the points (``p' = T p``) gives ``lidar2cam' = lidar2cam @ inv(T)`` and
``lidar2img' = lidar2img @ inv(T)``; an image transform ``A`` of the pixels (``u' = A u``, 3×3 affine) gives
``cam2img' = A @ cam2img`` and ``lidar2img' = A_4x4 @ lidar2img``.

All functions take numpy arrays or torch tensors and return the same kind (float64 numpy for numpy input).
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import torch

from perception3d.structures.boxes import Boxes3D, as_box_tensor

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

__all__ = ["as_matrix4", "check_invertible", "compose_lidar2img", "project_points", "unproject_points",
           "project_box_corners", "in_image", "image_aug_matrix", "apply_image_aug", "apply_lidar_aug",
           "lidar_aug_matrix"]


def _np(m: ArrayLike) -> np.ndarray:
    if isinstance(m, torch.Tensor):
        return m.detach().cpu().double().numpy()
    return np.asarray(m, dtype=np.float64)


def as_matrix4(m: ArrayLike, name: str = "matrix") -> np.ndarray:
    """A [3, 3] / [3, 4] / [4, 4] matrix as a float64 [4, 4] (padded with the identity's rows/columns).

    Raises ``ValueError`` naming ``name`` for another shape, a non-numeric or a NaN/inf entry."""
    try:
        a = _np(m)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a 3x3, 3x4 or 4x4 matrix of numbers, got {type(m).__name__} ({exc})"
                         ) from None
    if a.ndim != 2 or a.shape not in ((3, 3), (3, 4), (4, 4)):
        raise ValueError(f"{name}: expected a 3x3, 3x4 or 4x4 matrix, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    out = np.eye(4)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def check_invertible(m: ArrayLike, name: str = "lidar2img", max_cond: float = 1e12) -> np.ndarray:
    """``m`` as a 4×4 float64, or ``ValueError`` naming ``name`` when it is singular or nearly so
    (condition number above ``max_cond``: pixels could not be unprojected back to 3D)."""
    a = as_matrix4(m, name)
    cond = np.linalg.cond(a)
    if not np.isfinite(cond) or cond > max_cond:
        raise ValueError(f"{name}: the 4x4 matrix is not invertible (condition number {cond:.3g}); a camera "
                         f"calibration must map 3D to pixels one-to-one: check cam2img (focal lengths > 0, last "
                         f"row [0, 0, 1]) and lidar2cam (a rotation)")
    return a


def compose_lidar2img(cam2img: ArrayLike, lidar2cam: ArrayLike, name: str = "camera") -> np.ndarray:
    """``lidar2img = cam2img_4x4 @ lidar2cam`` [4, 4] float64 (mmdet3d's composition)."""
    k = as_matrix4(cam2img, f"{name}.cam2img")
    return k @ as_matrix4(lidar2cam, f"{name}.lidar2cam")


def project_points(points: ArrayLike, lidar2img: ArrayLike) -> Tuple[ArrayLike, ArrayLike]:
    """Project LiDAR points to pixels.

    Args:
        points: [N, >=3] (x, y, z first).
        lidar2img: [4, 4] (or [3, 4]).
    Returns:
        ``(uv [N, 2], depth [N])``; depth is the camera z (negative: behind the camera, where ``uv`` means
        nothing). Same array kind as ``points`` (torch keeps dtype/device; numpy becomes float64).
    """
    if isinstance(points, torch.Tensor):
        m = torch.as_tensor(as_matrix4(lidar2img, "lidar2img"), dtype=points.dtype, device=points.device)
        q = points[:, :3] @ m[:3, :3].T + m[:3, 3]
        depth = q[:, 2]
        uv = q[:, :2] / depth.clamp(min=1e-6)[:, None] if depth.numel() else q[:, :2]
        return uv, depth
    p = _np(points)
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"points: expected [N, >=3], got shape {p.shape}")
    m = as_matrix4(lidar2img, "lidar2img")
    q = p[:, :3] @ m[:3, :3].T + m[:3, 3]
    depth = q[:, 2]
    uv = q[:, :2] / np.maximum(depth, 1e-6)[:, None]
    return uv, depth


def unproject_points(uv: ArrayLike, depth: ArrayLike, lidar2img: ArrayLike) -> np.ndarray:
    """Pixels + depth (camera z) → LiDAR points [N, 3]: ``inv(lidar2img) @ [u d, v d, d, 1]``.

    Raises ``ValueError`` when ``lidar2img`` is not invertible (see :func:`check_invertible`)."""
    m = check_invertible(lidar2img, "lidar2img")
    uv_, d = _np(uv).reshape(-1, 2), _np(depth).reshape(-1)
    if len(uv_) != len(d):
        raise ValueError(f"uv ({len(uv_)}) and depth ({len(d)}) must have the same length")
    q = np.concatenate([uv_ * d[:, None], d[:, None], np.ones((len(d), 1))], axis=1)
    p = q @ np.linalg.inv(m).T
    return p[:, :3]


def project_box_corners(boxes: ArrayLike, lidar2img: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """The 8 corners of LiDAR boxes [M, >=7] in pixels: ``(uv [M, 8, 2], depth [M, 8])`` (corner order of
    :meth:`perception3d.structures.boxes.Boxes3D.corners`)."""
    b = as_box_tensor(boxes, "boxes").double()
    corners = Boxes3D(b, check=False).corners().reshape(-1, 3).numpy() if len(b) else np.zeros((0, 3))
    uv, d = project_points(corners, lidar2img)
    return uv.reshape(-1, 8, 2), d.reshape(-1, 8)


def in_image(uv: ArrayLike, depth: ArrayLike, width: int, height: int, min_depth: float = 1e-3) -> np.ndarray:
    """[N] bool: in front of the camera (``depth > min_depth``) and inside ``[0, width) × [0, height)``."""
    uv_, d = _np(uv), _np(depth)
    return (d > min_depth) & (uv_[..., 0] >= 0) & (uv_[..., 0] < width) & (uv_[..., 1] >= 0) & (uv_[..., 1] < height)


def image_aug_matrix(scale: Union[float, Tuple[float, float]] = 1.0, crop: Tuple[float, float] = (0.0, 0.0),
                     flip_width: float = 0.0) -> np.ndarray:
    """3×3 pixel transform of resize → crop → horizontal flip: ``u' = s u - crop``, then (when
    ``flip_width > 0``, the width after cropping) ``u' = flip_width - u'``."""
    sx, sy = (scale, scale) if np.isscalar(scale) else scale
    a = np.array([[sx, 0.0, -crop[0]], [0.0, sy, -crop[1]], [0.0, 0.0, 1.0]])
    if flip_width > 0:
        a = np.array([[-1.0, 0.0, flip_width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ a
    return a


def apply_image_aug(aug: ArrayLike, cam2img: ArrayLike, lidar2img: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """Move intrinsics with an image transform ``aug`` (3×3, from :func:`image_aug_matrix`):
    ``(cam2img' [3, 3], lidar2img' [4, 4])``."""
    a = _np(aug)
    if a.shape != (3, 3):
        raise ValueError(f"aug: expected a 3x3 pixel transform, got shape {a.shape}")
    a4 = np.eye(4)
    a4[:2, :3] = a[:2, :3]  # acts on (u d, v d, d, 1): the pixel shift multiplies the depth
    k = as_matrix4(cam2img, "cam2img")
    return (a4 @ k)[:3, :3], a4 @ as_matrix4(lidar2img, "lidar2img")


def lidar_aug_matrix(rotation: float = 0.0, scale: float = 1.0, translation: Sequence[float] = (0.0, 0.0, 0.0),
                     flip_horizontal: bool = False, flip_vertical: bool = False) -> np.ndarray:
    """4×4 ``T`` of a global LiDAR transform in mmdet3d's order: rotate about z (counter-clockwise), scale,
    translate, then flip (horizontal: y → -y, vertical: x → -x). Points move as ``p' = T p``."""
    c, s = np.cos(rotation), np.sin(rotation)
    t = np.eye(4)
    t[:3, :3] = scale * np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    t[:3, 3] = np.asarray(translation, np.float64)
    f = np.diag([-1.0 if flip_vertical else 1.0, -1.0 if flip_horizontal else 1.0, 1.0, 1.0])
    return f @ t


def apply_lidar_aug(aug: ArrayLike, lidar2x: ArrayLike, name: str = "lidar2img") -> np.ndarray:
    """``lidar2x @ inv(aug)``: a LiDAR → camera/image matrix after the points moved by ``aug`` (4×4)."""
    return as_matrix4(lidar2x, name) @ np.linalg.inv(check_invertible(aug, "lidar augmentation"))
