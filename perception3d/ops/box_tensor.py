"""Box tensors in the LiDAR convention ``(x, y, z, dx, dy, dz, yaw, ...)``: turning user input into one, checking
it, wrapping yaw, BEV corners. The one place these live: the box datatype (``structures.Boxes3D``), the geometry
kernels (IoU, NMS, points in boxes) and the readers all use them. Imports nothing of the package.

BEV corners (``bev_corners()``, [N, 4, 2]) are the bottom four corners, counter-clockwise seen from above, starting
at (+dx/2, +dy/2) in box coordinates; ``box_corners()`` [N, 8, 3] adds the top four in the same order, and
``BOX_EDGES`` lists the 12 edges of that order as corner-index pairs (for drawing wireframes).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence]

__all__ = ["as_box_tensor", "check_boxes", "limit_period", "bev_corners", "box_corners", "BOX_EDGES"]

#: the 12 edges of a :func:`box_corners` box as corner-index pairs: bottom ring, top ring, the four verticals
BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))


def as_box_tensor(boxes: ArrayLike, name: str = "boxes", min_dim: int = 7,
                  dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Turn ``boxes`` ([N, >=7] tensor / array / nested list) into a 2D float tensor; check the shape.

    Raises ``ValueError`` naming ``name`` when the shape is wrong. Values are not checked here
    (see :func:`check_boxes`).
    """
    if isinstance(getattr(boxes, "tensor", None), torch.Tensor):   # Boxes3D (or mmdet3d's boxes)
        t = boxes.tensor
    elif isinstance(boxes, torch.Tensor):
        t = boxes
    else:
        t = torch.as_tensor(np.asarray(boxes, dtype=np.float64) if not isinstance(boxes, np.ndarray)
                            else boxes)
    if t.ndim == 1 and t.numel() == 0:
        t = t.reshape(0, min_dim)
    if t.ndim != 2 or t.shape[1] < min_dim:
        raise ValueError(f"{name}: expected a [N, {min_dim}] box array (x, y, z, dx, dy, dz, yaw), "
                         f"got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    if dtype is not None:
        t = t.to(dtype)
    return t


def check_boxes(boxes: torch.Tensor, name: str = "boxes") -> None:
    """Raise ``ValueError`` naming ``name`` and the first bad box index when a box has a NaN/inf value
    or a non-positive size."""
    if boxes.numel() == 0:
        return
    finite = torch.isfinite(boxes[:, :7]).all(dim=1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0, 0])
        raise ValueError(f"{name}: box {i} has a NaN or infinite value: {boxes[i, :7].tolist()}")
    pos = (boxes[:, 3:6] > 0).all(dim=1)
    if not bool(pos.all()):
        i = int((~pos).nonzero()[0, 0])
        raise ValueError(f"{name}: box {i} has a non-positive size (dx, dy, dz) = "
                         f"{boxes[i, 3:6].tolist()}")


def limit_period(val: torch.Tensor, offset: float = 0.5, period: float = 2 * math.pi) -> torch.Tensor:
    """Wrap ``val`` into ``[-offset * period, (1 - offset) * period)`` (mmdet3d's ``limit_period``)."""
    return val - torch.floor(val / period + offset) * period


def bev_corners(boxes: torch.Tensor) -> torch.Tensor:
    """[N, 4, 2] BEV corners of [N, >=5] boxes (uses x, y, dx, dy and column 6 as yaw), CCW."""
    x, y, dx, dy, yaw = boxes[:, 0], boxes[:, 1], boxes[:, 3], boxes[:, 4], boxes[:, 6]
    sx = torch.tensor([0.5, -0.5, -0.5, 0.5], dtype=boxes.dtype, device=boxes.device)
    sy = torch.tensor([0.5, 0.5, -0.5, -0.5], dtype=boxes.dtype, device=boxes.device)
    lx = dx[:, None] * sx  # [N, 4]
    ly = dy[:, None] * sy
    c, s = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    return torch.stack([x[:, None] + c * lx - s * ly, y[:, None] + s * lx + c * ly], dim=-1)


def box_corners(boxes: torch.Tensor) -> torch.Tensor:
    """[N, 8, 3] corners of [N, >=7] boxes: the bottom four as :func:`bev_corners` (counter-clockwise), then the
    top four in the same order."""
    bev = bev_corners(boxes)
    z0 = boxes[:, 2:3].unsqueeze(-1).expand(-1, 4, 1)
    z1 = (boxes[:, 2:3] + boxes[:, 5:6]).unsqueeze(-1).expand(-1, 4, 1)
    return torch.cat([torch.cat([bev, z0], -1), torch.cat([bev, z1], -1)], dim=1)

