"""KITTI raw files and mmdet3d info pkls: real infos/points from ../shared/data, parity of the camera → LiDAR box
conversion with mmdet3d's own outputs (its GT database, its num_lidar_pts), and bad input."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from perception3d.datasets.kitti_raw import (create_kitti_infos, kitti_difficulty, read_calib, read_kitti_frame,
                                             read_label, read_velodyne)
from perception3d.datasets.mmdet3d_info import load_info_file, load_mmdet3d_infos
from perception3d.ops import points_in_boxes_count

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO = SHARED / "kitti_demo"
MM = SHARED / "mmdet3d_tests"
CLASSES = ("Car", "Pedestrian", "Cyclist")
need_shared = pytest.mark.skipif(not (DEMO.is_dir() and MM.is_dir()), reason="../shared/data is absent")


@need_shared
def test_kitti_demo_infos_points_and_counts():
    meta, entries = load_mmdet3d_infos(DEMO / "000008.pkl", classes=CLASSES)
    (e,) = entries
    assert e["lidar_path"] == DEMO / "000008.bin" and e["sample_idx"] == 8
    pts = read_velodyne(e["lidar_path"], e["num_pts_feats"])
    assert pts.shape == (17238, 4)
    assert e["gt_labels_3d"].tolist() == [0] * 6            # 6 Cars; DontCare dropped
    assert e["gt_bboxes_3d"].dtype == np.float32 and e["gt_bboxes_3d"].shape == (6, 7)
    # mmdet3d counted these with its own LiDAR boxes: equal counts ⇒ same boxes (position, size, yaw, bottom z)
    np.testing.assert_array_equal(points_in_boxes_count(pts, e["gt_bboxes_3d"]).numpy(), e["num_lidar_pts"])
    np.testing.assert_array_equal(e["num_lidar_pts"], [1325, 1900, 881, 659, 55, 162])


@need_shared
def test_mmdet3d_kitti_infos_match_its_gt_database():
    _, (e,) = load_mmdet3d_infos(MM / "kitti" / "kitti_infos_train.pkl", classes=CLASSES)
    assert e["lidar_path"] == MM / "kitti" / "training" / "velodyne" / "000000.bin"
    assert e["gt_labels_3d"].tolist() == [1]                 # mmdet3d label 0 (Pedestrian) → ours 1
    db = pickle.load(open(MM / "kitti" / "kitti_dbinfos_train.pkl", "rb"))
    ref = next(iter(db.values()))[0]
    np.testing.assert_allclose(e["gt_bboxes_3d"][0], ref["box3d_lidar"], atol=2e-3)
    # the GT-database points are stored relative to the box's bottom centre: all inside our box
    gt_pts = read_velodyne(MM / "kitti" / ref["path"])
    gt_pts[:, :3] += e["gt_bboxes_3d"][0, :3]
    n_inside = int(points_in_boxes_count(gt_pts, e["gt_bboxes_3d"])[0])
    assert n_inside == ref["num_points_in_gt"] == e["num_lidar_pts"][0]
    pts = read_velodyne(e["lidar_path"], e["num_pts_feats"])
    assert pts.shape == (800, 4)                            # a subsample: counts can only be lower
    assert (points_in_boxes_count(pts, e["gt_bboxes_3d"]).numpy() <= e["num_lidar_pts"]).all()


@need_shared
@pytest.mark.parametrize("split", ["train", "val"])
def test_mmdet3d_waymo_infos_lidar_frame(split):
    path = MM / "waymo" / "kitti_format" / f"waymo_infos_{split}.pkl"
    meta, (e,) = load_mmdet3d_infos(path, classes=CLASSES)
    raw = e["info"]["instances"][0]["bbox_3d"]
    np.testing.assert_allclose(e["gt_bboxes_3d"][0], raw, rtol=1e-6)   # already LiDAR boxes: unchanged
    assert e["gt_labels_3d"].tolist() == [0] and e["num_pts_feats"] == 6
    pts = read_velodyne(e["lidar_path"], 6)
    assert pts.shape == (800, 6)
    assert (points_in_boxes_count(pts, e["gt_bboxes_3d"]).numpy() <= e["num_lidar_pts"]).all()


@need_shared
def test_legacy_layout(tmp_path):
    """A pre-1.1 list-of-dicts info (written here from the 1.1 file's values) gives the same LiDAR boxes."""
    meta, (v11,) = load_info_file(MM / "kitti" / "kitti_infos_train.pkl")
    inst = v11["instances"][0]
    b = np.asarray(inst["bbox_3d"])
    legacy = [dict(image=dict(image_idx=0),
                   point_cloud=dict(num_features=4, velodyne_path="training/velodyne/000000.bin"),
                   calib=dict(R0_rect=np.asarray(v11["images"]["R0_rect"]),
                              Tr_velo_to_cam=np.asarray(v11["lidar_points"]["Tr_velo_to_cam"])),
                   annos=dict(name=np.array(["Pedestrian", "DontCare"]), location=np.array([b[:3], [0, 0, 0]]),
                              dimensions=np.array([b[3:6], [1, 1, 1]]), rotation_y=np.array([b[6], 0.0]),
                              num_points_in_gt=np.array([377, -1]), difficulty=np.array([0, -1])))]
    (tmp_path / "legacy.pkl").write_bytes(pickle.dumps(legacy))
    _, (old,) = load_mmdet3d_infos(tmp_path / "legacy.pkl", data_root=MM / "kitti", classes=CLASSES)
    _, (new,) = load_mmdet3d_infos(MM / "kitti" / "kitti_infos_train.pkl", classes=CLASSES)
    assert old["lidar_path"] == new["lidar_path"]
    np.testing.assert_allclose(old["gt_bboxes_3d"], new["gt_bboxes_3d"], atol=1e-5)
    assert old["gt_labels_3d"].tolist() == [1] and old["num_lidar_pts"].tolist() == [377]


def write_raw_kitti_from_demo(root: Path) -> dict:
    """A raw KITTI root (velodyne/label_2/calib) holding the demo frame, its files written from the demo pkl."""
    info = pickle.load(open(DEMO / "000008.pkl", "rb"))["data_list"][0]
    tr = root / "training"
    for d in ("velodyne", "label_2", "calib"):
        (tr / d).mkdir(parents=True)
    shutil.copy(DEMO / "000008.bin", tr / "velodyne" / "000008.bin")
    fmt = lambda m: " ".join(f"{v:.12e}" for v in np.asarray(m, dtype=np.float64).reshape(-1))  # noqa: E731
    cams = info["images"]
    lines = [f"P{i}: {fmt(np.asarray(cams[f'CAM{i}']['cam2img'])[:3])}" for i in range(4)]
    lines += [f"R0_rect: {fmt(np.asarray(cams['R0_rect'])[:3, :3])}",
              f"Tr_velo_to_cam: {fmt(np.asarray(info['lidar_points']['Tr_velo_to_cam'])[:3])}",
              f"Tr_imu_to_velo: {fmt(np.asarray(info['lidar_points']['Tr_imu_to_velo'])[:3])}"]
    (tr / "calib" / "000008.txt").write_text("\n".join(lines) + "\n")
    names = {2: "Car", -1: "DontCare"}
    rows = []
    for inst in info["instances"]:
        x, y, z, l, h, w, ry = inst["bbox_3d"]
        rows.append(" ".join(map(str, [names[inst["bbox_label_3d"]], inst["truncated"], inst["occluded"],
                                       inst["alpha"], *inst["bbox"], h, w, l, x, y, z, ry])))
    (tr / "label_2" / "000008.txt").write_text("\n".join(rows) + "\n")
    return info


@need_shared
def test_raw_kitti_reader_matches_mmdet3d(tmp_path):
    info = write_raw_kitti_from_demo(tmp_path)
    lab = read_label(tmp_path / "training" / "label_2" / "000008.txt")
    assert lab.names.count("Car") == 6 and lab.names.count("DontCare") == 4 and lab.score is None
    calib = read_calib(tmp_path / "training" / "calib" / "000008.txt")
    np.testing.assert_allclose(calib["R0_rect"] @ calib["Tr_velo_to_cam"], info["images"]["CAM2"]["lidar2cam"],
                               atol=1e-6)
    fr = read_kitti_frame(tmp_path, "000008")
    _, (ref,) = load_mmdet3d_infos(DEMO / "000008.pkl", classes=CLASSES)
    np.testing.assert_allclose(fr["gt_bboxes_3d"], ref["gt_bboxes_3d"], atol=1e-5)
    np.testing.assert_array_equal(fr["num_lidar_pts"], ref["num_lidar_pts"])
    # difficulty as mmdet3d computed it (only the valid objects: DontCare has -1 anyway)
    np.testing.assert_array_equal(fr["difficulty"], [i["difficulty"] for i in info["instances"][:6]])
    res = create_kitti_infos(tmp_path, progress=False)
    assert res["train"] == 1 and res["bad"] == []
    _, (e,) = load_mmdet3d_infos(tmp_path / "kitti_infos_train.pkl")
    assert e["lidar_path"] == tmp_path / "training" / "velodyne" / "000008.bin"
    np.testing.assert_allclose(e["gt_bboxes_3d"], ref["gt_bboxes_3d"], atol=1e-5)
    # evaluation view (test mode): the same objects, names and 2D annotations as mmdet3d's infos give
    from perception3d.datasets.det3d_dataset import Det3DDataset
    ours = Det3DDataset(data_root=str(tmp_path), ann_file="kitti_infos_train.pkl", load_dim=4, use_dim=4,
                        test_mode=True)[0]
    theirs = Det3DDataset(data_root=str(DEMO), ann_file="000008.pkl", load_dim=4, use_dim=4, test_mode=True)[0]
    assert ours["gt_names"] == theirs["gt_names"] and ours["gt_labels_3d"].tolist() == theirs["gt_labels_3d"].tolist()
    for k in ("bbox", "truncated", "occluded", "alpha"):
        np.testing.assert_allclose(ours[k], theirs[k], atol=1e-5, err_msg=k)
    np.testing.assert_allclose(ours["gt_bboxes_3d"][:6], theirs["gt_bboxes_3d"][:6], atol=1e-5)
    for k in ("P2", "R0_rect", "Tr_velo_to_cam"):
        np.testing.assert_allclose(ours["calib"][k], theirs["calib"][k], atol=1e-6, err_msg=k)


def test_difficulty_levels():
    bbox = np.array([[0, 0, 0, 50], [0, 0, 0, 30], [0, 0, 0, 30], [0, 0, 0, 20]], float)
    assert kitti_difficulty(bbox, np.array([0, 1, 2, 0]), np.array([0.1, 0.2, 0.4, 0.0])).tolist() == [0, 1, 2, -1]


def test_bad_kitti_files(tmp_path):
    bad = tmp_path / "000001.bin"
    bad.write_bytes(np.zeros(5, np.float32).tobytes())          # 20 bytes: not a multiple of 16
    with pytest.raises(ValueError, match=r"000001.bin: 20 bytes is not a whole number of points"):
        read_velodyne(bad)
    lab = tmp_path / "l.txt"
    lab.write_text("Car 0 0 0 1 2 3 4 1.5 1.6 3.9 1 2 10 0.1\nCar 0 0 0 1 2 3 4 1.5 1.6 3.9 1 2 10\n")
    with pytest.raises(ValueError, match=r"l.txt:2: 14 fields"):
        read_label(lab)
    lab.write_text("Car 0 0 0 1 2 3 4 1.5 1.6 3.9 1 2 10 0.1 0.9\n")
    assert read_label(lab).score.tolist() == [0.9]
    cal = tmp_path / "c.txt"
    cal.write_text("P0: " + " ".join(["0"] * 12) + "\n")
    with pytest.raises(ValueError, match=r"c.txt: missing key 'P1'"):
        read_calib(cal)
    bad_pkl = tmp_path / "x.pkl"
    bad_pkl.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="x.pkl: not a readable info pickle"):
        load_info_file(bad_pkl)


