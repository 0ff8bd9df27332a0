"""Multi-modal (LiDAR + cameras) augmentations: points, boxes, images and calibrations move together.

The results dict is :func:`perception3d.datasets.nuscenes.load_nuscenes_frame`'s: ``points``, ``gt_bboxes_3d``,
``images`` (list of [H, W, 3]), ``cam2img`` [C, 3, 3], ``lidar2cam`` [C, 4, 4], ``lidar2img`` [C, 4, 4],
``img_shapes`` [C] (H, W). The rule (BEVFusion's ``lidar_aug_matrix`` / ``img_aug_matrix``):

* a global 3D transform ``T`` of the LiDAR frame (points ``p' = T p``) leaves every pixel where it was, so
  ``lidar2cam' = lidar2cam @ inv(T)`` and ``lidar2img' = lidar2img @ inv(T)``; ``T`` accumulates in
  ``results["lidar_aug_matrix"]`` (4×4, identity at load);
* an image transform ``A`` (resize, crop, flip of the pixels) moves a point's pixel as the image moved, so
  ``cam2img' = A @ cam2img`` and ``lidar2img' = A @ lidar2img``; per camera in ``results["img_aug_matrix"]``.

The 3D transforms are the LiDAR ones of :mod:`perception3d.datasets.transforms` (same sampling, same flags)
followed by the calibration update, so a config swaps ``GlobalRotScaleTrans`` for
``MultiModalGlobalRotScaleTrans`` and nothing else changes.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from perception3d.datasets.transforms import GlobalRotScaleTrans, RandomFlip3D, _Transform
from perception3d.registry import TRANSFORMS
from perception3d.structures.calibration import (apply_image_aug, apply_lidar_aug, image_aug_matrix, lidar_aug_matrix,
                                                 project_points)

__all__ = ["MultiModalGlobalRotScaleTrans", "MultiModalRandomFlip3D", "ImageResizeCropFlip", "SparseDepthMap",
           "update_lidar_calib"]


def update_lidar_calib(results: Dict[str, Any], t: np.ndarray) -> Dict[str, Any]:
    """After the points moved by ``t`` (4×4): ``lidar2cam`` / ``lidar2img`` of every camera ``@ inv(t)``, and
    ``lidar_aug_matrix = t @ lidar_aug_matrix``."""
    for key in ("lidar2cam", "lidar2img"):
        if key in results:
            m = np.asarray(results[key], np.float64)
            results[key] = np.stack([apply_lidar_aug(t, m[c], f"{key}[{c}]") for c in range(len(m))]) \
                if len(m) else m
    results["lidar_aug_matrix"] = t @ np.asarray(results.get("lidar_aug_matrix", np.eye(4)), np.float64)
    return results


@TRANSFORMS.register_module()
class MultiModalGlobalRotScaleTrans(GlobalRotScaleTrans):
    """:class:`~perception3d.datasets.transforms.GlobalRotScaleTrans` (rotate about z, scale, translate points
    and boxes) that also moves the cameras' ``lidar2cam`` / ``lidar2img`` (see the module docstring)."""

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        results = super().transform(results)
        t = lidar_aug_matrix(rotation=results["pcd_rotation_angle"], scale=results["pcd_scale_factor"],
                             translation=results["pcd_trans"])
        return update_lidar_calib(results, t)


@TRANSFORMS.register_module()
class MultiModalRandomFlip3D(RandomFlip3D):
    """:class:`~perception3d.datasets.transforms.RandomFlip3D` (BEV mirror of points and boxes) that also moves
    the cameras' ``lidar2cam`` / ``lidar2img``: the images are not flipped, the LiDAR frame is mirrored."""

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        results = super().transform(results)
        t = lidar_aug_matrix(flip_horizontal=bool(results["pcd_horizontal_flip"]),
                             flip_vertical=bool(results["pcd_vertical_flip"]))
        return update_lidar_calib(results, t)


