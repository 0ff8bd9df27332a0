"""Camera <-> LiDAR geometry with hand-made calibrations (perception3d.structures.calibration)."""
import numpy as np
import pytest
import torch

from perception3d.structures.calibration import (apply_image_aug, apply_lidar_aug, check_invertible,
                                                 compose_lidar2img, image_aug_matrix, in_image, lidar_aug_matrix,
                                                 project_box_corners, project_points, unproject_points)

# A front camera 1.5 m above the LiDAR, looking along LiDAR +x: camera x = -LiDAR y, camera y = -LiDAR z,
# camera z = LiDAR x. K: f = 1000, principal point (800, 450) for a 1600 x 900 image.
K = np.array([[1000.0, 0.0, 800.0], [0.0, 1000.0, 450.0], [0.0, 0.0, 1.0]])
LIDAR2CAM = np.array([[0.0, -1.0, 0.0, 0.0],
                      [0.0, 0.0, -1.0, 1.5],
                      [1.0, 0.0, 0.0, 0.0],
                      [0.0, 0.0, 0.0, 1.0]])


def test_point_projects_to_known_pixel_and_back():
    l2i = compose_lidar2img(K, LIDAR2CAM)
    # LiDAR (10, 2, 0.5): camera (-2, 1.5 - 0.5, 10) = (-2, 1, 10) -> pixel (800 - 200, 450 + 100)
    uv, d = project_points(np.array([[10.0, 2.0, 0.5]]), l2i)
    np.testing.assert_allclose(uv, [[600.0, 550.0]])
    np.testing.assert_allclose(d, [10.0])
    back = unproject_points(uv, d, l2i)
    np.testing.assert_allclose(back, [[10.0, 2.0, 0.5]], atol=1e-9)
    # torch in, torch out, same numbers
    uv_t, d_t = project_points(torch.tensor([[10.0, 2.0, 0.5]], dtype=torch.float64), l2i)
    assert isinstance(uv_t, torch.Tensor)
    np.testing.assert_allclose(uv_t.numpy(), [[600.0, 550.0]])


def test_behind_camera_and_outside_image_are_flagged():
    l2i = compose_lidar2img(K, LIDAR2CAM)
    pts = np.array([[10.0, 0.0, 1.5], [-10.0, 0.0, 1.5], [10.0, 20.0, 1.5]])
    uv, d = project_points(pts, l2i)
    np.testing.assert_allclose(uv[0], [800.0, 450.0])  # on the optical axis: the principal point
    assert d[1] < 0
    assert in_image(uv, d, 1600, 900).tolist() == [True, False, False]  # behind; 2000 px left of the image


def test_box_corners_project_where_computed_by_hand():
    l2i = compose_lidar2img(K, LIDAR2CAM)
    # a 2 x 2 x 2 box, bottom centre (10, 0, 0), yaw 0: the near bottom-left corner (9, 1, 0) seen from the camera
    uv, d = project_box_corners(np.array([[10.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]]), l2i)
    assert uv.shape == (1, 8, 2) and d.shape == (1, 8)
    # corner 1 of Boxes3D.corners(): (-dx/2, +dy/2, bottom) -> LiDAR (9, 1, 0) -> camera (-1, 1.5, 9)
    np.testing.assert_allclose(uv[0, 1], [800 - 1000 / 9, 450 + 1500 / 9])
    np.testing.assert_allclose(d[0, 1], 9.0)


def test_not_invertible_lidar2img_is_a_clear_error():
    bad_k = K.copy()
    bad_k[0, 0] = 0.0  # zero focal length: a line of 3D points maps to one pixel column
    with pytest.raises(ValueError, match="not invertible"):
        unproject_points([[600.0, 550.0]], [10.0], compose_lidar2img(bad_k, LIDAR2CAM))
    with pytest.raises(ValueError, match="lidar2img"):
        check_invertible(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="cam.cam2img.*shape"):
        compose_lidar2img(np.eye(2), LIDAR2CAM, name="cam")
    with pytest.raises(ValueError, match="NaN"):
        compose_lidar2img(np.full((3, 3), np.nan), LIDAR2CAM)


def test_image_aug_moves_pixels_like_the_image():
    l2i = compose_lidar2img(K, LIDAR2CAM)
    p = np.array([[10.0, 2.0, 0.5]])  # pixel (600, 550)
    a = image_aug_matrix(scale=0.5, crop=(100.0, 50.0), flip_width=600.0)
    k2, l2i2 = apply_image_aug(a, K, l2i)
    uv2, d2 = project_points(p, l2i2)
    # resize to half: (300, 275); crop at (100, 50): (200, 225); flip in a 600-wide image: (400, 225)
    np.testing.assert_allclose(uv2, [[400.0, 225.0]])
    np.testing.assert_allclose(d2, [10.0])
    np.testing.assert_allclose(compose_lidar2img(k2, LIDAR2CAM), l2i2)


def test_lidar_aug_keeps_the_pixel_of_a_point():
    l2i = compose_lidar2img(K, LIDAR2CAM)
    p = np.array([[10.0, 2.0, 0.5, 1.0]])
    t = lidar_aug_matrix(rotation=0.3, scale=1.1, translation=(0.5, -0.2, 0.1), flip_horizontal=True)
    p2 = p @ t.T
    uv, _ = project_points(p, l2i)
    uv2, _ = project_points(p2, apply_lidar_aug(t, l2i))
    np.testing.assert_allclose(uv2, uv, atol=1e-9)
