"""Pinhole cameras in the house convention (DESIGN.md §4) and the conversions into it.

Convention
----------
* Camera frame: OpenCV — x right, y down, z forward (looking along +z).
* ``viewmats`` [C, 4, 4]: world → camera (``x_cam = R @ x_world + t``), as ``gsplat.rasterization`` takes them.
* ``Ks`` [C, 3, 3]: intrinsics in pixels.
* Pixel coordinates are *continuous* and follow gsplat / COLMAP: pixel ``(row v, col u)`` covers
  ``[u, u + 1) × [v, v + 1)`` and its centre is at ``(u + 0.5, v + 0.5)``; the image spans ``[0, W] × [0, H]``
  and its exact centre is ``(W / 2, H / 2)``. With this convention resizing an image by ``sx, sy`` maps a
  continuous coordinate ``u → u · sx`` exactly, so :meth:`Cameras.rescale` scales the first two rows of K
  (``fx, cx`` by ``sx``; ``fy, cy`` by ``sy``) with no half-pixel correction. (With OpenCV's "pixel centre at
  integer" convention the same resize would need ``cx' = (cx + 0.5) · sx − 0.5``; use
  :func:`shift_principal_point` to move between the two.) The integer index of the pixel a point falls in is
  ``floor(u), floor(v)``.

Everything is float32 torch unless stated; functions accept numpy arrays too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..fileio import atomic_write_text
from .rotation import quat_to_rotmat, rotmat_to_quat

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

__all__ = [
    "Cameras",
    "opengl_to_opencv",
    "opencv_to_opengl",
    "decompose_projection",
    "look_at",
    "orbit_path",
    "interpolate_path",
    "focal_from_fov",
    "fov_from_focal",
    "shift_principal_point",
    "save_camera_path",
    "load_camera_path",
]


def _t(x: ArrayLike, dtype=torch.float32) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype)


# ----------------------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Cameras:
    """A batch of C pinhole cameras sharing one image size.

    Attributes:
        viewmats: [C, 4, 4] world → camera (OpenCV).
        Ks: [C, 3, 3] intrinsics in pixels (gsplat/COLMAP pixel-centre-at-+0.5 convention, see module doc).
        width, height: image size in pixels that ``Ks`` refer to.
        names: optional list of C names (image file stems).
    """

    viewmats: torch.Tensor
    Ks: torch.Tensor
    width: int
    height: int
    names: Optional[list[str]] = field(default=None)

    def __post_init__(self) -> None:
        self.viewmats = _t(self.viewmats)
        self.Ks = _t(self.Ks)
        if self.viewmats.ndim == 2:
            self.viewmats = self.viewmats[None]
        if self.Ks.ndim == 2:
            self.Ks = self.Ks[None].expand(self.viewmats.shape[0], 3, 3).clone()
        if self.viewmats.shape[-2:] != (4, 4):
            raise ValueError(f"Cameras.viewmats must be [C, 4, 4], got {tuple(self.viewmats.shape)}")
        if self.Ks.shape[-2:] != (3, 3) or self.Ks.shape[0] != self.viewmats.shape[0]:
            raise ValueError(
                f"Cameras.Ks must be [C, 3, 3] with C = {self.viewmats.shape[0]}, got {tuple(self.Ks.shape)}"
            )
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"Cameras width/height must be positive, got {self.width} x {self.height}")
        self.width, self.height = int(self.width), int(self.height)
        if self.names is not None:
            self.names = list(self.names)
            if len(self.names) != len(self):
                raise ValueError(f"Cameras.names has {len(self.names)} entries for {len(self)} cameras")

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_camtoworlds(cls, camtoworlds: ArrayLike, Ks: ArrayLike, width: int, height: int,
                         names: Optional[list[str]] = None) -> "Cameras":
        """Build from camera → world [C, 4, 4] (or [C, 3, 4]) OpenCV poses."""
        c2w = _homogeneous(_t(camtoworlds, torch.float64))
        return cls(torch.linalg.inv(c2w).float(), Ks, width, height, names)

    # -- basic properties ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.viewmats.shape[0])

    def __getitem__(self, idx) -> "Cameras":
        """Select cameras by int, slice, list or bool mask; always returns a ``Cameras`` batch."""
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        sel = torch.arange(len(self))[idx].reshape(-1)
        names = [self.names[i] for i in sel.tolist()] if self.names is not None else None
        return Cameras(self.viewmats[sel], self.Ks[sel], self.width, self.height, names)

    @property
    def camtoworlds(self) -> torch.Tensor:
        """[C, 4, 4] camera → world (OpenCV axes)."""
        return torch.linalg.inv(self.viewmats.double()).float()

    @property
    def centers(self) -> torch.Tensor:
        """[C, 3] camera centres in world coordinates."""
        return self.camtoworlds[:, :3, 3]

    @property
    def fov_x(self) -> torch.Tensor:
        """[C] horizontal field of view in radians."""
        return fov_from_focal(self.Ks[:, 0, 0], self.width)

    @property
    def fov_y(self) -> torch.Tensor:
        """[C] vertical field of view in radians."""
        return fov_from_focal(self.Ks[:, 1, 1], self.height)

    def __repr__(self) -> str:
        names = self.names if self.names is None or len(self) <= 4 else self.names[:4] + ["..."]
        return f"Cameras({len(self)} views, {self.width}x{self.height}, names={names})"

    def to(self, device) -> "Cameras":
        return Cameras(self.viewmats.to(device), self.Ks.to(device), self.width, self.height, self.names)

    # -- geometry -----------------------------------------------------------------------------------------
    def project(self, points_world: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points into every camera.

        Args:
            points_world: [N, 3] (shared by all cameras) or [C, N, 3].
        Returns:
            pixels [C, N, 2] continuous (u, v) (pixel centres at +0.5), depth [C, N] (camera z; ≤ 0 is behind).
        """
        p = _t(points_world).to(self.viewmats.device)
        if p.ndim == 2:
            p = p[None].expand(len(self), -1, -1)
        if p.ndim != 3 or p.shape[-1] != 3 or p.shape[0] != len(self):
            raise ValueError(f"project: points must be [N, 3] or [C, N, 3], got {tuple(p.shape)}")
        R, t = self.viewmats[:, :3, :3], self.viewmats[:, :3, 3]
        pc = torch.einsum("cij,cnj->cni", R, p) + t[:, None]
        depth = pc[..., 2]
        z = torch.where(depth.abs() < 1e-12, torch.full_like(depth, 1e-12), depth)
        uv1 = torch.einsum("cij,cnj->cni", self.Ks, pc / z[..., None])
        return uv1[..., :2], depth

    def unproject(self, pixels: ArrayLike, depth: ArrayLike) -> torch.Tensor:
        """Inverse of :meth:`project`: pixels [C, N, 2] with camera z-depth [C, N] → world points [C, N, 3]
        ([N, 2] / [N] are taken as one camera's, for a single-camera batch)."""
        uv = _t(pixels)
        d = _t(depth)
        if uv.ndim == 2:
            uv, d = uv[None], d[None]
        ones = torch.ones_like(uv[..., :1])
        rays = torch.einsum("cij,cnj->cni", torch.linalg.inv(self.Ks), torch.cat([uv, ones], -1))
        pc = rays * d[..., None]
        c2w = self.camtoworlds
        return torch.einsum("cij,cnj->cni", c2w[:, :3, :3], pc) + c2w[:, None, :3, 3]

    def rescale(self, factor: Union[float, tuple[float, float]]) -> "Cameras":
        """Cameras for the image resized by ``factor`` (``new = round(old · factor)``), e.g. 0.5 halves it.

        With the pixel-centre-at-+0.5 convention (module doc) the exact intrinsics of the resized image are
        ``fx·sx, cx·sx, fy·sy, cy·sy`` with ``sx = new_W / W``, ``sy = new_H / H`` (the *realised* ratios after
        rounding, so K stays exact when the size does not divide evenly).
        """
        if isinstance(factor, (tuple, list)):
            new_w, new_h = int(round(self.width * factor[0])), int(round(self.height * factor[1]))
        else:
            new_w, new_h = int(round(self.width * factor)), int(round(self.height * factor))
        return self.resize(new_w, new_h)

    def resize(self, width: int, height: int) -> "Cameras":
        """Cameras for the image resized to exactly ``width × height`` pixels (see :meth:`rescale`)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"resize: size must be positive, got {width} x {height}")
        sx, sy = width / self.width, height / self.height
        Ks = self.Ks.clone()
        Ks[:, 0, :] *= sx
        Ks[:, 1, :] *= sy
        return Cameras(self.viewmats.clone(), Ks, width, height, self.names)

    @staticmethod
    def cat(cams: Sequence["Cameras"]) -> "Cameras":
        """Concatenate camera batches of the same image size."""
        if len({(c.width, c.height) for c in cams}) != 1:
            raise ValueError("Cameras.cat: all batches must share one image size")
        names = None
        if all(c.names is not None for c in cams):
            names = [n for c in cams for n in c.names]
        return Cameras(torch.cat([c.viewmats for c in cams]), torch.cat([c.Ks for c in cams]),
                       cams[0].width, cams[0].height, names)


# ----------------------------------------------------------------------------------------------------------
# Conversions
# ----------------------------------------------------------------------------------------------------------
def _homogeneous(m: torch.Tensor) -> torch.Tensor:
    """[..., 3, 4] or [..., 4, 4] → [..., 4, 4]."""
    if m.shape[-2:] == (4, 4):
        return m
    if m.shape[-2:] != (3, 4):
        raise ValueError(f"expected a [..., 3, 4] or [..., 4, 4] pose matrix, got {tuple(m.shape)}")
    bottom = torch.zeros(*m.shape[:-2], 1, 4, dtype=m.dtype, device=m.device)
    bottom[..., 0, 3] = 1
    return torch.cat([m, bottom], -2)


_FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def opengl_to_opencv(c2w: ArrayLike) -> torch.Tensor:
    """Camera → world pose with OpenGL/Blender camera axes (x right, y up, looking −z; NeRF ``transform_matrix``)
    → the same pose with OpenCV axes (x right, y down, looking +z). [..., 4, 4] (or [..., 3, 4]) → [..., 4, 4].

    Only the camera's own axes change: ``c2w_cv = c2w_gl @ diag(1, −1, −1, 1)``; the world frame is untouched.
    """
    m = _homogeneous(_t(c2w, torch.float64))
    return (m @ _FLIP_YZ.to(m.device)).float()


def opencv_to_opengl(c2w: ArrayLike) -> torch.Tensor:
    """Inverse of :func:`opengl_to_opencv` (the flip is its own inverse)."""
    return opengl_to_opencv(c2w)


def decompose_projection(P: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a 3 × 4 projection ``P = λ K [R | t]`` into K (3 × 3, ``K[2, 2] = 1``, ``fx, fy > 0``), a proper
    rotation R (det +1) and t, so that ``x_cam = R x + t`` is OpenCV (points in front have z > 0).

    RQ decomposition of the left 3 × 3 block, with signs fixed so that K's diagonal is positive — what
    ``cv2.decomposeProjectionMatrix`` + the DTU/IDR ``load_K_Rt_from_P`` readers do. The overall sign of P is
    arbitrary (P and −P are the same camera); it is chosen so that det(R) = +1.
    """
    P = np.asarray(_t(P, torch.float64).cpu().numpy(), dtype=np.float64)
    if P.shape != (3, 4):
        raise ValueError(f"decompose_projection: P must be 3 x 4, got {P.shape}")
    M = P[:, :3]
    if not np.all(np.isfinite(P)) or np.linalg.cond(M) > 1e12:
        raise ValueError("decompose_projection: the left 3 x 3 block of P is singular")
    if np.linalg.det(M) < 0:  # P ~ −P; make det(M) > 0 so R ends up a proper rotation with K diag > 0
        P = -P
        M = P[:, :3]
    # RQ via QR of the row-reversed transpose: M = K R with K upper-triangular.
    rev = np.eye(3)[::-1]
    q, r = np.linalg.qr((rev @ M).T)
    K = rev @ r.T @ rev
    R = rev @ q.T
    S = np.diag(np.sign(np.diag(K)))  # make K's diagonal positive: K S · S R
    K, R = K @ S, S @ R
    t = np.linalg.solve(K, P[:, 3])
    scale = K[2, 2]
    K = K / scale
    # K·scale·[R|t]: with det(M) > 0 and K diag > 0, scale > 0 and det(R) = +1.
    return torch.from_numpy(K).float(), torch.from_numpy(R).float(), torch.from_numpy(t).float()


