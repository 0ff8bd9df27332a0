"""Scene readers: one known 3D point projects to the same pixel through every format's conversion
(files written by the test in each format), plus the real lego and T&T Barn samples in ../shared/data."""

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from perception3d.structures.cameras import Cameras
from perception3d.rendering.scenes import (decode_jet_depth, read_blender, read_colmap, read_dtu,
                                           read_lmgaussian, read_lmgaussian_depth, read_scene,
                                           write_colmap_model)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
W, H = 48, 36


def _truth() -> Cameras:
    """Three OpenCV cameras looking at the origin from different sides, f = 40, principal point at the centre."""
    from scipy.spatial.transform import Rotation

    viewmats, Ks = [], []
    for k, (ax, ay, az) in enumerate([(5, -20, 3), (-10, 35, -4), (20, 10, 8)]):
        R = Rotation.from_euler("xyz", [ax, ay, az], degrees=True).as_matrix()
        vm = np.eye(4)
        vm[:3, :3] = R
        vm[:3, 3] = [0.1 * k, -0.2, 4.0 + k]
        viewmats.append(vm)
        Ks.append([[40.0 + k, 0, W / 2], [0, 40.0 + k, H / 2], [0, 0, 1]])
    return Cameras(torch.tensor(np.stack(viewmats)), torch.tensor(Ks), W, H)


X = torch.tensor([[0.3, -0.2, 0.25], [-0.4, 0.1, -0.3]])


