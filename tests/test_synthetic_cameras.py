"""The mini dataset's surround cameras (perception3d.datasets.synthetic.cameras) and their path to SparseFusion.

Checks: the rig's fields of view overlap where the geometry says; a labelled object's box centre projects onto
that object's own pixels (an independent per-pixel ray cast) and the class colours are there; the LiDAR data are
byte-identical with and without the cameras and equal a digest of the generator before the cameras existed (so the
detection jobs' data and cost are unchanged); a hand-made camera calibration round-trips through the v2 layout;
the converter + ``MultiViewDet3DDataset`` give images and calibrations where a box projects onto its object;
missing cameras are a clear error or, with ``skip_missing_cameras``, a counted LiDAR-only frame.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from perception3d.datasets.synthetic import frame_scene, pose_matrix, ray_cast, sample_street_segment
from perception3d.datasets.synthetic.cameras import (HIVIS_YELLOW, SURROUND_CAMERAS, render_surround,
                                                     surround_camera_specs, visible_pixels)
from perception3d.datasets.synthetic.writer import V2_SCHEMAS, generate_waymo_mini, write_parquet_atomic
from perception3d.datasets.waymo_v2 import WaymoV2Segment, convert_waymo_v2, read_camera_calibrations

TINY = dict(num_train=2, num_val=0, frames_per_segment=2, lidar_width=128, seed=5, workers=1)
# digest of the decoded LiDAR components of generate_waymo_mini(**TINY) made by the generator before the surround
# cameras were added (commit ca036f1): the default data must never change
LIDAR_DIGEST = "946e35714e761e5ddd33d4a8099d0c0e8492dd629c8b38d9e424868eed3f5939"
LIDAR_COMPONENTS = ("lidar", "lidar_box", "lidar_pose", "vehicle_pose", "lidar_calibration")


def _lidar_digest(root: Path) -> str:
    h = hashlib.sha256()
    for comp in LIDAR_COMPONENTS:
        for p in sorted((Path(root) / "training" / comp).glob("*.parquet")):
            t = pq.read_table(p)
            for name in t.column_names:
                h.update(name.encode())
                h.update(repr(t.column(name).to_pylist()).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tiny_roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("cams")
    generate_waymo_mini(base / "plain", **TINY)
    generate_waymo_mini(base / "surround", surround_cameras=True, **TINY)
    return base / "plain", base / "surround"


def _pixel_objects(prims, pose, spec) -> np.ndarray:
    """[H, W] agent index seen by each pixel (-1 none): the reference, ray cast here, not by the renderer."""
    w2c = pose @ spec.extrinsic
    dirs = spec.camera_dirs().reshape(-1, 3) @ w2c[:3, :3].T
    return ray_cast(w2c[:3, 3], dirs, prims, max_t=400.0).obj.reshape(spec.height, spec.width)


# ----------------------------------------------------------------------------------------------------------------
def test_rig_is_three_overlapping_front_cameras():
    specs = surround_camera_specs()
    assert {c: SURROUND_CAMERAS[c] for c in specs} == {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT"}
    for s in specs.values():
        assert (s.width, s.height) == (240, 160)
        assert np.isclose(2 * np.degrees(np.arctan(s.width / 2 / s.f_u)), 50.0, atol=0.1)   # Waymo's ~50°

    def sees(cam, az_deg, dist=30.0):
        p = np.array([[1.5 + dist * np.cos(np.radians(az_deg)), dist * np.sin(np.radians(az_deg)), 2.0]])
        uv, d = specs[cam].project(p)
        return bool(d[0] > 0 and 0 <= uv[0, 0] <= specs[cam].width - 1)
    assert sees(1, 0) and not sees(2, 0) and not sees(3, 0)
    assert sees(1, 22.5) and sees(2, 22.5) and not sees(3, 22.5)           # the 5° overlaps
    assert sees(1, -22.5) and sees(3, -22.5) and not sees(2, -22.5)
    assert sees(2, 60) and not sees(1, 60) and sees(3, -60) and not sees(1, -60)


def test_box_centre_projects_onto_its_object_with_class_colours():
    rng = np.random.default_rng(11)
    specs = surround_camera_specs()
    hits, hivis = 0, 0
    for s in range(3):
        seg = sample_street_segment(np.random.default_rng([11, s]), 1, 0.5)
        prims, boxes_w, _ = frame_scene(seg, 0)
        pose = seg.ego_poses[0]
        images = render_surround(seg, 0, prims, pose, specs, rng)
        for cam, spec in specs.items():
            objs = _pixel_objects(prims, pose, spec)
            veh_from_world = np.linalg.inv(pose)
            centres = boxes_w[:, :3] @ veh_from_world[:3, :3].T + veh_from_world[:3, 3]
            uv, depth = spec.project(centres)
            npix = visible_pixels(prims, pose, spec, len(seg.agents))
            assert np.array_equal(npix, np.bincount(objs[objs >= 0], minlength=len(seg.agents)))
            for i, ag in enumerate(seg.agents):
                u, v = np.round(uv[i]).astype(int)
                if depth[i] < 1 or depth[i] > 40 or not (0 <= u < spec.width and 0 <= v < spec.height):
                    continue
                if ag.cls == "vehicle" and npix[i] > 400:                      # well visible: centre on it
                    near = objs[max(v - 1, 0):v + 2, max(u - 1, 0):u + 2]
                    hits += 1
                    assert (near == i).any(), (s, cam, i)
                if ag.cls == "cyclist" and npix[i] > 30:                       # the hi-vis vest is in the image
                    rgb = images[cam][objs == i].astype(float) / 255
                    yellow = (rgb[:, 0] > 0.45) & (rgb[:, 1] > 0.35) & (rgb[:, 2] < 0.25)
                    hivis += int(yellow.sum() >= 3)
    assert hits >= 5 and hivis >= 1
    assert HIVIS_YELLOW[2] < 0.2


def test_lidar_data_identical_with_and_without_cameras(tiny_roots):
    plain, surround = tiny_roots
    assert _lidar_digest(plain) == LIDAR_DIGEST                    # the default generator is unchanged
    for comp in LIDAR_COMPONENTS:                                   # and the surround dataset has its bytes
        for p in sorted((plain / "training" / comp).glob("*.parquet")):
            q = surround / "training" / comp / p.name
            assert hashlib.sha256(p.read_bytes()).digest() == hashlib.sha256(q.read_bytes()).digest(), q
    import json
    m_plain = json.loads((plain / "waymo_mini_manifest.json").read_text())
    m_sur = json.loads((surround / "waymo_mini_manifest.json").read_text())
    assert "surround_cameras" not in m_plain["params"] and m_sur["params"]["surround_cameras"] is True
    seg = WaymoV2Segment(surround / "training", sorted(p.stem for p in (surround / "training/lidar").glob("*"))[0])
    assert sorted(seg.camera_calibrations()) == [1, 2, 3]
    imgs = seg.camera_images(seg.timestamps[1], decode=True)
    assert sorted(imgs) == [1, 2, 3] and all(im.shape == (160, 240, 3) for im in imgs.values())
    plain_seg = WaymoV2Segment(plain / "training", seg.segment)
    assert sorted(plain_seg.camera_calibrations()) == [1]           # the default keeps its one FRONT camera


def test_hand_made_calibration_round_trips_through_v2_layout(tmp_path):
    """f = 100 px, principal point (50, 40), a camera 2 m up looking left (yaw +90°): the vehicle point (0, 10, 2)
    is on its optical axis at 10 m; (1, 10, 3) is 1 m right and 1 m up of it → u = 50 + 10, v = 40 - 10."""
    schema = V2_SCHEMAS["camera_calibration"]
    cca = "[CameraCalibrationComponent]"
    extr = pose_matrix(0.0, 0.0, 2.0, yaw=np.pi / 2)
    row = {"key.segment_context_name": ["s"], "key.camera_name": [2], f"{cca}.intrinsic.f_u": [100.0],
           f"{cca}.intrinsic.f_v": [100.0], f"{cca}.intrinsic.c_u": [50.0], f"{cca}.intrinsic.c_v": [40.0],
           f"{cca}.extrinsic.transform": [extr.reshape(-1).tolist()], f"{cca}.width": [100], f"{cca}.height": [80],
           f"{cca}.rolling_shutter_direction": [5]}
    for k in ("k1", "k2", "p1", "p2", "k3"):
        row[f"{cca}.intrinsic.{k}"] = [0.0]
    write_parquet_atomic(tmp_path / "cal.parquet", row, schema)
    cal = read_camera_calibrations(tmp_path / "cal.parquet")[2]
    assert (cal["width"], cal["height"]) == (100, 80)
    k4 = np.eye(4)
    k4[:3, :3] = cal["K"]
    pts = np.array([[0.0, 10.0, 2.0, 1.0], [1.0, 10.0, 3.0, 1.0]])
    q = pts @ (k4 @ cal["viewmat"]).T
    uv = q[:, :2] / q[:, 2:3]
    np.testing.assert_allclose(q[:, 2], [10.0, 10.0], atol=1e-9)
    np.testing.assert_allclose(uv, [[50.0, 40.0], [60.0, 30.0]], atol=1e-9)
    back = np.linalg.inv(k4 @ cal["viewmat"]) @ np.array([60.0 * 10, 30.0 * 10, 10.0, 1.0])
    np.testing.assert_allclose(back[:3], [1.0, 10.0, 3.0], atol=1e-9)


@pytest.fixture(scope="module")
def converted(tiny_roots, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv")
    res = convert_waymo_v2(tiny_roots[1], out, splits=["train"], progress=False, cameras=True)
    assert res["train"] == 2 and not res["bad"]
    return out


def _dataset(out, **kw):
    from perception3d.datasets.multiview import MultiViewDet3DDataset
    return MultiViewDet3DDataset(data_root=str(out), ann_file="waymo_infos_train.pkl", test_mode=True,
                                 metainfo=dict(classes=("Car", "Pedestrian", "Cyclist")), **kw)


def test_converted_cameras_load_and_boxes_project_onto_objects(converted):
    from perception3d.structures.calibration import project_points
    ds = _dataset(converted)
    specs = surround_camera_specs()
    hits = 0
    for i in range(len(ds)):
        r = ds.get_results(i)
        assert r["cam_names"] == ["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT"]
        assert len(r["images"]) == 3 and r["images"][0].shape == (160, 240, 3) and r["lidar2img"].shape == (3, 4, 4)
        b = r["gt_bboxes_3d"]
        centre = b[:, :3] + np.stack([np.zeros(len(b)), np.zeros(len(b)), b[:, 5] / 2], 1)
        for c, spec in enumerate(specs.values()):
            uv, d = project_points(centre, r["lidar2img"][c])
            uv_gen, d_gen = spec.project(centre)                      # the generator's own camera model
            np.testing.assert_allclose(uv[d > 0.5], uv_gen[d > 0.5], atol=1e-3)
            np.testing.assert_allclose(d, d_gen, atol=1e-6)
            ok = (d > 2) & (uv[:, 0] >= 2) & (uv[:, 0] < 238) & (uv[:, 1] >= 2) & (uv[:, 1] < 158)
            for j in np.nonzero(ok & (r["gt_labels_3d"] == 0) & (r["num_lidar_pts"] > 200))[0]:
                u, v = np.round(uv[j]).astype(int)
                img = r["images"][c]
                sky = np.array([0.55, 0.70, 0.92])
                # a near, well-sampled car: its centre pixel is not sky and not the grey road
                px = img[v, u]
                assert np.abs(px - sky).max() > 0.1
                hits += 1
    assert hits >= 1


def test_missing_camera_is_an_error_or_a_counted_lidar_only_frame(converted, tmp_path):
    import shutil
    out = tmp_path / "broken"
    shutil.copytree(converted, out)
    victim = sorted((out / "images" / "CAM_FRONT_LEFT").glob("*.jpg"))[0]
    victim.unlink()
    ds = _dataset(out)
    idx = next(i for i in range(len(ds)) if victim.name.split(".")[0] in ds.get_data_info(i)["lidar_path"])
    with pytest.raises(ValueError, match="CAM_FRONT_LEFT"):
        ds.get_results(idx)
    ds = _dataset(out, skip_missing_cameras=True)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = ds.get_results(idx)
    assert r.get("cameras_skipped") and "images" not in r and ds.num_missing_cameras == 1
    assert any("LiDAR-only" in str(x.message) for x in w)
    assert "images" in ds.get_results(1 - idx)


def test_sparse_depth_keeps_single_sweep_points_with_time_lag_dim_none(converted):
    from perception3d.datasets.transforms_multimodal import SparseDepthMap
    r = _dataset(converted).get_results(0)
    assert (r["points"][:, 4] != 0).mean() > 0.9                   # column 4 is elongation, not a time lag
    on = SparseDepthMap(stride=4, time_lag_dim=None).transform(dict(r))["sparse_depth"]
    off = SparseDepthMap(stride=4).transform(dict(r))["sparse_depth"]
    assert on.shape == (3, 2, 40, 60) and on[:, 1].sum() > 10 * max(off[:, 1].sum(), 1)


def test_mini_fusion_configs_run_on_converted_frames_and_visualize_draws_cameras(converted, tmp_path):
    """configs/sparsefusion_waymo_mini.py and its LiDAR-only baseline build, run their test pipeline on the
    converted surround frames and predict; tools/visualize.py's camera view draws them."""
    import sys

    import torch
    from mmengine.registry import DefaultScope

    from perception3d.apis import init_model
    from perception3d.cli import load_config
    from perception3d.datasets.loading import det3d_collate
    from perception3d.registry import DATASETS
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tools"))
    import visualize
    for name, n_img in (("sparsefusion_waymo_mini", 3), ("transfusion_l_waymo_mini", 0)):
        cfg = load_config(str(root / "configs" / f"{name}.py"))
        dcfg = dict(cfg.test_dataloader.dataset, data_root=str(converted), ann_file="waymo_infos_train.pkl")
        with DefaultScope.overwrite_default_scope("perception3d"):
            ds = DATASETS.build(dcfg)
        item = ds[0]
        s = item["data_samples"]
        assert len(s.get("images", [])) == n_img
        torch.manual_seed(0)
        model = init_model(cfg)
        with torch.no_grad():
            out = model.test_step(det3d_collate([item]))[0]["pred_instances_3d"]
        assert out["bboxes_3d"].shape[1] >= 7 and len(out["scores_3d"]) == len(out["labels_3d"]) > 0
        if n_img:
            assert s["sparse_depth"].shape == (3, 2, 20, 30) and s["sparse_depth"][:, 1].sum() > 100
            assert s["cam_names"] == ["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT"]
            png = tmp_path / "cams.png"
            visualize.draw_camera_views(str(png), s["images"], visualize._lidar2img(s), out,
                                        s["gt_bboxes_3d"].numpy(), ["Car", "Pedestrian", "Cyclist"], 0.0,
                                        s["cam_names"], "test")
            import imageio.v3 as iio
            img = iio.imread(png)
            assert img.ndim == 3 and img.shape[1] > 1000