def focal_from_fov(fov: Union[float, torch.Tensor], size: int):
    """Focal length in pixels from a full field of view (radians) over ``size`` pixels: ``size / (2 tan(fov/2))``."""
    if isinstance(fov, torch.Tensor):
        return 0.5 * size / torch.tan(0.5 * fov)
    return 0.5 * size / math.tan(0.5 * fov)


def fov_from_focal(focal: Union[float, torch.Tensor], size: int):
    """Full field of view in radians for a focal of ``focal`` pixels over ``size`` pixels."""
    if isinstance(focal, torch.Tensor):
        return 2 * torch.atan(0.5 * size / focal)
    return 2 * math.atan(0.5 * size / focal)


def shift_principal_point(K: ArrayLike, offset: float = 0.5) -> torch.Tensor:
    """Add ``offset`` to ``cx, cy``: +0.5 converts an OpenCV (pixel centre at integer) K into the house
    (gsplat/COLMAP, pixel centre at +0.5) convention; −0.5 goes back. [..., 3, 3] → [..., 3, 3]."""
    K = _t(K).clone()
    K[..., 0, 2] += offset
    K[..., 1, 2] += offset
    return K


def look_at(eye: ArrayLike, target: ArrayLike, up: ArrayLike = (0.0, 0.0, 1.0)) -> torch.Tensor:
    """Camera → world OpenCV pose [4, 4] (or [B, 4, 4] for [B, 3] eyes) at ``eye`` looking at ``target``.

    The camera's +z points at the target and its image "up" (−y) is as close to ``up`` as possible.
    """
    eye, target, up = _t(eye, torch.float64), _t(target, torch.float64), _t(up, torch.float64)
    batched = eye.ndim == 2
    eye, target = eye.reshape(-1, 3), target.reshape(-1, 3).expand(eye.reshape(-1, 3).shape[0], 3)
    up = up.reshape(-1, 3).expand_as(eye)
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x = torch.cross(z, up, dim=-1)  # OpenCV: x = y × z with y ≈ −up, i.e. x = z × up
    bad = x.norm(dim=-1) < 1e-9
    if bad.any():
        raise ValueError("look_at: viewing direction is parallel to 'up'; pass another up vector")
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.cross(z, x, dim=-1)
    c2w = torch.eye(4, dtype=torch.float64).repeat(eye.shape[0], 1, 1)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = x, y, z, eye
    c2w = c2w.float()
    return c2w if batched else c2w[0]


