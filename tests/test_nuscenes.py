"""nuScenes reader: a tiny dataset written in the real v1.0 layout with answers worked out by hand, the info pkl
round trip, multi-sweep accumulation, bad input, and the real sample in ../shared/data/nuscenes_demo."""
import importlib.util
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from perception3d.datasets.nuscenes import (NUSCENES_CLASSES, NuScenesDataError, NuScenesTables,
                                            create_nuscenes_infos, load_camera_images, load_multisweep_points,
                                            load_nuscenes_frame, load_nuscenes_infos, load_points,
                                            quaternion_to_matrix)
from perception3d.structures.calibration import in_image, project_box_corners, project_points

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuscenes_demo"


def _quat_yaw(yaw):
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


# camera -> ego of a front camera: camera z = ego x, camera x = -ego y, camera y = -ego z
CAM_QUAT = [0.5, -0.5, 0.5, -0.5]
CAM_R = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
K = [[100.0, 0.0, 80.0], [0.0, 100.0, 45.0], [0.0, 0.0, 1.0]]
T0 = 1_532_402_927_000_000  # µs


def write_tiny_nuscenes(root: Path, image_size=(160, 90)):
    """Two key frames (0.5 s apart) of scene-0061 (v1.0-mini train), one car, one LiDAR sweep, one camera.

    Key frame 1: ego at global (100, 200, 0) facing global +y (yaw 90°); the LiDAR 1 m ahead / 2 m above the ego
    origin, rotated -90° (x right, y forward, as nuScenes' LIDAR_TOP); the car 10 m ahead of the ego origin
    (global (100, 210, 1)), size w, l, h = (2, 4, 1.5), global yaw 120° (30° left of the ego's heading), moving
    4 m/s along global +y (it was 2 m behind at key frame 0)."""
    v = root / "v1.0-mini"
    v.mkdir(parents=True)
    (root / "samples" / "LIDAR_TOP").mkdir(parents=True)
    (root / "sweeps" / "LIDAR_TOP").mkdir(parents=True)
    (root / "samples" / "CAM_FRONT").mkdir(parents=True)
    t = {n: [] for n in ("sample", "sample_data", "calibrated_sensor", "sensor", "ego_pose", "sample_annotation",
                         "instance", "category", "attribute", "scene", "visibility")}
    t["sensor"] = [dict(token="s_lidar", channel="LIDAR_TOP", modality="lidar"),
                   dict(token="s_cam", channel="CAM_FRONT", modality="camera")]
    t["calibrated_sensor"] = [
        dict(token="cs_lidar", sensor_token="s_lidar", translation=[1.0, 0.0, 2.0], rotation=_quat_yaw(-math.pi / 2),
             camera_intrinsic=[]),
        dict(token="cs_cam", sensor_token="s_cam", translation=[1.5, 0.0, 1.5], rotation=CAM_QUAT,
             camera_intrinsic=K)]
    t["category"] = [dict(token="cat_car", name="vehicle.car", description=""),
                     dict(token="cat_rack", name="static_object.bicycle_rack", description="")]
    t["attribute"] = [dict(token="att_moving", name="vehicle.moving", description="")]
    t["scene"] = [dict(token="scene0", name="scene-0061", description="", log_token="log0", nbr_samples=2,
                       first_sample_token="smp0", last_sample_token="smp1")]
    t["instance"] = [dict(token="inst0", category_token="cat_car", nbr_annotations=2, first_annotation_token="ann0",
                          last_annotation_token="ann1"),
                     dict(token="inst1", category_token="cat_rack", nbr_annotations=1, first_annotation_token="ann2",
                          last_annotation_token="ann2")]
    ego_yaw = math.pi / 2
    times = {"smp0": T0, "smp1": T0 + 500_000}
    ego_xy = {"smp0": (100.0, 198.0), "smp1": (100.0, 200.0)}
    for k, smp in enumerate(("smp0", "smp1")):
        t["sample"].append(dict(token=smp, timestamp=times[smp], scene_token="scene0",
                                prev="" if k == 0 else "smp0", next="smp1" if k == 0 else ""))
        t["ego_pose"].append(dict(token=f"ep_{smp}", timestamp=times[smp], rotation=_quat_yaw(ego_yaw),
                                  translation=[*ego_xy[smp], 0.0]))
    # the key frame's LiDAR: 3 points; one sweep 0.05 s earlier, the ego 0.2 m further back
    key_pts = np.array([[0.0, 9.0, -1.0, 10.0, 5.0], [1.0, 2.0, 3.0, 20.0, 6.0], [-3.0, 4.0, 0.0, 30.0, 7.0]],
                       np.float32)
    key_pts.tofile(root / "samples" / "LIDAR_TOP" / "k1__LIDAR_TOP__1.pcd.bin")
    np.zeros((2, 5), np.float32).tofile(root / "samples" / "LIDAR_TOP" / "k0__LIDAR_TOP__0.pcd.bin")
    sweep_pts = np.array([[0.0, 5.0, 0.0, 40.0, 9.0]], np.float32)
    sweep_pts.tofile(root / "sweeps" / "LIDAR_TOP" / "sw__LIDAR_TOP__2.pcd.bin")
    t["ego_pose"].append(dict(token="ep_sw", timestamp=times["smp1"] - 50_000, rotation=_quat_yaw(ego_yaw),
                              translation=[100.0, 199.8, 0.0]))
    t["sample_data"] += [
        dict(token="sd_l0", sample_token="smp0", ego_pose_token="ep_smp0", calibrated_sensor_token="cs_lidar",
             timestamp=times["smp0"], fileformat="pcd", is_key_frame=True, height=0, width=0,
             filename="samples/LIDAR_TOP/k0__LIDAR_TOP__0.pcd.bin", prev="", next="sd_sw"),
        dict(token="sd_sw", sample_token="smp1", ego_pose_token="ep_sw", calibrated_sensor_token="cs_lidar",
             timestamp=times["smp1"] - 50_000, fileformat="pcd", is_key_frame=False, height=0, width=0,
             filename="sweeps/LIDAR_TOP/sw__LIDAR_TOP__2.pcd.bin", prev="sd_l0", next="sd_l1"),
        dict(token="sd_l1", sample_token="smp1", ego_pose_token="ep_smp1", calibrated_sensor_token="cs_lidar",
             timestamp=times["smp1"], fileformat="pcd", is_key_frame=True, height=0, width=0,
             filename="samples/LIDAR_TOP/k1__LIDAR_TOP__1.pcd.bin", prev="sd_sw", next=""),
        dict(token="sd_c1", sample_token="smp1", ego_pose_token="ep_smp1", calibrated_sensor_token="cs_cam",
             timestamp=times["smp1"], fileformat="jpg", is_key_frame=True, height=image_size[1],
             width=image_size[0], filename="samples/CAM_FRONT/k1__CAM_FRONT__1.jpg", prev="", next=""),
    ]
    import cv2
    img = np.zeros((90, 160, 3), np.uint8)
    img[:, :, 2] = 200
    cv2.imwrite(str(root / "samples" / "CAM_FRONT" / "k1__CAM_FRONT__1.jpg"), img)
    car = dict(instance_token="inst0", visibility_token="4", attribute_tokens=["att_moving"], size=[2.0, 4.0, 1.5],
               rotation=_quat_yaw(ego_yaw + math.pi / 6), num_lidar_pts=12, num_radar_pts=1)
    t["sample_annotation"] += [
        dict(car, token="ann0", sample_token="smp0", translation=[100.0, 208.0, 1.0], prev="", next="ann1"),
        dict(car, token="ann1", sample_token="smp1", translation=[100.0, 210.0, 1.0], prev="ann0", next=""),
        dict(token="ann2", sample_token="smp1", instance_token="inst1", visibility_token="4", attribute_tokens=[],
             size=[1.0, 1.0, 1.0], rotation=[1.0, 0, 0, 0], translation=[95.0, 205.0, 0.5], num_lidar_pts=3,
             num_radar_pts=0, prev="", next=""),
    ]
    for name, rows in t.items():
        (v / f"{name}.json").write_text(json.dumps(rows))
    return root


