"""Multi-modal augmentations keep points, boxes, images and calibrations consistent."""
import numpy as np
import pytest

from perception3d.registry import TRANSFORMS
from perception3d.structures.calibration import compose_lidar2img, project_box_corners, project_points

# two cameras of a 200 x 100 image: front (looking along LiDAR +x) and left (looking along +y)
K = np.array([[100.0, 0.0, 100.0], [0.0, 100.0, 50.0], [0.0, 0.0, 1.0]])
FRONT = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 1.5], [1.0, 0.0, 0.0, 0.0], [0, 0, 0, 1.0]])
LEFT = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 1.5], [0.0, 1.0, 0.0, 0.0], [0, 0, 0, 1.0]])


def results():
    pts = np.array([[10.0, 1.0, 0.5, 0.3, 0.0], [2.0, 8.0, -0.5, 0.1, 0.0]], np.float32)
    boxes = np.array([[12.0, -1.0, -1.0, 4.0, 2.0, 1.5, 0.4, 1.0, 0.5], [1.0, 9.0, -1.0, 1.0, 0.8, 1.7, -0.3, 0, 0]],
                     np.float32)
    img = np.zeros((100, 200, 3), np.float32)
    img[40:60, 90:110] = 1.0  # a white square around the principal point
    return dict(points=pts, gt_bboxes_3d=boxes, gt_labels_3d=np.array([0, 7]), images=[img, img.copy()],
                cam2img=np.stack([K, K]), lidar2cam=np.stack([FRONT, LEFT]),
                lidar2img=np.stack([compose_lidar2img(K, FRONT), compose_lidar2img(K, LEFT)]),
                img_shapes=[(100, 200)] * 2)


def _pixels(r):
    """Per camera: projected points [P, 2], box gravity centres [M, 2], box corners as sets [M, 8, 2] (sorted);
    NaN behind the camera."""
    b = r["gt_bboxes_3d"].astype(np.float64)
    centres = b[:, :3] + np.stack([0 * b[:, 0], 0 * b[:, 0], b[:, 5] / 2], 1)
    out = []
    for c in range(2):
        uv_p, d_p = project_points(r["points"].astype(np.float64), r["lidar2img"][c])
        uv_c, d_c = project_points(centres, r["lidar2img"][c])
        uv_k, d_k = project_box_corners(b, r["lidar2img"][c])
        uv_p[d_p <= 0.1], uv_c[d_c <= 0.1], uv_k[d_k <= 0.1] = np.nan, np.nan, np.nan  # behind the camera
        out.append((uv_p, uv_c, np.sort(uv_k.round(6).view("f8,f8").reshape(len(b), 8), axis=1)))
    return out


@pytest.mark.parametrize("cfg", [
    dict(type="MultiModalGlobalRotScaleTrans", rot_range=[-0.8, 0.8], scale_ratio_range=[0.9, 1.1],
         translation_std=[0.5, 0.5, 0.2], seed=3),
    dict(type="MultiModalRandomFlip3D", flip_ratio_bev_horizontal=1.0, flip_ratio_bev_vertical=0.0, seed=0),
    dict(type="MultiModalRandomFlip3D", flip_ratio_bev_horizontal=1.0, flip_ratio_bev_vertical=1.0, seed=0),
])
def test_global_transform_keeps_every_pixel(cfg):
    r0 = results()
    before = _pixels(r0)
    r = TRANSFORMS.build(cfg)(results())
    assert not np.allclose(r["points"], r0["points"])  # the points did move
    after = _pixels(r)
    for (p0, c0, k0), (p1, c1, k1) in zip(before, after):
        np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-4)  # float32 points
        np.testing.assert_allclose(c1, c0, rtol=1e-5, atol=1e-4)
        for a, b in zip(k0, k1):  # corners as sets: a mirror reverses their order
            np.testing.assert_allclose(np.array(b.tolist()), np.array(a.tolist()), rtol=1e-5, atol=1e-3)
    # lidar2img is still cam2img @ lidar2cam, and lidar_aug_matrix maps old points onto new ones
    for c in range(2):
        np.testing.assert_allclose(r["lidar2img"][c], compose_lidar2img(r["cam2img"][c], r["lidar2cam"][c]),
                                   atol=1e-9)
    p_old = np.c_[r0["points"][:, :3], np.ones(2)]
    np.testing.assert_allclose((p_old @ r["lidar_aug_matrix"].T)[:, :3], r["points"][:, :3], atol=1e-5)