def orbit_path(center: ArrayLike, radius: float, n: int, elevation: float = 30.0,
               up: ArrayLike = (0.0, 0.0, 1.0), start_azimuth: float = 0.0) -> torch.Tensor:
    """``n`` camera → world OpenCV poses [n, 4, 4] on a circle around ``center``, all looking at it.

    ``elevation`` in degrees above the plane orthogonal to ``up``; azimuths ``start + 360° k / n``.
    """
    center, up_v = _t(center, torch.float64), _t(up, torch.float64)
    up_v = up_v / up_v.norm()
    # An orthonormal basis (a, b) of the plane orthogonal to up.
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    if abs(float(helper @ up_v)) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    a = torch.cross(up_v, helper, dim=0)
    a = a / a.norm()
    b = torch.cross(up_v, a, dim=0)
    az = torch.deg2rad(torch.tensor(start_azimuth, dtype=torch.float64)) + 2 * math.pi * torch.arange(n) / n
    el = math.radians(elevation)
    dirs = (math.cos(el) * (torch.cos(az)[:, None] * a + torch.sin(az)[:, None] * b) + math.sin(el) * up_v)
    eyes = center + radius * dirs
    return look_at(eyes, center, up_v)


def _slerp(q0: torch.Tensor, q1: torch.Tensor, t: float) -> torch.Tensor:
    d = float(q0 @ q1)
    if d < 0:  # take the short way round
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / q.norm()
    th = math.acos(min(1.0, d))
    return (math.sin((1 - t) * th) * q0 + math.sin(t * th) * q1) / math.sin(th)


