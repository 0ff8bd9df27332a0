"""SparseFusion's disentangled camera → LiDAR transform of instance candidates (Xie et al., ICCV 2023, Sec. 3.3).

A camera candidate is predicted in its own image: a 2D centre, a depth, a size, a heading and a velocity in the
camera frame, plus a feature vector. SparseFusion moves the two parts differently:

* **geometry, explicitly** with the calibration (:func:`camera_candidates_to_lidar`): the centre is unprojected
  (``p_cam = K⁻¹ [u d, v d, d]``, then ``p_lidar = R⁻¹ (p_cam - t)`` with ``lidar2cam = [R | t]``; ``R`` is a
  rotation divided by the scale of a global scale augmentation, so ``R⁻¹`` is an inverse, not ``Rᵀ``), the heading
  and velocity vectors (in the camera's x–z ground plane) are moved by ``R⁻¹``, the size is frame-free;
* **semantics, learned** (:class:`CameraSE`): the feature is re-encoded by a gate conditioned on the camera
  parameters, ``f' = f ⊙ σ(MLP(BN(c)))`` with ``c`` = (the 9 entries of R, t, f_x, f_y, c_x, c_y) — the authors'
  ``CameraSE``; a self-attention layer over the candidates then follows in the view transformer.

Conventions here are the house ones (LiDAR boxes ``(x, y, z_bottom, dx, dy, dz, yaw)``): the heading is the unit
vector of the box's +x axis, given in camera coordinates as ``(h_x, h_z)`` (the camera's y axis points down, so a
level heading has no y component); the velocity likewise as ``(v_x, v_z)``.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

__all__ = ["camera_candidates_to_lidar", "camera_info_vector", "CameraSE", "lidar_boxes_to_camera_candidates"]


def _rt(lidar2cam: torch.Tensor):
    return lidar2cam[..., :3, :3], lidar2cam[..., :3, 3]


def camera_candidates_to_lidar(center_2d: torch.Tensor, depth: torch.Tensor, dims: torch.Tensor,
                               heading_cam: torch.Tensor, velocity_cam: torch.Tensor, cam2img: torch.Tensor,
                               lidar2cam: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The geometric half of the disentangled transform: camera-frame candidates → LiDAR boxes.

    Args:
        center_2d: [..., 2] pixel of the box's gravity centre; depth: [...] camera z of it (> 0).
        dims: [..., 3] (dx, dy, dz); heading_cam / velocity_cam: [..., 2] (x, z) components in the camera frame.
        cam2img: [..., 3, 3] intrinsics; lidar2cam: [..., 4, 4] — one per candidate (of the camera it came from).
    Returns:
        ``boxes`` [..., 9] LiDAR boxes (x, y, z_bottom, dx, dy, dz, yaw, vx, vy) and ``center`` [..., 3] (the
        gravity centre). Differentiable in every input.
    """
    r, t = _rt(lidar2cam)
    uvd = torch.cat([center_2d * depth[..., None], depth[..., None]], dim=-1)
    p_cam = torch.linalg.solve(cam2img, uvd.unsqueeze(-1)).squeeze(-1)          # K⁻¹ [u d, v d, d]
    # R⁻¹, not Rᵀ: after a global scale augmentation lidar2cam' = lidar2cam · T⁻¹ and its 3 × 3 part is R / s
    r_inv = torch.linalg.inv(r)
    centre = (r_inv @ (p_cam - t).unsqueeze(-1)).squeeze(-1)                    # R⁻¹ (p_cam - t)
    zeros = torch.zeros_like(heading_cam[..., :1])
    h = (r_inv @ torch.cat([heading_cam[..., :1], zeros, heading_cam[..., 1:]], -1).unsqueeze(-1)).squeeze(-1)
    v = (r_inv @ torch.cat([velocity_cam[..., :1], zeros, velocity_cam[..., 1:]], -1).unsqueeze(-1)).squeeze(-1)
    yaw = torch.atan2(h[..., 1], h[..., 0])
    bottom = centre - torch.stack([zeros[..., 0], zeros[..., 0], dims[..., 2] / 2], -1)
    boxes = torch.cat([bottom, dims, yaw[..., None], v[..., :2]], dim=-1)
    return dict(boxes=boxes, center=centre)


