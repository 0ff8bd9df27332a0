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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .cameras import Cameras, decompose_projection, focal_from_fov, opengl_to_opencv

__all__ = [
    "Scene",
    "load_image",
    "read_blender",
    "read_colmap",
    "read_colmap_model",
    "write_colmap_model",
    "colmap_K",
    "read_projection_matrix",
    "read_dtu",
    "read_cam_txt",
    "read_lmgaussian",
    "decode_jet_depth",
    "read_lmgaussian_depth",
    "read_scene",
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


# ----------------------------------------------------------------------------------------------------------
# COLMAP
# ----------------------------------------------------------------------------------------------------------
# model id → (name, number of params); the layout of COLMAP's src/colmap/sensor/models.h
COLMAP_CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
}
_COLMAP_MODEL_IDS = {name: (i, n) for i, (name, n) in COLMAP_CAMERA_MODELS.items()}
_DISTORTION_FREE = ("SIMPLE_PINHOLE", "PINHOLE")


def _qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    """COLMAP quaternion (qw, qx, qy, qz), world → camera rotation."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    from .cameras import _rotmat_to_quat

    q = _rotmat_to_quat(torch.as_tensor(np.asarray(R), dtype=torch.float64)).numpy()
    return q if q[0] >= 0 else -q


def colmap_K(model: str, params: Sequence[float], where: str = "") -> np.ndarray:
    """3 × 3 K from COLMAP intrinsics. COLMAP's pixel centres are at +0.5 like ours, so ``cx, cy`` are used as is.
    Distortion parameters (SIMPLE_RADIAL ``k``, OPENCV ``k1 k2 p1 p2`` …) are dropped with a warning."""
    p = [float(v) for v in params]
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "FOV"):
        f, cx, cy = p[0], p[1], p[2]
        fx = fy = f
    elif model in ("PINHOLE", "OPENCV", "OPENCV_FISHEYE", "FULL_OPENCV", "THIN_PRISM_FISHEYE"):
        fx, fy, cx, cy = p[:4]
    else:
        raise ValueError(f"{where}: unsupported COLMAP camera model {model!r}")
    if model not in _DISTORTION_FREE:
        extra = p[3:] if model.startswith("SIMPLE") or model in ("RADIAL", "RADIAL_FISHEYE", "FOV") else p[4:]
        if any(abs(v) > 0 for v in extra):
            warnings.warn(f"{where}: COLMAP camera model {model} has distortion {extra}; it is ignored "
                          f"(undistort the images, e.g. `colmap image_undistorter`, for exact results)",
                          stacklevel=3)
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)


def read_colmap_model(path: PathLike) -> tuple[dict, dict, dict]:
    """Read a COLMAP sparse model folder (``cameras``, ``images``, ``points3D`` as ``.bin`` or ``.txt``).

    Returns:
        cameras: {camera_id: dict(model, width, height, params)}
        images:  {image_id: dict(qvec, tvec, camera_id, name)} — qvec/tvec are world → camera.
        points:  {point_id: dict(xyz, rgb)} (empty if the file is absent).
    """
    path = Path(path)
    if (path / "cameras.bin").is_file() and (path / "images.bin").is_file():
        return _read_colmap_bin(path)
    if (path / "cameras.txt").is_file() and (path / "images.txt").is_file():
        return _read_colmap_txt(path)
    raise FileNotFoundError(f"{path}: no COLMAP model (cameras.bin/images.bin or cameras.txt/images.txt)")


def _data_lines(f: Path) -> list[str]:
    return [ln.strip() for ln in f.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _read_colmap_txt(path: Path) -> tuple[dict, dict, dict]:
    cams, imgs, pts = {}, {}, {}
    f = path / "cameras.txt"
    for ln in _data_lines(f):
        e = ln.split()
        try:
            cams[int(e[0])] = dict(model=e[1], width=int(e[2]), height=int(e[3]), params=[float(v) for v in e[4:]])
        except (IndexError, ValueError) as err:
            raise ValueError(f"{f}: bad camera line {ln!r} ({err})") from err
    f = path / "images.txt"
    # images.txt alternates: "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME" and a 2D-points line (may be empty)
    lines = [ln.rstrip("\n") for ln in f.read_text().splitlines() if not ln.lstrip().startswith("#")]
    k = 0
    while k < len(lines):
        ln = lines[k].strip()
        if not ln:
            k += 1
            continue
        e = ln.split()
        try:
            imgs[int(e[0])] = dict(qvec=np.array([float(v) for v in e[1:5]]),
                                   tvec=np.array([float(v) for v in e[5:8]]), camera_id=int(e[8]),
                                   name=" ".join(e[9:]))
        except (IndexError, ValueError) as err:
            raise ValueError(f"{f}: bad image line {ln!r} ({err})") from err
        k += 2  # skip the POINTS2D line
    f = path / "points3D.txt"
    if f.is_file():
        for ln in _data_lines(f):
            e = ln.split()
            pts[int(e[0])] = dict(xyz=np.array([float(v) for v in e[1:4]]), rgb=np.array([int(v) for v in e[4:7]]))
    return cams, imgs, pts


def _read_colmap_bin(path: Path) -> tuple[dict, dict, dict]:
    import struct

    cams, imgs, pts = {}, {}, {}

    def rd(fh, fmt):
        size = struct.calcsize("<" + fmt)
        buf = fh.read(size)
        if len(buf) != size:
            raise ValueError(f"{fh.name}: truncated COLMAP binary file")
        return struct.unpack("<" + fmt, buf)

    with open(path / "cameras.bin", "rb") as fh:
        for _ in range(rd(fh, "Q")[0]):
            cid, mid, w, h = rd(fh, "iiQQ")
            if mid not in COLMAP_CAMERA_MODELS:
                raise ValueError(f"{fh.name}: unknown COLMAP camera model id {mid}")
            name, n = COLMAP_CAMERA_MODELS[mid]
            cams[cid] = dict(model=name, width=w, height=h, params=list(rd(fh, "d" * n)))
    with open(path / "images.bin", "rb") as fh:
        for _ in range(rd(fh, "Q")[0]):
            v = rd(fh, "idddddddi")
            name = b""
            while True:
                c = fh.read(1)
                if c in (b"\x00", b""):
                    break
                name += c
            n2d = rd(fh, "Q")[0]
            fh.seek(24 * n2d, 1)  # x, y (double), point3D_id (int64)
            imgs[v[0]] = dict(qvec=np.array(v[1:5]), tvec=np.array(v[5:8]), camera_id=v[8], name=name.decode())
    f = path / "points3D.bin"
    if f.is_file():
        with open(f, "rb") as fh:
            for _ in range(rd(fh, "Q")[0]):
                v = rd(fh, "QdddBBBd")
                track = rd(fh, "Q")[0]
                fh.seek(8 * track, 1)  # (image_id, point2D_idx) int32 pairs
                pts[v[0]] = dict(xyz=np.array(v[1:4]), rgb=np.array(v[4:7]))
    return cams, imgs, pts


def write_colmap_model(path: PathLike, cameras: dict, images: dict, points: Optional[dict] = None,
                       binary: bool = False) -> None:
    """Write a COLMAP model in the layout :func:`read_colmap_model` reads (no 2D observations / tracks)."""
    import struct

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    points = points or {}
    if binary:
        with open(path / "cameras.bin", "wb") as fh:
            fh.write(struct.pack("<Q", len(cameras)))
            for cid, c in cameras.items():
                mid, n = _COLMAP_MODEL_IDS[c["model"]]
                fh.write(struct.pack("<iiQQ", cid, mid, c["width"], c["height"]))
                fh.write(struct.pack("<" + "d" * n, *c["params"]))
        with open(path / "images.bin", "wb") as fh:
            fh.write(struct.pack("<Q", len(images)))
            for iid, im in images.items():
                fh.write(struct.pack("<idddddddi", iid, *im["qvec"], *im["tvec"], im["camera_id"]))
                fh.write(im["name"].encode() + b"\x00")
                fh.write(struct.pack("<Q", 0))
        with open(path / "points3D.bin", "wb") as fh:
            fh.write(struct.pack("<Q", len(points)))
            for pid, p in points.items():
                fh.write(struct.pack("<QdddBBBd", pid, *p["xyz"], *[int(v) for v in p["rgb"]], 0.0))
                fh.write(struct.pack("<Q", 0))
        return
    with open(path / "cameras.txt", "w") as fh:
        fh.write("# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n")
        for cid, c in cameras.items():
            fh.write(f"{cid} {c['model']} {c['width']} {c['height']} {' '.join(repr(float(v)) for v in c['params'])}\n")
    with open(path / "images.txt", "w") as fh:
        fh.write("# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n# POINTS2D[] as (X, Y, POINT3D_ID)\n")
        for iid, im in images.items():
            vals = " ".join(repr(float(v)) for v in list(im["qvec"]) + list(im["tvec"]))
            fh.write(f"{iid} {vals} {im['camera_id']} {im['name']}\n\n")
    with open(path / "points3D.txt", "w") as fh:
        fh.write("# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[]\n")
        for pid, p in points.items():
            xyz = " ".join(repr(float(v)) for v in p["xyz"])
            fh.write(f"{pid} {xyz} {' '.join(str(int(v)) for v in p['rgb'])} 0\n")


def read_colmap(root: PathLike, images_dir: str = "images", sparse_dir: Optional[str] = None,
                test_every: int = 8, downscale: Optional[float] = None, size: Optional[tuple[int, int]] = None,
                only_existing: bool = False) -> Scene:
    """Read a COLMAP scene: ``root/sparse/0`` (or ``root/sparse``, or ``sparse_dir``) + ``root/images_dir``.

    Views are sorted by image name; every ``test_every``-th one (0, n, 2n, …; the LLFF / Mip-NeRF 360 rule)
    is a test view (``test_every=0``: all train). All cameras must share one size after scaling to the
    delivered size; K is rescaled per camera to the image size actually delivered (e.g. ``images_4``).
    """
    root = Path(root)
    if sparse_dir is not None:
        model_dir = root / sparse_dir
    else:
        model_dir = next((d for d in (root / "sparse" / "0", root / "sparse", root) if
                          (d / "cameras.bin").is_file() or (d / "cameras.txt").is_file()), root / "sparse" / "0")
    cams, imgs, pts = read_colmap_model(model_dir)
    order = sorted(imgs, key=lambda i: imgs[i]["name"])
    viewmats, Ks, paths, names = [], [], [], []
    out_wh: Optional[tuple[int, int]] = None
    for iid in order:
        im = imgs[iid]
        p = root / images_dir / im["name"]
        if not p.is_file():
            if only_existing:
                continue
            raise FileNotFoundError(f"{model_dir}: image {im['name']!r} (id {iid}) not found at {p}")
        if im["camera_id"] not in cams:
            raise ValueError(f"{model_dir}: image {im['name']!r} uses unknown camera id {im['camera_id']}")
        c = cams[im["camera_id"]]
        K = colmap_K(c["model"], c["params"], where=f"{model_dir} camera {im['camera_id']}")
        # The folder may hold downsampled images (images_2, images_4 …): scale K to the file's real size.
        fw, fh = _image_size(p)
        tw, th = _target_size(fw, fh, downscale, size)
        K[0] *= tw / c["width"]
        K[1] *= th / c["height"]
        if out_wh is None:
            out_wh = (tw, th)
        elif out_wh != (tw, th):
            raise ValueError(f"{model_dir}: images of different sizes ({out_wh} vs {(tw, th)} for {im['name']}); "
                             "pass size=(W, H) to deliver them all at one size")
        vm = np.eye(4)
        vm[:3, :3] = _qvec_to_rotmat(im["qvec"])
        vm[:3, 3] = im["tvec"]
        viewmats.append(vm)
        Ks.append(K)
        paths.append(p)
        names.append(Path(im["name"]).with_suffix("").as_posix())
    if not paths:
        raise ValueError(f"{model_dir}: no image found under {root / images_dir}")
    cameras = Cameras(torch.tensor(np.stack(viewmats), dtype=torch.float32),
                      torch.tensor(np.stack(Ks), dtype=torch.float32), out_wh[0], out_wh[1], names)
    n = len(paths)
    test_ids = list(range(0, n, test_every)) if test_every and test_every > 0 else []
    train_ids = [i for i in range(n) if i not in set(test_ids)]
    p3 = rgb = None
    if pts:
        p3 = torch.tensor(np.stack([v["xyz"] for v in pts.values()]), dtype=torch.float32)
        rgb = torch.tensor(np.stack([v["rgb"] for v in pts.values()]), dtype=torch.float32) / 255.0
    return Scene(cameras, paths, names, train_ids, test_ids, points3d=p3, points_rgb=rgb, background=None)


# ----------------------------------------------------------------------------------------------------------
# DTU / SpaRe (projection matrices)
# ----------------------------------------------------------------------------------------------------------
def read_projection_matrix(path: PathLike) -> np.ndarray:
    """A 3 × 4 projection matrix from a text file of 12 numbers (3 rows × 4; DTU's ``pos_XXX.txt``).
    A 4th row ``0 0 0 1`` is tolerated."""
    path = Path(path)
    try:
        vals = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read a projection matrix ({e})") from e
    if vals.size == 16:
        vals = vals[:12]
    if vals.size != 12:
        raise ValueError(f"{path}: expected 12 numbers (3 x 4 projection matrix), found {vals.size}")
    return vals.reshape(3, 4)


DTU_IMAGE = "rect_{:03d}_{}_r5000.png"
SPARE_IMAGE = "cam_{:03d}_{}_0000.png"


def _dtu_calib_file(root: Path, scene_dir: Path, idx: int, calib_dir: Optional[PathLike]) -> Optional[Path]:
    name = f"pos_{idx + 1:03d}.txt"
    cands = [Path(calib_dir) / name] if calib_dir is not None else [
        scene_dir / name, scene_dir / "cams" / name, scene_dir / "Calibration" / name,
        scene_dir / "Calibration" / "cal18" / name, root / "Calibration" / "cal18" / name,
        root / "Calibration" / name, root / "Cameras" / name, root / "cams" / name,
    ]
    return next((c for c in cands if c.is_file()), None)


def read_dtu(scene_dir: PathLike, view_ids: Optional[Sequence[int]] = None,
             train_ids: Optional[Sequence[int]] = None, test_ids: Optional[Sequence[int]] = None,
             dataset: str = "DTU", lighting: int = 3, calib_dir: Optional[PathLike] = None,
             mask_dir: Optional[PathLike] = None, downscale: Optional[float] = None,
             size: Optional[tuple[int, int]] = None, image_size: Optional[tuple[int, int]] = None,
             require_images: bool = True) -> Scene:
    """Read a DTU / SpaRe scene folder with per-view 3 × 4 projection matrices.

    Layout (SpaRe's, which follows DTU / RegNeRF): view index ``i`` ↔ file number ``i + 1``;
    images ``scene_dir/rect_{i+1:03d}_{lighting}_r5000.png`` (DTU) or ``cam_{i+1:03d}_{lighting}_0000.png``
    (SpaRe synthetic, ``dataset`` not containing "dtu"); projection ``pos_{i+1:03d}.txt`` found in
    ``calib_dir`` or, in that order, ``scene_dir/``, ``scene_dir/cams/``, ``scene_dir/Calibration[/cal18]/``,
    ``root/Calibration/cal18/``, ``root/Calibration/``, ``root/Cameras/``, ``root/cams/`` with ``root`` the
    parent of ``scene_dir``. Each ``P = K [R | t]`` is decomposed (:func:`decompose_projection`).

    DTU projection matrices come from a calibration with the pixel-centre-at-integer convention (OpenCV /
    Matlab); here ``cx, cy`` are used as they are (the ±0.5 px difference is within DTU's calibration error and
    matches what RegNeRF / pixelNeRF / the SpaRe baselines do).

    Args:
        view_ids: views to read (default: all ``pos_XXX.txt`` found next to the images, or train ∪ test).
        train_ids / test_ids: view indices of the split (SpaRe's ``input_views`` / ``test_views``).
        mask_dir: optional folder of object masks named like the images or ``{i:03d}.png`` (IDR style).
        image_size: (W, H) the projection matrices refer to, when images are absent (default 1600 × 1200).
        require_images: raise if an image file is missing (False: test views without images are allowed).
    """
    scene_dir = Path(scene_dir)
    root = scene_dir.parent
    is_dtu = "dtu" in dataset.lower()
    pattern = DTU_IMAGE if is_dtu else SPARE_IMAGE
    if view_ids is None:
        if train_ids is not None or test_ids is not None:
            view_ids = sorted(set(train_ids or []) | set(test_ids or []))
        else:
            import re

            found = set()
            for d in [scene_dir, scene_dir / "cams"] + ([Path(calib_dir)] if calib_dir else []):
                if d.is_dir():
                    found |= {int(m.group(1)) - 1 for f in d.iterdir()
                              if (m := re.fullmatch(r"pos_(\d+)\.txt", f.name))}
            for f in scene_dir.iterdir() if scene_dir.is_dir() else []:
                m = re.fullmatch(r"(?:rect|cam)_(\d+)_(\d)_(?:r5000|0000)\.png", f.name)
                if m and int(m.group(2)) == lighting:
                    found.add(int(m.group(1)) - 1)
            view_ids = sorted(found)
    if not view_ids:
        raise FileNotFoundError(f"{scene_dir}: no views found (no pos_XXX.txt / {pattern.format(1, lighting)} files)")
    viewmats, Ks, paths, names, mpaths = [], [], [], [], []
    wh = None
    for i in view_ids:
        cf = _dtu_calib_file(root, scene_dir, i, calib_dir)
        if cf is None:
            raise FileNotFoundError(f"{scene_dir}: no projection matrix pos_{i + 1:03d}.txt for view {i}")
        K, R, t = decompose_projection(read_projection_matrix(cf))
        p = scene_dir / pattern.format(i + 1, lighting)
        if not p.is_file():
            if require_images:
                raise FileNotFoundError(f"{scene_dir}: image for view {i} not found: {p}")
            p = None
        elif wh is None:
            wh = _image_size(p)
        vm = torch.eye(4)
        vm[:3, :3], vm[:3, 3] = R, t
        viewmats.append(vm)
        Ks.append(K)
        paths.append(p)
        names.append(pattern.format(i + 1, lighting)[:-4])
        if mask_dir is not None:
            cands = [Path(mask_dir) / pattern.format(i + 1, lighting), Path(mask_dir) / f"{i:03d}.png"]
            mpaths.append(next((c for c in cands if c.is_file()), None))
    if wh is None:
        wh = tuple(image_size) if image_size is not None else (1600, 1200)
    cams = Cameras(torch.stack(viewmats), torch.stack(Ks), wh[0], wh[1], names)
    tw, th = _target_size(wh[0], wh[1], downscale, size)
    if (tw, th) != wh:
        cams = cams.resize(tw, th)
    pos = {v: k for k, v in enumerate(view_ids)}
    tr = [pos[i] for i in train_ids] if train_ids is not None else list(range(len(view_ids)))
    te = [pos[i] for i in test_ids] if test_ids is not None else []
    if train_ids is None and test_ids is not None:
        tr = [k for k in range(len(view_ids)) if k not in set(te)]
    return Scene(cams, paths, names, tr, te, background=None, mask_paths=mpaths if mask_dir is not None else None,
                 extras={"view_ids": list(view_ids), "dataset": dataset})


# ----------------------------------------------------------------------------------------------------------
# MVSNet-style cam.txt (LM-Gaussian)
# ----------------------------------------------------------------------------------------------------------
def read_cam_txt(path: PathLike) -> tuple[np.ndarray, np.ndarray, Optional[list[float]]]:
    """Parse an MVSNet-style ``*_cam.txt``: a line ``extrinsic`` + 4 rows of 4, a line ``intrinsic`` + 3 rows
    of 3, optionally a last line of depth values (min, interval, …). Returns (extrinsic 4 × 4, intrinsic 3 × 3,
    depth line or None). What the extrinsic *means* (world → camera in MVSNet, camera → world in LM-Gaussian)
    is the caller's business."""
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    try:
        e = lines.index("extrinsic")
        k = lines.index("intrinsic")
        ext = np.array([[float(v) for v in lines[e + 1 + r].split()] for r in range(4)])
        intr = np.array([[float(v) for v in lines[k + 1 + r].split()] for r in range(3)])
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path}: expected 'extrinsic' + 4x4 and 'intrinsic' + 3x3 blocks ({err})") from err
    if ext.shape != (4, 4) or intr.shape != (3, 3):
        raise ValueError(f"{path}: extrinsic must be 4x4 and intrinsic 3x3, got {ext.shape} and {intr.shape}")
    rest = lines[k + 4:]
    depth = [float(v) for v in rest[0].split()] if rest else None
    return ext, intr, depth


def read_lmgaussian(root: PathLike, intrinsic_size: tuple[int, int] = (512, 288), images_dir: str = "images",
                    downscale: Optional[float] = None, size: Optional[tuple[int, int]] = None,
                    extrinsic_is_c2w: bool = True) -> Scene:
    """Read LM-Gaussian's layout: ``root/images/<name>.jpg`` + ``root/cams/<name>_cam.txt``.

    In LM-Gaussian's cam files (written from DUSt3R's global alignment) the "extrinsic" 4 × 4 is
    **camera → world** (OpenCV axes) and the "intrinsic" refers to the DUSt3R input size ``intrinsic_size``
    (512 × 288 for 16:9 images); K is rescaled to the real image size. Only views with an image are read
    (the ``cams`` folder may list more). Depth maps are recorded in ``extras``: ``dust3r_depth_paths``
    (``dust3r_depth/depth_map_{k}.png``, k = rank of the image in sorted order; JET colour maps of per-image
    min-max normalised depth at 512 × 288) and ``mono_depth_paths`` (``depth_maps/depth_<name>.png``: Marigold
    affine-invariant depth × 255, full size). Both are relative (unknown scale/shift); see
    :func:`decode_jet_depth`.
    """
    root = Path(root)
    img_dir = root / images_dir
    if not img_dir.is_dir():
        raise FileNotFoundError(f"{root}: no '{images_dir}' folder")
    files = sorted(f for f in img_dir.iterdir() if f.suffix in IMAGE_EXTS)
    if not files:
        raise FileNotFoundError(f"{img_dir}: no images")
    W0, H0 = _image_size(files[0])
    c2ws, Ks, names = [], [], []
    for f in files:
        cf = root / "cams" / f"{f.stem}_cam.txt"
        if not cf.is_file():
            raise FileNotFoundError(f"{root}: camera file for image {f.name} not found: {cf}")
        ext, intr, _ = read_cam_txt(cf)
        if _image_size(f) != (W0, H0):
            raise ValueError(f"{f}: size {_image_size(f)} differs from {files[0].name} ({W0}x{H0})")
        K = intr.copy()
        K[0] *= W0 / intrinsic_size[0]
        K[1] *= H0 / intrinsic_size[1]
        c2ws.append(ext if extrinsic_is_c2w else np.linalg.inv(ext))
        Ks.append(K)
        names.append(f.stem)
    cams = Cameras.from_camtoworlds(torch.tensor(np.stack(c2ws)), torch.tensor(np.stack(Ks), dtype=torch.float32),
                                    W0, H0, names)
    tw, th = _target_size(W0, H0, downscale, size)
    if (tw, th) != (W0, H0):
        cams = cams.resize(tw, th)
    extras = {
        "dust3r_depth_paths": [root / "dust3r_depth" / f"depth_map_{k}.png" for k in range(len(files))],
        "mono_depth_paths": [root / "depth_maps" / f"depth_{f.stem}.png" for f in files],
        "normal_paths": [root / "normal_maps" / f"normal_{f.stem}.png" for f in files],
        "intrinsic_size": tuple(intrinsic_size),
    }
    return Scene(cams, list(files), names, list(range(len(files))), [], background=None, extras=extras)


def decode_jet_depth(path: PathLike) -> torch.Tensor:
    """Invert an OpenCV ``COLORMAP_JET`` depth visualisation (as LM-Gaussian writes ``dust3r_depth``) back to the
    normalised value in [0, 1] per pixel, [H, W] float32 (nearest colour in the 256-entry map)."""
    import cv2

    path = Path(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: cannot read image")
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0].astype(np.float32)
    px = bgr.reshape(-1, 3).astype(np.int64)
    keys, inverse = np.unique((px[:, 0] << 16) | (px[:, 1] << 8) | px[:, 2], return_inverse=True)
    colours = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], -1).astype(np.float32)
    d = ((colours[:, None, :] - lut[None]) ** 2).sum(-1)  # [U, 256], U = distinct colours (a few hundred)
    value = d.argmin(1)[inverse.reshape(-1)]
    return torch.from_numpy((value / 255.0).astype(np.float32).reshape(bgr.shape[:2]))


