"""The two sensors of the street simulator and the poses they are placed with.

Sensors
-------
* :class:`LidarSpec`: the TOP lidar in Waymo's range-image convention (row 0 = highest beam; column j looks at
  sensor-frame azimuth ``((W - j - 0.5) / W * 2 - 1) * pi - atan2(E[1, 0], E[0, 0])``, i.e. vehicle-frame
  azimuth ``(1 - (2 j + 1) / W) * pi`` for a sensor that is only yawed).  Range noise, dropouts, max range,
  per-material intensity with an incidence fall-off, elongation growing at grazing incidence; optionally the
  vehicle moves during the sweep (per column-group poses, the ``lidar_pose`` range image).
* :class:`CameraSpec`: Waymo camera frame (x forward, y left, z up); pixel (i, j) is the ray through
  ``u = i, v = j`` with ``u = c_u - f_u * y / x``, ``v = c_v - f_v * z / x`` (pixel centres on integers, the
  OpenCV convention once axes are swapped).  Lambertian shading, sky gradient, light haze.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Tuple

import numpy as np

from perception3d.datasets.synthetic.materials import _ground_material
from perception3d.datasets.synthetic.raycast import Hits, Primitives, ray_cast

if TYPE_CHECKING:
    from perception3d.datasets.synthetic.scene import StreetLayout

__all__ = ["pose_matrix", "rpy_from_rotation", "LidarSpec", "simulate_lidar", "CameraSpec",
           "render_camera"]


def _surface_attrs(prims: Primitives, hits: Hits, points: np.ndarray, layout: "StreetLayout | None"
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reflectivity [n], albedo [n, 3] and extra dropout [n] of each hit."""
    n = hits.t.shape[0]
    refl, rgb, drop = np.zeros(n), np.zeros((n, 3)), np.zeros(n)
    for k, name in ((2, "box"), (3, "cyl"), (4, "sph")):
        s = hits.kind == k
        i = hits.index[s]
        refl[s], rgb[s], drop[s] = prims.refl[name][i], prims.rgb[name][i], prims.drop[name][i]
    g = hits.kind == 1
    if g.any():
        gr, gc = _ground_material(points[g], layout)
        refl[g], rgb[g] = gr, gc
    return refl, rgb, drop