def lidar_boxes_to_camera_candidates(boxes: torch.Tensor, cam2img: torch.Tensor,
                                     lidar2cam: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The inverse: LiDAR boxes [..., 9] → the camera-frame regression targets of a camera candidate
    (``center_2d``, ``depth``, ``dims``, ``heading_cam``, ``velocity_cam``), e.g. to supervise the camera branch."""
    r, t = _rt(lidar2cam)
    centre = boxes[..., :3] + torch.stack([torch.zeros_like(boxes[..., 0]), torch.zeros_like(boxes[..., 0]),
                                           boxes[..., 5] / 2], -1)
    p_cam = (r @ centre.unsqueeze(-1)).squeeze(-1) + t
    q = (cam2img @ p_cam.unsqueeze(-1)).squeeze(-1)
    depth = q[..., 2]
    zeros = torch.zeros_like(boxes[..., 0])
    h = (r @ torch.stack([torch.cos(boxes[..., 6]), torch.sin(boxes[..., 6]), zeros], -1).unsqueeze(-1)).squeeze(-1)
    h = h / h[..., [0, 2]].norm(dim=-1, keepdim=True).clamp(min=1e-6)          # a unit (x, z) heading, as predicted
    v = (r @ torch.stack([boxes[..., 7], boxes[..., 8], zeros], -1).unsqueeze(-1)).squeeze(-1)
    return dict(center_2d=q[..., :2] / depth[..., None], depth=depth, dims=boxes[..., 3:6],
                heading_cam=h[..., [0, 2]], velocity_cam=v[..., [0, 2]])


def camera_info_vector(cam2img: torch.Tensor, lidar2cam: torch.Tensor) -> torch.Tensor:
    """[..., 16] camera parameters of :class:`CameraSE`: R (9, row-major), t (3), f_x, f_y, c_x, c_y."""
    r, t = _rt(lidar2cam)
    k = cam2img
    return torch.cat([r.flatten(-2), t, k[..., 0, 0, None], k[..., 1, 1, None], k[..., 0, 2, None],
                      k[..., 1, 2, None]], dim=-1)


class CameraSE(nn.Module):
    """Camera-parameter-conditioned re-encoding of candidate features (the semantic half of the transform):
    ``f' = f ⊙ σ(MLP(BN(c)))``, a squeeze-excitation gate whose input is the 16 camera parameters.

    Args:
        channels: feature channels C; cam_dim: 16 (see :func:`camera_info_vector`).
    Shapes: ``feats`` [B, C, K], ``cam_info`` [B, 16, K] → [B, C, K].
    """

    def __init__(self, channels: int, cam_dim: int = 16):
        super().__init__()
        self.bn = nn.BatchNorm1d(cam_dim)
        self.mlp = nn.Sequential(nn.Conv1d(cam_dim, channels, 1), nn.ReLU(inplace=True),
                                 nn.Conv1d(channels, channels, 1), nn.ReLU(inplace=True),
                                 nn.Conv1d(channels, channels, 1))

    def forward(self, feats: torch.Tensor, cam_info: torch.Tensor) -> torch.Tensor:
        if feats.ndim != 3 or cam_info.ndim != 3 or feats.shape[::2] != cam_info.shape[::2]:
            raise ValueError(f"CameraSE: feats [B, C, K] and cam_info [B, 16, K] must agree in B and K, got "
                             f"{tuple(feats.shape)} and {tuple(cam_info.shape)}")
        return feats * self.mlp(self.bn(cam_info)).sigmoid()
