"""Procedural street scenes and the two sensors that look at them: a spinning 64-beam LiDAR and a pinhole camera.

Used by :mod:`perception3d.datasets.synthetic_street` to write a small dataset in the Waymo Open Dataset v2
layout.  Everything is numpy and vectorised over rays; nothing here knows about parquet.

Geometry
--------
The world is level: the ground is the plane ``z = 0`` (asphalt on the road, lane markings painted on it),
sidewalks are 0.15 m slabs.  Scene content is made of three primitive kinds:

* boxes rotated about z (``center [3]``, ``size [3]``, ``yaw``): buildings, fences, sidewalks, vehicle parts,
  bicycles, clutter;
* vertical capped cylinders (``cx, cy, r, z0, z1``): poles, tree trunks, pedestrians' legs/torso/arms;
* spheres (``cx, cy, cz, r``): heads, tree canopies.

:func:`ray_cast` returns the first hit along each ray (occlusion), using the fact that every ray of one sensor
shares one origin: the primitives are culled per 5° azimuth bin by their bounding circle in the xy plane, so
that each ray is only tested against the few primitives in its direction.  The ground's slope comes from the
ego vehicle: its pose carries a small roll/pitch (≤ 0.7° / 1°), so in the vehicle frame the ground is a slightly
tilted plane, as on a real cambered road.

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
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = [
    "Primitives", "SceneBuilder", "ray_cast", "LidarSpec", "CameraSpec", "simulate_lidar", "render_camera",
    "Agent", "StreetSegment", "sample_street_segment", "frame_scene", "pose_matrix", "rpy_from_rotation",
    "count_points_in_boxes", "CLASS_TO_WAYMO_TYPE",
]

CLASS_TO_WAYMO_TYPE = {"vehicle": 1, "pedestrian": 2, "cyclist": 4}

# material table: lidar reflectivity (≈ Waymo intensity of a surface seen head-on) and RGB albedo
_MAT = {
    "road": (0.07, (0.30, 0.30, 0.32)),
    "marking": (0.60, (0.92, 0.92, 0.88)),
    "grass": (0.12, (0.30, 0.42, 0.22)),
    "sidewalk": (0.20, (0.62, 0.60, 0.57)),
    "building": (0.25, (0.70, 0.62, 0.52)),
    "fence": (0.20, (0.45, 0.40, 0.35)),
    "hedge": (0.10, (0.20, 0.40, 0.18)),
    "pole": (0.40, (0.45, 0.47, 0.50)),
    "trunk": (0.15, (0.35, 0.25, 0.17)),
    "foliage": (0.10, (0.22, 0.45, 0.20)),
    "clutter": (0.30, (0.25, 0.35, 0.30)),
    "glass": (0.05, (0.12, 0.15, 0.18)),
    "tyre": (0.05, (0.08, 0.08, 0.08)),
    "skin": (0.20, (0.80, 0.62, 0.50)),
    "bike": (0.30, (0.15, 0.15, 0.18)),
}
_CAR_PAINTS = np.array([(0.92, 0.92, 0.92), (0.08, 0.08, 0.09), (0.62, 0.63, 0.65), (0.38, 0.39, 0.41),
                        (0.70, 0.08, 0.07), (0.10, 0.20, 0.55), (0.12, 0.30, 0.18), (0.78, 0.72, 0.58)])
_CAR_PAINT_REFL = np.array([0.55, 0.12, 0.40, 0.30, 0.30, 0.25, 0.22, 0.40])
_GLASS_DROPOUT = 0.35           # extra dropout probability of returns from windows


# ----------------------------------------------------------------------------------------------------------------
# primitives and the ray caster
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Primitives:
    """Arrays of the scene's primitives (world frame).  ``*_obj`` is the agent index or -1 for static content.

    box: center [B, 3], size [B, 3], yaw [B]; cyl: [C, 5] (cx, cy, r, z0, z1); sph: [S, 4] (cx, cy, cz, r);
    ``*_refl`` [*] lidar reflectivity, ``*_rgb`` [*, 3] albedo, ``*_drop`` [*] extra dropout probability.
    """
    box_center: np.ndarray
    box_size: np.ndarray
    box_yaw: np.ndarray
    cyl: np.ndarray
    sph: np.ndarray
    refl: Dict[str, np.ndarray]
    rgb: Dict[str, np.ndarray]
    obj: Dict[str, np.ndarray]
    drop: Dict[str, np.ndarray]
    ground: bool = True


class SceneBuilder:
    """Collects primitives; :meth:`finish` turns them into :class:`Primitives` arrays."""

    def __init__(self, ground: bool = True):
        self.ground = ground
        self._p: Dict[str, list] = {"box": [], "cyl": [], "sph": []}
        self._a: Dict[str, Dict[str, list]] = {k: {"refl": [], "rgb": [], "obj": [], "drop": []}
                                                for k in ("box", "cyl", "sph")}

    def _attrs(self, kind, refl, rgb, obj, drop):
        a = self._a[kind]
        a["refl"].append(refl)
        a["rgb"].append(rgb)
        a["obj"].append(obj)
        a["drop"].append(drop)

    def box(self, center, size, yaw, refl, rgb, obj=-1, drop=0.0):
        """A box rotated by ``yaw`` about z; ``center`` is its geometric centre."""
        self._p["box"].append((*center, *size, yaw))
        self._attrs("box", refl, rgb, obj, drop)

    def box_bottom(self, x, y, z0, l, w, h, yaw, refl, rgb, obj=-1, drop=0.0):
        """A box given by its bottom-centre ``(x, y, z0)``."""
        self.box((x, y, z0 + h / 2.0), (l, w, h), yaw, refl, rgb, obj, drop)

    def cylinder(self, cx, cy, r, z0, z1, refl, rgb, obj=-1, drop=0.0):
        """A vertical capped cylinder."""
        self._p["cyl"].append((cx, cy, r, z0, z1))
        self._attrs("cyl", refl, rgb, obj, drop)

    def sphere(self, cx, cy, cz, r, refl, rgb, obj=-1, drop=0.0):
        self._p["sph"].append((cx, cy, cz, r))
        self._attrs("sph", refl, rgb, obj, drop)

    def copy(self) -> "SceneBuilder":
        """A builder holding the same primitives (new lists: adding to the copy leaves this one alone)."""
        out = SceneBuilder(self.ground)
        out._p = {k: list(v) for k, v in self._p.items()}
        out._a = {k: {n: list(v) for n, v in a.items()} for k, a in self._a.items()}
        return out

    def finish(self) -> Primitives:
        box = np.asarray(self._p["box"], np.float64).reshape(-1, 7)
        arr = lambda k, n, dt=np.float64: np.asarray(self._a[k][n], dt)  # noqa: E731
        return Primitives(
            box_center=box[:, 0:3], box_size=box[:, 3:6], box_yaw=box[:, 6],
            cyl=np.asarray(self._p["cyl"], np.float64).reshape(-1, 5),
            sph=np.asarray(self._p["sph"], np.float64).reshape(-1, 4),
            refl={k: arr(k, "refl") for k in self._a}, rgb={k: arr(k, "rgb").reshape(-1, 3) for k in self._a},
            obj={k: arr(k, "obj", np.int64) for k in self._a}, drop={k: arr(k, "drop") for k in self._a},
            ground=self.ground)


_EPS = 1e-6


def _t_boxes(o: np.ndarray, d: np.ndarray, c: np.ndarray, size: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Ray/box entry distances (slab method in each box's frame).  o [3], d [n, 3], boxes [k] → [n, k] (inf = miss)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    rel = o[None, :] - c                                              # [k, 3]
    ol = (cy * rel[:, 0] + sy * rel[:, 1], -sy * rel[:, 0] + cy * rel[:, 1], rel[:, 2])
    dl = (d[:, 0:1] * cy + d[:, 1:2] * sy, -d[:, 0:1] * sy + d[:, 1:2] * cy, d[:, 2:3])   # [n, k] ([n, 1] for z)
    tnear = tfar = None
    for a in range(3):
        da = np.where(np.abs(dl[a]) < 1e-12, 1e-12, dl[a])
        inv = 1.0 / da
        half = size[:, a] / 2.0
        t1 = (-half - ol[a]) * inv
        t2 = (half - ol[a]) * inv
        lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
        tnear = lo if tnear is None else np.maximum(tnear, lo)
        tfar = hi if tfar is None else np.minimum(tfar, hi)
    hit = (tnear <= tfar) & (tnear > _EPS)
    return np.where(hit, tnear, np.inf)


def _t_cylinders(o: np.ndarray, d: np.ndarray, cyl: np.ndarray) -> np.ndarray:
    """Ray/vertical capped cylinder entry distances.  cyl [k, 5] → [n, k]."""
    ox, oy = o[0] - cyl[:, 0], o[1] - cyl[:, 1]                       # [k]
    r, z0, z1 = cyl[:, 2], cyl[:, 3], cyl[:, 4]
    dx, dy, dz = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    a = dx * dx + dy * dy                                             # [n, 1]
    b = 2.0 * (ox * dx + oy * dy)                                     # [n, k]
    cc = ox * ox + oy * oy - r * r                                    # [k]
    disc = b * b - 4.0 * a * cc
    with np.errstate(invalid="ignore", divide="ignore"):
        ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * np.maximum(a, 1e-12))
    zs = o[2] + ts * dz
    side = (disc >= 0) & (ts > _EPS) & (zs >= z0) & (zs <= z1) & (a > 1e-12)
    t = np.where(side, ts, np.inf)
    dz_safe = np.where(np.abs(dz) < 1e-12, 1e-12, dz)
    for zc in (z0, z1):
        tc = (zc - o[2]) / dz_safe
        px, py = ox + tc * dx, oy + tc * dy
        ok = (tc > _EPS) & (px * px + py * py <= r * r)
        t = np.where(ok & (tc < t), tc, t)
    return t


def _t_spheres(o: np.ndarray, d: np.ndarray, sph: np.ndarray) -> np.ndarray:
    """Ray/sphere entry distances (d unit length).  sph [k, 4] → [n, k]."""
    oc = o[None, :] - sph[:, :3]                                      # [k, 3]
    b = d @ oc.T                                                      # [n, k]
    cc = (oc * oc).sum(-1) - sph[:, 3] ** 2                           # [k]
    disc = b * b - cc
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    return np.where((disc >= 0) & (t > _EPS), t, np.inf)


def _azimuth_bins(o: np.ndarray, centers_xy: np.ndarray, radii: np.ndarray, n_bins: int) -> np.ndarray:
    """[n_bins, k] bool: which primitives (bounding circle in xy) can be hit by a ray whose azimuth is in a bin."""
    k = centers_xy.shape[0]
    out = np.zeros((n_bins, k), bool)
    if k == 0:
        return out
    rel = centers_xy - o[None, :2]
    dist = np.hypot(rel[:, 0], rel[:, 1])
    psi = np.arctan2(rel[:, 1], rel[:, 0])
    inside = dist <= radii + 1e-3
    alpha = np.arcsin(np.clip(radii / np.maximum(dist, 1e-9), 0.0, 1.0)) + 1e-3
    width = 2.0 * np.pi / n_bins
    lo = np.floor((psi - alpha + np.pi) / width).astype(np.int64)
    hi = np.floor((psi + alpha + np.pi) / width).astype(np.int64)
    bins = np.arange(n_bins)[:, None]
    # a bin b is covered when b ≡ lo + m (mod n_bins) for some 0 <= m <= hi - lo
    out = ((bins - lo[None, :]) % n_bins) <= (hi - lo)[None, :]
    out |= inside[None, :] | ((hi - lo) >= n_bins - 1)[None, :]
    return out


@dataclass
class Hits:
    """Result of :func:`ray_cast` for n rays: distance ``t`` (inf = miss), ``normal`` [n, 3], ``kind`` (0 none,
    1 ground, 2 box, 3 cylinder, 4 sphere), ``index`` of the primitive in its kind, ``obj`` (agent, -1 static)."""
    t: np.ndarray
    normal: np.ndarray
    kind: np.ndarray
    index: np.ndarray
    obj: np.ndarray


def ray_cast(origin: np.ndarray, dirs: np.ndarray, prims: Primitives, max_t: float = np.inf,
             n_bins: int = 72) -> Hits:
    """First hit of each ray ``origin + t * dirs[i]`` (t > 0) with the ground plane and the primitives.

    Args:
        origin: [3] shared ray origin (world).
        dirs: [n, 3] unit directions.
        prims: the scene.
        max_t: hits beyond this count as misses.
        n_bins: azimuth bins used to cull primitives.
    Returns:
        :class:`Hits`.
    """
    o = np.asarray(origin, np.float64)
    d = np.asarray(dirs, np.float64)
    n = d.shape[0]
    best_t = np.full(n, np.inf)
    kind = np.zeros(n, np.int64)
    index = np.full(n, -1, np.int64)
    if prims.ground:
        with np.errstate(divide="ignore"):
            tg = np.where(d[:, 2] < -1e-12, -o[2] / np.where(d[:, 2] == 0, -1, d[:, 2]), np.inf)
        tg = np.where(tg > _EPS, tg, np.inf)
        sel = tg < best_t
        best_t[sel], kind[sel] = tg[sel], 1
    az = np.arctan2(d[:, 1], d[:, 0])
    ray_bin = np.clip(np.floor((az + np.pi) / (2 * np.pi / n_bins)).astype(np.int64), 0, n_bins - 1)
    order = np.argsort(ray_bin, kind="stable")
    bounds = np.searchsorted(ray_bin[order], np.arange(n_bins + 1))
    box_r = 0.5 * np.hypot(prims.box_size[:, 0], prims.box_size[:, 1])
    masks = {
        2: _azimuth_bins(o, prims.box_center[:, :2], box_r, n_bins),
        3: _azimuth_bins(o, prims.cyl[:, :2], prims.cyl[:, 2], n_bins),
        4: _azimuth_bins(o, prims.sph[:, :2], prims.sph[:, 3], n_bins),
    }
    for b in range(n_bins):
        rays = order[bounds[b]:bounds[b + 1]]
        if rays.size == 0:
            continue
        db = d[rays]
        for k, mask in masks.items():
            cand = np.nonzero(mask[b])[0]
            if cand.size == 0:
                continue
            if k == 2:
                t = _t_boxes(o, db, prims.box_center[cand], prims.box_size[cand], prims.box_yaw[cand])
            elif k == 3:
                t = _t_cylinders(o, db, prims.cyl[cand])
            else:
                t = _t_spheres(o, db, prims.sph[cand])
            j = t.argmin(1)
            tj = t[np.arange(rays.size), j]
            better = tj < best_t[rays]
            r = rays[better]
            best_t[r], kind[r], index[r] = tj[better], k, cand[j[better]]
    best_t = np.where(best_t <= max_t, best_t, np.inf)
    kind = np.where(np.isfinite(best_t), kind, 0)
    normal = np.zeros((n, 3))
    p = o[None, :] + d * np.where(np.isfinite(best_t), best_t, 0.0)[:, None]
    normal[kind == 1] = (0.0, 0.0, 1.0)
    s = kind == 2
    if s.any():
        i = index[s]
        c, sz, yw = prims.box_center[i], prims.box_size[i], prims.box_yaw[i]
        cy, sy = np.cos(yw), np.sin(yw)
        rel = p[s] - c
        loc = np.stack([cy * rel[:, 0] + sy * rel[:, 1], -sy * rel[:, 0] + cy * rel[:, 1], rel[:, 2]], -1)
        ax = np.abs(loc / (sz / 2.0)).argmax(1)
        sgn = np.sign(loc[np.arange(loc.shape[0]), ax])
        nl = np.zeros_like(loc)
        nl[np.arange(loc.shape[0]), ax] = sgn
        normal[s] = np.stack([cy * nl[:, 0] - sy * nl[:, 1], sy * nl[:, 0] + cy * nl[:, 1], nl[:, 2]], -1)
    s = kind == 3
    if s.any():
        cyl = prims.cyl[index[s]]
        ps = p[s]
        nr = np.stack([ps[:, 0] - cyl[:, 0], ps[:, 1] - cyl[:, 1], np.zeros(ps.shape[0])], -1)
        nr /= np.maximum(np.linalg.norm(nr, axis=1, keepdims=True), 1e-9)
        top, bot = ps[:, 2] >= cyl[:, 4] - 1e-6, ps[:, 2] <= cyl[:, 3] + 1e-6
        nr[top] = (0, 0, 1)
        nr[bot] = (0, 0, -1)
        normal[s] = nr
    s = kind == 4
    if s.any():
        sp = prims.sph[index[s]]
        normal[s] = (p[s] - sp[:, :3]) / sp[:, 3:4]
    obj = np.full(n, -1, np.int64)
    for k, name in ((2, "box"), (3, "cyl"), (4, "sph")):
        s = kind == k
        obj[s] = prims.obj[name][index[s]]
    return Hits(best_t, normal, kind, index, obj)


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


def count_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Waymo-style count: points inside each box given by its *centre* ``(cx, cy, cz, l, w, h, heading)``.

    Args:
        points: [N, >=3]; boxes: [M, 7].
    Returns:
        [M] int64 (boundaries count as inside).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    pts = np.asarray(points, np.float64)[:, :3]
    out = np.zeros(boxes.shape[0], np.int64)
    for m, (cx, cy, cz, l, w, h, yaw) in enumerate(boxes):
        rel = pts - (cx, cy, cz)
        near = np.abs(rel[:, 2]) <= h / 2
        c, s = np.cos(yaw), np.sin(yaw)
        lx = c * rel[near, 0] + s * rel[near, 1]
        ly = -s * rel[near, 0] + c * rel[near, 1]
        out[m] = int(((np.abs(lx) <= l / 2) & (np.abs(ly) <= w / 2)).sum())
    return out


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
                  sun: np.ndarray, layout: "StreetLayout | None" = None) -> np.ndarray:
    """Lambertian rendering of the scene.  Returns [H, W, 3] uint8 RGB."""
    world_from_cam = world_from_vehicle @ spec.extrinsic
    origin = world_from_cam[:3, 3]
    dirs = spec.camera_dirs().reshape(-1, 3) @ world_from_cam[:3, :3].T
    hits = ray_cast(origin, dirs, prims, max_t=400.0)
    valid = np.isfinite(hits.t)
    t = np.where(valid, hits.t, 0.0)
    pts = origin[None, :] + dirs * t[:, None]
    _, albedo, _ = _surface_attrs(prims, hits, pts, layout)
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


# ----------------------------------------------------------------------------------------------------------------
# the street
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class StreetLayout:
    """Cross-section of the street (world frame, the street runs along x)."""
    road_half: float                 # road surface |y| < road_half (kerb to kerb)
    lane_width: float
    lanes_per_dir: int
    parking: Tuple[bool, bool]       # parking strip on the (right y<0, left y>0) side
    sidewalk: float                  # sidewalk width
    setback: Tuple[float, float]     # distance from the sidewalk's outer edge to the facades (right, left)
    crossing_x: Optional[float]      # x of a cross street's centre line, None when there is none
    crossing_half: float = 0.0


def _ground_material(p: np.ndarray, layout: Optional[StreetLayout]) -> Tuple[np.ndarray, np.ndarray]:
    """Reflectivity and albedo of ground-plane hits: asphalt with lane markings, grass/dirt off the road."""
    n = p.shape[0]
    road_r, road_c = _MAT["road"]
    if layout is None:
        return np.full(n, road_r), np.tile(road_c, (n, 1))
    x, y = p[:, 0], p[:, 1]
    on_road = np.abs(y) < layout.road_half
    if layout.crossing_x is not None:
        on_road |= np.abs(x - layout.crossing_x) < layout.crossing_half
    marking = np.zeros(n, bool)
    # centre line (double, solid) and dashed lane dividers
    marking |= (np.abs(np.abs(y) - 0.12) < 0.06)
    for k in range(1, layout.lanes_per_dir):
        marking |= (np.abs(np.abs(y) - k * layout.lane_width) < 0.07) & (np.mod(x, 9.0) < 3.0)
    if layout.crossing_x is not None:
        in_cross = np.abs(x - layout.crossing_x) < layout.crossing_half + 0.5
        marking &= ~in_cross
        # zebra crossing just before the cross street
        zx = np.abs(x - (layout.crossing_x - layout.crossing_half - 2.0)) < 1.5
        marking |= zx & (np.mod(y, 1.0) < 0.5) & (np.abs(y) < layout.road_half)
    marking &= on_road
    refl = np.where(on_road, road_r, _MAT["grass"][0])
    rgb = np.where(on_road[:, None], np.array(road_c), np.array(_MAT["grass"][1]))
    refl = np.where(marking, _MAT["marking"][0], refl)
    rgb = np.where(marking[:, None], np.array(_MAT["marking"][1]), rgb)
    return refl, rgb


@dataclass
class Agent:
    """A labelled object of a segment.  ``poses`` [F, 3] world (x, y, yaw) of the bottom centre per frame."""
    name: str                        # laser_object_id
    cls: str                         # vehicle | pedestrian | cyclist
    subtype: str                     # car | van | truck | walker | rider
    size: Tuple[float, float, float]  # label box (length, width, height)
    z0: float                        # bottom height (0 road, 0.15 sidewalk)
    poses: np.ndarray
    velocity: np.ndarray             # [F, 2] world velocity
    paint: np.ndarray                # [3] main colour
    paint_refl: float
    params: dict = field(default_factory=dict)


@dataclass
class StreetSegment:
    """A segment: static scene, agents, ego poses [F, 4, 4] (world_from_vehicle), ego velocity [3] (world, m/s,
    constant), frame times [F] s."""
    layout: StreetLayout
    static: SceneBuilder
    agents: List[Agent]
    ego_poses: np.ndarray
    times: np.ndarray
    sun: np.ndarray
    ego_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))


def _add_agent_shape(sb: SceneBuilder, ag: Agent, f: int, idx: int) -> None:
    """Primitives of one agent at frame f.  Shapes fit inside the label box with a few cm margin."""
    x, y, yaw = ag.poses[f]
    l, w, h = ag.size
    c, s = np.cos(yaw), np.sin(yaw)
    at = lambda lx, ly: (x + c * lx - s * ly, y + s * lx + c * ly)  # noqa: E731  local → world xy
    z0, paint, pr = ag.z0, ag.paint, ag.paint_refl
    glass_r, glass_c = _MAT["glass"]
    tyre_r, tyre_c = _MAT["tyre"]
    if ag.cls == "vehicle":
        m = 0.05
        clear = ag.params["clearance"]
        for ax in (-0.32 * l, 0.32 * l):                                  # axles with wheels
            px, py = at(ax, 0.0)
            sb.box_bottom(px, py, z0, 0.62, w - 2 * m, min(0.62, clear + 0.3), yaw, tyre_r, tyre_c, idx)
        if ag.subtype == "car":
            hb = clear + (h - clear) * ag.params["body_frac"]
            px, py = at(0.0, 0.0)
            sb.box_bottom(px, py, z0 + clear, l - 2 * m, w - 2 * m, hb - clear, yaw, pr, paint, idx)
            cl = l * ag.params["cabin_frac"]
            px, py = at(ag.params["cabin_off"] * l, 0.0)
            sb.box_bottom(px, py, z0 + hb, cl, w - 0.2, h - m - hb, yaw, glass_r, glass_c, idx, _GLASS_DROPOUT)
            px, py = at(ag.params["cabin_off"] * l, 0.0)                  # roof panel
            sb.box_bottom(px, py, z0 + h - m - 0.04, cl - 0.3, w - 0.25, 0.04, yaw, pr, paint, idx)
        elif ag.subtype == "van":
            hood = 0.9
            px, py = at(-hood / 2, 0.0)
            sb.box_bottom(px, py, z0 + clear, l - 2 * m - hood, w - 2 * m, h - m - clear, yaw, pr, paint, idx)
            px, py = at(l / 2 - m - hood / 2, 0.0)
            sb.box_bottom(px, py, z0 + clear, hood, w - 2 * m, 0.55 * h - clear, yaw, pr, paint, idx)
            px, py = at(l / 2 - m - hood - 0.05, 0.0)                     # windscreen band
            sb.box_bottom(px, py, z0 + 0.6 * h, 0.12, w - 0.1, 0.3 * h, yaw, glass_r, glass_c, idx)
        else:                                                             # truck: cab + cargo box
            cab = 2.2
            px, py = at(l / 2 - m - cab / 2, 0.0)
            sb.box_bottom(px, py, z0 + clear, cab, w - 2 * m, 0.8 * h - clear, yaw, pr, paint, idx)
            px, py = at(-cab / 2 - 0.1, 0.0)
            sb.box_bottom(px, py, z0 + clear + 0.3, l - 2 * m - cab - 0.2, w - 2 * m, h - m - clear - 0.3, yaw,
                          0.35, ag.params["cargo"], idx)
    elif ag.cls == "pedestrian":
        skin_r, skin_c = _MAT["skin"]
        rt = ag.params["torso_r"]
        stride = ag.params["stride"] * np.sin(ag.params["phase"] + 2 * np.pi * 1.8 * f * ag.params["dt"])
        leg_top = z0 + 0.48 * h
        for sgn in (-1, 1):
            px, py = at(sgn * stride / 2, sgn * 0.09)
            sb.cylinder(px, py, 0.075, z0, leg_top, 0.12, ag.params["legs"], idx)
            px, py = at(-sgn * stride / 3, sgn * (rt + 0.06))
            sb.cylinder(px, py, 0.05, z0 + 0.5 * h, z0 + 0.8 * h, pr, paint, idx)
        px, py = at(0.0, 0.0)
        sb.cylinder(px, py, rt, leg_top, z0 + 0.83 * h, pr, paint, idx)
        sb.sphere(px, py, z0 + h - 0.11, 0.1, skin_r, skin_c, idx)
    else:                                                                 # cyclist: bicycle + rider
        br, bc = _MAT["bike"]
        px, py = at(0.0, 0.0)
        sb.box_bottom(px, py, z0 + 0.02, l - 0.1, 0.08, 0.9, yaw, br, bc, idx)
        px, py = at(l / 2 - 0.35, 0.0)
        sb.box_bottom(px, py, z0 + 0.9, 0.1, w - 0.1, 0.1, yaw, br, bc, idx)        # handlebar
        px, py = at(-0.15, 0.0)
        sb.cylinder(px, py, 0.16, z0 + 0.85, z0 + h - 0.22, pr, paint, idx)
        sb.sphere(px, py, z0 + h - 0.12, 0.11, 0.3, (0.2, 0.2, 0.2), idx)             # helmet
        for sgn in (-1, 1):
            px, py = at(-0.05, sgn * 0.13)
            sb.cylinder(px, py, 0.06, z0 + 0.3, z0 + 0.88, 0.12, ag.params["legs"], idx)


def frame_scene(seg: StreetSegment, f: int) -> Tuple[Primitives, np.ndarray, List[int]]:
    """Primitives of frame f, the agents' label boxes (world, centre) [A, 7] and their indices."""
    sb = seg.static.copy()
    boxes = []
    for i, ag in enumerate(seg.agents):
        _add_agent_shape(sb, ag, f, i)
        x, y, yaw = ag.poses[f]
        l, w, h = ag.size
        boxes.append((x, y, ag.z0 + h / 2, l, w, h, yaw))
    return sb.finish(), np.asarray(boxes, np.float64).reshape(-1, 7), list(range(len(seg.agents)))


