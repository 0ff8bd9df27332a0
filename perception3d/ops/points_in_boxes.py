"""Which LiDAR box contains each point (mmcv's ``points_in_boxes_part`` / ``_all``), pure PyTorch.

A point p is inside box ``(x, y, z, dx, dy, dz, yaw)`` when, in the box's frame
(``local = R(-yaw) (p - (x, y))``), ``|local_x| <= dx/2 + eps``, ``|local_y| <= dy/2 + eps`` and
``z - eps <= p_z <= z + dz + eps`` (z is the bottom; boundaries count as inside). ``eps`` is 1e-6 m by default,
mmdet3d's tolerance for points a rounding step outside a face.

``z_center=True`` reads z as the box's centre instead (Waymo's and nuScenes' convention) and tests
``|p_z - z| <= dz/2 + eps`` without converting to a bottom first, so with ``eps=0`` the test is exactly
"inside or on the boundary" in float64 for centre-z boxes: the street simulator counts its
``num_lidar_points_in_box`` this way (its LiDAR points lie on box faces, where a tolerance changes counts).
"""
from __future__ import annotations

import numpy as np
import torch

from perception3d.ops.box_tensor import as_box_tensor, check_boxes
from perception3d.ops.window_pairs import window_pairs

__all__ = ["points_in_boxes", "points_in_boxes_mask", "points_in_boxes_count"]

_CHUNK = 1 << 22  # point-box pairs evaluated at once


def _prep(points, boxes):
    p = points if isinstance(points, torch.Tensor) else torch.as_tensor(np.asarray(points))
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"points: expected [N, >=3] (x, y, z first), got shape {tuple(p.shape)}")
    b = as_box_tensor(boxes, "boxes")
    check_boxes(b, "boxes")
    return p[:, :3].double(), b.to(p.device).double()


def _inside(p: torch.Tensor, b: torch.Tensor, eps: float, z_center: bool) -> torch.Tensor:
    """[K] bool: point p[k] inside box b[k] (aligned pairs)."""
    dx, dy = p[:, 0] - b[:, 0], p[:, 1] - b[:, 1]
    c, s = torch.cos(b[:, 6]), torch.sin(b[:, 6])
    lx = dx * c + dy * s
    ly = -dx * s + dy * c
    dz = p[:, 2] - b[:, 2]
    in_z = dz.abs() <= b[:, 5] / 2 + eps if z_center else (dz >= -eps) & (dz <= b[:, 5] + eps)
    return (lx.abs() <= b[:, 3] / 2 + eps) & (ly.abs() <= b[:, 4] / 2 + eps) & in_z


def _inside_pairs(p: torch.Tensor, b: torch.Tensor, eps: float, z_center: bool):
    """(point index [K], box index [K]) of every point-in-box pair.

    Points are sorted by x once; each box only tests the points whose x falls in its footprint's x-range
    (found by binary search), so the cost follows the points near boxes rather than N * M."""
    order = torch.argsort(p[:, 0])
    px = p[order, 0].contiguous()
    c, s = torch.cos(b[:, 6]).abs(), torch.sin(b[:, 6]).abs()
    hx = 0.5 * (b[:, 3] * c + b[:, 4] * s) + 1e-5 + eps
    start = torch.searchsorted(px, (b[:, 0] - hx).contiguous())
    end = torch.searchsorted(px, (b[:, 0] + hx).contiguous(), right=True)
    pts_out, box_out = [], []
    for bj, pi in window_pairs(start, end, order, _CHUNK):
        ok = _inside(p[pi], b[bj], eps, z_center)
        pts_out.append(pi[ok])
        box_out.append(bj[ok])
    return torch.cat(pts_out), torch.cat(box_out)


def points_in_boxes_mask(points, boxes, *, eps: float = 1e-6, z_center: bool = False) -> torch.Tensor:
    """[N, M] bool: point i inside box j. ``points`` [N, >=3], ``boxes`` [M, 7] (``eps``, ``z_center``: module
    docstring)."""
    p, b = _prep(points, boxes)
    N, M = p.shape[0], b.shape[0]
    out = torch.zeros(N, M, dtype=torch.bool, device=p.device)
    if N == 0 or M == 0:
        return out
    pi, bj = _inside_pairs(p, b, eps, z_center)
    out[pi, bj] = True
    return out


def points_in_boxes_count(points, boxes, *, eps: float = 1e-6, z_center: bool = False) -> torch.Tensor:
    """[M] long: how many points each box contains (a point in two boxes counts in both), without the [N, M]
    mask. ``points`` [N, >=3], ``boxes`` [M, 7] (``eps``, ``z_center``: module docstring)."""
    p, b = _prep(points, boxes)
    M = b.shape[0]
    if p.shape[0] == 0 or M == 0:
        return torch.zeros(M, dtype=torch.long, device=p.device)
    _, bj = _inside_pairs(p, b, eps, z_center)
    return torch.bincount(bj, minlength=M)


def points_in_boxes(points, boxes, *, eps: float = 1e-6, z_center: bool = False) -> torch.Tensor:
    """[N] long: index of the first box (lowest index) containing each point, -1 if none."""
    p, b = _prep(points, boxes)
    N, M = p.shape[0], b.shape[0]
    out = torch.full((N,), M, dtype=torch.long, device=p.device)
    if N == 0 or M == 0:
        return torch.full((N,), -1, dtype=torch.long, device=p.device)
    pi, bj = _inside_pairs(p, b, eps, z_center)
    out.scatter_reduce_(0, pi, bj, reduce="amin")
    return torch.where(out == M, torch.full_like(out, -1), out)
