"""Cameras: projection by hand, conversions, RQ decomposition, paths, camera-path JSON."""

import math

import numpy as np
import pytest
import torch

from perception3d.structures.cameras import (Cameras, decompose_projection, interpolate_path, load_camera_path,
                                            look_at, opengl_to_opencv, orbit_path, save_camera_path,
                                            shift_principal_point)


def _rot(ax, ay, az):
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", [ax, ay, az], degrees=True).as_matrix()


def test_project_hand_worked():
    # identity pose, f = 100, c = (50, 40): the point (1, 2, 10) lands at (50 + 10, 40 + 20).
    K = torch.tensor([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]])
    cams = Cameras(torch.eye(4), K, 100, 80)
    uv, d = cams.project([[1.0, 2.0, 10.0]])
    assert torch.allclose(uv[0, 0], torch.tensor([60.0, 60.0]))
    assert d[0, 0] == 10.0
    # unproject inverts project
    X = cams.unproject(uv, d)
    assert torch.allclose(X[0, 0], torch.tensor([1.0, 2.0, 10.0]), atol=1e-5)


def test_camtoworlds_and_indexing():
    c2w = torch.tensor(np.stack([np.eye(4)] * 2), dtype=torch.float32)
    c2w[1, :3, :3] = torch.tensor(_rot(10, 20, 30), dtype=torch.float32)
    c2w[1, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    cams = Cameras.from_camtoworlds(c2w, torch.eye(3), 10, 10, names=["a", "b"])
    assert torch.allclose(cams.camtoworlds, c2w, atol=1e-6)
    assert torch.allclose(cams.centers[1], torch.tensor([1.0, 2.0, 3.0]), atol=1e-6)
    sub = cams[1]
    assert len(sub) == 1 and sub.names == ["b"]
    with pytest.raises(ValueError, match="names"):
        Cameras(torch.eye(4), torch.eye(3), 10, 10, names=["a", "b"])


def test_rescale_keeps_continuous_pixels():
    # A point at the centre of pixel (col 3, row 5) of a 8 x 6 image (continuous 3.5, 5.5 ... ) must land at the
    # same *relative* place after resizing: u' = u * sx exactly (pixel centres at +0.5 convention).
    K = torch.tensor([[20.0, 0, 4.0], [0, 20.0, 3.0], [0, 0, 1]])
    cams = Cameras(torch.eye(4), K, 8, 6)
    X = cams.unproject(torch.tensor([[[3.5, 5.5]]]), torch.tensor([[2.0]]))
    half = cams.rescale(0.5)
    assert (half.width, half.height) == (4, 3)
    uv, _ = half.project(X[0])
    assert torch.allclose(uv[0, 0], torch.tensor([1.75, 2.75]))
    # the centre of the image stays the centre
    assert torch.allclose(half.Ks[0, :2, 2], torch.tensor([2.0, 1.5]))
    # a non-even ratio uses the realised size: 8 x 6 at 1/3 -> 3 x 2
    third = cams.rescale(1 / 3)
    assert (third.width, third.height) == (3, 2)
    assert torch.allclose(third.Ks[0, 0, 0], torch.tensor(20.0 * 3 / 8))
    # the OpenCV <-> house convention shift
    assert torch.allclose(shift_principal_point(K, 0.5)[:2, 2], torch.tensor([4.5, 3.5]))


def test_opengl_to_opencv():
    # A Blender camera at (0, 0, 5) looking down -z (identity rotation in OpenGL axes) sees the origin at the
    # image centre with depth 5, and a point at world +y (Blender "up") lands above the centre (smaller v).
    c2w_gl = torch.eye(4)
    c2w_gl[2, 3] = 5.0
    c2w = opengl_to_opencv(c2w_gl)
    cams = Cameras.from_camtoworlds(c2w[None], torch.tensor([[10.0, 0, 5], [0, 10, 5], [0, 0, 1]]), 10, 10)
    uv, d = cams.project([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert torch.allclose(d[0], torch.tensor([5.0, 5.0, 5.0]))
    assert torch.allclose(uv[0, 0], torch.tensor([5.0, 5.0]))
    assert uv[0, 1, 1] < 5.0 and torch.isclose(uv[0, 1, 0], torch.tensor(5.0))
    assert uv[0, 2, 0] > 5.0


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_decompose_projection(sign):
    K = np.array([[2892.3, 0.2, 823.2], [0, 2883.2, 619.1], [0, 0, 1]])
    R = _rot(12, -30, 75)
    t = np.array([-191.0, 3.2, 22.5])
    P = sign * 0.37 * K @ np.hstack([R, t[:, None]])
    K2, R2, t2 = decompose_projection(P)
    assert np.allclose(K2.numpy(), K, rtol=1e-5, atol=1e-3)
    assert np.allclose(R2.numpy(), R, atol=1e-5)
    assert np.allclose(t2.numpy(), t, rtol=1e-5, atol=1e-3)
    assert np.linalg.det(R2.numpy()) > 0 and K2[0, 0] > 0 and K2[1, 1] > 0
    # cv2 agrees on K and R
    import cv2

    Kc, Rc, _, *_ = cv2.decomposeProjectionMatrix(np.abs(sign) * 0.37 * K @ np.hstack([R, t[:, None]]))
    assert np.allclose(K2.numpy(), Kc / Kc[2, 2], rtol=1e-5, atol=1e-3)
    assert np.allclose(R2.numpy(), Rc, atol=1e-5)
    with pytest.raises(ValueError, match="3 x 4"):
        decompose_projection(np.eye(3))


def test_look_at_and_orbit():
    c2w = look_at([3.0, 0.0, 0.0], [0.0, 0.0, 0.0], up=[0.0, 0.0, 1.0])
    assert torch.allclose(c2w[:3, 2], torch.tensor([-1.0, 0.0, 0.0]))  # +z looks at the target
    assert torch.allclose(c2w[:3, 1], torch.tensor([0.0, 0.0, -1.0]))  # +y (down) is -up
    assert torch.allclose(torch.det(c2w[:3, :3]), torch.tensor(1.0))
    poses = orbit_path([1.0, 2.0, 0.5], radius=4.0, n=12, elevation=30.0)
    assert poses.shape == (12, 4, 4)
    centres = poses[:, :3, 3]
    assert torch.allclose((centres - torch.tensor([1.0, 2.0, 0.5])).norm(dim=-1), torch.full((12,), 4.0), atol=1e-5)
    assert torch.allclose(centres[:, 2] - 0.5, torch.full((12,), 4.0 * math.sin(math.radians(30))), atol=1e-5)
    cams = Cameras.from_camtoworlds(poses, torch.tensor([[50.0, 0, 50], [0, 50, 50], [0, 0, 1]]), 100, 100)
    uv, d = cams.project([[1.0, 2.0, 0.5]])
    assert torch.allclose(uv, torch.full_like(uv, 50.0), atol=1e-3) and (d > 0).all()


def test_interpolate_path_slerp():
    a = torch.eye(4)
    b = torch.eye(4)
    b[:3, :3] = torch.tensor(_rot(0, 0, 90), dtype=torch.float32)
    b[:3, 3] = torch.tensor([2.0, 0.0, 0.0])
    path = interpolate_path(torch.stack([a, b]), n_per_segment=2)
    assert path.shape == (3, 4, 4)
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b, atol=1e-6)
    assert torch.allclose(path[1, :3, :3], torch.tensor(_rot(0, 0, 45), dtype=torch.float32), atol=1e-6)
    assert torch.allclose(path[1, :3, 3], torch.tensor([1.0, 0.0, 0.0]))
    closed = interpolate_path(torch.stack([a, b]), n_per_segment=4, closed=True)
    assert closed.shape == (8, 4, 4)


def test_camera_path_roundtrip(tmp_path):
    poses = orbit_path([0.0, 0.0, 0.0], 3.0, 5, elevation=20.0)
    f = tmp_path / "path.json"
    save_camera_path(f, poses, 64, 48, fov_y_deg=50.0)
    cams = load_camera_path(f)
    assert (cams.width, cams.height) == (64, 48)
    assert torch.allclose(cams.camtoworlds, poses, atol=1e-5)
    assert torch.allclose(cams.fov_y, torch.full((5,), math.radians(50.0)), atol=1e-5)
    (tmp_path / "bad.json").write_text('{"render_width": 4}')
    with pytest.raises(ValueError, match="render_height"):
        load_camera_path(tmp_path / "bad.json")


def test_decompose_real_dtu_matrix():
    # DTU Calibration/cal18/pos_001.txt; DTU's published intrinsics: fx 2892.33, fy 2883.18, c (823.21, 619.07)
    P = np.array([[2607.429996, -3.844898, 1498.178098, -533936.661373],
                  [-192.076910, 2862.552532, 681.798177, 23434.686572],
                  [-0.241605, -0.030951, 0.969881, 22.540121]])
    K, R, t = decompose_projection(P)
    assert np.allclose(K.numpy(), [[2892.33, 0, 823.21], [0, 2883.18, 619.07], [0, 0, 1]], atol=0.02)
    assert np.allclose((R @ R.T).numpy(), np.eye(3), atol=1e-6) and abs(float(torch.det(R)) - 1) < 1e-6
    # K [R | t] reproduces P up to its scale
    P2 = (K.double() @ torch.cat([R.double(), t.double()[:, None]], 1)).numpy()
    assert np.allclose(P2 / P2[2, 3], P / P[2, 3], rtol=1e-5, atol=1e-6 * np.abs(P / P[2, 3]).max())
