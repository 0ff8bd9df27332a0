"""LM-Gaussian scenes: ``images/`` + MVSNet-style ``cams/<name>_cam.txt`` whose "extrinsic" is camera → world,
plus its relative depth maps (DUSt3R JET colour maps, Marigold grey maps)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ...fileio import DataFormatError, read_text
from perception3d.structures.cameras import Cameras
from .base import IMAGE_EXTS, PathLike, Scene, _image_size, _target_size

__all__ = ["read_lmgaussian", "read_cam_txt", "decode_jet_depth", "read_depth_array", "read_lmgaussian_depth"]


def read_cam_txt(path: PathLike) -> tuple[np.ndarray, np.ndarray, Optional[list[float]]]:
    """Parse an MVSNet-style ``*_cam.txt``: a line ``extrinsic`` + 4 rows of 4, a line ``intrinsic`` + 3 rows
    of 3, optionally a last line of depth values (min, interval, …). Returns (extrinsic 4 × 4, intrinsic 3 × 3,
    depth line or None). What the extrinsic *means* (world → camera in MVSNet, camera → world in LM-Gaussian)
    is the caller's business."""
    path = Path(path)
    lines = [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]
    try:
        e = lines.index("extrinsic")
        k = lines.index("intrinsic")
        ext = np.array([[float(v) for v in lines[e + 1 + r].split()] for r in range(4)])
        intr = np.array([[float(v) for v in lines[k + 1 + r].split()] for r in range(3)])
    except (ValueError, IndexError) as err:
        raise DataFormatError(path, None, f"expected 'extrinsic' + 4x4 and 'intrinsic' + 3x3 blocks ({err})") from err
    if ext.shape != (4, 4) or intr.shape != (3, 3):
        raise DataFormatError(path, None, f"extrinsic must be 4x4 and intrinsic 3x3, got {ext.shape} and "
                                          f"{intr.shape}")
    rest = lines[k + 4:]
    try:
        depth = [float(v) for v in rest[0].split()] if rest else None
    except ValueError as err:
        raise DataFormatError(path, "depth line", f"not numbers ({err})") from err
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


def read_depth_array(path: PathLike, jet: bool = False, scale: Optional[float] = None) -> np.ndarray:
    """A depth image as it is stored → [H, W] float32 (no resize). ``jet``: an OpenCV ``COLORMAP_JET`` picture
    decoded to [0, 1] (:func:`decode_jet_depth`); ``.npy``: its values; otherwise a 1-channel 8/16-bit image,
    times ``scale``, or, with ``scale=None``, divided by its dtype's maximum (a relative map in [0, 1])."""
    import cv2

    path = Path(path)
    if path.suffix.lower() == ".npy":
        d = np.load(path).astype(np.float32)
        return d[..., 0] if d.ndim == 3 else d
    if jet:
        return decode_jet_depth(path).numpy()
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"{path}: cannot read the depth image")
    raw = raw if raw.ndim == 2 else raw[..., 0]
    if scale is None:
        scale = 1.0 / (65535.0 if raw.dtype == np.uint16 else 255.0)
    return raw.astype(np.float32) * scale


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
    d = read_depth_array(path, jet=kind == "dust3r")
    if d.shape != (scene.height, scene.width):
        d = cv2.resize(d, (scene.width, scene.height), interpolation=cv2.INTER_NEAREST)
    return torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32))