@pytest.fixture
def tiny(tmp_path):
    return write_tiny_nuscenes(tmp_path / "nuscenes")


def test_quaternion_convention():
    np.testing.assert_allclose(quaternion_to_matrix(CAM_QUAT), CAM_R, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(_quat_yaw(0.3))[:2, :2],
                               [[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]], atol=1e-12)


def test_v10_layout_box_ends_where_computed_by_hand(tiny, tmp_path):
    res = create_nuscenes_infos(tiny, tmp_path / "out")
    assert res["train"] == 2 and res["val"] == 0 and res["version"] == "v1.0-mini"
    meta, data = load_nuscenes_infos(tmp_path / "out" / "nuscenes_infos_train.pkl")
    assert meta["dataset"] == "nuscenes" and meta["categories"]["car"] == 0
    e = data[1]
    assert abs(e["timestamp"] - (T0 + 500_000) / 1e6) < 1e-6
    # the bicycle rack is not a detection class: kept with label -1 (mmdet3d), dropped by the reader
    assert sorted(i["bbox_label_3d"] for i in e["instances"]) == [-1, 0]
    fr = load_nuscenes_frame(e, tiny, cameras=None)
    assert fr["gt_bboxes_3d"].shape == (1, 9)
    # global (100, 210, 1) - ego (100, 200, 0) = (0, 10, 1) → ego frame (10, 0, 1) (ego faces global +y)
    # → minus the LiDAR mount (1, 0, 2) = (9, 0, -1) → LiDAR frame (x right, y forward) (0, 9, -1);
    # bottom z = -1 - 1.5 / 2; size (w, l, h) = (2, 4, 1.5) → (dx, dy, dz) = (4, 2, 1.5);
    # yaw: 30° in the ego frame + 90° (the LiDAR is turned -90°) = 120°; velocity 4 m/s forward → (0, 4)
    np.testing.assert_allclose(fr["gt_bboxes_3d"][0], [0.0, 9.0, -1.75, 4.0, 2.0, 1.5, 2 * math.pi / 3, 0.0, 4.0],
                               atol=1e-5)
    assert fr["gt_labels_3d"].tolist() == [0] and fr["num_lidar_pts"].tolist() == [12]
    assert fr["attr_labels"].tolist() == [5]  # vehicle.moving in mmdet3d's attribute order


