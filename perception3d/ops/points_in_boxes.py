"""Which LiDAR box contains each point (mmcv's ``points_in_boxes_part`` / ``_all``), pure PyTorch.

A point p is inside box ``(x, y, z, dx, dy, dz, yaw)`` when, in the box's frame
(``local = R(-yaw) (p - (x, y))``), ``|local_x| <= dx/2``, ``|local_y| <= dy/2`` and
``z <= p_z <= z + dz`` (z is the bottom; boundaries count as inside).
"""
from __future__ import annotations

import numpy as np
import torch

from perception3d.ops.box_tensor import as_box_tensor, check_boxes
from perception3d.ops.window_pairs import window_pairs

__all__ = ["points_in_boxes", "points_in_boxes_mask"]

_CHUNK = 1 << 22  # point-box pairs evaluated at once


def _prep(points, boxes):
    p = points if isinstance(points, torch.Tensor) else torch.as_tensor(np.asarray(points))
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"points: expected [N, >=3] (x, y, z first), got shape {tuple(p.shape)}")
    b = as_box_tensor(boxes, "boxes")
    check_boxes(b, "boxes")
    return p[:, :3].double(), b.to(p.device).double()


def _inside(p: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """[K] bool: point p[k] inside box b[k] (aligned pairs)."""
    dx, dy = p[:, 0] - b[:, 0], p[:, 1] - b[:, 1]
    c, s = torch.cos(b[:, 6]), torch.sin(b[:, 6])
    lx = dx * c + dy * s
    ly = -dx * s + dy * c
    dz = p[:, 2] - b[:, 2]
    return ((lx.abs() <= b[:, 3] / 2 + eps) & (ly.abs() <= b[:, 4] / 2 + eps)
            & (dz >= -eps) & (dz <= b[:, 5] + eps))


def _inside_pairs(p: torch.Tensor, b: torch.Tensor):
    """(point index [K], box index [K]) of every point-in-box pair.

    Points are sorted by x once; each box only tests the points whose x falls in its footprint's x-range
    (found by binary search), so the cost follows the points near boxes rather than N * M."""
    order = torch.argsort(p[:, 0])
    px = p[order, 0].contiguous()
    c, s = torch.cos(b[:, 6]).abs(), torch.sin(b[:, 6]).abs()
    hx = 0.5 * (b[:, 3] * c + b[:, 4] * s) + 1e-5
    start = torch.searchsorted(px, (b[:, 0] - hx).contiguous())
    end = torch.searchsorted(px, (b[:, 0] + hx).contiguous(), right=True)
    pts_out, box_out = [], []
    for bj, pi in window_pairs(start, end, order, _CHUNK):
        ok = _inside(p[pi], b[bj])
        pts_out.append(pi[ok])
        box_out.append(bj[ok])
    return torch.cat(pts_out), torch.cat(box_out)


def points_in_boxes_mask(points, boxes) -> torch.Tensor:
    """[N, M] bool: point i inside box j. ``points`` [N, >=3], ``boxes`` [M, 7]."""
    p, b = _prep(points, boxes)
    N, M = p.shape[0], b.shape[0]
    out = torch.zeros(N, M, dtype=torch.bool, device=p.device)
    if N == 0 or M == 0:
        return out
    pi, bj = _inside_pairs(p, b)
    out[pi, bj] = True
    return out


def points_in_boxes(points, boxes) -> torch.Tensor:
    """[N] long: index of the first box (lowest index) containing each point, -1 if none."""
    p, b = _prep(points, boxes)
    N, M = p.shape[0], b.shape[0]
    out = torch.full((N,), M, dtype=torch.long, device=p.device)
    if N == 0 or M == 0:
        return torch.full((N,), -1, dtype=torch.long, device=p.device)
    pi, bj = _inside_pairs(p, b)
    out.scatter_reduce_(0, pi, bj, reduce="amin")
    return torch.where(out == M, torch.full_like(out, -1), out)