@need_shared
def test_create_data_tool_kitti_with_gt_database(tmp_path):
    import importlib.util
    write_raw_kitti_from_demo(tmp_path / "kitti")
    spec = importlib.util.spec_from_file_location("create_data", Path(__file__).resolve().parents[1] / "tools" /
                                                  "create_data.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    res = tool.main(["kitti", "--root", str(tmp_path / "kitti"), "--out", str(tmp_path / "out"), "--gt-database"])
    assert res["train"] == 1
    db = pickle.load(open(tmp_path / "out" / "kitti_dbinfos_train.pkl", "rb"))
    assert sorted(e["num_points_in_gt"] for e in db["Car"]) == sorted([1325, 1900, 881, 659, 55, 162])


@need_shared
def test_image_sets_and_unreadable_frames(tmp_path):
    write_raw_kitti_from_demo(tmp_path)
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets" / "train.txt").write_text("000008\n")
    (tmp_path / "ImageSets" / "val.txt").write_text("000008\n000009\n")
    with pytest.warns(UserWarning, match=r"kitti val: 1 frames could not be read"):
        res = create_kitti_infos(tmp_path, progress=False)
    assert res["train"] == 1 and res["val"] == 1 and [b[0] for b in res["bad"]] == ["000009"]
    assert "000009.bin" in res["bad"][0][1]


CALIB_TXT = "".join(f"P{i}: 700 0 600 {45 * i} 0 700 180 0 0 0 1 0\n" for i in range(4)) + \
    "R0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.08 1 0 0 -0.27\n"
LABEL_TXT = "Car 0.00 0 -1.57 600 170 700 250 1.5 1.6 3.9 2.0 1.7 15.0 -1.57\n"


def write_synthetic_kitti(root: Path, frames=("000000", "000001", "000002")) -> None:
    """A raw KITTI root without shared data: each frame 100 points, one Car, the same calibration."""
    tr = root / "training"
    for d in ("velodyne", "label_2", "calib"):
        (tr / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for fid in frames:
        rng.uniform(-20, 20, (100, 4)).astype(np.float32).tofile(tr / "velodyne" / f"{fid}.bin")
        (tr / "label_2" / f"{fid}.txt").write_text(LABEL_TXT)
        (tr / "calib" / f"{fid}.txt").write_text(CALIB_TXT)


@pytest.mark.parametrize("damage,match", [
    (lambda tr: (tr / "velodyne" / "000001.bin").write_bytes(np.zeros(101, np.float32).tobytes()[:-2]),
     r"velodyne/000001\.bin: 402 bytes is not a whole number of points"),
    (lambda tr: (tr / "label_2" / "000001.txt").write_text(LABEL_TXT + "Car 0.0 0 1.0 1 2 3\n"),
     r"label_2/000001\.txt:2: 7 fields, expected 15"),
    (lambda tr: (tr / "calib" / "000001.txt").write_text("P0: 1 0 0 0 0 1 0 0 0 0 1 0\n"),
     r"calib/000001\.txt: missing key 'P1'"),
], ids=["bin-size", "label-fields", "calib-matrices"])
def test_converter_rejects_corrupt_files(tmp_path, damage, match):
    """Issue 20: a corrupt .bin / label / calib is an error naming the file and no info file is written (before,
    the frame was dropped with a warning and the converter wrote kitti_infos_*.pkl and returned normally)."""
    from perception3d.fileio import DataFormatError
    write_synthetic_kitti(tmp_path)
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets" / "train.txt").write_text("000000\n")
    (tmp_path / "ImageSets" / "val.txt").write_text("000001\n000002\n")
    assert create_kitti_infos(tmp_path, tmp_path / "ok", progress=False) == {"bad": [], "train": 1, "val": 2}
    damage(tmp_path / "training")
    with pytest.raises(DataFormatError, match=match) as exc:
        create_kitti_infos(tmp_path, tmp_path / "out", progress=False)
    assert "000001" in exc.value.file
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    # opting in to skipping: a counted skip, the others written
    with pytest.warns(UserWarning, match="kitti val: 1 frames could not be read"):
        res = create_kitti_infos(tmp_path, tmp_path / "out", progress=False, skip_corrupt=True)
    assert (res["train"], res["val"], [b[0] for b in res["bad"]]) == (1, 1, ["000001"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["kitti_infos_train.pkl", "kitti_infos_val.pkl"]