# ----------------------------------------------------------------------------------------------------------------
# poses
# ----------------------------------------------------------------------------------------------------------------
def pose_matrix(x: float, y: float, z: float, roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0
                ) -> np.ndarray:
    """4×4 transform with rotation ``Rz(yaw) Ry(pitch) Rx(roll)`` (Waymo's ``get_rotation_matrix``)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    m = np.eye(4)
    m[:3, :3] = [[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                 [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                 [-sp, cp * sr, cp * cr]]
    m[:3, 3] = (x, y, z)
    return m


def rpy_from_rotation(rot: np.ndarray) -> Tuple[float, float, float]:
    """(roll, pitch, yaw) of ``Rz(yaw) Ry(pitch) Rx(roll)`` (inverse of :func:`pose_matrix`'s rotation)."""
    return (float(np.arctan2(rot[2, 1], rot[2, 2])), float(-np.arcsin(np.clip(rot[2, 0], -1, 1))),
            float(np.arctan2(rot[1, 0], rot[0, 0])))


# ----------------------------------------------------------------------------------------------------------------
# the LiDAR
# ----------------------------------------------------------------------------------------------------------------
def _default_inclinations(height: int, lo_deg: float, hi_deg: float) -> np.ndarray:
    """Beam inclinations (radians, lowest first), denser towards the horizon like Waymo's TOP lidar."""
    t = (np.arange(height) + 0.5) / height
    a = 0.6
    f = a * t + (1 - a) * (1 - (1 - t) ** 2)          # slope 1.4 at the bottom, 0.6 at the top
    lo, hi = np.deg2rad(lo_deg), np.deg2rad(hi_deg)
    return lo + (hi - lo) * f                         # beams at half steps: the extremes sit inside [lo, hi]


@dataclass
class LidarSpec:
    """A spinning lidar in Waymo's range-image convention.

    ``inclinations``: [H] radians, lowest beam first (as stored in ``beam_inclination.values``); image row 0 is
    the highest beam.  ``extrinsic``: [4, 4] sensor → vehicle.
    """
    height: int = 64
    width: int = 1024
    inclination_min_deg: float = -17.6
    inclination_max_deg: float = 2.4
    extrinsic: np.ndarray = field(default_factory=lambda: pose_matrix(1.43, 0.0, 2.184, yaw=0.0174))
    max_range: float = 75.0
    range_noise: float = 0.02
    dropout: float = 0.02
    inclinations: Optional[np.ndarray] = None

    def __post_init__(self):
        if self.inclinations is None:
            self.inclinations = _default_inclinations(self.height, self.inclination_min_deg,
                                                      self.inclination_max_deg)
        self.inclinations = np.asarray(self.inclinations, np.float64)
        if self.inclinations.shape != (self.height,):
            raise ValueError(f"LidarSpec.inclinations: expected {self.height} values, got "
                             f"{self.inclinations.shape}")

    @property
    def inclination_bounds(self) -> Tuple[float, float]:
        """(min, max) written to ``beam_inclination.min/max``: half a beam spacing outside the extreme beams."""
        inc = self.inclinations
        return float(inc[0] - (inc[1] - inc[0]) / 2), float(inc[-1] + (inc[-1] - inc[-2]) / 2)

    def sensor_dirs(self) -> np.ndarray:
        """[H, W, 3] unit ray directions in the sensor frame, in range-image order (official convention)."""
        incl = self.inclinations[::-1]                                           # row 0 = highest
        az_corr = np.arctan2(self.extrinsic[1, 0], self.extrinsic[0, 0])
        ratios = (self.width - np.arange(self.width) - 0.5) / self.width
        az = (ratios * 2.0 - 1.0) * np.pi - az_corr
        ci, si = np.cos(incl)[:, None], np.sin(incl)[:, None]
        return np.stack([np.cos(az)[None, :] * ci, np.sin(az)[None, :] * ci,
                         np.broadcast_to(si, (self.height, self.width))], -1)


def simulate_lidar(prims: Primitives, world_from_vehicle: np.ndarray, spec: LidarSpec, rng: np.random.Generator,
                   layout: "StreetLayout | None" = None, column_poses: Optional[np.ndarray] = None
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """One sweep of the lidar.

    Args:
        prims: the scene (world frame), static during the sweep.
        world_from_vehicle: [4, 4] vehicle pose (used for every column when ``column_poses`` is None).
        column_poses: optional [K, 4, 4] vehicle poses of K equal, contiguous groups of columns (K divides W):
            the vehicle moving while the sensor spins (rolling shutter).  Write them into the ``lidar_pose``
            range image so that readers undo the motion.
    Returns:
        range image [H, W, 4] float32 (range, intensity, elongation, no-label-zone; -1 everywhere for no
        return, no-label-zone = -1 (not in a zone) for returns), and the agent index hit by each pixel [H, W]
        (-1 static / none).
    """
    h, w = spec.height, spec.width
    poses = np.asarray(world_from_vehicle, np.float64)[None] if column_poses is None else np.asarray(column_poses)
    if w % poses.shape[0]:
        raise ValueError(f"column_poses: {poses.shape[0]} groups do not divide the {w} columns")
    cw = w // poses.shape[0]
    sensor_dirs = spec.sensor_dirs()
    t = np.empty((h, w))
    normal, dirs = np.empty((h, w, 3)), np.empty((h, w, 3))
    refl, drop, obj = np.empty((h, w)), np.empty((h, w)), np.empty((h, w), np.int64)
    for k, pose in enumerate(poses):
        cols = slice(k * cw, (k + 1) * cw)
        world_from_sensor = pose @ spec.extrinsic
        origin = world_from_sensor[:3, 3]
        d = sensor_dirs[:, cols].reshape(-1, 3) @ world_from_sensor[:3, :3].T
        hits = ray_cast(origin, d, prims, max_t=spec.max_range)
        p = origin[None, :] + d * np.where(np.isfinite(hits.t), hits.t, 0.0)[:, None]
        r, _, dr = _surface_attrs(prims, hits, p, layout)
        for arr, val in ((t, hits.t), (normal, hits.normal), (dirs, d), (refl, r), (drop, dr),
                         (obj, hits.obj)):
            arr[:, cols] = val.reshape((h, cw) + arr.shape[2:])
    t, normal, dirs, refl, drop, obj = (a.reshape((h * w,) + a.shape[2:]) for a in (t, normal, dirs, refl, drop,
                                                                                      obj))
    valid = np.isfinite(t)
    cos_inc = np.abs((normal * dirs).sum(1))
    rng_noise = rng.normal(0.0, spec.range_noise, h * w)
    u = rng.random(h * w)
    p_drop = spec.dropout + drop + 0.25 * (t / spec.max_range) ** 2 * (refl < 0.1)
    valid &= u >= p_drop
    rnge = t + rng_noise
    valid &= (rnge > 0.1) & (rnge < spec.max_range)
    inten = refl * (0.35 + 0.65 * cos_inc) * np.exp(rng.normal(0.0, 0.15, h * w))
    elong = 0.02 + 0.4 * (1.0 - cos_inc) ** 2 + np.abs(rng.normal(0.0, 0.01, h * w))
    out = np.full((h * w, 4), -1.0, np.float32)
    out[valid, 0] = rnge[valid]
    out[valid, 1] = inten[valid]
    out[valid, 2] = elong[valid]
    obj = np.where(valid, obj, -1)
    return out.reshape(h, w, 4), obj.reshape(h, w)


# ----------------------------------------------------------------------------------------------------------------
# the camera
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class CameraSpec:
    """A pinhole camera, Waymo frame (x forward, y left, z up); ``extrinsic`` is vehicle ← camera."""
    width: int = 320
    height: int = 192
    f_u: float = 330.0
    f_v: float = 330.0
    c_u: Optional[float] = None
    c_v: Optional[float] = None
    extrinsic: np.ndarray = field(default_factory=lambda: pose_matrix(1.55, -0.02, 2.05, pitch=0.03, yaw=0.004))

    def __post_init__(self):
        self.c_u = (self.width - 1) / 2.0 if self.c_u is None else self.c_u
        self.c_v = (self.height - 1) / 2.0 if self.c_v is None else self.c_v

    def camera_dirs(self) -> np.ndarray:
        """[H, W, 3] unit ray directions in the camera frame through pixel centres ``(u, v) = (i, j)``."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        d = np.stack([np.ones_like(u), -(u - self.c_u) / self.f_u, -(v - self.c_v) / self.f_v], -1)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def project(self, points_vehicle: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Vehicle-frame points [N, 3] → pixel coordinates [N, 2] and depth along the optical axis [N]."""
        cam = np.linalg.inv(self.extrinsic)
        p = points_vehicle @ cam[:3, :3].T + cam[:3, 3]
        x = np.where(np.abs(p[:, 0]) < 1e-9, 1e-9, p[:, 0])
        return np.stack([self.c_u - self.f_u * p[:, 1] / x, self.c_v - self.f_v * p[:, 2] / x], -1), p[:, 0]


def render_camera(prims: Primitives, world_from_vehicle: np.ndarray, spec: CameraSpec, rng: np.random.Generator,
                  sun: np.ndarray, layout: "StreetLayout | None" = None,
                  albedo_fn: Optional[Callable[[Hits, np.ndarray, np.ndarray], np.ndarray]] = None) -> np.ndarray:
    """Lambertian rendering of the scene.  Returns [H, W, 3] uint8 RGB.

    ``albedo_fn(hits, points [n, 3], albedo [n, 3]) -> albedo``: optional camera-only appearance (e.g. the
    surround cameras' class textures, :func:`~.cameras.class_appearance`); the LiDAR never sees it."""
    world_from_cam = world_from_vehicle @ spec.extrinsic
    origin = world_from_cam[:3, 3]
    dirs = spec.camera_dirs().reshape(-1, 3) @ world_from_cam[:3, :3].T
    hits = ray_cast(origin, dirs, prims, max_t=400.0)
    valid = np.isfinite(hits.t)
    t = np.where(valid, hits.t, 0.0)
    pts = origin[None, :] + dirs * t[:, None]
    _, albedo, _ = _surface_attrs(prims, hits, pts, layout)
    if albedo_fn is not None:
        albedo = albedo_fn(hits, pts, albedo)
    normal = hits.normal
    facing = np.sign(-(normal * dirs).sum(1, keepdims=True))
    normal = normal * np.where(facing == 0, 1, facing)
    lam = np.clip(normal @ sun, 0.0, 1.0)[:, None]
    sky_up = np.clip(normal[:, 2:3], 0, 1)
    col = albedo * (0.30 + 0.10 * sky_up + 0.75 * lam)
    haze = 1.0 - np.exp(-t / 250.0)
    sky = np.array([0.55, 0.70, 0.92]) + (1 - np.clip(dirs[:, 2:3] * 4, 0, 1)) * np.array([0.3, 0.2, 0.05])
    col = col * (1 - haze[:, None]) + sky * haze[:, None]
    col = np.where(valid[:, None], col, sky)
    col = col * (1.0 + rng.normal(0.0, 0.02, col.shape))
    img = np.clip(col * 255.0, 0, 255).astype(np.uint8)
    return img.reshape(spec.height, spec.width, 3)
