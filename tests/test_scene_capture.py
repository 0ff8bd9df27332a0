"""Training on real captures: the nerfstudio / instant-ngp reader (OpenGL → OpenCV, distortion removed), the
train/test split rules, initial points from the cameras, and bad input (clear errors, nothing half-written).
Real data: the instant-ngp fox and T&T Barn samples in ../shared/data."""

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from perception3d.structures.cameras import Cameras, opencv_to_opengl
from perception3d.rendering.scenes import (focus_point, frustum_points, read_nerfstudio, read_scene, scene_format,
                                           select_views)
from perception3d.rendering.trainer import build_scene

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FOX = DATA / "ngp_fox"
BARN = DATA / "tnt_barn_3view" / "train"
W, H = 64, 48


def _rig(n=4, radius=4.0):
    """n OpenCV cameras on an arc looking at the origin (f = 50, centre principal point)."""
    from perception3d.structures.cameras import look_at

    az = torch.linspace(-0.5, 0.5, n)
    eyes = torch.stack([radius * torch.sin(az), -radius * torch.cos(az), 0.8 * torch.ones(n)], -1)
    c2w = look_at(eyes, torch.zeros(3), (0.0, 0.0, 1.0))
    K = torch.tensor([[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]])
    return Cameras.from_camtoworlds(c2w, K, W, H)