def test_v10_layout_sweeps_and_time_lag(tiny, tmp_path):
    create_nuscenes_infos(tiny, tmp_path / "out")
    _, data = load_nuscenes_infos(tmp_path / "out" / "nuscenes_infos_train.pkl")
    e = data[1]
    # sweeps: the previous LIDAR_TOP records (the non-key sweep, then key frame 0), newest first
    assert [Path(s["lidar_points"]["lidar_path"]).name for s in e["lidar_sweeps"]] == [
        "sw__LIDAR_TOP__2.pcd.bin", "k0__LIDAR_TOP__0.pcd.bin"]
    pts = load_multisweep_points(e, tiny, sweeps_num=1)
    assert pts.shape == (4, 5)
    # key frame: unchanged, ring column → time lag 0
    np.testing.assert_allclose(pts[:3, :4], np.fromfile(tiny / "samples/LIDAR_TOP/k1__LIDAR_TOP__1.pcd.bin",
                                                        np.float32).reshape(-1, 5)[:, :4])
    assert (pts[:3, 4] == 0).all()
    # the sweep point 5 m ahead of the LiDAR, taken 0.05 s earlier with the ego 0.2 m further back: 4.8 m ahead now
    np.testing.assert_allclose(pts[3], [0.0, 4.8, 0.0, 40.0, 0.05], atol=1e-5)
    assert load_multisweep_points(e, tiny, sweeps_num=10).shape == (6, 5)


