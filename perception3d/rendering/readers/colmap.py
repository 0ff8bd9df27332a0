"""COLMAP sparse models (text and binary ``cameras``, ``images``, ``points3D``) → :class:`Scene`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ...fileio import DataFormatError, read_text
from perception3d.structures.cameras import Cameras
from perception3d.structures.rotation import quat_to_rotmat, rotmat_to_quat
from .base import PathLike, Scene, _image_size, _target_size

__all__ = ["read_colmap", "read_colmap_model", "write_colmap_model", "colmap_K", "COLMAP_CAMERA_MODELS"]

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
    return quat_to_rotmat(torch.as_tensor(np.asarray(q, dtype=np.float64))).numpy()


def _rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    q = rotmat_to_quat(torch.as_tensor(np.asarray(R), dtype=torch.float64)).numpy()
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
    return [ln.strip() for ln in read_text(f).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _read_colmap_txt(path: Path) -> tuple[dict, dict, dict]:
    cams, imgs, pts = {}, {}, {}
    f = path / "cameras.txt"
    for ln in _data_lines(f):
        e = ln.split()
        try:
            cams[int(e[0])] = dict(model=e[1], width=int(e[2]), height=int(e[3]), params=[float(v) for v in e[4:]])
        except (IndexError, ValueError) as err:
            raise DataFormatError(f, None, f"bad camera line {ln!r} ({err})") from err
    f = path / "images.txt"
    # images.txt alternates: "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME" and a 2D-points line (may be empty)
    lines = [ln.rstrip("\n") for ln in read_text(f).splitlines() if not ln.lstrip().startswith("#")]
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
            raise DataFormatError(f, None, f"bad image line {ln!r} ({err})") from err
        k += 2  # skip the POINTS2D line
    f = path / "points3D.txt"
    if f.is_file():
        for ln in _data_lines(f):
            e = ln.split()
            try:
                pts[int(e[0])] = dict(xyz=np.array([float(v) for v in e[1:4]]),
                                      rgb=np.array([int(v) for v in e[4:7]]))
            except (IndexError, ValueError) as err:
                raise DataFormatError(f, None, f"bad point line {ln!r} ({err})") from err
    return cams, imgs, pts


def _read_colmap_bin(path: Path) -> tuple[dict, dict, dict]:
    """The binary model; any damage (truncation, impossible counts or offsets, a non-UTF-8 name) raises
    :class:`DataFormatError` naming the file."""
    current = [path / "cameras.bin"]
    try:
        return _read_colmap_bin_files(path, current)
    except DataFormatError:
        raise
    except (ValueError, OSError, OverflowError, MemoryError) as exc:
        raise DataFormatError(current[0], None, f"damaged COLMAP binary file ({type(exc).__name__}: {exc})") from exc


def _read_colmap_bin_files(path: Path, current: list) -> tuple[dict, dict, dict]:
    import struct

    cams, imgs, pts = {}, {}, {}

    def rd(fh, fmt):
        size = struct.calcsize("<" + fmt)
        buf = fh.read(size)
        if len(buf) != size:
            raise DataFormatError(fh.name, None, "truncated COLMAP binary file")
        return struct.unpack("<" + fmt, buf)

    with open(path / "cameras.bin", "rb") as fh:
        for _ in range(rd(fh, "Q")[0]):
            cid, mid, w, h = rd(fh, "iiQQ")
            if mid not in COLMAP_CAMERA_MODELS:
                raise DataFormatError(fh.name, None, f"unknown COLMAP camera model id {mid}")
            name, n = COLMAP_CAMERA_MODELS[mid]
            cams[cid] = dict(model=name, width=w, height=h, params=list(rd(fh, "d" * n)))
    current[0] = path / "images.bin"
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
    current[0] = f
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