def _write_capture(root: Path, cams: Cameras, dist=(0.0, 0.0, 0.0, 0.0), points=None, per_frame=False,
                   extra_meta=None):
    """A nerfstudio capture of ``cams``: images with a white dot at each of ``points`` (distorted as the JSON
    says), on a random texture elsewhere."""
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    K = cams.Ks[0].double().numpy()
    rng = np.random.default_rng(0)
    frames = []
    for i in range(len(cams)):
        img = (rng.random((H, W, 3)) * 0.3 * 255).astype(np.uint8)
        if points is not None:
            vm = cams.viewmats[i].double().numpy()
            rvec = cv2.Rodrigues(vm[:3, :3])[0]
            Kcv = K.copy()
            Kcv[:2, 2] -= 0.5
            px, _ = cv2.projectPoints(np.asarray(points, np.float64), rvec, vm[:3, 3], Kcv, np.asarray(dist))
            for u, v in px[:, 0]:
                # an anti-aliased disc of radius 1.5 px centred at the sub-pixel projection
                cv2.circle(img, (int(round(u * 16)), int(round(v * 16))), 24, (255, 255, 255), -1, cv2.LINE_AA,
                           shift=4)
        iio.imwrite(root / "images" / f"{i:04d}.png", img)
        fr = {"file_path": f"images/{i:04d}.png",
              "transform_matrix": opencv_to_opengl(cams.camtoworlds[i]).tolist()}
        if per_frame:
            fr.update(fl_x=float(cams.Ks[i, 0, 0]), fl_y=float(cams.Ks[i, 1, 1]))
        frames.append(fr)
    meta = {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
            "w": W, "h": H, "k1": dist[0], "k2": dist[1], "p1": dist[2], "p2": dist[3], "aabb_scale": 2,
            "frames": frames}
    meta.update(extra_meta or {})
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def test_nerfstudio_cameras_convert_to_opencv(tmp_path):
    cams = _rig()
    root = _write_capture(tmp_path / "cap", cams)
    scene = read_nerfstudio(root)
    assert scene_format(root) == "nerfstudio" and len(read_scene(root)) == 4
    X = torch.tensor([[0.3, -0.2, 0.25], [-0.4, 0.1, -0.3]])
    uv, d = scene.cameras.project(X)
    uv0, d0 = cams.project(X)
    assert torch.allclose(uv, uv0, atol=1e-3) and torch.allclose(d, d0, atol=1e-4)
    assert torch.allclose(scene.extras["aabb"], torch.tensor([[-3.0] * 3, [3.0] * 3]))
    half = read_nerfstudio(root, downscale=2)
    assert (half.width, half.height) == (W // 2, H // 2) and half.image(0).shape == (H // 2, W // 2, 3)
    assert torch.allclose(half.cameras.project(X)[0], uv0 / 2, atol=1e-3)


def test_nerfstudio_undistorts_images_to_the_pinhole_camera(tmp_path):
    """A point drawn where the *distorted* camera sees it appears, after reading, where the scene's pinhole
    camera projects it (independent reference: cv2.projectPoints with the distortion)."""
    cams = _rig(3)
    pts = np.array([[0.5, 0.1, 0.5], [-0.6, 0.2, -0.4], [-0.1, 0.0, 0.9], [0.55, -0.3, -0.45]])
    dist = (0.12, -0.05, 0.004, -0.003)
    root = _write_capture(tmp_path / "cap", cams, dist=dist, points=pts)
    scene = read_nerfstudio(root)
    assert scene.extras["distortion"][0]["coeffs"][:4] == list(dist)
    uv, _ = scene.cameras.project(torch.tensor(pts, dtype=torch.float32))
    for i in range(3):
        img = scene.image(i).numpy().mean(-1)
        for u, v in uv[i].tolist():
            iu, iv = int(math.floor(u)), int(math.floor(v))
            win = np.clip(img[iv - 4:iv + 5, iu - 4:iu + 5] - 0.35, 0, None)  # the dot, not the dark texture
            assert win.sum() > 0.5, (i, u, v)
            ys, xs = np.mgrid[iv - 4:iv + 5, iu - 4:iu + 5] + 0.5
            cu, cv_ = (win * xs).sum() / win.sum(), (win * ys).sum() / win.sum()
            assert abs(cu - u) < 0.5 and abs(cv_ - v) < 0.5, (i, (u, v), (cu, cv_))  # centroid at the projection
    # the same images read without undistortion: the dots are off by more than a pixel near the border
    raw = read_nerfstudio(root, undistort=False)
    assert not torch.allclose(raw.cameras.Ks, scene.cameras.Ks)


def test_nerfstudio_bad_input(tmp_path):
    cams = _rig(3)
    root = _write_capture(tmp_path / "cap", cams)
    meta = json.loads((root / "transforms.json").read_text())
    bad = dict(meta, frames=[dict(meta["frames"][0])] + meta["frames"][1:])
    del bad["frames"][0]["transform_matrix"]
    (root / "transforms.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"transforms.json: frames\[0\].*no 'transform_matrix'"):
        read_nerfstudio(root)
    gone = dict(meta, frames=meta["frames"] + [dict(meta["frames"][0], file_path="images/missing.png")])
    (root / "transforms.json").write_text(json.dumps(gone))
    with pytest.raises(FileNotFoundError, match=r"frames\[3\] image file not found: .*missing.png"):
        read_nerfstudio(root)
    assert len(read_nerfstudio(root, only_existing=True)) == 3
    (root / "transforms.json").write_text(json.dumps(dict(meta, camera_model="FISHEYE624")))
    with pytest.raises(ValueError, match="camera_model 'FISHEYE624' is not supported"):
        read_nerfstudio(root)
    (root / "transforms.json").write_text("{not json")
    with pytest.raises(ValueError, match="transforms.json: invalid JSON"):
        read_nerfstudio(root)


def test_per_frame_intrinsics_override_the_shared_ones(tmp_path):
    cams = _rig(3)
    Ks = cams.Ks.clone()
    Ks[1, 0, 0] = Ks[1, 1, 1] = 60.0
    cams = Cameras(cams.viewmats, Ks, W, H)
    scene = read_nerfstudio(_write_capture(tmp_path / "cap", cams, per_frame=True))
    assert torch.allclose(scene.cameras.Ks, Ks)


def test_select_views_rules_and_errors(tmp_path):
    scene = read_nerfstudio(_write_capture(tmp_path / "cap", _rig(6)))
    assert select_views(scene, n_train_views=3) == ([0, 2, 5], [1, 3, 4])  # round(linspace(0, 5, 3))
    assert select_views(scene, train_views=["images/0001", 4]) == ([1, 4], [0, 2, 3, 5])
    assert select_views(scene, train_views=[0, 1], test_views=[5]) == ([0, 1], [5])
    assert select_views(scene, holdout_every=3) == ([1, 2, 4, 5], [0, 3])
    for kw, msg in [(dict(train_views=[2]), r"1 training view\(s\)"), (dict(train_views=[]), "0 training"),
                    (dict(train_views=[0, 9]), "out of range"), (dict(train_views=[1, 1]), "repeated"),
                    (dict(train_views=["nope", 1]), "no view named 'nope'"),
                    (dict(train_views=[0, 1], test_views=[1]), "both training and test"),
                    (dict(train_views=[0, 1], n_train_views=2), "one of")]:
        with pytest.raises(ValueError, match=msg):
            select_views(scene, **kw)


def test_build_scene_every_reader_and_unknown_keys(tmp_path):
    root = _write_capture(tmp_path / "cap", _rig(5))
    s = build_scene(dict(type="nerfstudio", root=str(root), n_train_views=3, background=(0, 0, 0)))
    assert (s.train_ids, s.test_ids) == ([0, 2, 4], [1, 3])
    s = build_scene(dict(type="auto", root=str(root), train_views=[0, 1]))
    assert s.test_ids == [2, 3, 4]
    with pytest.raises(ValueError, match=r"keys \['sizee'\] are not options of the nerfstudio reader"):
        build_scene(dict(type="nerfstudio", root=str(root), sizee=(10, 10)))
    with pytest.raises(ValueError, match="data.type must be one of"):
        build_scene(dict(type="llff", root=str(root)))
    with pytest.raises(FileNotFoundError, match="data.points: PLY file not found"):
        build_scene(dict(type="nerfstudio", root=str(root), points=str(tmp_path / "none.ply")))


def test_initial_points_file_and_frustum(tmp_path):
    from plyfile import PlyData, PlyElement

    cams = _rig(4)
    root = _write_capture(tmp_path / "cap", cams)
    pts = np.zeros(5, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    pts["x"] = np.arange(5) * 0.1
    pts["red"] = 255
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(root / "points3d.ply"))  # LM-Gaussian's name
    s = build_scene(dict(type="nerfstudio", root=str(root), n_train_views=4))
    assert s.points3d.shape == (5, 3) and torch.allclose(s.points_rgb[:, 0], torch.ones(5))
    # frustum overlap: every point inside >= 2 training views, depth in range, colour from its pixel
    f = focus_point(cams)
    assert f is not None and f.norm() < 1e-3  # the rig looks at the origin
    g = torch.Generator().manual_seed(0)
    p, rgb = frustum_points(s, [0, 3], 2000, 1.0, 8.0, g)
    assert p.shape == (2000, 3) and rgb.shape == (2000, 3) and (rgb <= 0.31).all()  # the texture is dark
    uv, z = cams[[0, 3]].project(p)
    inside = (z >= 1.0 - 1e-4) & (z <= 8.0 + 1e-4) & (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) \
        & (uv[..., 1] < H)
    assert inside.all()


def _tiny_cfg(root, **model):
    return {"data": dict(type="nerfstudio", root=str(root), n_train_views=3),
            "model": dict(dict(init="frustum", init_num=300, sh_degree=0, init_depth_range=(2.0, 6.0)), **model),
            "train": dict(max_steps=4, eval_every=100, save_every=100, log_every=1, tile_size=16,
                          background="random", scene_scale="depth"),
            "strategy": dict(refine_start_iter=100, refine_stop_iter=200)}


def test_trainer_on_a_capture_writes_a_checkpoint_render_tool_reads(tmp_path):
    import sys

    from perception3d.rendering.trainer import GSTrainer

    root = _write_capture(tmp_path / "cap", _rig(5))
    tr = GSTrainer(_tiny_cfg(root), tmp_path / "run", progress=False)
    assert tr.random_background and torch.equal(tr.background, torch.zeros(3))
    assert tr.scene.test_ids == [1, 3] and len(tr.model) == 300
    res = tr.train()
    assert res["split"] == "test" and np.isfinite(res["psnr"])
    ck = torch.load(tmp_path / "run" / "ckpt_latest.pt", weights_only=False)
    assert ck["config"]["data"]["n_train_views"] == 3 and ck["priors"] == {}
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import render

    out = render.main([str(tmp_path / "run" / "ckpt_latest.pt"), "--cameras", "test", "--out", str(tmp_path / "r")])
    assert out["n_views"] == 2 and np.isfinite(out["psnr"])
    orbit = render.main([str(tmp_path / "run" / "ckpt_latest.pt"), "--cameras", "orbit", "--n-frames", "3",
                         "--out", str(tmp_path / "o")])
    assert orbit["n_views"] == 3 and len(list((tmp_path / "o" / "rgb").glob("*.png"))) == 3


def test_trainer_bad_input_leaves_no_work_dir(tmp_path):
    from perception3d.rendering.trainer import GSTrainer

    root = _write_capture(tmp_path / "cap", _rig(3))
    cfg = _tiny_cfg(root)
    cfg["data"]["n_train_views"] = 1
    with pytest.raises(ValueError, match=r"1 training view\(s\)"):
        GSTrainer(cfg, tmp_path / "run1", progress=False)
    cfg = _tiny_cfg(root, init="points")
    with pytest.raises(ValueError, match="model.init='points' but the scene has no points"):
        GSTrainer(cfg, tmp_path / "run2", progress=False)
    assert not (tmp_path / "run1").exists() and not (tmp_path / "run2").exists()


def test_fox_capture():
    if not (FOX / "transforms.json").is_file():
        pytest.skip(f"real sample data not found at {FOX}")
    with pytest.raises(FileNotFoundError, match="0005.jpg"):  # the JSON lists 67 frames, 50 images are here
        read_nerfstudio(FOX)
    s = build_scene(dict(type="nerfstudio", root=str(FOX), only_existing=True, size=(216, 384), n_train_views=3))
    assert len(s) == 50 and s.train_ids == [0, 24, 49] and len(s.test_ids) == 47
    assert s.extras["aabb_scale"] == 4 and s.extras["distortion"][0]["coeffs"][0] == pytest.approx(0.0578421)
    # the undistorted pinhole K: the original fl_x scaled by 216 / 1080, slightly zoomed (alpha = 0: no border)
    fx = float(s.cameras.Ks[0, 0, 0])
    assert 1375.52 * 0.2 * 0.95 < fx < 1375.52 * 0.2 * 1.1
    img = s.image(0)
    assert img.shape == (384, 216, 3) and img[:3].mean() > 0.05 and img[:, :3].mean() > 0.05  # no black border
    near, far = __import__("perception3d.rendering.scenes", fromlist=["depth_range"]).depth_range(s, s.train_ids)
    assert 0 < near < far


def test_barn_lmgaussian_scene_builds_with_leave_one_out():
    if not (BARN / "cams").is_dir():
        pytest.skip(f"real sample data not found at {BARN}")
    s = build_scene(dict(type="lmgaussian", root=str(BARN), size=(512, 288), train_views=[0, 2], background=(1, 1, 1)))
    assert (s.train_ids, s.test_ids) == ([0, 2], [1])
    assert s.image(1).shape == (288, 512, 3)


def test_spare_submission_straight_from_a_checkpoint(tmp_path):
    """spare_submit.py --checkpoints renders each split scene's test views from a trained scene (here a PLY of
    one opaque red Gaussian at a known point) and writes a ZIP that passes --check."""
    import importlib.util
    import zipfile

    from perception3d.evaluation.spare import check_submission, read_png, view_filename
    from perception3d.rendering.gaussians import GaussianModel

    split = {"scan1": {"input_views": [0, 1], "test_views": [2], "dataset": "DTU"}}
    (tmp_path / "split.json").write_text(json.dumps(split))
    K = np.array([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]])
    (tmp_path / "spare" / "scan1").mkdir(parents=True)
    for i in range(3):
        iio.imwrite(tmp_path / "spare" / "scan1" / view_filename("DTU", i), np.zeros((48, 64, 3), np.uint8))
        np.savetxt(tmp_path / "spare" / "scan1" / f"pos_{i + 1:03d}.txt",
                   K @ np.hstack([np.eye(3), np.array([[0.1 * i], [0.0], [3.0]])]))
    g = GaussianModel.from_points(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[1.0, 0.0, 0.0]]), sh_degree=0,
                                  init_opacity=0.99)
    g.params["scales"].data[:] = math.log(0.05)
    g.save_ply(tmp_path / "scan1.ply")
    spec = importlib.util.spec_from_file_location("spare_submit", Path(__file__).resolve().parents[1] / "tools" /
                                                  "spare_submit.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    zp = tmp_path / "sub.zip"
    rc = tool.main(["--split", str(tmp_path / "split.json"), "--checkpoints", f"scan1={tmp_path / 'scan1.ply'}",
                    "--root", str(tmp_path / "spare"), "--out", str(zp), "--size", "64", "48"])
    assert rc == 0 and check_submission(zp, tmp_path / "split.json", size=(64, 48)) == []
    img = read_png(zipfile.ZipFile(zp).read("scan1/rect_003_3_r5000.png"))
    # view 2: x_cam = x + (0.2, 0, 3) → the point (0, 0, 2) at z = 5: u = 60 · 0.2 / 5 + 32 = 34.4, v = 24
    assert img[24, 34, 0] > 0.8 and img[24, 34, 1] < 0.25 and img[5, 5].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"no checkpoint given for split scenes \['scan1'\]"):
        tool.main(["--split", str(tmp_path / "split.json"), "--checkpoints", f"other={tmp_path / 'scan1.ply'}",
                   "--root", str(tmp_path / "spare"), "--out", str(tmp_path / "bad.zip"), "--size", "64", "48"])
    assert not (tmp_path / "bad.zip").exists()


@pytest.mark.parametrize("name, n_train, n_test", [("fox", 3, 47), ("barn", 2, 1)])
def test_sparse_baseline_configs_build_their_scenes(name, n_train, n_test):
    from mmengine.config import Config

    root = Path(__file__).resolve().parents[1]
    cfg = Config.fromfile(root / "configs" / f"gs_sparse_baseline_{name}.py")
    data = dict(cfg.data)
    data["root"] = str(DATA / Path(data["root"]).relative_to("../shared/data"))
    if not Path(data["root"]).is_dir():
        pytest.skip(f"real sample data not found at {data['root']}")
    s = build_scene(data)
    assert (len(s.train_ids), len(s.test_ids)) == (n_train, n_test) and s.width >= 384
