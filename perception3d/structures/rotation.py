"""Rotations as unit quaternions ``(w, x, y, z)`` (the order of gsplat, COLMAP, nuScenes / pyquaternion and 3DGS
PLY files) and 3 × 3 matrices: the one conversion each way that cameras, scene and dataset readers share."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["quat_to_rotmat", "rotmat_to_quat"]


def rotmat_to_quat(R: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] → unit quaternions [..., 4] (w, x, y, z)."""
    R = R.double()
    m = R.reshape(-1, 3, 3)
    out = []
    for r in m:
        tr = r[0, 0] + r[1, 1] + r[2, 2]
        if tr > 0:
            s = torch.sqrt(tr + 1.0) * 2
            q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
        elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
            s = torch.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
            q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
        elif r[1, 1] > r[2, 2]:
            s = torch.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
            q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
        else:
            s = torch.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
            q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
        q = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in q])
        out.append(q / q.norm())
    return torch.stack(out).reshape(*R.shape[:-2], 4)


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """Quaternions [..., 4] (w, x, y, z; any norm, normalised here) → rotation matrices [..., 3, 3].

    The rasterizer's ``Σ = R S Sᵀ Rᵀ`` (3DGS Eq. 6) and the camera / dataset readers all call this one function.
    ``F.normalize`` divides by ``max(‖q‖, 1e-12)``: the same value and gradient as ``q / ‖q‖`` for any non-zero
    quaternion, and no NaN for an all-zero one."""
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)