def test_v10_layout_camera_projects_box_centre(tiny, tmp_path):
    create_nuscenes_infos(tiny, tmp_path / "out")
    _, data = load_nuscenes_infos(tmp_path / "out" / "nuscenes_infos_train.pkl")
    fr = load_nuscenes_frame(data[1], tiny, cameras=["CAM_FRONT"])
    assert fr["images"][0].shape == (90, 160, 3) and abs(fr["images"][0][..., 0].mean() - 200 / 255) < 0.02
    np.testing.assert_allclose(fr["cam2img"][0], K)
    b = fr["gt_bboxes_3d"][0].astype(np.float64)
    centre = b[:3] + [0, 0, b[5] / 2]
    # gravity centre in the ego frame (10, 0, 1); the camera at (1.5, 0, 1.5) looking along ego +x:
    # camera coordinates (0, 0.5, 8.5) → pixel (80, 45 + 100 * 0.5 / 8.5), depth 8.5
    uv, d = project_points(centre[None], fr["lidar2img"][0])
    np.testing.assert_allclose(uv[0], [80.0, 45.0 + 50.0 / 8.5], atol=1e-6)
    np.testing.assert_allclose(d, [8.5], atol=1e-6)


def test_create_data_tool_writes_infos_atomically(tiny, tmp_path):
    out = tmp_path / "infos"
    spec = importlib.util.spec_from_file_location("create_data_tool", ROOT / "tools" / "create_data.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    res = tool.main(["nuscenes", "--root", str(tiny), "--out", str(out), "--max-sweeps", "10"])
    assert res["train"] == 2 and res["val"] == 0
    assert sorted(p.name for p in out.iterdir()) == ["nuscenes_infos_train.pkl", "nuscenes_infos_val.pkl"]
    with open(out / "nuscenes_infos_train.pkl", "rb") as f:
        obj = pickle.load(f)
    assert set(obj) == {"metainfo", "data_list"} and len(obj["data_list"]) == 2
    cam = obj["data_list"][1]["images"]["CAM_FRONT"]
    assert {"img_path", "cam2img", "cam2ego", "lidar2cam", "timestamp"} <= set(cam)


def test_bad_input_names_the_sample_and_field(tiny, tmp_path):
    create_nuscenes_infos(tiny, tmp_path / "out")
    _, data = load_nuscenes_infos(tmp_path / "out" / "nuscenes_infos_train.pkl")
    e = data[1]
    with pytest.raises(NuScenesDataError, match="no camera CAM_BACK"):
        load_camera_images(e, tiny, ["CAM_BACK"])
    stats = {}
    with pytest.warns(UserWarning, match="LiDAR-only"):
        fr = load_nuscenes_frame(e, tiny, cameras=["CAM_FRONT", "CAM_BACK"], skip_missing_cameras=True, stats=stats)
    assert stats == {"missing_cameras": 1} and fr["cameras_skipped"] and "images" not in fr
    bad = json.loads(json.dumps(e))
    bad["images"]["CAM_FRONT"]["height"] = 900
    with pytest.raises(NuScenesDataError, match=r"CAM_FRONT.*160x90.*calibration says 160x900"):
        load_camera_images(bad, tiny, ["CAM_FRONT"])
    bad["images"]["CAM_FRONT"]["cam2img"] = np.zeros((3, 3)).tolist()
    with pytest.raises(NuScenesDataError, match="not invertible"):
        load_camera_images(bad, tiny, ["CAM_FRONT"])
    del bad["images"]["CAM_FRONT"]["lidar2cam"]
    with pytest.raises(NuScenesDataError, match="CAM_FRONT.lidar2cam is missing"):
        load_camera_images(bad, tiny, ["CAM_FRONT"])
    trunc = tmp_path / "t.pcd.bin"
    np.zeros(7, np.float32).tofile(trunc)
    with pytest.raises(NuScenesDataError, match="t.pcd.bin.*whole number"):
        load_points(trunc)
    other = tmp_path / "kitti.pkl"
    other.write_bytes(pickle.dumps(dict(metainfo=dict(dataset="kitti"), data_list=[])))
    with pytest.raises(NuScenesDataError, match="dataset 'kitti', not nuScenes"):
        load_nuscenes_infos(other)
    (tiny / "v1.0-mini" / "sensor.json").unlink()
    with pytest.raises(NuScenesDataError, match="sensor.json: missing nuScenes table"):
        NuScenesTables(tiny)


def test_legacy_infos_layout(tmp_path):
    info = dict(lidar_path="a__LIDAR_TOP__1.pcd.bin", token="t", timestamp=2_000_000, sweeps=[],
                lidar2ego_rotation=[1, 0, 0, 0], lidar2ego_translation=[0, 0, 0], ego2global_rotation=[1, 0, 0, 0],
                ego2global_translation=[0, 0, 0], cams={},
                gt_boxes=np.array([[1.0, 2.0, 1.0, 4.0, 2.0, 2.0, 0.5]]), gt_names=np.array(["truck"]),
                gt_velocity=np.array([[np.nan, np.nan]]), num_lidar_pts=np.array([5]), num_radar_pts=np.array([0]))
    p = tmp_path / "legacy.pkl"
    p.write_bytes(pickle.dumps(dict(infos=[info], metadata=dict(version="v1.0-mini"))))
    meta, data = load_nuscenes_infos(p)
    np.zeros((1, 5), np.float32).tofile(tmp_path / "a__LIDAR_TOP__1.pcd.bin")
    fr = load_nuscenes_frame(data[0], tmp_path, cameras=None)
    np.testing.assert_allclose(fr["gt_bboxes_3d"], [[1.0, 2.0, 0.0, 4.0, 2.0, 2.0, 0.5, 0.0, 0.0]])
    assert fr["gt_labels_3d"].tolist() == [NUSCENES_CLASSES.index("truck")] and not fr["velocity_valid"][0]


def _demo_entry():
    pkl = DEMO / "n015-2018-07-24-11-22-45+0800.pkl"
    if not pkl.is_file():
        pytest.skip(f"real nuScenes sample not found at {DEMO} (../shared/data is absent in a fresh clone)")
    return load_nuscenes_infos(pkl)[1][0]


def test_real_sample_loads_points_images_calibrations():
    e = _demo_entry()
    fr = load_nuscenes_frame(e, DEMO, min_points=0)
    assert fr["points"].shape == (34688, 5) and (fr["points"][:, 4] == 0).all()  # no sweeps shipped: lag 0
    assert len(fr["images"]) == 6 and all(im.shape == (900, 1600, 3) for im in fr["images"])
    assert fr["lidar2img"].shape == (6, 4, 4) and fr["cam2img"].shape == (6, 3, 3)
    # 69 annotated boxes, 68 of a detection class (one has label -1)
    assert len(e["instances"]) == 69
    assert len(fr["gt_labels_3d"]) == sum(i["bbox_label_3d"] >= 0 for i in e["instances"]) == 68


def _visible_bbox(corners_uv, corners_depth, width=1600, height=900):
    """mmdet3d's 2D box of a 3D box (``post_process_coords``): the convex hull of the corners in front of the
    camera, intersected with the image."""
    from shapely.geometry import MultiPoint, box
    hull = MultiPoint([tuple(p) for p in corners_uv[corners_depth > 0]]).convex_hull
    inter = hull.intersection(box(0, 0, width, height))
    return np.asarray(inter.bounds) if not inter.is_empty else None


def test_real_sample_boxes_project_where_cam_instances_say():
    """Every cam_instances entry (an annotated box visible in that camera) is one of our boxes whose projected
    gravity centre lands on the info's 2D centre, in front of the camera at the info's depth, and whose projected
    corners (hull ∩ image) give the info's 2D box (to 5 % of its diagonal); the centre is inside the image except for truncated boxes."""
    pytest.importorskip("shapely")
    e = _demo_entry()
    fr = load_nuscenes_frame(e, DEMO, min_points=0)
    b = fr["gt_bboxes_3d"].astype(np.float64)
    centres = b[:, :3] + np.stack([np.zeros(len(b)), np.zeros(len(b)), b[:, 5] / 2], 1)
    n_checked, n_centre_inside, worst = 0, 0, []
    for ci, cam in enumerate(fr["cam_names"]):
        uv, depth = project_points(centres, fr["lidar2img"][ci])
        cuv, cdepth = project_box_corners(b, fr["lidar2img"][ci])
        for inst in e["cam_instances"][cam]:
            err = np.linalg.norm(uv - np.asarray(inst["center_2d"]), axis=1) + 1e6 * (depth <= 0)
            j = int(err.argmin())
            assert err[j] < 0.05, (cam, inst["center_2d"], uv[j])
            assert depth[j] > 0 and abs(depth[j] - inst["depth"]) < 1e-3
            assert fr["gt_labels_3d"][j] == inst["bbox_label_3d"]
            bb = np.asarray(inst["bbox"])
            worst.append(np.abs(_visible_bbox(cuv[j], cdepth[j]) - bb).max() / np.hypot(*(bb[2:] - bb[:2])))
            n_centre_inside += bool(in_image(uv[j:j + 1], depth[j:j + 1], 1600, 900)[0])
            n_checked += 1
    assert n_checked == sum(len(v) for v in e["cam_instances"].values()) == 84
    # the info's 2D boxes come from the annotation's full 3D rotation; a LiDAR box keeps only the yaw (pitch and
    # roll of the road are dropped, as in mmdet3d), so corners move by a few % of the 2D box (measured: median 1.1 %, max 4.4 %)
    assert max(worst) < 0.05 and np.median(worst) < 0.02
    assert n_centre_inside == 79  # 5 boxes cut by the image border have their centre outside it


def test_dataset_from_config_runs_the_multimodal_pipeline(tiny, tmp_path):
    from perception3d.registry import DATASETS
    create_nuscenes_infos(tiny, tiny)
    ds = DATASETS.build(dict(
        type="NuScenesDataset", data_root=str(tiny), ann_file="nuscenes_infos_train.pkl", cameras=["CAM_FRONT"],
        sweeps_num=10, test_mode=True,
        pipeline=[dict(type="MultiModalGlobalRotScaleTrans", rot_range=[0.5, 0.5], scale_ratio_range=[1.0, 1.0]),
                  dict(type="ImageResizeCropFlip", final_dim=(45, 80), resize_lim=(0.5, 0.5), test_mode=True)]))
    assert len(ds) == 2
    r = ds[1]
    assert r["points"].shape == (6, 5) and r["images"][0].shape == (45, 80, 3)
    # the box centre still lands on its (resized) pixel after rotation + resize
    b = r["gt_bboxes_3d"][0].astype(np.float64)
    uv, d = project_points((b[:3] + [0, 0, b[5] / 2])[None], r["lidar2img"][0])
    np.testing.assert_allclose(uv[0], [40.0, (45.0 + 50.0 / 8.5) / 2], atol=1e-4)
    # a camera that is not there: an error naming it, or LiDAR-only with a count
    bad = DATASETS.build(dict(type="NuScenesDataset", data_root=str(tiny), ann_file="nuscenes_infos_train.pkl",
                              cameras=["CAM_FRONT", "CAM_BACK"], skip_missing_cameras=True, test_mode=True))
    with pytest.warns(UserWarning, match="CAM_BACK"):
        r = bad[1]
    assert "images" not in r and bad.num_missing_cameras == 1
