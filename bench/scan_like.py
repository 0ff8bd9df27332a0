"""A LiDAR-scan-shaped sparse tensor for benchmarks: ray-cast a spinning LiDAR over a street.

Voxels lie on surfaces (ground rings, building walls, cars, poles), not in random cells, so the neighbour
statistics match a real scan (the KITTI frame voxelised at 0.1 m has 5.5 occupied 3x3x3 neighbours per voxel).
"""
from __future__ import annotations

import numpy as np
import torch

from perception3d.sparse import SparseTensor, voxelize

GRID_RANGE = (-75.2, -75.2, -2.0, 75.2, 75.2, 2.0)   # 1504 x 1504 x 40 at 0.1 m
VOXEL = (0.1, 0.1, 0.1)


def _ray_box(o, d, lo, hi):
    """Slab test: distance along rays d [R,3] from o to boxes [B,3] (inf if missed) -> [R, B]."""
    inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
    t0 = (lo[None] - o) * inv[:, None]
    t1 = (hi[None] - o) * inv[:, None]
    tmin = np.minimum(t0, t1).max(axis=2)
    tmax = np.maximum(t0, t1).min(axis=2)
    hit = (tmax >= np.maximum(tmin, 0.0))
    return np.where(hit, np.maximum(tmin, 0.0), np.inf)


def lidar_points(beams: int = 64, azimuths: int = 2048, seed: int = 0, ego_x: float = 0.0) -> np.ndarray:
    """[N, 4] float32 points (x, y, z, intensity) of one HDL-64-like sweep over a procedural street."""
    rng = np.random.default_rng(seed)
    elev = np.deg2rad(np.linspace(-24.9, 2.0, beams))
    az = np.linspace(-np.pi, np.pi, azimuths, endpoint=False)
    E, A = np.meshgrid(elev, az, indexing="ij")
    d = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3)
    o = np.array([ego_x, 0.0, 1.8])
    t = np.full(d.shape[0], np.inf)
    down = d[:, 2] < -1e-6
    t[down] = -o[2] / d[down, 2]                                            # ground z = 0
    for side, wall_y in ((1, 18.0), (-1, -22.0)):                           # building fronts with gaps
        m = d[:, 1] * side > 1e-6
        tw = (wall_y - o[1]) / d[m, 1]
        hit = o + d[m] * tw[:, None]
        facade = (np.mod(hit[:, 0] + 200.0, 16.0) < 13.0) & (hit[:, 2] < 9.0) & (hit[:, 2] > 0)
        t[np.flatnonzero(m)[facade]] = np.minimum(t[np.flatnonzero(m)[facade]], tw[facade])
    lo, hi = [], []
    for _ in range(45):                                                     # parked / driving cars
        cx, cy = rng.uniform(-70, 70), rng.choice([-9.0, -4.0, 4.0, 9.0]) + rng.normal(0, 0.3)
        if abs(cx - ego_x) < 5 and abs(cy) < 5:
            continue
        lo.append([cx - 2.2, cy - 0.9, 0.0]); hi.append([cx + 2.2, cy + 0.9, 1.5])
    for x0 in np.arange(-72, 72, 9.0):                                      # poles / tree trunks
        for y0 in (-12.0, 11.0):
            lo.append([x0, y0, 0.0]); hi.append([x0 + 0.3, y0 + 0.3, 5.0])
    lo, hi = np.array(lo), np.array(hi)
    for s in range(0, d.shape[0], 16384):
        t[s:s + 16384] = np.minimum(t[s:s + 16384], _ray_box(o, d[s:s + 16384], lo, hi).min(axis=1))
    ok = np.isfinite(t) & (t < 75.0)
    t = t[ok] + rng.normal(0, 0.02, ok.sum())
    pts = o + d[ok] * t[:, None]
    return np.concatenate([pts, rng.uniform(0, 1, (pts.shape[0], 1))], 1).astype(np.float32)


def mean_neighbours(x: SparseTensor) -> float:
    """Average number of occupied sites in each voxel's 3x3x3 neighbourhood, itself included
    (= SubMConv3d 3x3x3 pairs per voxel)."""
    from perception3d.sparse import subm_kmap
    km = subm_kmap(x.coord_set, (3, 3, 3), (1, 1, 1))
    return km.num_pairs / max(1, len(x))


KITTI_PAIRS_PER_VOXEL = 5.6   # the real KITTI frame at 0.1 m: 4.6 occupied neighbours + itself


def scan_tensor(channels: int, target_voxels: int = 120_000, seed: int = 0,
                pairs_per_voxel: float = KITTI_PAIRS_PER_VOXEL) -> SparseTensor:
    """[target_voxels, channels] SparseTensor on the 1504 x 1504 x 40 grid, shaped like a real scan.

    Sweeps are ray-cast along the street until, after thinning the surface voxels at random (LiDAR drop-outs
    on dark and specular surfaces) down to the real scan's neighbour density, `target_voxels` remain.
    """
    clouds = []
    for k in range(16):
        clouds.append(torch.from_numpy(lidar_points(beams=128, azimuths=3000, seed=seed + k,
                                                    ego_x=-30.0 + 11.0 * k)[:, :3]))
        x, _ = voxelize(torch.cat(clouds), VOXEL, GRID_RANGE, reduce="mean")
        keep_frac = min(1.0, (pairs_per_voxel - 1) / (mean_neighbours(x) - 1))
        if len(x) * keep_frac >= target_voxels:
            break
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(x), generator=g)[:target_voxels].sort().values
    return SparseTensor(torch.randn(len(keep), channels, generator=g), x.coords[keep].clone(), x.spatial_shape, 1,
                        check=False)


def cached_scan_tensor(channels: int, path: str = "bench/results/scan_like_120k.pt") -> SparseTensor:
    """`scan_tensor` cached on disk (ray casting takes a minute); features are re-drawn per channel count."""
    import os
    if os.path.exists(path):
        coords, shape = torch.load(path)
    else:
        x = scan_tensor(1)
        coords, shape = x.coords, x.spatial_shape
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save((coords, shape), path + ".tmp")
        os.replace(path + ".tmp", path)
    g = torch.Generator().manual_seed(channels)
    return SparseTensor(torch.randn(coords.shape[0], channels, generator=g), coords, shape, 1, check=False)


if __name__ == "__main__":
    import time
    t0 = time.perf_counter()
    x = cached_scan_tensor(32)
    print(len(x), x.spatial_shape, "mean neighbours", mean_neighbours(x), time.perf_counter() - t0)
