"""3D boxes in the LiDAR convention, the one datatype every detector, metric and transform here shares.

A box is ``(x, y, z, dx, dy, dz, yaw)`` (mmdet3d's ``LiDARInstance3DBoxes``):

* ``(x, y, z)`` is the **bottom** centre of the box in metres (z up),
* ``(dx, dy, dz)`` are the sizes along the box's own x (length), y (width) and z (height) axes,
* ``yaw`` is the rotation about +z, 0 along +x, counter-clockwise positive.

Extra columns (e.g. velocities ``vx, vy``) may follow the 7 and are carried along by the transforms
(velocities are rotated/flipped/scaled with the box). All functions take ``torch.Tensor`` or
``np.ndarray`` and return torch tensors unless stated.

Corner order (``corners()``, [N, 8, 3]): the four bottom corners counter-clockwise seen from above,
starting at (+dx/2, +dy/2) in box coordinates, then the four top corners in the same order.
BEV corners (``bev_corners()``, [N, 4, 2]) are the bottom four, counter-clockwise.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from perception3d.ops.box_tensor import ArrayLike, as_box_tensor, bev_corners, box_corners, check_boxes, limit_period
from perception3d.ops.points_in_boxes import points_in_boxes

__all__ = ["Boxes3D", "as_box_tensor", "check_boxes", "limit_period", "bev_corners", "kitti_camera_to_lidar",
           "lidar_to_kitti_camera", "camera_to_lidar_boxes"]


def _to4x4(m: ArrayLike, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(m, dtype=np.float64))
    if t.shape == (3, 3):
        out = torch.eye(4, dtype=torch.float64)
        out[:3, :3] = t
        return out
    if t.shape == (3, 4):
        out = torch.eye(4, dtype=torch.float64)
        out[:3, :] = t
        return out
    if t.shape == (4, 4):
        return t.double()
    raise ValueError(f"{name}: expected a 3x3, 3x4 or 4x4 matrix, got shape {tuple(t.shape)}")


def kitti_camera_to_lidar(locations: ArrayLike, dims_hwl: ArrayLike, rotation_y: ArrayLike,
                          r0_rect: ArrayLike, tr_velo_to_cam: ArrayLike) -> torch.Tensor:
    """Convert KITTI label boxes (rectified camera frame) to LiDAR boxes [N, 7] (float32).

    Args:
        locations: [N, 3] bottom centre ``(x, y, z)`` in rectified camera coordinates (label fields 12-14).
        dims_hwl: [N, 3] ``(h, w, l)`` as in the label file (fields 9-11).
        rotation_y: [N] ``rotation_y`` (field 15), about the camera's y (down) axis.
        r0_rect: 3x3 (or 4x4) rectification ``R0_rect``.
        tr_velo_to_cam: 3x4 (or 4x4) ``Tr_velo_to_cam``.

    The formula is mmdet3d's ``Box3DMode.convert(CAM -> LIDAR, rt_mat=inv(R0_rect @ Tr_velo_to_cam))``:
    position ``p_lidar = inv(R0 @ Tr) [p_cam; 1]`` (the bottom centre stays the bottom centre),
    sizes ``(l, w, h) -> (dx, dy, dz)``, ``yaw = -rotation_y - pi/2`` wrapped to ``[-pi, pi)``.
    """
    loc = torch.as_tensor(np.asarray(locations, dtype=np.float64)).reshape(-1, 3)
    dims = torch.as_tensor(np.asarray(dims_hwl, dtype=np.float64)).reshape(-1, 3)
    ry = torch.as_tensor(np.asarray(rotation_y, dtype=np.float64)).reshape(-1)
    if not (loc.shape[0] == dims.shape[0] == ry.shape[0]):
        raise ValueError(f"kitti_camera_to_lidar: locations ({loc.shape[0]}), dims_hwl ({dims.shape[0]}) and "
                         f"rotation_y ({ry.shape[0]}) must have the same length")
    rt = _to4x4(r0_rect, "r0_rect") @ _to4x4(tr_velo_to_cam, "tr_velo_to_cam")
    cam_to_lidar = torch.linalg.inv(rt)
    xyz = loc @ cam_to_lidar[:3, :3].T + cam_to_lidar[:3, 3]
    h, w, l = dims[:, 0], dims[:, 1], dims[:, 2]
    yaw = limit_period(-ry - math.pi / 2)
    out = torch.stack([xyz[:, 0], xyz[:, 1], xyz[:, 2], l, w, h, yaw], dim=1).float()
    return out


def lidar_to_kitti_camera(boxes: ArrayLike, r0_rect: ArrayLike, tr_velo_to_cam: ArrayLike) -> torch.Tensor:
    """Inverse of :func:`kitti_camera_to_lidar`: LiDAR boxes [N, 7] -> [N, 7] camera boxes
    ``(x, y, z, h, w, l, rotation_y)`` with ``(x, y, z)`` the bottom centre in rectified camera
    coordinates and ``rotation_y = -yaw - pi/2`` wrapped to ``[-pi, pi)`` (the KITTI label layout)."""
    b = as_box_tensor(boxes, "boxes").double()
    rt = _to4x4(r0_rect, "r0_rect") @ _to4x4(tr_velo_to_cam, "tr_velo_to_cam")
    xyz = b[:, :3] @ rt[:3, :3].T + rt[:3, 3]
    ry = limit_period(-b[:, 6] - math.pi / 2)
    return torch.stack([xyz[:, 0], xyz[:, 1], xyz[:, 2], b[:, 5], b[:, 4], b[:, 3], ry], dim=1).float()


def camera_to_lidar_boxes(boxes_cam: np.ndarray, lidar2cam: np.ndarray) -> np.ndarray:
    """Camera boxes ``(x, y, z, l, h, w, ry)`` (mmdet3d's CameraInstance3DBoxes order) → LiDAR ``(x, y, z, dx,
    dy, dz, yaw)``, by :func:`kitti_camera_to_lidar`.

    Args:
        boxes_cam: [M, 7] bottom centre in the rectified camera frame, sizes l (along x at ry = 0), h, w, ry.
        lidar2cam: [4, 4] LiDAR → rectified camera, i.e. ``R0_rect @ Tr_velo_to_cam``.
    Returns:
        [M, 7] float32 LiDAR boxes, z at the bottom.
    """
    boxes_cam = np.asarray(boxes_cam, dtype=np.float64).reshape(-1, 7)
    dims_hwl = boxes_cam[:, [4, 5, 3]]
    out = kitti_camera_to_lidar(boxes_cam[:, :3], dims_hwl, boxes_cam[:, 6], np.eye(4), lidar2cam)
    return out.numpy().astype(np.float32)



class Boxes3D:
    """A light wrapper around a [N, >=7] float tensor of LiDAR boxes (see the module docstring).

    ``Boxes3D(tensor, check=True)`` validates values (NaN/inf, non-positive sizes) and raises a
    ``ValueError`` that names the bad box index. Geometric edits (``rotate``, ``flip``, ``translate``,
    ``scale``, ``limit_yaw``) are in place and return ``self`` for chaining, like mmdet3d's boxes.
    """

    def __init__(self, tensor: ArrayLike, check: bool = True, name: str = "boxes"):
        t = as_box_tensor(tensor, name)
        if check:
            check_boxes(t, name)
        self.tensor = t

    # ---------------------------------------------------------------- basic accessors
    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, item) -> "Boxes3D":
        t = self.tensor[item]
        if t.ndim == 1:
            t = t.unsqueeze(0)
        return Boxes3D(t, check=False)

    def __repr__(self) -> str:
        return f"Boxes3D({self.tensor!r})"

    def clone(self) -> "Boxes3D":
        return Boxes3D(self.tensor.clone(), check=False)

    def to(self, *args, **kwargs) -> "Boxes3D":
        return Boxes3D(self.tensor.to(*args, **kwargs), check=False)

    def numpy(self) -> np.ndarray:
        return self.tensor.detach().cpu().numpy()

    @property
    def box_dim(self) -> int:
        return self.tensor.shape[1]

    @property
    def center(self) -> torch.Tensor:
        """[N, 3] bottom centre."""
        return self.tensor[:, :3]

    @property
    def bottom_center(self) -> torch.Tensor:
        """[N, 3] bottom centre (same as ``center``, named as in mmdet3d)."""
        return self.tensor[:, :3]

    @property
    def gravity_center(self) -> torch.Tensor:
        """[N, 3] geometric centre: bottom centre + dz / 2."""
        g = self.tensor[:, :3].clone()
        g[:, 2] = g[:, 2] + self.tensor[:, 5] * 0.5
        return g

    @property
    def dims(self) -> torch.Tensor:
        """[N, 3] sizes (dx, dy, dz)."""
        return self.tensor[:, 3:6]

    @property
    def yaw(self) -> torch.Tensor:
        """[N] yaw."""
        return self.tensor[:, 6]

    @property
    def volume(self) -> torch.Tensor:
        return self.tensor[:, 3] * self.tensor[:, 4] * self.tensor[:, 5]

    @property
    def top_height(self) -> torch.Tensor:
        return self.tensor[:, 2] + self.tensor[:, 5]

    # ---------------------------------------------------------------- corners
    def bev_corners(self) -> torch.Tensor:
        """[N, 4, 2] BEV corners, counter-clockwise, starting at (+dx/2, +dy/2) in box coordinates."""
        return bev_corners(self.tensor)

    def corners(self) -> torch.Tensor:
        """[N, 8, 3] corners: bottom four counter-clockwise (as ``bev_corners``), then the top four."""
        return box_corners(self.tensor)

    def nearest_bev(self) -> torch.Tensor:
        """[N, 4] axis-aligned BEV boxes (x1, y1, x2, y2) of the yaw snapped to 0 or 90 degrees (mmdet3d)."""
        yaw = limit_period(self.tensor[:, 6], 0.5, math.pi).abs()
        swap = yaw > math.pi / 4
        dx = torch.where(swap, self.tensor[:, 4], self.tensor[:, 3])
        dy = torch.where(swap, self.tensor[:, 3], self.tensor[:, 4])
        x, y = self.tensor[:, 0], self.tensor[:, 1]
        return torch.stack([x - dx / 2, y - dy / 2, x + dx / 2, y + dy / 2], dim=1)

    # ---------------------------------------------------------------- in-place edits
    def rotate(self, angle: float) -> "Boxes3D":
        """Rotate boxes (and velocities in columns 7:9) about the z axis through the origin by ``angle``
        radians counter-clockwise; yaw increases by ``angle``. Points are rotated with
        ``points @ R.T`` where ``R = [[cos, -sin], [sin, cos]]``."""
        c, s = math.cos(angle), math.sin(angle)
        t = self.tensor
        x, y = t[:, 0].clone(), t[:, 1].clone()
        t[:, 0] = c * x - s * y
        t[:, 1] = s * x + c * y
        t[:, 6] = t[:, 6] + angle
        if t.shape[1] >= 9:
            vx, vy = t[:, 7].clone(), t[:, 8].clone()
            t[:, 7] = c * vx - s * vy
            t[:, 8] = s * vx + c * vy
        return self

    def flip(self, direction: str = "horizontal") -> "Boxes3D":
        """Mirror in BEV like mmdet3d: ``'horizontal'`` negates y (yaw -> -yaw),
        ``'vertical'`` negates x (yaw -> pi - yaw). Velocities follow."""
        t = self.tensor
        if direction == "horizontal":
            t[:, 1] = -t[:, 1]
            t[:, 6] = -t[:, 6]
            if t.shape[1] >= 9:
                t[:, 8] = -t[:, 8]
        elif direction == "vertical":
            t[:, 0] = -t[:, 0]
            t[:, 6] = -t[:, 6] + math.pi
            if t.shape[1] >= 9:
                t[:, 7] = -t[:, 7]
        else:
            raise ValueError(f"flip: direction must be 'horizontal' or 'vertical', got {direction!r}")
        return self

    def translate(self, vector: ArrayLike) -> "Boxes3D":
        """Add a [3] translation to the centres."""
        v = torch.as_tensor(np.asarray(vector, dtype=np.float64)).reshape(-1)
        if v.numel() != 3:
            raise ValueError(f"translate: vector must have 3 values, got {v.numel()}")
        self.tensor[:, :3] = self.tensor[:, :3] + v.to(self.tensor)
        return self

    def scale(self, factor: float) -> "Boxes3D":
        """Scale positions, sizes and velocities by ``factor`` about the origin."""
        if not factor > 0:
            raise ValueError(f"scale: factor must be > 0, got {factor}")
        self.tensor[:, :6] = self.tensor[:, :6] * factor
        if self.tensor.shape[1] >= 9:
            self.tensor[:, 7:9] = self.tensor[:, 7:9] * factor
        return self

    def limit_yaw(self, offset: float = 0.5, period: float = 2 * math.pi) -> "Boxes3D":
        """Wrap yaw into ``[-offset * period, (1 - offset) * period)``; default ``[-pi, pi)``."""
        self.tensor[:, 6] = limit_period(self.tensor[:, 6], offset, period)
        return self

    # ---------------------------------------------------------------- queries
    def in_range_bev(self, box_range: Sequence[float]) -> torch.Tensor:
        """[N] bool: centre inside ``(x_min, y_min, x_max, y_max)`` (strict, as mmdet3d)."""
        x, y = self.tensor[:, 0], self.tensor[:, 1]
        return (x > box_range[0]) & (y > box_range[1]) & (x < box_range[2]) & (y < box_range[3])

    def points_in_boxes(self, points: ArrayLike) -> torch.Tensor:
        """[P] index of the first box containing each point, -1 if none (see ``perception3d.ops``)."""
        return points_in_boxes(points, self.tensor)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_kitti_camera(cls, locations: ArrayLike, dims_hwl: ArrayLike, rotation_y: ArrayLike,
                          r0_rect: ArrayLike, tr_velo_to_cam: ArrayLike) -> "Boxes3D":
        """KITTI label boxes -> LiDAR ``Boxes3D`` (see :func:`kitti_camera_to_lidar`)."""
        return cls(kitti_camera_to_lidar(locations, dims_hwl, rotation_y, r0_rect, tr_velo_to_cam))

    def to_kitti_camera(self, r0_rect: ArrayLike, tr_velo_to_cam: ArrayLike) -> torch.Tensor:
        """[N, 7] camera boxes (x, y, z, h, w, l, rotation_y) (see :func:`lidar_to_kitti_camera`)."""
        return lidar_to_kitti_camera(self.tensor, r0_rect, tr_velo_to_cam)