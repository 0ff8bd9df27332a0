"""ZJU-MoCap multi-view human captures (Neural Body, Peng et al., CVPR 2021) in their released layout::

    <root>/annots.npy                    pickled dict:
        cams: {K: [C × 3×3], D: [C × 5×1], R: [C × 3×3], T: [C × 3×1] in mm}   (OpenCV, world → camera)
        ims:  [F × {"ims": [C image paths relative to root], ...}]
    <root>/Camera_B1/000000.jpg          images (older sequences: "Camera (1)/..." with other file names)
    <root>/mask/Camera_B1/000000.png     foreground masks (0 / 1 or 0 / 255) and/or
    <root>/mask_cihp/Camera_B1/000000.png  (both present: OR-ed, as the authors' loaders do)
    <root>/new_vertices/<frame>.npy      [6890, 3] SMPL vertices in world coordinates (metres)
    <root>/new_params/<frame>.npy        pickled dict: poses [1, 72], Rh [1, 3], Th [1, 3], shapes [1, 10]

``<frame>`` is the integer in the image file name (``000123.jpg`` → ``123.npy``; a zero-padded name is accepted
too), or the frame's index in ``ims`` when the file name is not a number (older sequences).

Cameras become the house convention (:class:`~perception3d.structures.cameras.Cameras`): world → camera viewmat
``[R | T / 1000]`` in metres, and K with the principal point moved by +0.5 px (ZJU's K follows OpenCV, pixel
centres at integers; the house puts them at +0.5). ``dist`` keeps D; :meth:`ZJUMoCap.image` and
:meth:`ZJUMoCap.mask` undistort with it onto the same K (``cv2.undistort``, as the authors' loaders do), so the
delivered images are pinhole images for ``cameras``.

This reader lives with the body model rather than in ``rendering/readers``: a capture is a sequence of frames,
each with its own posed body, not one static :class:`~perception3d.rendering.readers.base.Scene`.
The ``annots.npy`` and ``new_params`` pickles are read by a restricted unpickler (numpy arrays and containers only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from perception3d.structures.cameras import Cameras, shift_principal_point
from ..readers.base import _image_size, load_image
from .body_model import restricted_load

__all__ = ["ZJUMoCap", "read_zju_mocap", "MASK_DIRS"]

PathLike = Union[str, Path]
MASK_DIRS = ("mask", "mask_cihp")


def _count(v, path: Path, what: str) -> int:
    """``len(v)`` of a list / tuple / array read from ``path``, else a ``ValueError`` naming the file and field."""
    if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__len__") or (isinstance(v, np.ndarray) and v.ndim == 0):
        raise ValueError(f"{path}: {what} must be a list, got {type(v).__name__}")
    return len(v)


def _numbers(v, path: Path, what: str) -> np.ndarray:
    """``v`` as a float64 array, else a ``ValueError`` naming the file and field."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {what} is not an array of numbers ({exc})") from None
    if not np.isfinite(a).all():
        raise ValueError(f"{path}: {what} holds NaN or infinite values")
    return a


def _frame_file(root: Path, folders: Sequence[str], frame_id: int) -> Optional[Path]:
    for d in folders:
        for name in (f"{frame_id}.npy", f"{frame_id:06d}.npy"):
            if (root / d / name).is_file():
                return root / d / name
    return None