@TRANSFORMS.register_module()
class ImageResizeCropFlip(_Transform):
    """Resize → crop → optional horizontal flip of every camera image, intrinsics updated (BEVFusion's
    ``ImageAug3D``).

    Args:
        final_dim: (H, W) of the output images.
        resize_lim: (min, max) resize factor, drawn per sample in training (the mean in test mode).
        bot_pct_lim: (min, max) fraction of the resized height cut from the bottom (the crop's vertical position;
            BEVFusion's convention), drawn in training, the mean in test mode; the crop is centred horizontally in
            test mode and uniform in training.
        rand_flip: flip each sample's images with probability 0.5 in training.
        test_mode: deterministic (no flip).
    Sets ``img_aug_matrix`` [C, 3, 3] (pixel transform per camera), ``img_shapes``.
    """

    def __init__(self, final_dim: Sequence[int], resize_lim: Sequence[float] = (1.0, 1.0),
                 bot_pct_lim: Sequence[float] = (0.0, 0.0), rand_flip: bool = False, test_mode: bool = False,
                 seed: Optional[int] = None, **kwargs):
        super().__init__(seed)
        if len(final_dim) != 2 or min(final_dim) <= 0:
            raise ValueError(f"ImageResizeCropFlip: final_dim must be (H, W) > 0, got {final_dim}")
        if len(resize_lim) != 2 or not 0 < resize_lim[0] <= resize_lim[1]:
            raise ValueError(f"ImageResizeCropFlip: resize_lim must be (min, max) > 0, got {resize_lim}")
        self.final_dim = (int(final_dim[0]), int(final_dim[1]))
        self.resize_lim = tuple(resize_lim)
        self.bot_pct_lim = tuple(bot_pct_lim)
        self.rand_flip = rand_flip
        self.test_mode = test_mode

    def sample(self, h: int, w: int) -> Tuple[float, Tuple[int, int], bool]:
        """(resize, (crop_x, crop_y), flip) for an h × w image."""
        fh, fw = self.final_dim
        if self.test_mode:
            s = float(np.mean(self.resize_lim))
            nh, nw = int(h * s), int(w * s)
            cy = int((1 - np.mean(self.bot_pct_lim)) * nh) - fh
            cx = int(max(0, nw - fw) / 2)
            return s, (cx, cy), False
        s = float(self.rng.uniform(*self.resize_lim))
        nh, nw = int(h * s), int(w * s)
        cy = int((1 - self.rng.uniform(*self.bot_pct_lim)) * nh) - fh
        cx = int(self.rng.uniform(0, max(0, nw - fw)))
        flip = bool(self.rand_flip and self.rng.uniform() < 0.5)
        return s, (cx, cy), flip

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        import cv2

        images = results.get("images")
        if not images:
            return results  # LiDAR-only sample (e.g. cameras skipped)
        h, w = images[0].shape[:2]
        s, (cx, cy), flip = self.sample(h, w)
        fh, fw = self.final_dim
        out_imgs, cam2img, lidar2img, augs = [], [], [], []
        for c, img in enumerate(images):
            if img.shape[:2] != (h, w):
                raise ValueError(f"ImageResizeCropFlip: camera {c} is {img.shape[1]}x{img.shape[0]}, camera 0 is "
                                 f"{w}x{h}; resize the cameras to one size first")
            nh, nw = int(h * s), int(w * s)
            res = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
            canvas = np.zeros((fh, fw) + img.shape[2:], img.dtype)
            # the part of the crop window [cy, cy + fh) x [cx, cx + fw) that lies inside the resized image
            y0, x0 = max(cy, 0), max(cx, 0)
            y1, x1 = min(cy + fh, nh), min(cx + fw, nw)
            if y1 > y0 and x1 > x0:
                canvas[y0 - cy:y1 - cy, x0 - cx:x1 - cx] = res[y0:y1, x0:x1]
            if flip:
                canvas = canvas[:, ::-1].copy()
            # continuous pixel coordinates: u' = (nw / w) u - cx (then fw - u' when flipped)
            a = image_aug_matrix(scale=(nw / w, nh / h), crop=(cx, cy), flip_width=fw if flip else 0.0)
            k, l2i = apply_image_aug(a, results["cam2img"][c], results["lidar2img"][c])
            out_imgs.append(canvas)
            cam2img.append(k)
            lidar2img.append(l2i)
            augs.append(a)
        results.update(images=out_imgs, cam2img=np.stack(cam2img), lidar2img=np.stack(lidar2img),
                       img_aug_matrix=np.stack(augs), img_shapes=[(fh, fw)] * len(out_imgs), img_flip=flip)
        return results


@TRANSFORMS.register_module()
class SparseDepthMap(_Transform):
    """Projected LiDAR depth per camera at a feature stride: the input of SparseFusion's *geometric transfer*
    (the authors' ``SparseDepth`` pipeline step).

    Key-frame points (time lag column ``time_lag_dim`` == 0, when the points have it) are projected with each
    camera's current ``lidar2img``; points in front of the camera and strictly inside ``(0, W - 1) × (0, H - 1)``
    fill the cell ``(floor(v / s), floor(u / s))`` of an ``(H // s) × (W // s)`` map; the nearest point wins a shared cell.

    Args:
        stride: feature stride ``s`` (4 in the authors' nuScenes config: the FPN's finest level).
        depth_mean / depth_var: normalisation of the depth channel (the authors' nuScenes statistics).
        time_lag_dim: the point column holding the sweep time lag (4: nuScenes multi-sweep points); ``None`` for
            single-sweep points whose column 4 is something else (Waymo's elongation): every point is used.
    Sets ``sparse_depth`` float32 [C, 2, H // s, W // s]: channel 0 ``(d - mean) / sqrt(var)`` where a point
    fell (0 elsewhere), channel 1 the 0/1 mask.
    """

    def __init__(self, stride: int = 4, depth_mean: float = 14.41, depth_var: float = 156.89,
                 time_lag_dim: Optional[int] = 4, **kwargs):
        super().__init__(None)
        self.time_lag_dim = None if time_lag_dim is None else int(time_lag_dim)
        if int(stride) < 1:
            raise ValueError(f"SparseDepthMap: stride must be >= 1, got {stride}")
        self.stride, self.depth_mean, self.depth_var = int(stride), float(depth_mean), float(depth_var)

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        if "lidar2img" not in results or not len(results["lidar2img"]):
            return results
        pts = np.asarray(results["points"], np.float64)
        if self.time_lag_dim is not None and pts.shape[1] > self.time_lag_dim:
            pts = pts[pts[:, self.time_lag_dim] == 0]
        maps = []
        for c, l2i in enumerate(results["lidar2img"]):
            h, w = results["img_shapes"][c]
            hs, ws = h // self.stride, w // self.stride
            uv, d = project_points(pts[:, :3], l2i)
            ok = (d > 1e-4) & (uv[:, 0] > 0) & (uv[:, 0] < w - 1) & (uv[:, 1] > 0) & (uv[:, 1] < h - 1)
            cell = (uv[ok] / self.stride).astype(np.int64)
            cell = np.minimum(cell, [ws - 1, hs - 1])
            near = np.full(hs * ws, np.inf)
            np.minimum.at(near, cell[:, 1] * ws + cell[:, 0], d[ok])
            hit = np.isfinite(near)
            m = np.zeros((2, hs * ws), np.float32)
            m[0, hit] = (near[hit] - self.depth_mean) / np.sqrt(self.depth_var)
            m[1, hit] = 1.0
            maps.append(m.reshape(2, hs, ws))
        results["sparse_depth"] = np.stack(maps)
        return results