def test_skip_missing_cameras_flag_reaches_every_camera_dataset():
    from perception3d.cli import load_config
    from perception3d.datasets.multiview import set_skip_missing_cameras
    root = Path(__file__).resolve().parents[1] / "configs"
    cfg = load_config(str(root / "sparsefusion_waymo_mini.py"))
    assert set_skip_missing_cameras(cfg) == 3
    assert cfg.train_dataloader.dataset.dataset.skip_missing_cameras is True       # inside SeededDataset
    assert cfg.val_dataloader.dataset.skip_missing_cameras and cfg.test_dataloader.dataset.skip_missing_cameras
    with pytest.raises(ValueError, match="no camera dataset"):
        set_skip_missing_cameras(load_config(str(root / "centerpoint_voxel_waymo_mini.py")))


def test_ablation_bench_scores_few_point_and_camera_view_subsets():
    """bench/fusion_mini_ablation.py: boxes with >= 20 points / outside the rig are ignored, not missed; a perfect
    prediction of the remaining boxes scores AP 1, and one of only the ignored boxes is not a false positive."""
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "bench" / "fusion_mini_ablation.py"
    spec = importlib.util.spec_from_file_location("fusion_mini_ablation", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from perception3d.evaluation.waymo import waymo_evaluate
    boxes = np.array([[20.0, 0.0, 0.0, 4.5, 1.9, 1.6, 0.0],      # ahead: FRONT sees it
                      [-20.0, 0.0, 0.0, 4.5, 1.9, 1.6, 0.0],     # behind: no camera
                      [10.0, 9.0, 0.0, 4.5, 1.9, 1.6, 0.0]])     # 42° left: FRONT_LEFT
    assert bench.in_camera_view(boxes).tolist() == [True, False, True]
    gt = [dict(boxes_3d=boxes, labels_3d=np.zeros(3, int), num_points=np.array([10, 8, 300]),
               difficulty=np.zeros(3, int))]
    few = bench.few_point_truths(gt, 20)
    assert few[0]["num_points"].tolist() == [10, 8, 0]
    pred = [dict(boxes_3d=boxes[[0, 1]], scores_3d=np.array([0.9, 0.8]), labels_3d=np.zeros(2, int))]
    assert waymo_evaluate(pred, few)["Vehicle/L1 mAP"] == pytest.approx(1.0)
    p_fov, g_fov = bench.fov_only(pred, few)
    assert len(p_fov[0]["scores_3d"]) == 1 and g_fov[0]["num_points"].tolist() == [10, 0, 0]
    assert waymo_evaluate(p_fov, g_fov)["Vehicle/L1 mAP"] == pytest.approx(1.0)
    miss = [dict(boxes_3d=boxes[[2]], scores_3d=np.array([0.9]), labels_3d=np.zeros(1, int))]
    assert waymo_evaluate(miss, few)["Vehicle/L1 mAP"] == pytest.approx(0.0)   # the 10-point box is missed
    # range parts: the 13.5 m box is near, the two 20 m ones far; the near prediction is dropped from the far part
    p_near, g_near = bench.in_range(pred + miss, gt * 2, 0.0, 15.0)
    assert [len(p["scores_3d"]) for p in p_near] == [0, 1] and g_near[0]["num_points"].tolist() == [0, 0, 300]
    p_far, g_far = bench.in_range(pred, gt, 15.0, np.inf)
    assert len(p_far[0]["scores_3d"]) == 2 and g_far[0]["num_points"].tolist() == [10, 8, 0]
    assert waymo_evaluate(p_far, g_far)["Vehicle/L1 mAP"] == pytest.approx(1.0)
    assert waymo_evaluate(*bench.in_range(miss, gt, 0.0, 15.0))["Vehicle/L1 mAP"] == pytest.approx(1.0)
    # paired bootstrap: a copy of the reference differs by exactly 0 on every resample (the frames are paired), a
    # model that finds nothing by -1 (frames with truths only: each resample has at least one box)
    gts3 = gt * 3
    perfect = [dict(boxes_3d=boxes, scores_3d=np.ones(3), labels_3d=np.zeros(3, int))] * 3
    none = [dict(boxes_3d=np.zeros((0, 7)), scores_3d=np.zeros(0), labels_3d=np.zeros(0, int))] * 3
    boot = bench.paired_bootstrap(dict(ref=perfect, copy=perfect, blind=none), gts3, bench.few_point_truths(gts3, 20),
                                  "ref", 5)
    assert boot["copy"]["all"] == dict(mean=0.0, frac_above_0=0.0, **{"p2.5": 0.0, "p97.5": 0.0})
    assert boot["blind"]["all"]["mean"] == boot["blind"]["all"]["p97.5"] == -1.0
    assert boot["blind"]["few"]["mean"] == -1.0
    # and every other pair in listing order: the copy finds everything the blind model misses
    assert boot["copy - blind"]["all"] == dict(mean=1.0, frac_above_0=1.0, **{"p2.5": 1.0, "p97.5": 1.0})
    assert set(boot) == {"copy", "blind", "copy - blind"}
    # the documented command line: --grey-images names one run and leaves the runs after it to the positionals
    args = bench.build_parser().parse_intermixed_args(
        ["--fov", "--bootstrap", "60", "--grey-images", "grey", "control=a.py:a.pth", "grey=b.py:b.pth",
         "--grey-images", "grey2", "grey2=b.py:b.pth"])
    assert args.grey_images == ["grey", "grey2"]
    assert args.runs == ["control=a.py:a.pth", "grey=b.py:b.pth", "grey2=b.py:b.pth"]