@dataclass
class ZJUMoCap:
    """A ZJU-MoCap sequence: C calibrated cameras, F frames of C images (+ masks) and a posed body per frame.

    Attributes:
        root: the sequence folder.
        cameras: :class:`Cameras` [C] (house convention, K at the image size, metres).
        dist: [C, 5] float64 OpenCV distortion (k1, k2, p1, p2, k3) of each camera.
        camera_ids: indices of the delivered cameras among ``annots["cams"]``.
        frame_ids: F frame numbers (they name the ``new_vertices`` / ``new_params`` files).
        image_paths: [F][C] image files.
        vertex_paths: F ``new_vertices`` files.
    """

    root: Path
    cameras: Cameras
    dist: np.ndarray
    camera_ids: list[int]
    frame_ids: list[int]
    image_paths: list[list[Path]]
    vertex_paths: list[Path]

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)

    def _K_cv(self, c: int) -> np.ndarray:
        return shift_principal_point(self.cameras.Ks[c], -0.5).double().numpy()

    def _undistort(self, c: int, arr: np.ndarray) -> np.ndarray:
        if not np.any(self.dist[c]):
            return arr
        import cv2

        return cv2.undistort(arr, self._K_cv(c), self.dist[c])

    def image(self, f: int, c: int, undistort: bool = True) -> torch.Tensor:
        """Frame ``f``, camera ``c`` as float32 [H, W, 3] in [0, 1] (undistorted onto ``cameras[c]``)."""
        p = self.image_paths[f][c]
        rgb, _ = load_image(p, background=None)
        if tuple(rgb.shape[:2]) != (self.cameras.height, self.cameras.width):
            raise ValueError(f"{p}: image is {rgb.shape[1]}x{rgb.shape[0]}, the sequence's cameras are "
                             f"{self.cameras.width}x{self.cameras.height}")
        if undistort:
            rgb = torch.from_numpy(np.ascontiguousarray(self._undistort(c, rgb.numpy())))
        return rgb

    def mask_paths(self, f: int, c: int) -> list[Path]:
        """The existing mask files of frame ``f``, camera ``c`` (``mask/`` and/or ``mask_cihp/``)."""
        rel = self.image_paths[f][c].relative_to(self.root).with_suffix(".png")
        return [self.root / d / rel for d in MASK_DIRS if (self.root / d / rel).is_file()]

    def mask(self, f: int, c: int, undistort: bool = True) -> torch.Tensor:
        """Foreground mask bool [H, W]: nonzero in ``mask/`` OR in ``mask_cihp/`` (undistorted like the image)."""
        import imageio.v3 as iio

        paths = self.mask_paths(f, c)
        if not paths:
            rel = self.image_paths[f][c].relative_to(self.root).with_suffix(".png")
            raise FileNotFoundError(f"{self.root}: no mask for {rel} in any of {list(MASK_DIRS)}")
        out = None
        for p in paths:
            try:
                m = np.asarray(iio.imread(p))
            except Exception as exc:  # noqa: BLE001 — imageio / its plugins raise many types on damaged files
                raise ValueError(f"{p}: not a readable mask image ({type(exc).__name__}: {exc})") from None
            m = m if m.ndim == 2 else m[..., 0]
            if m.shape != (self.cameras.height, self.cameras.width):
                raise ValueError(f"{p}: mask is {m.shape[1]}x{m.shape[0]}, the images are "
                                 f"{self.cameras.width}x{self.cameras.height}")
            m = m != 0
            out = m if out is None else (out | m)
        if undistort:
            out = self._undistort(c, out.astype(np.uint8)) != 0
        return torch.from_numpy(np.ascontiguousarray(out))

    def vertices(self, f: int) -> torch.Tensor:
        """Frame ``f``'s body vertices in world coordinates, float32 [V, 3] (metres)."""
        p = self.vertex_paths[f]
        try:
            v = np.load(p, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 — a damaged .npy raises ValueError / EOFError / OSError …
            raise ValueError(f"{p}: not a readable .npy array ({type(exc).__name__}: {exc})") from None
        if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
            raise ValueError(f"{p}: expected finite vertices [V, 3], got shape {v.shape}")
        return torch.from_numpy(v.astype(np.float32))

    def params(self, f: int) -> dict[str, torch.Tensor]:
        """Frame ``f``'s SMPL parameters: poses [72], Rh [3], Th [3] (metres), shapes [10], float32."""
        p = _frame_file(self.root, ("new_params", "params"), self.frame_ids[f])
        if p is None:
            raise FileNotFoundError(f"{self.root / 'new_params'}: no parameter file {self.frame_ids[f]}.npy "
                                    f"for frame {self.frame_ids[f]}")
        d = restricted_load(p)
        if not isinstance(d, dict):
            raise ValueError(f"{p}: expected a pickled dict of SMPL parameters, got {type(d).__name__}")
        want = {"poses": 72, "Rh": 3, "Th": 3, "shapes": None}
        out = {}
        for k, n in want.items():
            if k not in d:
                raise ValueError(f"{p}: missing key '{k}' (expected {list(want)})")
            a = _numbers(d[k], p, repr(k)).astype(np.float32).reshape(-1)
            if n is not None and a.size != n:
                raise ValueError(f"{p}: '{k}' has {a.size} values, expected {n}")
            out[k] = torch.from_numpy(a)
        return out


def read_zju_mocap(root: PathLike, cameras: Optional[Sequence[int]] = None,
                   frames: Optional[Sequence[int]] = None, check_masks: bool = True) -> ZJUMoCap:
    """Read a ZJU-MoCap sequence folder (layout in the module docstring).

    Args:
        cameras: indices into ``annots["cams"]`` to deliver (default all).
        frames: indices into ``annots["ims"]`` to deliver (default all).
        check_masks: check that the first delivered frame has a mask of the image size for every camera.
    Raises:
        FileNotFoundError / ValueError naming the file: no ``annots.npy``, calibration arrays of the wrong shape,
        a frame whose image count differs from the camera count, images of differing sizes, masks of another
        size, a frame without its ``new_vertices`` file.
    """
    root = Path(root)
    ann_path = root / "annots.npy"
    ann = restricted_load(ann_path)
    if not isinstance(ann, dict) or "cams" not in ann or "ims" not in ann:
        raise ValueError(f"{ann_path}: expected a dict with 'cams' and 'ims'")
    cams = ann["cams"]
    if not isinstance(cams, dict):
        raise ValueError(f"{ann_path}: 'cams' must be a dict of K, D, R, T, got {type(cams).__name__}")
    for k in ("K", "R", "T"):
        if k not in cams:
            raise ValueError(f"{ann_path}: cams has no '{k}' (expected K, D, R, T)")
    n_cams = _count(cams["K"], ann_path, "cams['K']")
    if n_cams < 1:
        raise ValueError(f"{ann_path}: cams['K'] lists no camera")
    shapes = {"K": (3, 3), "R": (3, 3), "T": (3,), "D": (5,)}
    calib = {}
    for k, shp in shapes.items():
        vals = cams.get(k, [np.zeros(5)] * n_cams)
        if _count(vals, ann_path, f"cams['{k}']") != n_cams:
            raise ValueError(f"{ann_path}: cams['{k}'] has {len(vals)} entries, cams['K'] has {n_cams}")
        arr = [_numbers(v, ann_path, f"cams['{k}'][{c}]") for c, v in enumerate(vals)]
        for c, a in enumerate(arr):
            if a.size != int(np.prod(shp)):
                raise ValueError(f"{ann_path}: cams['{k}'][{c}] has shape {a.shape}, expected {shp}")
        calib[k] = np.stack([a.reshape(shp) for a in arr])
    cam_ids = list(range(n_cams)) if cameras is None else [int(c) for c in cameras]
    for c in cam_ids:
        if not 0 <= c < n_cams:
            raise ValueError(f"{ann_path}: camera {c} requested, the sequence has {n_cams}")
    ims = ann["ims"]
    _count(ims, ann_path, "ims")
    frame_idx = list(range(len(ims))) if frames is None else [int(f) for f in frames]
    if not frame_idx:
        raise ValueError(f"{ann_path}: no frames")
    image_paths, frame_ids, vertex_paths = [], [], []
    for i in frame_idx:
        if not 0 <= i < len(ims):
            raise ValueError(f"{ann_path}: frame {i} requested, the sequence has {len(ims)}")
        names = ims[i].get("ims") if isinstance(ims[i], dict) else ims[i]
        if _count(names, ann_path, f"ims[{i}]['ims']") != n_cams:
            raise ValueError(f"{ann_path}: frame {i} lists {len(names)} images but there are {n_cams} cameras")
        if not all(isinstance(names[c], (str, np.str_)) for c in cam_ids):
            raise ValueError(f"{ann_path}: ims[{i}]['ims'] must list image paths (strings), got "
                             f"{[type(names[c]).__name__ for c in cam_ids]}")
        image_paths.append([root / str(names[c]) for c in cam_ids])
        stem = Path(str(names[cam_ids[0]])).stem
        fid = int(stem) if stem.isdigit() else i
        vp = _frame_file(root, ("new_vertices", "vertices"), fid)
        if vp is None:
            raise FileNotFoundError(f"{root / 'new_vertices' / f'{fid}.npy'}: frame {i} (image {names[cam_ids[0]]}) "
                                    "has no body vertices")
        frame_ids.append(fid)
        vertex_paths.append(vp)
    # image size from the first frame, the same for every camera
    wh = None
    for p in image_paths[0]:
        if not p.is_file():
            raise FileNotFoundError(f"image file not found: {p} (listed in {ann_path})")
        s = _image_size(p)
        if wh is None:
            wh = s
        elif s != wh:
            raise ValueError(f"{p}: image is {s[0]}x{s[1]}, {image_paths[0][0]} is {wh[0]}x{wh[1]}")
    viewmats = np.tile(np.eye(4), (len(cam_ids), 1, 1))
    viewmats[:, :3, :3] = calib["R"][cam_ids]
    viewmats[:, :3, 3] = calib["T"][cam_ids] / 1000.0      # millimetres → metres
    Ks = shift_principal_point(calib["K"][cam_ids], 0.5)     # OpenCV (centre at integer) → house (+0.5)
    names = [p.parent.name for p in image_paths[0]]
    seq = ZJUMoCap(root, Cameras(torch.from_numpy(viewmats).float(), Ks.float(), wh[0], wh[1], names),
                   calib["D"][cam_ids], cam_ids, frame_ids, image_paths, vertex_paths)
    if check_masks:
        for c in range(len(cam_ids)):
            for p in seq.mask_paths(0, c):
                s = _image_size(p)
                if s != wh:
                    raise ValueError(f"{p}: mask is {s[0]}x{s[1]}, the images are {wh[0]}x{wh[1]}")
    return seq