def interpolate_path(keyframes: ArrayLike, n_per_segment: int = 30, closed: bool = False) -> torch.Tensor:
    """Interpolate camera → world poses [K, 4, 4] into ``(K − 1) · n + 1`` poses (``K · n`` if ``closed``):
    rotations by quaternion slerp, positions linearly. Each keyframe is reproduced exactly at its slot."""
    kf = _homogeneous(_t(keyframes, torch.float64))
    if kf.ndim != 3 or kf.shape[0] < 2:
        raise ValueError(f"interpolate_path: need at least 2 keyframes [K, 4, 4], got {tuple(kf.shape)}")
    if n_per_segment < 1:
        raise ValueError("interpolate_path: n_per_segment must be >= 1")
    quats = rotmat_to_quat(kf[:, :3, :3])
    pairs = list(range(kf.shape[0] - 1)) + ([kf.shape[0] - 1] if closed else [])
    out = []
    for i in pairs:
        j = (i + 1) % kf.shape[0]
        for s in range(n_per_segment):
            t = s / n_per_segment
            m = torch.eye(4, dtype=torch.float64)
            m[:3, :3] = quat_to_rotmat(_slerp(quats[i], quats[j], t))
            m[:3, 3] = (1 - t) * kf[i, :3, 3] + t * kf[j, :3, 3]
            out.append(m)
    if not closed:
        out.append(kf[-1])
    return torch.stack(out).float()


