"""Boxes3D: corners, centres, edits, KITTI camera -> LiDAR conversion (mmdet3d's formula), validation."""
import math

import numpy as np
import pytest
import torch

from perception3d.structures.boxes import Boxes3D, kitti_camera_to_lidar, limit_period, lidar_to_kitti_camera

# KITTI-like extrinsic without rectification: cam x = -lidar y, cam y = -lidar z, cam z = lidar x
TR = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
R0 = np.eye(3)


def test_corners_and_centres():
    b = Boxes3D(torch.tensor([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, math.pi / 2]]))
    c = b.corners()[0]
    assert c.shape == (8, 3)
    # yaw 90 deg: box x axis (length 4) along +y. First corner (+dx/2, +dy/2) -> (1 - 1, 2 + 2)
    assert torch.allclose(c[0], torch.tensor([0.0, 4.0, -1.0]), atol=1e-6)
    assert torch.allclose(c[4], torch.tensor([0.0, 4.0, 0.5]), atol=1e-6)
    assert torch.allclose(b.gravity_center, torch.tensor([[1.0, 2.0, -0.25]]))
    bev = b.bev_corners()[0]
    # counter-clockwise: positive shoelace area = dx * dy
    x, y = bev[:, 0], bev[:, 1]
    area = 0.5 * (x * y.roll(-1) - x.roll(-1) * y).sum()
    assert area.item() == pytest.approx(8.0, abs=1e-5)
    assert b.volume.item() == pytest.approx(12.0)


def test_rotate_flip_translate_scale():
    t = torch.tensor([[1.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.1, 1.0, 0.0]])  # with velocity (1, 0)
    b = Boxes3D(t.clone()).rotate(math.pi / 2)
    assert torch.allclose(b.tensor[0, :2], torch.tensor([0.0, 1.0]), atol=1e-6)
    assert b.tensor[0, 6].item() == pytest.approx(0.1 + math.pi / 2)
    assert torch.allclose(b.tensor[0, 7:9], torch.tensor([0.0, 1.0]), atol=1e-6)
    h = Boxes3D(torch.tensor([[1.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.3]])).flip("horizontal")
    assert h.tensor[0, :2].tolist() == [1.0, -2.0] and h.tensor[0, 6].item() == pytest.approx(-0.3)
    v = Boxes3D(torch.tensor([[1.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.3]])).flip("vertical")
    assert v.tensor[0, :2].tolist() == [-1.0, 2.0] and v.tensor[0, 6].item() == pytest.approx(math.pi - 0.3)
    s = Boxes3D(torch.tensor([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.3]])).scale(2.0).translate([1, 1, 1])
    assert s.tensor[0, :6].tolist() == [3.0, 5.0, -1.0, 8.0, 4.0, 3.0]
    w = Boxes3D(torch.tensor([[0, 0, 0, 1, 1, 1, 3 * math.pi]])).limit_yaw()
    assert w.tensor[0, 6].item() == pytest.approx(-math.pi, abs=1e-5)
    with pytest.raises(ValueError, match="direction"):
        Boxes3D(t.clone()).flip("diagonal")


def test_corners_follow_rotation():
    """Rotating the boxes rotates their corners about the origin (geometry and yaw convention agree)."""
    rng = np.random.default_rng(0)
    t = torch.as_tensor(np.c_[rng.normal(size=(5, 3)), rng.uniform(1, 3, (5, 3)), rng.uniform(-3, 3, 5)])
    b = Boxes3D(t.clone())
    c0 = b.corners()
    a = 0.7
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=t.dtype)
    c1 = b.rotate(a).corners()
    assert torch.allclose(c1[..., :2], c0[..., :2] @ R.T, atol=1e-9)


def test_kitti_camera_to_lidar_hand_case():
    # car 10 m ahead, 1 m to the right (cam x = +1 -> lidar y = -1), bottom 1.5 m below the camera
    loc = [[1.0, 1.5, 10.0], [0.0, 1.0, 5.0]]
    hwl = [[1.5, 1.6, 3.9], [1.7, 0.6, 0.8]]
    ry = [0.0, math.pi / 2]
    out = kitti_camera_to_lidar(loc, hwl, ry, R0, TR)
    assert torch.allclose(out[0], torch.tensor([10.0, -1.0, -1.5, 3.9, 1.6, 1.5, -math.pi / 2]), atol=1e-6)
    # ry = pi/2: facing the camera (cam -z = lidar -x) -> yaw = -pi (wrapped into [-pi, pi))
    assert torch.allclose(out[1], torch.tensor([5.0, 0.0, -1.0, 0.8, 0.6, 1.7, -math.pi]), atol=1e-6)
    back = lidar_to_kitti_camera(out, R0, TR)
    assert torch.allclose(back[:, :3], torch.tensor(loc), atol=1e-5)
    assert torch.allclose(back[:, 3:6], torch.tensor(hwl), atol=1e-6)
    assert torch.allclose(limit_period(back[:, 6] - torch.tensor(ry)), torch.zeros(2), atol=1e-5)
    b = Boxes3D.from_kitti_camera(np.array(loc), np.array(hwl), np.array(ry), np.eye(4), np.vstack([TR, [0, 0, 0, 1]]))
    assert torch.allclose(b.tensor, out)


def test_validation_names_index():
    with pytest.raises(ValueError, match="box 1 has a NaN"):
        Boxes3D(torch.tensor([[0, 0, 0, 1, 1, 1, 0], [0, float("nan"), 0, 1, 1, 1, 0]]))
    with pytest.raises(ValueError, match="box 0 has a non-positive size"):
        Boxes3D(np.array([[0, 0, 0, -1, 1, 1, 0]]))
    with pytest.raises(ValueError, match=r"gt: expected a \[N, 7\]"):
        Boxes3D(torch.zeros(2, 6), name="gt")
    with pytest.raises(ValueError, match="same length"):
        kitti_camera_to_lidar([[0, 0, 1]], [[1, 1, 1], [1, 1, 1]], [0.0], R0, TR)
    assert len(Boxes3D(np.zeros((0, 7)))) == 0