# ----------------------------------------------------------------------------------------------------------
# Dispatcher
# ----------------------------------------------------------------------------------------------------------
def read_scene(root: PathLike, **kwargs) -> Scene:
    """Read a scene folder, picking the reader from its contents: ``transforms_*.json`` → Blender,
    ``sparse/`` or ``cameras.{bin,txt}`` → COLMAP, ``cams/*_cam.txt`` + ``images/`` → LM-Gaussian,
    ``pos_XXX.txt`` / ``rect_*`` / ``cam_*`` → DTU / SpaRe. ``kwargs`` go to the chosen reader."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"scene folder not found: {root}")
    if any(root.glob("transforms_*.json")):
        return read_blender(root, **kwargs)
    if (root / "sparse").is_dir() or (root / "cameras.bin").is_file() or (root / "cameras.txt").is_file():
        return read_colmap(root, **kwargs)
    if (root / "cams").is_dir() and (root / "images").is_dir():
        return read_lmgaussian(root, **kwargs)
    if any(root.glob("pos_*.txt")) or any(root.glob("rect_*_r5000.png")) or any(root.glob("cam_*_0000.png")):
        if "dataset" not in kwargs and any(root.glob("cam_*_0000.png")):
            kwargs["dataset"] = "Synthetic"
        return read_dtu(root, **kwargs)
    raise ValueError(f"{root}: cannot tell the scene format (no transforms_*.json, sparse/, cams/ or pos_*.txt)")


def read_lmgaussian_depth(scene: Scene, i: int, kind: str = "dust3r") -> torch.Tensor:
    """Relative depth of view ``i`` of an LM-Gaussian scene, [H, W] float32 in [0, 1] at the scene's image size
    (nearest-neighbour resize). ``kind="dust3r"``: decoded from the JET colour map (0 = the view's nearest
    depth, 1 = its farthest; linear in depth); ``kind="mono"``: Marigold affine-invariant depth (0 near,
    1 far). Neither has a metric scale: fit scale/shift before using them as depth."""
    import cv2

    key = {"dust3r": "dust3r_depth_paths", "mono": "mono_depth_paths"}.get(kind)
    if key is None or key not in scene.extras:
        raise ValueError(f"read_lmgaussian_depth: kind must be 'dust3r' or 'mono' on an LM-Gaussian scene, "
                         f"got {kind!r}")
    path = Path(scene.extras[key][i])
    if not path.is_file():
        raise FileNotFoundError(f"depth map for view {i} ({scene.names[i]}) not found: {path}")
    if kind == "dust3r":
        d = decode_jet_depth(path).numpy()
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"{path}: cannot read image")
        raw = raw if raw.ndim == 2 else raw[..., 0]
        d = raw.astype(np.float32) / (65535.0 if raw.dtype == np.uint16 else 255.0)
    if d.shape != (scene.height, scene.width):
        d = cv2.resize(d, (scene.width, scene.height), interpolation=cv2.INTER_NEAREST)
    return torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32))
