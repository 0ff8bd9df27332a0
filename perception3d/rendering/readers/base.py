"""The :class:`Scene` every reader returns, and image loading shared by the readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from perception3d.structures.cameras import Cameras

__all__ = ["Scene", "load_image", "camera_radius", "IMAGE_EXTS"]

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
    cache: bool = True
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
        """View ``i`` as float32 [H, W, 3] in [0, 1], at the cameras' size (cached when ``cache``)."""
        return self._load(i)[0]

    def _load(self, i: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        if i in self._cache:
            return self._cache[i]
        p = self.image_paths[i]
        if p is None:
            raise ValueError(f"Scene view {i} ({self.names[i]}) has no image file")
        out = load_image(p, (self.width, self.height), self.background)
        if self.cache:
            self._cache[i] = out
        return out

    def alpha(self, i: int) -> Optional[torch.Tensor]:
        """Alpha channel [H, W] of view ``i`` if its file has one, else None."""
        return self._load(i)[1]

    def stack_images(self, ids: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Images of views ``ids`` (default: all) as one float32 tensor [N, H, W, 3]."""
        ids = range(len(self)) if ids is None else ids
        return torch.stack([self.image(i) for i in ids])

    @property
    def train_cameras(self) -> Cameras:
        return self.cameras[self.train_ids]

    @property
    def test_cameras(self) -> Cameras:
        return self.cameras[self.test_ids]

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
        """A scene of the views ``ids`` only (train/test ids re-indexed; cached images are not carried over)."""
        ids = list(ids)
        pos = {j: k for k, j in enumerate(ids)}
        return Scene(
            cameras=self.cameras[ids], image_paths=[self.image_paths[i] for i in ids],
            names=[self.names[i] for i in ids], train_ids=sorted(pos[i] for i in self.train_ids if i in pos),
            test_ids=sorted(pos[i] for i in self.test_ids if i in pos), points3d=self.points3d,
            points_rgb=self.points_rgb, scene_center=self.scene_center, scene_scale=self.scene_scale,
            bounds=self.bounds, background=self.background,
            mask_paths=[self.mask_paths[i] for i in ids] if self.mask_paths is not None else None,
            # per-view lists in extras (depth-map paths, split names …) follow the selection
            extras={k: [v[i] for i in ids] if isinstance(v, list) and len(v) == len(self) else v
                    for k, v in self.extras.items()},
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
