"""Which LiDAR box contains each point (mmcv's ``points_in_boxes_part`` / ``_all``), pure PyTorch.

A point p is inside box ``(x, y, z, dx, dy, dz, yaw)`` when, in the box's frame
(``local = R(-yaw) (p - (x, y))``), ``|local_x| <= dx/2``, ``|local_y| <= dy/2`` and
``z <= p_z <= z + dz`` (z is the bottom; boundaries count as inside).
"""
from __future__ import annotations

import numpy as np
import torch

from perception3d.structures.boxes import as_box_tensor, check_boxes

__all__ = ["points_in_boxes", "points_in_boxes_mask"]

_CHUNK = 1 << 22  # point-box pairs evaluated at once


def _prep(points, boxes):
    p = points if isinstance(points, torch.Tensor) else torch.as_tensor(np.asarray(points))
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"points: expected [N, >=3] (x, y, z first), got shape {tuple(p.shape)}")
    b = as_box_tensor(boxes, "boxes")
    check_boxes(b, "boxes")
    return p[:, :3].double(), b.to(p.device).double()


def _mask_chunk(p: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    dxy = p[:, None, :2] - b[None, :, :2]  # [N, M, 2]
    c, s = torch.cos(b[:, 6]), torch.sin(b[:, 6])
    lx = dxy[..., 0] * c + dxy[..., 1] * s
    ly = -dxy[..., 0] * s + dxy[..., 1] * c
    dz = p[:, None, 2] - b[None, :, 2]
    return ((lx.abs() <= b[:, 3] / 2 + eps) & (ly.abs() <= b[:, 4] / 2 + eps)
            & (dz >= -eps) & (dz <= b[:, 5] + eps))


def points_in_boxes_mask(points, boxes) -> torch.Tensor:
    """[N, M] bool: point i inside box j. ``points`` [N, >=3], ``boxes`` [M, 7]."""
    p, b = _prep(points, boxes)
    N, M = p.shape[0], b.shape[0]
    out = torch.zeros(N, M, dtype=torch.bool, device=p.device)
    if N == 0 or M == 0:
        return out
    step = max(1, _CHUNK // M)
    for s in range(0, N, step):
        out[s:s + step] = _mask_chunk(p[s:s + step], b)
    return out


def points_in_boxes(points, boxes) -> torch.Tensor:
    """[N] long: index of the first box (lowest index) containing each point, -1 if none."""
    p, b = _prep(points, boxes)
    N, M = p.shape[0], b.shape[0]
    out = torch.full((N,), -1, dtype=torch.long, device=p.device)
    if N == 0 or M == 0:
        return out
    step = max(1, _CHUNK // M)
    for s in range(0, N, step):
        m = _mask_chunk(p[s:s + step], b)
        any_in = m.any(dim=1)
        first = m.to(torch.uint8).argmax(dim=1)
        out[s:s + step] = torch.where(any_in, first, torch.full_like(first, -1))
    return out
