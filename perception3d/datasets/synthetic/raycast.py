"""The scene's primitives and the ray caster of the street simulator (numpy, vectorised over rays).

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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

__all__ = ["Primitives", "SceneBuilder", "Hits", "ray_cast"]


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
