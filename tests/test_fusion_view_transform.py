"""SparseFusion parts: the disentangled camera → LiDAR transform with hand-made calibrations, CameraSE, candidates
as SparseTensor."""
import math

import numpy as np
import pytest
import torch

from perception3d.models.fusion import (CameraSE, camera_candidates_to_lidar, camera_info_vector,
                                        candidates_to_sparse, lidar_boxes_to_camera_candidates, sparse_to_candidates)

K = torch.tensor([[1000.0, 0.0, 800.0], [0.0, 1000.0, 450.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
FRONT = torch.tensor([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 1.5], [1.0, 0.0, 0.0, 0.0], [0, 0, 0, 1.0]],
                     dtype=torch.float64)


def test_camera_candidate_lands_where_computed_by_hand():
    # pixel (600, 550) at depth 10 in the front camera: camera (-2, 1, 10) → LiDAR (10, 2, 0.5) (gravity centre);
    # heading along the camera's +z (straight ahead) → LiDAR yaw 0; heading along camera +x (right) → yaw -90°;
    # velocity 3 m/s along camera -x (left) → LiDAR (0, 3)
    out = camera_candidates_to_lidar(torch.tensor([[600.0, 550.0], [600.0, 550.0]], dtype=torch.float64),
                                     torch.tensor([10.0, 10.0], dtype=torch.float64),
                                     torch.tensor([[4.0, 2.0, 1.0], [4.0, 2.0, 1.0]], dtype=torch.float64),
                                     torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64),
                                     torch.tensor([[-3.0, 0.0], [0.0, 0.0]], dtype=torch.float64),
                                     K.expand(2, 3, 3), FRONT.expand(2, 4, 4))
    np.testing.assert_allclose(out["center"][0].numpy(), [10.0, 2.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(out["boxes"][0].numpy(), [10.0, 2.0, 0.0, 4.0, 2.0, 1.0, 0.0, 0.0, 3.0], atol=1e-9)
    assert out["boxes"][1, 6].item() == pytest.approx(-math.pi / 2)


def test_round_trip_with_a_rotated_camera_and_gradients():
    # a camera looking left-back (yaw 135° about z) 1 m up, off-centre principal point
    th = math.radians(135)
    cam2lidar_r = torch.tensor([[-math.sin(th), 0.0, math.cos(th)], [math.cos(th), 0.0, math.sin(th)],
                                [0.0, -1.0, 0.0]], dtype=torch.float64)  # columns: camera x, y, z in LiDAR
    l2c = torch.eye(4, dtype=torch.float64)
    l2c[:3, :3] = cam2lidar_r.T
    l2c[:3, 3] = -cam2lidar_r.T @ torch.tensor([0.5, -0.2, 1.0], dtype=torch.float64)
    k = torch.tensor([[900.0, 0.0, 700.0], [0.0, 880.0, 400.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    boxes = torch.tensor([[-8.0, 9.0, -1.2, 4.2, 1.9, 1.6, 0.7, 1.5, -0.5],
                          [-3.0, 4.0, -1.0, 0.7, 0.6, 1.8, -2.5, 0.0, 0.2]], dtype=torch.float64)
    cand = lidar_boxes_to_camera_candidates(boxes, k.expand(2, 3, 3), l2c.expand(2, 4, 4))
    assert (cand["depth"] > 0).all()
    c2d = cand["center_2d"].clone().requires_grad_(True)
    back = camera_candidates_to_lidar(c2d, cand["depth"], cand["dims"], cand["heading_cam"], cand["velocity_cam"],
                                      k.expand(2, 3, 3), l2c.expand(2, 4, 4))
    np.testing.assert_allclose(back["boxes"].detach().numpy(), boxes.numpy(), atol=1e-9)
    back["boxes"][:, :2].sum().backward()
    assert c2d.grad is not None and torch.isfinite(c2d.grad).all() and c2d.grad.abs().sum() > 0


def test_camera_se_gates_by_camera():
    torch.manual_seed(0)
    se = CameraSE(8).eval()
    info = camera_info_vector(K.float().expand(5, 3, 3), FRONT.float().expand(5, 4, 4))  # [5, 16]
    assert info.shape == (5, 16) and info[0, 12].item() == 1000.0 and info[0, 11].item() == 0.0
    f = torch.randn(2, 8, 5)
    out = se(f, info.T.unsqueeze(0).expand(2, 16, 5))
    gate = out / f
    assert out.shape == (2, 8, 5) and ((gate > 0) & (gate < 1)).all()
    with pytest.raises(ValueError, match="agree"):
        se(f, torch.zeros(2, 16, 4))


def test_candidates_as_sparse_tensor_round_trip():
    pos = torch.tensor([[[3.2, 1.7], [3.9, 1.1], [10.5, 7.0]]])  # two candidates share cell (y 1, x 3)
    feats = torch.arange(6.0).reshape(1, 2, 3)
    st, flat = candidates_to_sparse(pos, feats, (8, 12), voxel_size=(0.6, 0.6), origin=(-2.4, -3.6))
    assert st.coords.tolist() == [[0, 1, 3], [0, 1, 3], [0, 7, 10]]
    assert st.spatial_shape == (8, 12) and st.batch_size == 1
    torch.testing.assert_close(sparse_to_candidates(st, 3), feats)
    torch.testing.assert_close(flat, pos[0])


def test_round_trip_after_a_global_scale_augmentation():
    # MultiModalGlobalRotScaleTrans: lidar2cam' = lidar2cam @ inv(T), T = scale 1.05 · rotation 0.3 rad; the
    # 3 × 3 part of lidar2cam' is then R / 1.05, not a rotation: the inverse path must invert it (R⁻¹ ≠ Rᵀ)
    from perception3d.structures.calibration import lidar_aug_matrix
    t = torch.as_tensor(lidar_aug_matrix(rotation=0.3, scale=1.05))
    l2c = FRONT @ torch.linalg.inv(t)
    boxes = torch.tensor([[30.0, -4.0, -1.0, 4.5, 2.0, 1.6, 0.4, 2.0, 1.0]], dtype=torch.float64)
    aug = boxes.clone()
    aug[:, :3] = (t[:3, :3] @ boxes[0, :3]).unsqueeze(0)
    aug[:, 3:6] *= 1.05
    aug[:, 6] += 0.3
    aug[:, 7:9] = (t[:2, :2] @ boxes[0, 7:9]).unsqueeze(0)
    cand = lidar_boxes_to_camera_candidates(aug, K[None], l2c[None])
    # the pixel does not move with the augmentation; the heading target is a unit vector
    np.testing.assert_allclose(cand["center_2d"].numpy(),
                               lidar_boxes_to_camera_candidates(boxes, K[None], FRONT[None])["center_2d"].numpy(),
                               atol=1e-9)
    np.testing.assert_allclose(cand["heading_cam"].norm(dim=-1).numpy(), [1.0], atol=1e-12)
    back = camera_candidates_to_lidar(cand["center_2d"], cand["depth"], cand["dims"], cand["heading_cam"],
                                      cand["velocity_cam"], K[None], l2c[None])
    np.testing.assert_allclose(back["boxes"].numpy(), aug.numpy(), atol=1e-9)
