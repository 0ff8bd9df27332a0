"""nerfstudio / instant-ngp ``transforms.json`` captures (real photos with OpenCV distortion) → :class:`Scene`.

The format (nerfstudio's ``ns-process-data`` output, instant-ngp's ``colmap2nerf.py`` output)::

    {"camera_model": "OPENCV",            # or "PINHOLE", "SIMPLE_PINHOLE", "OPENCV_FISHEYE" (optional)
     "fl_x": 1375.5, "fl_y": 1374.5, "cx": 554.6, "cy": 965.3, "w": 1080, "h": 1920,
     "k1": 0.058, "k2": -0.081, "p1": -0.001, "p2": 0.0002,     # OpenCV distortion (k3, k4 optional)
     "aabb_scale": 4,                      # instant-ngp: the scene box is aabb_scale × the unit cube
     "ply_file_path": "sparse_pc.ply",     # nerfstudio: initial points (optional)
     "frames": [{"file_path": "images/0001.jpg", "transform_matrix": [[...4 x 4...]],
                 # any of the camera keys above may also be given per frame, overriding the shared ones
                 "mask_path": "masks/0001.png", "depth_file_path": "depths/0001.png"}]}

``transform_matrix`` is camera → world with OpenGL camera axes (x right, y up, looking −z); it is converted to
the house OpenCV world → camera convention here (:func:`~perception3d.structures.cameras.opengl_to_opencv`).

**Distortion is removed, not carried**: the rasterizer is a pinhole camera, so every image is undistorted with
OpenCV (``cv2.initUndistortRectifyMap`` + ``cv2.remap``, bilinear) at its file resolution onto a pinhole camera
whose K is ``cv2.getOptimalNewCameraMatrix(K, dist, (w, h), alpha=0)`` — the largest pinhole view that has only
valid pixels (no black borders, as nerfstudio's undistortion does) — and then resized to the delivered size.
``Scene.cameras`` hold that pinhole K; ``scene.extras["distortion"]`` keeps the original parameters.
The format's ``cx, cy`` are continuous coordinates with pixel centres at +0.5 (as nerfstudio and instant-ngp
cast rays); OpenCV's functions take pixel centres at integers, so K is shifted by −0.5 for them and back after.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from perception3d.fileio import read_json
from perception3d.io.ply import read_points_ply
from perception3d.structures.cameras import Cameras, opengl_to_opencv, shift_principal_point
from .base import IMAGE_EXTS, PathLike, Scene, _image_size, _target_size, load_image

__all__ = ["read_nerfstudio", "read_points_ply", "UndistortedScene", "NERFSTUDIO_CAMERA_MODELS"]

NERFSTUDIO_CAMERA_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "OPENCV_FISHEYE")
_CAM_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2", "camera_model")


@dataclass(frozen=True)
class _Distortion:
    """One physical camera: its distorted K (house convention), OpenCV coefficients and file size."""

    K: tuple  # 9 floats, row-major
    coeffs: tuple  # OPENCV: (k1, k2, p1, p2, k3); OPENCV_FISHEYE: (k1, k2, k3, k4)
    fisheye: bool
    size: tuple  # (w, h) the intrinsics refer to

    @property
    def is_identity(self) -> bool:
        return not any(abs(c) > 0 for c in self.coeffs)

    def pinhole_K(self) -> np.ndarray:
        """K of the undistorted pinhole image (same size), house convention."""
        import cv2

        K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        if self.is_identity:
            return K
        Kcv = shift_principal_point(K, -0.5).double().numpy()
        d = np.asarray(self.coeffs, dtype=np.float64)
        if self.fisheye:
            newK = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(Kcv, d, self.size, np.eye(3), balance=0.0)
        else:
            newK, _ = cv2.getOptimalNewCameraMatrix(Kcv, d, self.size, 0.0, self.size)
        return shift_principal_point(newK, 0.5).double().numpy()

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        """``cv2.remap`` maps from the undistorted pinhole image to the distorted file."""
        import cv2

        Kcv = shift_principal_point(np.asarray(self.K).reshape(3, 3), -0.5).double().numpy()
        newK = shift_principal_point(self.pinhole_K(), -0.5).double().numpy()
        d = np.asarray(self.coeffs, dtype=np.float64)
        if self.fisheye:
            return cv2.fisheye.initUndistortRectifyMap(Kcv, d, np.eye(3), newK, self.size, cv2.CV_32FC1)
        return cv2.initUndistortRectifyMap(Kcv, d, None, newK, self.size, cv2.CV_32FC1)


@dataclass(repr=False)
class UndistortedScene(Scene):
    """A :class:`Scene` whose image files are distorted: each view is undistorted (OpenCV) at its file size onto
    the pinhole camera in ``cameras``, then resized to the delivered size. ``distortions[i]`` is view i's
    camera (None: already pinhole)."""

    distortions: list = field(default_factory=list)
    _maps: dict = field(default_factory=dict, repr=False)

    def _undistort(self, i: int, arr: np.ndarray) -> np.ndarray:
        """[h, w(, C)] array at view i's file size → undistorted pinhole view at the delivered size."""
        import cv2

        dist = self.distortions[i]
        if (arr.shape[1], arr.shape[0]) != tuple(dist.size):
            raise ValueError(f"{self.image_paths[i]}: image is {arr.shape[1]}x{arr.shape[0]} but its camera's "
                             f"intrinsics are for {dist.size[0]}x{dist.size[1]} (w, h in the transforms.json)")
        if dist not in self._maps:
            self._maps[dist] = dist.maps()
        mx, my = self._maps[dist]
        out = cv2.remap(arr, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if (self.width, self.height) != tuple(dist.size):
            interp = cv2.INTER_AREA if self.width < dist.size[0] else cv2.INTER_LINEAR
            out = cv2.resize(out, (self.width, self.height), interpolation=interp)
        return np.ascontiguousarray(out)

    def _distorted(self, i: int) -> bool:
        return bool(self.distortions) and self.distortions[i] is not None and not self.distortions[i].is_identity

    def _load(self, i: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        if not self._distorted(i):
            return super()._load(i)
        if i in self._cache:
            return self._cache[i]
        p = self.image_paths[i]
        if p is None:
            raise ValueError(f"Scene view {i} ({self.names[i]}) has no image file")
        rgb, alpha = load_image(p, None, self.background)
        und = np.clip(self._undistort(i, rgb.numpy()), 0, 1)
        out = (torch.from_numpy(und), None if alpha is None else torch.from_numpy(self._undistort(i, alpha.numpy())))
        if self.cache:
            self._cache[i] = out
        return out

    def mask(self, i: int) -> Optional[torch.Tensor]:
        """Object mask of view i, undistorted like its image."""
        if not self._distorted(i) or self.mask_paths is None or self.mask_paths[i] is None:
            return super().mask(i)
        m, a = load_image(self.mask_paths[i], None, background=None)
        m = (a if a is not None else m.mean(-1)).numpy()
        return torch.from_numpy(self._undistort(i, m)) > 0.5

    def subset(self, ids: Sequence[int]) -> "UndistortedScene":
        s = super().subset(ids)
        kw = {f.name: getattr(s, f.name) for f in fields(Scene) if f.init and f.name != "_cache"}
        return UndistortedScene(**kw, distortions=[self.distortions[i] for i in ids] if self.distortions else [])


def _num(meta: dict, key: str, where: str, default=None) -> Optional[float]:
    if key not in meta:
        return default
    try:
        v = float(meta[key])
    except (TypeError, ValueError):
        raise ValueError(f"{where}: '{key}' must be a number, got {meta[key]!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{where}: '{key}' is not finite ({v})")
    return v


def _frame_camera(meta: dict, fr: dict, jpath: Path, k: int, image: Path) -> _Distortion:
    """The camera of frame k: per-frame keys override the shared ones."""
    c = {key: fr[key] if key in fr else meta[key] for key in _CAM_KEYS if key in fr or key in meta}
    where = f"{jpath}: frames[{k}]"
    model = str(c.get("camera_model", "OPENCV")).upper()
    if model not in NERFSTUDIO_CAMERA_MODELS:
        raise ValueError(f"{where}: camera_model {model!r} is not supported (one of {NERFSTUDIO_CAMERA_MODELS})")
    w, h = _num(c, "w", where), _num(c, "h", where)
    if w is None or h is None:
        w, h = _image_size(image)
    fx = _num(c, "fl_x", where)
    if fx is None:
        # instant-ngp also writes camera_angle_x; use it when fl_x is absent
        ang = _num(meta, "camera_angle_x", where)
        if ang is None:
            raise ValueError(f"{where}: no focal length ('fl_x' or 'camera_angle_x')")
        fx = 0.5 * w / np.tan(0.5 * ang)
    fy = _num(c, "fl_y", where, fx)
    if fx <= 0 or fy <= 0:
        raise ValueError(f"{where}: focal lengths must be > 0, got fl_x={fx}, fl_y={fy}")
    cx, cy = _num(c, "cx", where, w / 2), _num(c, "cy", where, h / 2)
    K = (fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0)
    g = {key: _num(c, key, where, 0.0) for key in ("k1", "k2", "k3", "k4", "p1", "p2")}
    if model == "OPENCV_FISHEYE":
        coeffs, fisheye = (g["k1"], g["k2"], g["k3"], g["k4"]), True
    else:
        if model in ("PINHOLE", "SIMPLE_PINHOLE") and any(g.values()):
            raise ValueError(f"{where}: camera_model {model} but distortion coefficients are given")
        if abs(g["k4"]) > 0:
            raise ValueError(f"{where}: k4 needs camera_model OPENCV_FISHEYE")
        coeffs, fisheye = (g["k1"], g["k2"], g["p1"], g["p2"], g["k3"]), False
    return _Distortion(K, coeffs, fisheye, (int(round(w)), int(round(h))))


def read_nerfstudio(root: PathLike, transforms: str = "transforms.json", downscale: Optional[float] = None,
                    size: Optional[tuple[int, int]] = None, background: Optional[Sequence[float]] = None,
                    only_existing: bool = False, undistort: bool = True) -> Scene:
    """Read a nerfstudio / instant-ngp capture (module doc): ``root/transforms.json`` + the images it lists.

    All views are training views (``build_scene`` splits them: ``train_views`` / ``n_train_views`` /
    ``holdout_every``). Images with different file sizes need ``size=(W, H)``.

    Args:
        transforms: the JSON's name inside ``root`` (or a path to it).
        downscale / size: deliver images (and K) shrunk by this factor / at exactly (width, height).
        background: colour RGBA images are composited on (None: keep their RGB, alpha is returned separately).
        only_existing: skip frames whose image file is missing instead of raising ``FileNotFoundError``.
        undistort: False reads the images as they are and drops the distortion (a warning-free approximation,
            only for tests or already-undistorted images).
    Returns:
        an :class:`UndistortedScene`; ``extras``: ``distortion`` (camera model and coefficients),
        ``aabb_scale``, ``aabb`` ([2, 3] world box of instant-ngp's ``aabb_scale``, see below),
        ``depth_paths`` (per-frame ``depth_file_path`` or None), ``transforms`` (the JSON path).

    instant-ngp maps a world point ``x`` to ``0.33 x + 0.5`` and its unit cube [0, 1]³ is the scene; with
    ``aabb_scale = s`` the box is ``s`` times that, centred at the cube's centre: ``[−1.5 s, 1.5 s]³`` in
    world units (``extras["aabb"]``).
    """
    root = Path(root)
    jpath = Path(transforms) if Path(transforms).is_absolute() else root / transforms
    if not jpath.is_file():
        raise FileNotFoundError(f"{root}: no {transforms} (nerfstudio / instant-ngp capture)")
    meta = read_json(jpath)
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise ValueError(f"{jpath}: no 'frames' list")
    c2ws, cams_of, paths, names, masks, depths = [], [], [], [], [], []
    for k, fr in enumerate(meta["frames"]):
        if not isinstance(fr, dict) or "file_path" not in fr:
            raise ValueError(f"{jpath}: frames[{k}] has no 'file_path' (an image without a camera entry?)")
        if "transform_matrix" not in fr:
            raise ValueError(f"{jpath}: frames[{k}] ({fr['file_path']}) has no 'transform_matrix' (no camera pose)")
        p = jpath.parent / fr["file_path"]
        if p.suffix not in IMAGE_EXTS and not p.is_file():
            cand = [p.with_name(p.name + e) for e in IMAGE_EXTS if p.with_name(p.name + e).is_file()]
            p = cand[0] if cand else p
        if not p.is_file():
            if only_existing:
                continue
            raise FileNotFoundError(f"{jpath}: frames[{k}] image file not found: {p} "
                                    f"(a camera without an image; pass only_existing=True to skip such frames)")
        try:
            m = np.asarray(fr["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError) as e:      # ragged rows, words: not a matrix of numbers
            raise ValueError(f"{jpath}: frames[{k}] transform_matrix is not a matrix of numbers ({e})") from e
        if m.shape not in ((4, 4), (3, 4)) or not np.isfinite(m).all():
            raise ValueError(f"{jpath}: frames[{k}] transform_matrix must be a finite 4 x 4 (or 3 x 4) matrix, "
                             f"got shape {m.shape}")
        if abs(np.linalg.det(m[:3, :3])) < 1e-8:
            raise ValueError(f"{jpath}: frames[{k}] transform_matrix has a singular rotation block")
        c2ws.append(m if m.shape == (4, 4) else np.vstack([m, [0, 0, 0, 1]]))
        cams_of.append(_frame_camera(meta, fr, jpath, k, p))
        paths.append(p)
        names.append(Path(fr["file_path"]).with_suffix("").as_posix().lstrip("./"))
        masks.append(jpath.parent / fr["mask_path"] if "mask_path" in fr else None)
        depths.append(jpath.parent / fr["depth_file_path"] if "depth_file_path" in fr else None)
    if not paths:
        raise ValueError(f"{jpath}: no frame with an existing image file")
    sizes = {d.size for d in cams_of}
    if len(sizes) > 1 and size is None:
        raise ValueError(f"{jpath}: frames have different image sizes {sorted(sizes)}; pass size=(W, H)")
    W0, H0 = cams_of[0].size
    Ks = []
    for d in cams_of:
        K = d.pinhole_K() if undistort else np.asarray(d.K).reshape(3, 3)
        tw, th = _target_size(d.size[0], d.size[1], downscale, size) if size is None else size
        K = K.copy()
        K[0] *= tw / d.size[0]
        K[1] *= th / d.size[1]
        Ks.append(K)
    tw, th = _target_size(W0, H0, downscale, size)
    c2w = opengl_to_opencv(torch.from_numpy(np.stack(c2ws)))
    cams = Cameras.from_camtoworlds(c2w, torch.tensor(np.stack(Ks), dtype=torch.float32), tw, th, names)
    points, rgb = None, None
    if "ply_file_path" in meta:
        ply = jpath.parent / meta["ply_file_path"]
        if not ply.is_file():
            raise FileNotFoundError(f"{jpath}: ply_file_path {meta['ply_file_path']!r} not found: {ply}")
        points, rgb = read_points_ply(ply)
    extras = {
        "transforms": jpath,
        "distortion": [{"model": "OPENCV_FISHEYE" if d.fisheye else "OPENCV", "coeffs": list(d.coeffs),
                        "K": list(d.K), "size": list(d.size)} for d in cams_of],
        "undistorted": bool(undistort),
        "depth_paths": depths,
    }
    if "aabb_scale" in meta:
        s = _num(meta, "aabb_scale", str(jpath))
        extras["aabb_scale"] = s
        extras["aabb"] = torch.tensor([[-1.5 * s] * 3, [1.5 * s] * 3])
    has_mask = any(m is not None for m in masks)
    return UndistortedScene(cams, paths, names, list(range(len(paths))), [], points3d=points, points_rgb=rgb,
                            background=tuple(background) if background is not None else None,
                            mask_paths=masks if has_mask else None, extras=extras,
                            distortions=list(cams_of) if undistort else [])