def _obb_overlap(a: Tuple[float, ...], b: Tuple[float, ...], margin: float = 0.2) -> bool:
    """Separating-axis test of two BEV rectangles (x, y, l, w, yaw), each grown by ``margin``."""
    def corners(r):
        x, y, l, w, yaw = r
        c, s = np.cos(yaw), np.sin(yaw)
        hl, hw = l / 2 + margin, w / 2 + margin
        loc = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
        return loc @ np.array([[c, s], [-s, c]]) + (x, y)
    ca, cb = corners(a), corners(b)
    for r in (a, b):
        c, s = np.cos(r[4]), np.sin(r[4])
        for axis in ((c, s), (-s, c)):
            pa, pb = ca @ axis, cb @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def sample_street_segment(rng: np.random.Generator, num_frames: int = 5, frame_dt: float = 0.5,
                          name_prefix: str = "") -> StreetSegment:
    """A random street with parked/moving vehicles, pedestrians, cyclists and clutter, and an ego trajectory.

    The street runs along world +x; the ego drives in a right-hand lane (y < 0) heading +x, or stands still.
    Agents that would overlap one another, the ego, or static clutter in any frame are dropped.
    """
    u = rng.uniform
    times = np.arange(num_frames) * frame_dt
    # --- layout --------------------------------------------------------------------------------------------
    lanes = int(rng.choice([1, 2, 2, 3]))
    lane_w = u(3.1, 3.6)
    parking = (bool(rng.random() < 0.8), bool(rng.random() < 0.8))
    park_w = 2.3
    road_half = lanes * lane_w + park_w * max(parking) + u(0.0, 0.5)
    sidewalk = u(2.5, 5.0)
    setback = (u(0.0, 4.0) if rng.random() < 0.6 else 0.0, u(0.0, 4.0) if rng.random() < 0.6 else 0.0)
    ego_speed = 0.0 if rng.random() < 0.15 else u(3.0, 10.0)
    x_end = ego_speed * times[-1]
    crossing_x = float(u(-10.0, x_end + 30.0)) if rng.random() < 0.45 else None
    crossing_half = u(4.5, 7.0)
    layout = StreetLayout(road_half, lane_w, lanes, parking, sidewalk, setback, crossing_x, crossing_half)
    in_crossing = lambda x, pad=0.0: crossing_x is not None and abs(x - crossing_x) < crossing_half + pad  # noqa

    sb = SceneBuilder()
    x_lo, x_hi = -95.0, x_end + 95.0
    # --- sidewalks (slabs), split around the cross street ---------------------------------------------------
    sw_r, sw_c = _MAT["sidewalk"]
    spans = [(x_lo, x_hi)] if crossing_x is None else [(x_lo, crossing_x - crossing_half),
                                                        (crossing_x + crossing_half, x_hi)]
    far = road_half + sidewalk + max(setback) + 40.0
    for side in (-1, 1):
        yc = side * (road_half + (far - road_half) / 2)
        for a, b in spans:
            sb.box(((a + b) / 2, yc, -0.15), (b - a, far - road_half, 0.6), 0.0, sw_r, sw_c)
    # --- buildings / walls / fences along both sides ---------------------------------------------------------
    for side_i, side in enumerate((-1, 1)):
        y_face = road_half + sidewalk + setback[side_i]
        x = x_lo
        while x < x_hi:
            length = u(8.0, 35.0)
            gap = u(0.0, 6.0) if rng.random() < 0.5 else 0.0
            a, b = x, min(x + length, x_hi)
            if crossing_x is not None and b > crossing_x - crossing_half - sidewalk and \
                    a < crossing_x + crossing_half + sidewalk:
                x = crossing_x + crossing_half + sidewalk + 0.5
                continue
            depth, height = u(8.0, 20.0), u(4.0, 25.0)
            tint = np.array(_MAT["building"][1]) * u(0.6, 1.25, 3)
            sb.box(((a + b) / 2, side * (y_face + depth / 2), height / 2 - 0.5), (b - a, depth, height + 1.0),
                   0.0, u(0.12, 0.4), np.clip(tint, 0, 1))
            if setback[side_i] > 0.8 and rng.random() < 0.6:          # fence or hedge in front
                kind = "fence" if rng.random() < 0.5 else "hedge"
                fr, fc = _MAT[kind]
                th, hh = (0.08, u(1.0, 1.8)) if kind == "fence" else (u(0.5, 0.9), u(0.8, 1.6))
                sb.box_bottom((a + b) / 2, side * (y_face - 0.4 - th / 2), 0.15, b - a, th, hh, 0.0, fr, fc)
            x = b + gap
    # --- street furniture: poles, trees, bins -----------------------------------------------------------------
    clutter_fp: List[Tuple[float, float, float, float, float]] = []   # BEV footprints for the overlap check
    for side in (-1, 1):
        x = x_lo + u(0, 20)
        while x < x_hi:
            if not in_crossing(x, 1.0):
                py = side * (road_half + 0.5)
                r = u(0.08, 0.18)
                sb.cylinder(x, py, r, 0.0, u(4.0, 8.0), *_MAT["pole"])
                clutter_fp.append((x, py, 2 * r, 2 * r, 0.0))
            x += u(18.0, 35.0)
        if rng.random() < 0.6:
            x = x_lo + u(0, 10)
            while x < x_hi:
                if not in_crossing(x, 2.0):
                    py = side * (road_half + u(0.9, 1.5))
                    r, th = u(0.12, 0.28), u(2.2, 3.5)
                    sb.cylinder(x, py, r, 0.15, th, *_MAT["trunk"])
                    cr = u(1.2, 2.6)
                    sb.sphere(x, py, th + 0.6 * cr, cr, _MAT["foliage"][0],
                              np.clip(np.array(_MAT["foliage"][1]) * u(0.7, 1.3, 3), 0, 1))
                    clutter_fp.append((x, py, 2 * r, 2 * r, 0.0))
                x += u(8.0, 16.0)
        for _ in range(rng.integers(0, 6)):                           # bins, boxes, hydrants
            x = u(-40.0, x_end + 40.0)
            if in_crossing(x, 1.0):
                continue
            py = side * (road_half + u(0.4, sidewalk - 0.4))
            l, w, hh = u(0.4, 1.0), u(0.4, 0.8), u(0.6, 1.3)
            yaw = u(-0.3, 0.3)
            sb.box_bottom(x, py, 0.15, l, w, hh, yaw, _MAT["clutter"][0],
                          np.clip(np.array(_MAT["clutter"][1]) * u(0.5, 2.0, 3), 0, 1))
            clutter_fp.append((x, py, l, w, yaw))

    # --- ego ------------------------------------------------------------------------------------------------
    ego_lane = int(rng.integers(0, lanes))
    ego_y = -(ego_lane + 0.5) * lane_w + u(-0.3, 0.3)
    ego_yaw = u(-0.03, 0.03)
    ego_poses = np.stack([pose_matrix(ego_speed * t * np.cos(ego_yaw), ego_y + ego_speed * t * np.sin(ego_yaw),
                                      u(-0.01, 0.01), roll=u(-0.012, 0.012), pitch=u(-0.018, 0.018),
                                      yaw=ego_yaw + u(-0.003, 0.003)) for t in times])
    ego_fp = [(p[0, 3] + 1.0, p[1, 3], 9.0, 2.3, ego_yaw) for p in ego_poses]   # ego + 2 m gap ahead/behind

    # --- agents ---------------------------------------------------------------------------------------------
    agents: List[Agent] = []
    t_mid = times[len(times) // 2]

    def track(x_mid, y, yaw, speed):
        vx, vy = speed * np.cos(yaw), speed * np.sin(yaw)
        poses = np.stack([x_mid + vx * (times - t_mid), y + vy * (times - t_mid), np.full_like(times, yaw)], 1)
        return poses, np.tile((vx, vy), (len(times), 1))

    def vehicle(subtype=None):
        subtype = subtype or str(rng.choice(["car"] * 8 + ["van", "truck"]))
        if subtype == "car":
            size = (u(3.9, 5.0), u(1.7, 2.0), u(1.4, 1.8))
        elif subtype == "van":
            size = (u(4.8, 6.0), u(1.9, 2.2), u(1.9, 2.6))
        else:
            size = (u(6.5, 10.0), u(2.3, 2.6), u(2.8, 3.6))
        k = int(rng.integers(0, len(_CAR_PAINTS)))
        paint = np.clip(_CAR_PAINTS[k] * u(0.85, 1.15, 3), 0, 1)
        clearance, body_frac, cabin_frac = u(0.15, 0.3), u(0.45, 0.6), u(0.45, 0.6)
        # cars are not front/back symmetric: the cabin sits towards the rear (rear overhang 2–12 % of the length,
        # a longer bonnet in front), so that the heading can be seen in the points, as on real cars
        rear_gap = u(0.02, 0.12)
        params = dict(clearance=clearance, body_frac=body_frac, cabin_frac=cabin_frac,
                      cabin_off=-0.5 + rear_gap + cabin_frac / 2, cargo=np.clip(u(0.5, 1.0, 3), 0, 1))
        return subtype, size, paint, float(_CAR_PAINT_REFL[k] * u(0.8, 1.2)), params

    def add(cls, subtype, size, z0, poses, vel, paint, refl, params):
        agents.append(Agent(f"{name_prefix}{cls[:3]}_{len(agents):03d}", cls, subtype, size, z0, poses, vel,
                            paint, refl, params))

    ax_lo, ax_hi = -45.0, x_end + 45.0
    # parked vehicles along the kerbs (some diagonal bays)
    for side_i, side in enumerate((-1, 1)):
        if not parking[side_i]:
            continue
        occ = u(0.4, 0.9)
        diagonal = rng.random() < 0.15
        x = ax_lo + u(0, 5)
        while x < ax_hi:
            st, size, paint, refl, params = vehicle(str(rng.choice(["car"] * 10 + ["van"])))
            yaw = (np.pi / 2 - side * 0.5 if diagonal else (0.0 if side < 0 else np.pi)) + u(-0.06, 0.06)
            ext_x = abs(size[0] * np.cos(yaw)) + abs(size[1] * np.sin(yaw))     # footprint along / across the kerb
            ext_y = abs(size[0] * np.sin(yaw)) + abs(size[1] * np.cos(yaw))
            step = ext_x + (u(0.4, 1.0) if diagonal else u(0.6, 2.5))
            if rng.random() < occ and not in_crossing(x, 3.0 + size[0] / 2):
                if rng.random() < 0.15 and not diagonal:
                    yaw += np.pi
                # diagonal bays reach into the outer lane (vehicles driving there are dropped on overlap)
                y = side * (road_half - max(park_w, ext_y + 0.3) / 2 + u(-0.15, 0.1))
                poses, vel = track(x, y, yaw, 0.0)
                add("vehicle", st, size, 0.0, poses, vel, paint, refl, params)
            x += step
    # moving vehicles in lanes (same direction: y < 0, heading +x; oncoming: y > 0, heading pi)
    for side in (-1, 1):
        for lane in range(lanes):
            y = side * (lane + 0.5) * lane_w
            speed = ego_speed if (side < 0 and lane == ego_lane) else u(0.0, 12.0) * (rng.random() > 0.15)
            x = ax_lo + u(0, 15)
            while x < ax_hi:
                st, size, paint, refl, params = vehicle()
                if rng.random() < u(0.3, 0.7):
                    yaw = (0.0 if side < 0 else np.pi) + u(-0.04, 0.04)
                    poses, vel = track(x, y + u(-0.3, 0.3), yaw, speed)
                    add("vehicle", st, size, 0.0, poses, vel, paint, refl, params)
                x += size[0] + u(4.0, 20.0)
    # cross street: vehicles waiting at the junction, pedestrians on the zebra crossing
    if crossing_x is not None:
        for _ in range(rng.integers(1, 5)):
            st, size, paint, refl, params = vehicle()
            side = rng.choice([-1, 1])
            yaw = -np.pi / 2 if side > 0 else np.pi / 2
            lane_off = (crossing_half / 2) * (1 if yaw > 0 else -1)
            yv = side * (road_half + 1.0 + size[0] / 2 + u(0.0, 25.0))
            poses, vel = track(crossing_x + lane_off, yv, yaw + u(-0.05, 0.05), 0.0)   # waiting
            add("vehicle", st, size, 0.0, poses, vel, paint, refl, params)
    # cyclists and pedestrians draw from their own streams: changing one group's sampling leaves the rest alone
    rng_cyc, rng_ped, rng_end = rng.spawn(3)
    rng, u = rng_cyc, rng_cyc.uniform
    # cyclists near the kerb
    for side in (-1, 1):
        for _ in range(rng.integers(1, 6)):
            yaw = (0.0 if side < 0 else np.pi) + u(-0.1, 0.1)
            y = side * (lanes * lane_w - 0.8 + u(-0.3, 0.2))
            poses, vel = track(u(ax_lo, ax_hi), y, yaw, u(2.5, 7.0))
            size = (u(1.6, 1.9), u(0.5, 0.8), u(1.6, 1.8))
            paint = np.clip(u(0.05, 1.0, 3), 0, 1)
            add("cyclist", "rider", size, 0.0, poses, vel, paint, u(0.15, 0.35),
                dict(legs=np.clip(u(0.05, 0.5, 3), 0, 1)))

    def walker(x, y, z0, yaw, speed):
        size = (u(0.5, 0.9), u(0.5, 0.9), u(1.6, 1.9))
        poses, vel = track(x, y, yaw, speed)
        paint = np.clip(u(0.05, 0.9) * u(0.6, 1.4, 3), 0, 1)
        rt = min(0.2, size[1] / 2 - 0.13)
        stride = max(0.0, min(size[0] - 0.3, 0.6)) if speed > 0 else 0.0
        add("pedestrian", "walker", size, z0, poses, vel, paint, u(0.1, 0.3),
            dict(torso_r=rt, stride=stride, phase=u(0, 2 * np.pi), dt=frame_dt,
                 legs=np.clip(u(0.05, 0.5) * u(0.7, 1.3, 3), 0, 1)))

    # pedestrians on the sidewalks (some in pairs), a few on the zebra crossing
    rng, u = rng_ped, rng_ped.uniform
    for side in (-1, 1):
        n = int(rng.integers(5, 18))
        for _ in range(n):
            x = u(ax_lo, ax_hi)
            y = side * (road_half + u(0.5, sidewalk - 0.4))
            moving = rng.random() < 0.7
            yaw = (rng.choice([0.0, np.pi]) + u(-0.25, 0.25)) if moving else u(-np.pi, np.pi)
            speed = u(0.8, 1.7) if moving else 0.0
            walker(x, y, 0.15, yaw, speed)
            if rng.random() < 0.25:
                walker(x + u(-0.4, 0.4), y - side * u(0.7, 1.0), 0.15, yaw, speed)
    if crossing_x is not None:
        for _ in range(rng.integers(0, 5)):
            yaw = rng.choice([-np.pi / 2, np.pi / 2]) + u(-0.2, 0.2)
            walker(crossing_x - crossing_half - 2.0 + u(-1.2, 1.2), u(-road_half, road_half), 0.0, yaw,
                   u(0.8, 1.6))

    # --- drop agents that collide with anything kept before them, in any frame ----------------------------------
    kept: List[Agent] = []
    for ag in agents:
        ok = True
        for f in range(num_frames):
            r = (ag.poses[f, 0], ag.poses[f, 1], ag.size[0], ag.size[1], ag.poses[f, 2])
            others = [ego_fp[f]] + clutter_fp + [(k.poses[f, 0], k.poses[f, 1], k.size[0], k.size[1],
                                                  k.poses[f, 2]) for k in kept]
            near = [o for o in others if abs(o[0] - r[0]) < 12 and abs(o[1] - r[1]) < 12]
            if any(_obb_overlap(r, o, 0.15) for o in near):
                ok = False
                break
        if ok:
            kept.append(ag)
    for i, ag in enumerate(kept):                                       # stable, dense ids
        ag.name = f"{name_prefix}{ag.cls[:3]}_{i:03d}"
    rng, u = rng_end, rng_end.uniform
    sun_az, sun_el = u(-np.pi, np.pi), u(0.5, 1.2)
    sun = np.array([np.cos(sun_az) * np.cos(sun_el), np.sin(sun_az) * np.cos(sun_el), np.sin(sun_el)])
    ego_velocity = np.array([ego_speed * np.cos(ego_yaw), ego_speed * np.sin(ego_yaw), 0.0])
    return StreetSegment(layout, sb, kept, ego_poses, times, sun, ego_velocity)
