"""Multi-view scenes on disk → one :class:`Scene` (images + OpenCV :class:`Cameras` + splits).

Readers (each converts its format's camera convention at the reader, DESIGN.md §4):

* :func:`read_blender` — NeRF-synthetic / Blender ``transforms_{split}.json`` (OpenGL c2w → OpenCV).
* :func:`read_colmap` — COLMAP sparse model, text or binary (``cameras``, ``images``, ``points3D``).
* :func:`read_dtu` — DTU / SpaRe: per-view 3 × 4 projection matrices (``pos_XXX.txt`` or ``*_cam.txt``)
  decomposed into K, R, t.
* :func:`read_lmgaussian` — LM-Gaussian's ``cams/<name>_cam.txt`` ("extrinsic" is camera → world,
  "intrinsic" at 512 × 288, rescaled to the real image size).
* :func:`read_scene` — picks one of the above from what is in the folder.

Images are loaded lazily (``scene.image(i)``) and cached; ``scene.images`` loads all of them.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from .cameras import Cameras, decompose_projection, focal_from_fov, opengl_to_opencv

__all__ = [
    "Scene",
    "load_image",
    "read_blender",
    "camera_radius",
]

PathLike = Union[str, Path]
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".JPG", ".JPEG", ".PNG")


# ----------------------------------------------------------------------------------------------------------
# Image loading
# ----------------------------------------------------------------------------------------------------------
def load_image(path: PathLike, size: Optional[tuple[int, int]] = None,
               background: Optional[Sequence[float]] = (1.0, 1.0, 1.0)) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Read an image file → (rgb float32 [H, W, 3] in [0, 1], alpha float32 [H, W] or None).

    Args:
        path: PNG / JPEG file (8 or 16 bit, gray, RGB or RGBA).
        size: optional (width, height) to resize to (area filter when shrinking, linear when enlarging).
        background: RGBA images are composited ``rgb · a + bg · (1 − a)`` onto this colour; ``None`` keeps the
            raw RGB (alpha still returned).
    """
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        arr = iio.imread(path)
    except Exception as e:  # imageio raises several types
        raise ValueError(f"{path}: cannot decode image ({e})") from e
    if arr.dtype == np.uint8:
        img = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        img = arr.astype(np.float32) / 65535.0
    else:
        img = arr.astype(np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise ValueError(f"{path}: expected an RGB(A) or gray image, got shape {arr.shape}")
    if size is not None and (img.shape[1], img.shape[0]) != tuple(size):
        import cv2

        interp = cv2.INTER_AREA if size[0] < img.shape[1] else cv2.INTER_LINEAR
        img = cv2.resize(img, (int(size[0]), int(size[1])), interpolation=interp)
    alpha = None
    rgb = img[..., :3]
    if img.shape[-1] == 4:
        alpha = img[..., 3]
        if background is not None:
            bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
            rgb = rgb * alpha[..., None] + bg * (1.0 - alpha[..., None])
    rgb = torch.from_numpy(np.ascontiguousarray(np.clip(rgb, 0.0, 1.0)))
    return rgb, (torch.from_numpy(np.ascontiguousarray(alpha)) if alpha is not None else None)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding all of it when possible."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:
        rgb, _ = load_image(path, background=None)
        return rgb.shape[1], rgb.shape[0]


def camera_radius(camtoworlds: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Centre and radius of the camera rig as 3DGS's ``getNerfppNorm``: centre = mean camera centre,
    radius = 1.1 × max distance of a camera centre from it."""
    centers = camtoworlds[:, :3, 3]
    c = centers.mean(0)
    r = float((centers - c).norm(dim=-1).max()) * 1.1
    return c, r if r > 0 else 1.0


# ----------------------------------------------------------------------------------------------------------
# Scene
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Scene:
    """A multi-view scene.

    Attributes:
        cameras: :class:`Cameras` for all N views (OpenCV, K at the size the images are delivered at).
        image_paths: N image files (None entries for views without an image, e.g. test poses only).
        names: N view names (file stems).
        train_ids, test_ids: indices into the N views.
        points3d: optional [P, 3] float32 world points (COLMAP ``points3D``), ``points_rgb`` [P, 3] in [0, 1].
        scene_center, scene_scale: camera-rig centre [3] and radius (3DGS's ``getNerfppNorm``).
        bounds: optional (near, far) depth range when the format gives one.
        background: RGB colour RGBA images were composited on.
        mask_paths: optional N mask files (object masks, white = object).
        extras: format-specific things (e.g. ``{"depth_paths": [...]}``).
    """

    cameras: Cameras
    image_paths: list[Optional[Path]]
    names: list[str]
    train_ids: list[int]
    test_ids: list[int]
    points3d: Optional[torch.Tensor] = None
    points_rgb: Optional[torch.Tensor] = None
    scene_center: Optional[torch.Tensor] = None
    scene_scale: float = 1.0
    bounds: Optional[tuple[float, float]] = None
    background: Optional[tuple[float, float, float]] = (1.0, 1.0, 1.0)
    mask_paths: Optional[list[Optional[Path]]] = None
    extras: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = len(self.cameras)
        if len(self.image_paths) != n or len(self.names) != n:
            raise ValueError(f"Scene: {n} cameras but {len(self.image_paths)} images / {len(self.names)} names")
        if self.scene_center is None:
            self.scene_center, self.scene_scale = camera_radius(self.cameras.camtoworlds)

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def width(self) -> int:
        return self.cameras.width

    @property
    def height(self) -> int:
        return self.cameras.height

    def image(self, i: int) -> torch.Tensor:
        """View ``i`` as float32 [H, W, 3] in [0, 1], at the cameras' size (loaded once, then cached)."""
        if i not in self._cache:
            p = self.image_paths[i]
            if p is None:
                raise ValueError(f"Scene view {i} ({self.names[i]}) has no image file")
            rgb, alpha = load_image(p, (self.width, self.height), self.background)
            self._cache[i] = (rgb, alpha)
        return self._cache[i][0]

    def alpha(self, i: int) -> Optional[torch.Tensor]:
        """Alpha channel [H, W] of view ``i`` if its file has one, else None."""
        self.image(i)
        return self._cache[i][1]

    def mask(self, i: int) -> Optional[torch.Tensor]:
        """Object mask [H, W] bool of view ``i``: the mask file if there is one, else alpha > 0.5, else None."""
        if self.mask_paths is not None and self.mask_paths[i] is not None:
            m, a = load_image(self.mask_paths[i], (self.width, self.height), background=None)
            return (a if a is not None else m.mean(-1)) > 0.5
        a = self.alpha(i)
        return None if a is None else a > 0.5

    @property
    def images(self) -> list[torch.Tensor]:
        """All views' images (loads every file)."""
        return [self.image(i) for i in range(len(self))]

    @property
    def masks(self) -> Optional[list[Optional[torch.Tensor]]]:
        if self.mask_paths is None and all(p is None or Path(p).suffix.lower() != ".png" for p in self.image_paths):
            return None
        return [self.mask(i) for i in range(len(self))]

    def subset(self, ids: Sequence[int]) -> "Scene":
        """A scene of the views ``ids`` only (train/test ids re-indexed)."""
        ids = list(ids)
        pos = {j: k for k, j in enumerate(ids)}
        return Scene(
            cameras=self.cameras[ids], image_paths=[self.image_paths[i] for i in ids],
            names=[self.names[i] for i in ids], train_ids=[pos[i] for i in self.train_ids if i in pos],
            test_ids=[pos[i] for i in self.test_ids if i in pos], points3d=self.points3d,
            points_rgb=self.points_rgb, scene_center=self.scene_center, scene_scale=self.scene_scale,
            bounds=self.bounds, background=self.background,
            mask_paths=[self.mask_paths[i] for i in ids] if self.mask_paths is not None else None,
            extras=dict(self.extras),
        )

    def __repr__(self) -> str:
        return (f"Scene({len(self)} views, {self.width}x{self.height}, train={len(self.train_ids)}, "
                f"test={len(self.test_ids)}, points3d={None if self.points3d is None else len(self.points3d)})")


def _target_size(width: int, height: int, downscale: Optional[float],
                 size: Optional[tuple[int, int]]) -> tuple[int, int]:
    if size is not None and downscale is not None:
        raise ValueError("pass either downscale or size, not both")
    if size is not None:
        return int(size[0]), int(size[1])
    if downscale is not None:
        if downscale <= 0:
            raise ValueError(f"downscale must be > 0, got {downscale}")
        return int(round(width / downscale)), int(round(height / downscale))
    return width, height


# ----------------------------------------------------------------------------------------------------------
# Blender / NeRF-synthetic
# ----------------------------------------------------------------------------------------------------------
def read_blender(root: PathLike, splits: Sequence[str] = ("train", "val", "test"),
                 test_splits: Sequence[str] = ("test",), background: Optional[Sequence[float]] = (1.0, 1.0, 1.0),
                 downscale: Optional[float] = None, size: Optional[tuple[int, int]] = None,
                 only_existing: bool = False) -> Scene:
    """Read a NeRF-synthetic / Blender scene: ``root/transforms_{split}.json``.

    Each JSON has ``camera_angle_x`` (horizontal FoV, radians; focal ``f = 0.5 W / tan(0.5 camera_angle_x)``,
    square pixels, principal point at the image centre) or instant-ngp keys ``fl_x, fl_y, cx, cy, w, h``, and
    ``frames[*]`` with ``file_path`` (extension optional, ``.png`` added) and ``transform_matrix`` — a
    camera → world pose with OpenGL camera axes, converted to OpenCV here.

    Args:
        splits: splits to read; those without a JSON are skipped (at least one must exist).
        test_splits: which of them form ``test_ids``; the rest form ``train_ids``.
        background: RGB colour RGBA images are composited on (white by default, as in NeRF); None = raw RGB.
        downscale / size: deliver images (and K) shrunk by this factor / at this (width, height).
        only_existing: drop frames whose image file is missing instead of raising ``FileNotFoundError``.
    """
    root = Path(root)
    c2ws, Ks, paths, names, split_of = [], [], [], [], []
    wh: Optional[tuple[int, int]] = None
    found = False
    for split in splits:
        jpath = root / f"transforms_{split}.json"
        if not jpath.is_file():
            continue
        found = True
        try:
            meta = json.loads(jpath.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{jpath}: invalid JSON ({e})") from e
        if "frames" not in meta:
            raise ValueError(f"{jpath}: no 'frames' key")
        for k, fr in enumerate(meta["frames"]):
            if "file_path" not in fr or "transform_matrix" not in fr:
                raise ValueError(f"{jpath}: frames[{k}] needs 'file_path' and 'transform_matrix'")
            p = root / fr["file_path"]
            if p.suffix.lower() not in IMAGE_EXTS:
                p = p.with_name(p.name + ".png")
            if not p.is_file():
                if only_existing:
                    continue
                raise FileNotFoundError(
                    f"{jpath}: frames[{k}] image file not found: {p} (pass only_existing=True to skip such frames)")
            if wh is None:
                wh = (int(meta["w"]), int(meta["h"])) if "w" in meta and "h" in meta else _image_size(p)
            W, H = wh
            if "fl_x" in meta:
                fx = float(meta["fl_x"])
                fy = float(meta.get("fl_y", fx))
                cx, cy = float(meta.get("cx", W / 2)), float(meta.get("cy", H / 2))
            elif "camera_angle_x" in meta:
                fx = fy = focal_from_fov(float(meta["camera_angle_x"]), W)
                cx, cy = W / 2, H / 2
            else:
                raise ValueError(f"{jpath}: needs 'camera_angle_x' or 'fl_x' for the focal length")
            Ks.append([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
            c2ws.append(np.asarray(fr["transform_matrix"], dtype=np.float64))
            paths.append(p)
            names.append(Path(fr["file_path"]).with_suffix("").as_posix().lstrip("./") if p.suffix else p.stem)
            split_of.append(split)
    if not found:
        raise FileNotFoundError(f"{root}: no transforms_{{{','.join(splits)}}}.json found")
    if not paths:
        raise ValueError(f"{root}: no frame with an existing image file")
    c2w = opengl_to_opencv(torch.from_numpy(np.stack(c2ws)))
    cams = Cameras.from_camtoworlds(c2w, torch.tensor(Ks, dtype=torch.float32), wh[0], wh[1], names)
    tw, th = _target_size(wh[0], wh[1], downscale, size)
    if (tw, th) != wh:
        cams = cams.resize(tw, th)
    test_ids = [i for i, s in enumerate(split_of) if s in test_splits]
    train_ids = [i for i, s in enumerate(split_of) if s not in test_splits]
    return Scene(cams, paths, names, train_ids, test_ids,
                 background=tuple(background) if background is not None else None,
                 extras={"splits": split_of})
