"""voxelize (ours, mean of the points per voxel) vs open3d's voxel_down_sample on 180k points.

Prints a table and writes bench/results/voxelize.json.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scan_like import lidar_points  # noqa: E402
from sparse_conv import _time  # noqa: E402

from perception3d.sparse import voxelize  # noqa: E402


def main() -> None:
    import open3d as o3d
    rows = []
    pts = lidar_points(beams=96, azimuths=2200, seed=3)[:, :3]
    pts = pts[:180_000] if len(pts) >= 180_000 else np.concatenate([pts, pts[: 180_000 - len(pts)] + 0.03])
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for size in (0.1, 0.2):
            lo = pts.min(0) - size / 2
            hi = lo + size * (np.ceil((pts.max(0) - lo) / size) + 1)
            t = torch.from_numpy(pts)
            ours = _time(lambda: voxelize(t, (size,) * 3, (*lo.tolist(), *hi.tolist())))
            pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
            theirs = _time(lambda: pc.voxel_down_sample(size))
            n = len(voxelize(t, (size,) * 3, (*lo.tolist(), *hi.tolist()))[0])
            rows.append(dict(points=len(pts), threads=threads, voxel=size, voxels=n, ours_ms=round(ours, 2),
                             open3d_ms=round(theirs, 2), ratio=round(ours / theirs, 3)))
    print("points | torch threads | voxel | voxels | ours ms | open3d ms | ours/open3d")
    for r in rows:
        print(" | ".join(str(v) for v in r.values()))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "voxelize.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