def test_image_resize_crop_flip_moves_pixels_as_the_image():
    r0 = results()
    before = _pixels(r0)
    t = TRANSFORMS.build(dict(type="ImageResizeCropFlip", final_dim=(40, 80), resize_lim=(0.5, 0.5),
                              bot_pct_lim=(0.0, 0.0), test_mode=True))
    r = t(results())
    assert r["images"][0].shape == (40, 80, 3) and r["img_shapes"] == [(40, 80)] * 2
    # resize 0.5 → 100 x 50; crop: bottom-aligned (y 10..50), centred (x 10..90): u' = u / 2 - 10, v' = v / 2 - 10
    after = _pixels(r)
    for (p0, c0, _), (p1, c1, _) in zip(before, after):
        np.testing.assert_allclose(p1, p0 / 2 - 10, atol=1e-6)
        np.testing.assert_allclose(c1, c0 / 2 - 10, atol=1e-6)
    # the white square (pixels 90..110 x 40..60) is now at 35..45 x 10..20
    ys, xs = np.nonzero(r["images"][0][..., 0] > 0.5)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (35, 44, 10, 19)
    # with a flip: u'' = 80 - u'
    tf = TRANSFORMS.build(dict(type="ImageResizeCropFlip", final_dim=(40, 80), resize_lim=(0.5, 0.5),
                               rand_flip=True, seed=1))
    for _ in range(20):  # draw until the flip is taken
        rf = tf(results())
        if rf["img_flip"]:
            break
    assert rf["img_flip"]
    a = rf["img_aug_matrix"][0]
    crop_x = a[0, 2] - 80  # flip ∘ crop ∘ resize: u'' = 80 - (u / 2 - crop_x) = -u / 2 + (80 + crop_x)
    assert a[0, 0] == -0.5 and a[1, 1] == 0.5 and 0 <= crop_x <= 20
    pf = _pixels(rf)
    np.testing.assert_allclose(pf[0][0][:, 0], 80 - (before[0][0][:, 0] / 2 - crop_x), atol=1e-6)
    np.testing.assert_allclose(pf[0][0][:, 1], before[0][0][:, 1] / 2 - 10, atol=1e-6)
    # the square's columns 45..54 (after resize) - crop_x, mirrored in an 80-wide image: 25 + crop_x .. 34 + crop_x
    ys, xs = np.nonzero(rf["images"][0][..., 0] > 0.5)
    assert (xs.min(), xs.max()) == (25 + crop_x, 34 + crop_x)


def test_lidar_only_sample_passes_through():
    r = results()
    for k in ("images", "cam2img", "lidar2cam", "lidar2img"):
        r.pop(k)
    r = TRANSFORMS.build(dict(type="MultiModalGlobalRotScaleTrans", seed=0))(r)
    assert "lidar2img" not in r and r["lidar_aug_matrix"].shape == (4, 4)
    assert TRANSFORMS.build(dict(type="ImageResizeCropFlip", final_dim=(10, 10)))(r) is r


def test_sparse_depth_map_nearest_point_per_cell():
    r = results()
    # camera 0 (front): (10, 1, 0.5) → pixel (90, 60), depth 10; a farther point on the same ray, (20, 2, -0.5):
    # pixel (90, 60), depth 20; a sweep point (time lag 0.05) right in front: ignored
    r["points"] = np.array([[10.0, 1.0, 0.5, 0.0, 0.0], [20.0, 2.0, -0.5, 0.0, 0.0], [5.0, 0.0, 1.5, 0.0, 0.05]],
                           np.float32)
    out = TRANSFORMS.build(dict(type="SparseDepthMap", stride=4, depth_mean=10.0, depth_var=4.0))(r)
    sd = out["sparse_depth"]
    assert sd.shape == (2, 2, 25, 50)
    assert sd[0, 1].sum() == 1 and sd[0, 1, 15, 22] == 1  # (90 / 4, 60 / 4) = (22.5, 15) → cell (15, 22)
    assert sd[0, 0, 15, 22] == pytest.approx((10.0 - 10.0) / 2.0)  # the nearer point wins
    assert sd[1, 1].sum() == 0  # nothing in front of the left camera