# ----------------------------------------------------------------------------------------------------------
# Camera path JSON (nerfstudio-style)
# ----------------------------------------------------------------------------------------------------------
def save_camera_path(path: Union[str, Path], camtoworlds: ArrayLike, width: int, height: int,
                     fov_y_deg: Union[float, Sequence[float]], fps: float = 30.0, opengl: bool = True) -> None:
    """Write a nerfstudio-style camera path JSON (atomically)::

        {"render_width": W, "render_height": H, "fps": fps, "seconds": n / fps, "camera_type": "perspective",
         "camera_path": [{"camera_to_world": [16 floats, row-major 4 × 4], "fov": vertical fov in degrees,
                          "aspect": W / H}, ...]}

    ``camtoworlds`` [n, 4, 4] are OpenCV poses; like nerfstudio the file stores OpenGL axes when ``opengl``
    (the default), which is recorded in the extra key ``"convention": "opengl" | "opencv"``.
    """
    c2w = _homogeneous(_t(camtoworlds))
    if opengl:
        c2w = opencv_to_opengl(c2w)
    n = c2w.shape[0]
    fovs = [float(fov_y_deg)] * n if np.isscalar(fov_y_deg) else [float(f) for f in fov_y_deg]
    if len(fovs) != n:
        raise ValueError(f"save_camera_path: {len(fovs)} fovs for {n} poses")
    data = {
        "render_width": int(width), "render_height": int(height), "fps": float(fps), "seconds": n / float(fps),
        "camera_type": "perspective", "convention": "opengl" if opengl else "opencv",
        "camera_path": [{"camera_to_world": c2w[i].reshape(-1).tolist(), "fov": fovs[i],
                         "aspect": width / height} for i in range(n)],
    }
    atomic_write_text(path, json.dumps(data, indent=1))


def load_camera_path(path: Union[str, Path]) -> Cameras:
    """Read a nerfstudio-style camera path JSON (see :func:`save_camera_path`) into OpenCV :class:`Cameras`.

    Missing ``"convention"`` means OpenGL (nerfstudio's). ``fov`` is the vertical field of view in degrees;
    the principal point is the image centre.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read camera path JSON ({e})") from e
    for key in ("render_width", "render_height", "camera_path"):
        if key not in data:
            raise ValueError(f"{path}: camera path JSON lacks key '{key}'")
    W, H = int(data["render_width"]), int(data["render_height"])
    c2ws, Ks = [], []
    for i, fr in enumerate(data["camera_path"]):
        if "camera_to_world" not in fr or "fov" not in fr:
            raise ValueError(f"{path}: camera_path[{i}] needs 'camera_to_world' and 'fov'")
        m = np.asarray(fr["camera_to_world"], dtype=np.float64)
        m = m.reshape(4, 4) if m.size == 16 else m.reshape(3, 4)
        c2ws.append(_homogeneous(torch.from_numpy(m)))
        f = focal_from_fov(math.radians(float(fr["fov"])), H)
        Ks.append(torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=torch.float64))
    c2w = torch.stack(c2ws)
    if data.get("convention", "opengl") == "opengl":
        c2w = opengl_to_opencv(c2w).double()
    return Cameras.from_camtoworlds(c2w, torch.stack(Ks).float(), W, H)