def _png(path: Path, w=W, h=H, rgba=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    iio.imwrite(path, rng.integers(0, 255, (h, w, 4 if rgba else 3), dtype=np.uint8))


def _check(scene, truth, atol=1e-3):
    uv, d = scene.cameras.project(X)
    uv0, d0 = truth.project(X)
    assert torch.allclose(uv, uv0, atol=atol), (uv, uv0)
    assert torch.allclose(d / d.mean(), d0 / d0.mean(), atol=1e-4)


def test_blender_reader(tmp_path):
    truth = _truth()
    # Blender needs one focal for all frames: use camera 0's intrinsics for all.
    truth = Cameras(truth.viewmats, truth.Ks[0], W, H)
    c2w_gl = truth.camtoworlds @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    fov = 2 * math.atan(W / 2 / float(truth.Ks[0, 0, 0]))
    frames = [{"file_path": f"./train/r_{i}", "transform_matrix": c2w_gl[i].tolist()} for i in range(3)]
    (tmp_path / "transforms_train.json").write_text(json.dumps({"camera_angle_x": fov, "frames": frames[:2]}))
    (tmp_path / "transforms_test.json").write_text(json.dumps({"camera_angle_x": fov, "frames": frames[2:]}))
    (tmp_path / "transforms_val.json").write_text(json.dumps({"camera_angle_x": fov, "frames": frames[1:2]}))
    for i in range(3):
        _png(tmp_path / "train" / f"r_{i}.png", rgba=True)
    scene = read_blender(tmp_path)
    _check(scene, truth)
    assert scene.train_ids == [0, 1] and scene.test_ids == [2]
    assert scene.names == ["train/r_0", "train/r_1", "train/r_2"]
    with_val = read_blender(tmp_path, splits=("train", "val", "test"))  # val: in neither train nor test
    assert len(with_val) == 4 and with_val.train_ids == [0, 1] and with_val.test_ids == [3]
    assert with_val.extras["split_ids"] == {"train": [0, 1], "val": [2], "test": [3]}
    # RGBA composited on white: rgb*a + (1 - a)
    raw = iio.imread(tmp_path / "train" / "r_0.png").astype(np.float32) / 255
    want = raw[..., :3] * raw[..., 3:] + (1 - raw[..., 3:])
    assert np.allclose(scene.image(0).numpy(), want, atol=1e-6)
    black = read_blender(tmp_path, background=(0, 0, 0))
    assert np.allclose(black.image(0).numpy(), raw[..., :3] * raw[..., 3:], atol=1e-6)
    assert scene.mask(0).shape == (H, W)
    # downscale: K and image follow
    half = read_blender(tmp_path, downscale=2)
    assert half.image(0).shape == (H // 2, W // 2, 3)
    uv, _ = half.cameras.project(X)
    assert torch.allclose(uv, truth.project(X)[0] / 2, atol=1e-3)
    # a missing image: clear error naming the file, unless only_existing
    (tmp_path / "train" / "r_1.png").unlink()
    with pytest.raises(FileNotFoundError, match="r_1.png"):
        read_blender(tmp_path)
    assert len(read_blender(tmp_path, only_existing=True)) == 2


@pytest.mark.parametrize("binary", [False, True])
def test_colmap_reader(tmp_path, binary):
    from perception3d.rendering.readers.colmap import _rotmat_to_qvec

    truth = _truth()
    cams, imgs = {}, {}
    for i in range(3):
        K = truth.Ks[i].double().numpy()
        cams[i + 1] = dict(model="PINHOLE", width=W, height=H, params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
        vm = truth.viewmats[i].double().numpy()
        imgs[10 + i] = dict(qvec=_rotmat_to_qvec(vm[:3, :3]), tvec=vm[:3, 3], camera_id=i + 1, name=f"im_{i}.png")
        _png(tmp_path / "images" / f"im_{i}.png")
    pts = {1: dict(xyz=np.array([0.1, 0.2, 0.3]), rgb=np.array([255, 0, 10]))}
    write_colmap_model(tmp_path / "sparse" / "0", cams, imgs, pts, binary=binary)
    scene = read_colmap(tmp_path, test_every=2)
    _check(scene, truth)
    assert scene.test_ids == [0, 2] and scene.train_ids == [1]
    assert torch.allclose(scene.points3d, torch.tensor([[0.1, 0.2, 0.3]]))
    assert torch.allclose(scene.points_rgb, torch.tensor([[1.0, 0.0, 10 / 255]]))
    # a model with distortion: K is the same, distortion dropped with a warning
    cams[1] = dict(model="SIMPLE_RADIAL", width=W, height=H,
                   params=[float(truth.Ks[0, 0, 0]), W / 2, H / 2, 0.01])
    cams[2] = dict(model="OPENCV", width=W, height=H,
                   params=[*truth.Ks[1, [0, 1], [0, 1]].tolist(), W / 2, H / 2, 0.01, 0.0, 0.0, 0.0])
    cams[3] = dict(model="SIMPLE_PINHOLE", width=W, height=H, params=[float(truth.Ks[2, 0, 0]), W / 2, H / 2])
    write_colmap_model(tmp_path / "sparse" / "0", cams, imgs, pts, binary=binary)
    with pytest.warns(UserWarning, match="distortion"):
        scene = read_scene(tmp_path)
    _check(scene, truth)


def test_dtu_reader(tmp_path):
    truth = _truth()
    scene_dir = tmp_path / "scan1"
    for i, view in enumerate([4, 9, 21]):
        P = 7.5 * truth.Ks[i].double().numpy() @ truth.viewmats[i].double().numpy()[:3]
        if i == 1:
            P = -P  # P and -P are the same camera
        np.savetxt(scene_dir / f"pos_{view + 1:03d}.txt" if scene_dir.exists() else _mk(scene_dir, view), P)
        _png(scene_dir / f"rect_{view + 1:03d}_3_r5000.png")
    scene = read_dtu(scene_dir, train_ids=[4, 21], test_ids=[9])
    _check(scene, truth)
    assert scene.names == ["rect_005_3_r5000", "rect_010_3_r5000", "rect_022_3_r5000"]
    assert scene.train_ids == [0, 2] and scene.test_ids == [1]
    auto = read_scene(scene_dir)
    assert auto.extras["view_ids"] == [4, 9, 21]
    with pytest.raises(FileNotFoundError, match="pos_004.txt"):
        read_dtu(scene_dir, view_ids=[3])


def _mk(d: Path, view: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return d / f"pos_{view + 1:03d}.txt"


def test_lmgaussian_reader(tmp_path):
    truth = _truth()
    (tmp_path / "cams").mkdir()
    for i in range(3):
        c2w = truth.camtoworlds[i].double().numpy()
        K = truth.Ks[i].double().numpy().copy()
        K[0] *= 512 / W  # the file's intrinsic refers to 512 x 288
        K[1] *= 288 / H
        rows = "\n".join(" ".join(repr(float(v)) for v in r) for r in c2w)
        krows = "\n".join(" ".join(repr(float(v)) for v in r) for r in K)
        (tmp_path / "cams" / f"{i:06d}_cam.txt").write_text(f"extrinsic\n{rows}\n\nintrinsic\n{krows}\n")
        _png(tmp_path / "images" / f"{i:06d}.jpg")
    # an extra cam file without an image is ignored
    (tmp_path / "cams" / "000099_cam.txt").write_text((tmp_path / "cams" / "000000_cam.txt").read_text())
    scene = read_scene(tmp_path)
    assert scene.names == ["000000", "000001", "000002"]
    _check(scene, truth)
    (tmp_path / "cams" / "000001_cam.txt").unlink()
    with pytest.raises(FileNotFoundError, match="000001_cam.txt"):
        read_lmgaussian(tmp_path)


# ---------------------------------------------------------------------------------------------- real data
LEGO = DATA / "nerf_synthetic_lego" / "nerf_synthetic" / "lego"
BARN = DATA / "tnt_barn_3view" / "train"


@pytest.mark.skipif(not LEGO.is_dir(), reason="../shared/data/nerf_synthetic_lego absent")
def test_lego_real():
    with pytest.raises(FileNotFoundError, match="r_1.png"):
        read_blender(LEGO)
    scene = read_blender(LEGO, only_existing=True)
    assert len(scene) == 12 and (scene.width, scene.height) == (800, 800)
    assert torch.allclose(scene.cameras.Ks[0, 0, 0], torch.tensor(400 / math.tan(0.6911112070083618 / 2)))
    # the lego sits at the world origin: it projects in front of every camera, inside the object's alpha bbox
    uv, d = scene.cameras.project(torch.zeros(1, 3))
    assert (d > 2.0).all()
    for i in range(len(scene)):
        img, m = scene.image(i), scene.mask(i)
        assert img.shape == (800, 800, 3) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1
        ys, xs = torch.nonzero(m, as_tuple=True)
        u, v = uv[i, 0]
        assert xs.min() < u < xs.max() and ys.min() < v < ys.max()
    small = read_blender(LEGO, only_existing=True, size=(200, 200))
    assert small.image(3).shape == (200, 200, 3)


@pytest.mark.skipif(not BARN.is_dir(), reason="../shared/data/tnt_barn_3view absent")
def test_barn_real():
    scene = read_lmgaussian(BARN)
    assert scene.names == ["000057", "000059", "000061"] and (scene.width, scene.height) == (1920, 1080)
    # K: the file's 312.8776 at 512 x 288, times 1920 / 512 = 3.75
    assert torch.allclose(scene.cameras.Ks[0], torch.tensor([[312.87762451171875 * 3.75, 0, 960],
                                                             [0, 312.87762451171875 * 3.75, 540], [0, 0, 1]]))
    # Hand-derived: the principal-point pixel (960, 540) of view 000057 at depth 0.5 is the world point
    # c2w_57 @ (0, 0, 0.5) = t57 + 0.5 * R57[:, 2]; projected with view 000059's w2c = inv(c2w_59) and
    # K59 = 3.75 * 312.87762451171875 (read off 000059_cam.txt): x_cam = R59^T (X - t59) = (-0.019700,
    # -0.006718, 0.505898), u = 1173.29 * x / z + 960 = 914.31, v = 1173.29 * y / z + 540 = 524.42.
    X = torch.tensor([[-0.0485736 + 0.5 * -0.017157812, 0.0067587956 + 0.5 * -0.03200148,
                       0.005995701 + 0.5 * 0.99934053]])
    uv, d = scene.cameras[1].project(X)
    assert torch.allclose(uv[0, 0], torch.tensor([914.31, 524.42]), atol=0.02), uv
    assert abs(float(d[0, 0]) - 0.505898) < 1e-4
    # DUSt3R depth (a JET colour map of min-max normalised depth at 512 x 288, scale unknown; mapped to
    # [0.1, 1.5]) warps each view into the others photometrically better than no warp, and much better than
    # the wrong reading of "extrinsic" (as world-to-camera).
    import cv2

    small = read_lmgaussian(BARN, size=(512, 288))
    imgs = [small.image(i).numpy() for i in range(3)]
    cams = small.cameras
    wrong = Cameras(cams.camtoworlds, cams.Ks, cams.width, cams.height)
    v, u = np.mgrid[8:280:2, 8:504:2]
    uv = torch.tensor(np.stack([u + 0.5, v + 0.5], -1).reshape(1, -1, 2), dtype=torch.float32)

    def err(c, a, b, depth):
        Xw = c[[a]].unproject(uv, torch.tensor(depth[v, u].reshape(1, -1)))
        p, z = c[[b]].project(Xw[0])
        p = p[0].numpy() - 0.5
        inside = (p[:, 0] >= 0) & (p[:, 0] < 511) & (p[:, 1] >= 0) & (p[:, 1] < 287) & (z[0].numpy() > 0)
        warped = cv2.remap(imgs[b], p[:, 0].reshape(u.shape).astype(np.float32),
                           p[:, 1].reshape(u.shape).astype(np.float32), cv2.INTER_LINEAR)
        e = np.abs(warped - imgs[a][v, u]).mean(-1).reshape(-1)
        return e[inside].mean(), inside.mean()

    for a, b in [(0, 1), (0, 2), (1, 2), (2, 0)]:
        n = decode_jet_depth(scene.extras["dust3r_depth_paths"][a]).numpy()
        assert n.shape == (288, 512) and n.min() == 0 and n.max() == 1
        depth = 0.1 + 1.4 * n
        # the decoded DUSt3R depth agrees with the independent monocular (Marigold) depth: both 0 near, 1 far
        assert np.allclose(read_lmgaussian_depth(small, a).numpy(), n)
        mono = read_lmgaussian_depth(small, a, kind="mono").numpy()
        assert mono.shape == (288, 512) and np.corrcoef(mono.ravel(), n.ravel())[0, 1] > 0.85
        e_ours, inside = err(cams, a, b, depth)
        e_wrong, _ = err(wrong, a, b, depth)
        e_none = np.abs(imgs[a][v, u] - imgs[b][v, u]).mean()
        # measured: inside 0.81-0.97 (views 0 and 2 overlap least); error 0.061-0.089 vs 0.115-0.172 without
        # warp and 0.165-0.251 with the wrong convention
        assert inside > 0.75
        assert e_ours < 0.8 * e_none and e_ours < 0.6 * e_wrong, (a, b, e_ours, e_none, e_wrong)
        # the image centre of view a, at its DUSt3R depth, lands inside view b
        p, z = cams[[b]].project(cams[[a]].unproject(torch.tensor([[[256.0, 144.0]]]),
                                                     torch.tensor([[float(depth[144, 256])]]))[0])
        assert 0 <= p[0, 0, 0] < 512 and 0 <= p[0, 0, 1] < 288 and z[0, 0] > 0


def test_colmap_text_as_colmap_writes_it(tmp_path):
    """cameras.txt / images.txt / points3D.txt written by hand the way COLMAP exports them (comment headers,
    a POINTS2D line after each image line, one of them empty), independent of write_colmap_model."""
    from scipy.spatial.transform import Rotation

    truth = _truth()
    cam_lines, img_lines = [], []
    for i in range(3):
        K = truth.Ks[i].double().numpy()
        cam_lines.append(f"{i + 1} PINHOLE {W} {H} {K[0, 0]} {K[1, 1]} {K[0, 2]} {K[1, 2]}")
        vm = truth.viewmats[i].double().numpy()
        qx, qy, qz, qw = Rotation.from_matrix(vm[:3, :3]).as_quat()  # scipy: (x, y, z, w)
        tx, ty, tz = vm[:3, 3]
        img_lines.append(f"{i + 1} {qw} {qx} {qy} {qz} {tx} {ty} {tz} {i + 1} frame {i}.png")
        img_lines.append("" if i == 1 else "12.5 3.25 1 -1.0 -1.0 -1")
        _png(tmp_path / "images" / f"frame {i}.png")
    sparse = tmp_path / "sparse" / "0"
    sparse.mkdir(parents=True)
    (sparse / "cameras.txt").write_text("# Camera list with one line of data per camera:\n"
                                        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n# Number of cameras: 3\n"
                                        + "\n".join(cam_lines) + "\n")
    (sparse / "images.txt").write_text("# Image list with two lines of data per image:\n"
                                       "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                                       "#   POINTS2D[] as (X, Y, POINT3D_ID)\n# Number of images: 3\n"
                                       + "\n".join(img_lines) + "\n")
    (sparse / "points3D.txt").write_text("# 3D point list\n1 0.1 0.2 0.3 255 0 10 0.5 1 0\n"
                                         "2 -1 -2 -3 0 0 0 0.1 2 1 3 0\n")
    scene = read_colmap(tmp_path)
    assert scene.names == ["frame 0", "frame 1", "frame 2"]
    _check(scene, truth)
    assert scene.points3d.shape == (2, 3) and torch.allclose(scene.points3d[1], torch.tensor([-1.0, -2.0, -3.0]))


def test_decode_jet_depth_inverts_opencv_colormap(tmp_path):
    import cv2

    # written the way LM-Gaussian writes dust3r_depth: normalise, ×255, GRAY2BGR, applyColorMap(JET), imwrite
    depth = np.linspace(0.3, 7.0, 40 * 30).reshape(30, 40)
    norm = (depth - depth.min()) / (depth.max() - depth.min())
    gray = cv2.cvtColor((norm * 255).astype(np.float32), cv2.COLOR_GRAY2BGR).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "depth_map_0.png"), cv2.applyColorMap(gray, cv2.COLORMAP_JET))
    dec = decode_jet_depth(tmp_path / "depth_map_0.png").numpy()
    assert np.array_equal(np.round(dec * 255).astype(np.uint8), gray[..., 0])
    assert np.abs(dec - norm).max() < 1.01 / 255


def test_dtu_idr_npz_layout(tmp_path):
    """IDR / NeuS / pixelNeRF DTU: cameras.npz world_mat_i (+ scale_mat_i), image/{i:06d}.png, mask/{i:03d}.png."""
    truth = _truth()
    S = np.diag([2.0, 2.0, 2.0, 1.0])
    S[:3, 3] = [0.1, -0.2, 0.3]  # unit-sphere coordinates -> world
    npz = {}
    for i in range(3):
        P = np.eye(4)
        P[:3] = 3.0 * truth.Ks[i].double().numpy() @ truth.viewmats[i].double().numpy()[:3]
        npz[f"world_mat_{i}"], npz[f"scale_mat_{i}"] = P, S
        _png(tmp_path / "image" / f"{i:06d}.png")
        _png(tmp_path / "mask" / f"{i:03d}.png")
    np.savez(tmp_path / "cameras.npz", **npz)
    scene = read_scene(tmp_path)
    assert scene.names == ["000000", "000001", "000002"] and scene.mask(1).shape == (H, W)
    _check(scene, truth)
    norm = read_dtu(tmp_path, normalize=True)
    Xn = (torch.cat([X, torch.ones(2, 1)], 1).double() @ torch.linalg.inv(torch.from_numpy(S)).T)[:, :3].float()
    assert torch.allclose(norm.cameras.project(Xn)[0], truth.project(X)[0], atol=1e-3)


@pytest.mark.skipif(not BARN.is_dir(), reason="../shared/data/tnt_barn_3view absent")
def test_scene_subset_keeps_per_view_extras():
    scene = read_lmgaussian(BARN, downscale=7.5)
    sub = scene.subset([2, 0])
    assert sub.names == ["000061", "000057"] and sub.train_ids == [0, 1]
    assert [p.name for p in sub.extras["dust3r_depth_paths"]] == ["depth_map_2.png", "depth_map_0.png"]
    assert torch.equal(read_lmgaussian_depth(sub, 0), read_lmgaussian_depth(scene, 2))
    assert torch.allclose(sub.cameras.viewmats, scene.cameras.viewmats[[2, 0]])
