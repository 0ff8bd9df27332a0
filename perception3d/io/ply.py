"""PLY files: 3D Gaussian scenes in the layout of the original 3DGS ``save_ply`` and point clouds with colours.

3DGS layout (readable by the usual viewers): ``x, y, z, nx, ny, nz, f_dc_0..2, f_rest_0..3(K−1)−1, opacity (logit),
scale_0..2 (log), rot_0..3 (w, x, y, z)``; ``f_rest`` is channel-major (all R coefficients, then G, then B), as 3DGS
writes ``features_rest.transpose(1, 2)``; K = (sh_degree + 1)² SH coefficients per channel. The parameters are
those of :class:`perception3d.rendering.gaussians.GaussianModel` (un-activated): ``means`` [N, 3], ``scales``
[N, 3], ``quats`` [N, 4], ``opacities`` [N], ``sh0`` [N, 1, 3], ``shN`` [N, K − 1, 3].
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from perception3d.fileio import atomic_path

__all__ = ["save_ply", "load_ply", "read_points_ply"]

PathLike = Union[str, Path]


def _ply_fields(K: int) -> list[str]:
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(3 * (K - 1))]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def save_ply(path: PathLike, params: dict) -> None:
    """Write Gaussians (un-activated params, see :class:`GaussianModel`) as a binary 3DGS PLY, atomically."""
    from plyfile import PlyData, PlyElement

    n = params["means"].shape[0]
    K = params["shN"].shape[1] + 1
    cols = [
        params["means"].reshape(n, 3),
        torch.zeros(n, 3),
        params["sh0"].reshape(n, 1, 3).transpose(1, 2).reshape(n, 3),
        params["shN"].reshape(n, K - 1, 3).transpose(1, 2).reshape(n, 3 * (K - 1)),
        params["opacities"].reshape(n, 1),
        params["scales"].reshape(n, 3),
        params["quats"].reshape(n, 4),
    ]
    data = torch.cat([c.detach().float().cpu() for c in cols], 1).numpy()
    names = _ply_fields(K)
    rec = np.empty(n, dtype=[(nm, "f4") for nm in names])
    for i, nm in enumerate(names):
        rec[nm] = data[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(rec, "vertex")]).write(str(tmp))


def load_ply(path: PathLike) -> tuple[dict, int]:
    """Read a 3DGS PLY → (params dict as in :class:`GaussianModel`, sh_degree)."""
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PLY file not found: {path}")
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"]
    except Exception as e:
        raise ValueError(f"{path}: cannot read a 'vertex' element from this PLY ({e})") from e
    names = [p.name for p in v.properties]
    need = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [nm for nm in need if nm not in names]
    if missing:
        raise ValueError(f"{path}: not a 3DGS PLY, missing properties {missing}")
    n_rest = sum(1 for nm in names if nm.startswith("f_rest_"))
    if n_rest % 3:
        raise ValueError(f"{path}: number of f_rest_* properties ({n_rest}) is not a multiple of 3")
    K = n_rest // 3 + 1
    deg = int(round(math.sqrt(K))) - 1
    if (deg + 1) ** 2 != K:                  # K = (deg + 1)² SH coefficients per channel
        raise ValueError(f"{path}: {n_rest} f_rest_* properties do not match any SH degree")

    def col(*nms):
        return torch.from_numpy(np.stack([np.asarray(v[nm], dtype=np.float32) for nm in nms], 1))

    n = len(v["x"])
    params = {
        "means": col("x", "y", "z"),
        "sh0": col("f_dc_0", "f_dc_1", "f_dc_2").reshape(n, 1, 3),
        "shN": (col(*[f"f_rest_{i}" for i in range(n_rest)]).reshape(n, 3, K - 1).transpose(1, 2).contiguous()
                if n_rest else torch.zeros(n, 0, 3)),
        "opacities": col("opacity").reshape(n),
        "scales": col("scale_0", "scale_1", "scale_2"),
        "quats": col("rot_0", "rot_1", "rot_2", "rot_3"),
    }
    for k, t in params.items():
        if not torch.isfinite(t).all():
            raise ValueError(f"{path}: property group '{k}' contains NaN or Inf")
    return params, deg


def read_points_ply(path: Path) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """x, y, z (+ red, green, blue if present) of a PLY's vertex element → ([P, 3], [P, 3] in [0, 1] or None)."""
    from plyfile import PlyData

    try:
        v = PlyData.read(str(path))["vertex"]
        xyz = np.stack([np.asarray(v[a], dtype=np.float32) for a in ("x", "y", "z")], 1)
    except Exception as e:
        raise ValueError(f"{path}: cannot read x, y, z of a PLY vertex element ({e})") from e
    names = {p.name for p in v.properties}
    rgb = None
    if {"red", "green", "blue"} <= names:
        rgb = np.stack([np.asarray(v[a], dtype=np.float32) for a in ("red", "green", "blue")], 1) / 255.0
    ok = np.isfinite(xyz).all(1)
    return (torch.from_numpy(xyz[ok]),
            torch.from_numpy(np.clip(rgb[ok], 0, 1)).float() if rgb is not None else None)
