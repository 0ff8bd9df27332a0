"""Waymo v2 parquet reader: hand-made range images with hand-computed points, the real vehicle_pose file,
bad input, and the create_data conversion (points cache + info pkls, resumable)."""
from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perception3d.datasets import range_image as ri
from perception3d.datasets.waymo_v2 import (WaymoV2Segment, read_lidar_boxes, read_lidar_calibrations,
                                            read_vehicle_poses)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_POSE = SHARED / "waymo_v2" / "10023947602400723454_1120_000_1140_000.parquet"
COLUMNS_TXT = SHARED / "waymo_v2" / "v2_component_columns.txt"

SEG = "1234_000_1000_000"
T0, T1 = 1_550_000_000_000_000, 1_550_000_000_100_000

# --- the exact v2 schema of the components we write (as in v2_component_columns.txt) ------------------------
F64, F32, I8, I32, I64, STR = pa.float64(), pa.float32(), pa.int8(), pa.int32(), pa.int64(), pa.string()
RI = lambda: [(".values", pa.list_(F32)), (".shape", pa.list_(I32, 3))]  # noqa: E731
SCHEMAS = {
    "lidar": [("key.segment_context_name", STR), ("key.frame_timestamp_micros", I64), ("key.laser_name", I8)]
    + [(f"[LiDARComponent].range_image_return{r}{s}", t) for r in (1, 2) for s, t in RI()],
    "lidar_calibration": [("key.segment_context_name", STR), ("key.laser_name", I8),
                          ("[LiDARCalibrationComponent].extrinsic.transform", pa.list_(F64, 16)),
                          ("[LiDARCalibrationComponent].beam_inclination.min", F64),
                          ("[LiDARCalibrationComponent].beam_inclination.max", F64),
                          ("[LiDARCalibrationComponent].beam_inclination.values", pa.list_(F64))],
    "lidar_pose": [("key.segment_context_name", STR), ("key.frame_timestamp_micros", I64), ("key.laser_name", I8)]
    + [(f"[LiDARPoseComponent].range_image_return1{s}", t) for s, t in RI()],
    "vehicle_pose": [("key.segment_context_name", STR), ("key.frame_timestamp_micros", I64),
                     ("[VehiclePoseComponent].world_from_vehicle.transform", pa.list_(F64, 16))],
    "lidar_box": [("key.segment_context_name", STR), ("key.frame_timestamp_micros", I64),
                  ("key.laser_object_id", STR)]
    + [(f"[LiDARBoxComponent].box.{a}.{b}", F64) for a in ("center", "size") for b in "xyz"]
    + [("[LiDARBoxComponent].box.heading", F64), ("[LiDARBoxComponent].type", I8),
       ("[LiDARBoxComponent].num_lidar_points_in_box", I64), ("[LiDARBoxComponent].num_top_lidar_points_in_box", I64)]
    + [(f"[LiDARBoxComponent].{a}.{b}", F64) for a in ("speed", "acceleration") for b in "xyz"]
    + [("[LiDARBoxComponent].difficulty_level.detection", I8), ("[LiDARBoxComponent].difficulty_level.tracking", I8)],
    "camera_calibration": [("key.segment_context_name", STR), ("key.camera_name", I8)]
    + [(f"[CameraCalibrationComponent].intrinsic.{k}", F64) for k in ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1",
                                                                        "p2", "k3")]
    + [("[CameraCalibrationComponent].extrinsic.transform", pa.list_(F64, 16)),
       ("[CameraCalibrationComponent].width", I32), ("[CameraCalibrationComponent].height", I32),
       ("[CameraCalibrationComponent].rolling_shutter_direction", I8)],
}


def write_component(root: Path, split: str, comp: str, rows: list[dict], schema=None, seg: str = SEG) -> Path:
    fields = schema if schema is not None else SCHEMAS[comp]
    sch = pa.schema([pa.field(n, t) for n, t in fields])
    data = {n: [r.get(n) for r in rows] for n, _ in fields}
    path = root / split / comp / f"{seg}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(data, schema=sch), path)
    return path


def rz(yaw: float, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    m = np.eye(4)
    m[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
    m[:3, 3] = t
    return m


def image(h, w, c, pixels: dict) -> dict:
    a = np.zeros((h, w, c), np.float32)
    for (i, j), v in pixels.items():
        a[i, j, :len(v)] = v
    return {"values": a.reshape(-1).tolist(), "shape": [h, w, c]}


def make_root(root: Path, split: str = "training", with_pose: bool = True, seg: str = SEG) -> None:
    """Two frames; FRONT (laser 2) with min/max inclinations, TOP (laser 1) with per-row values + pixel poses."""
    key = {"key.segment_context_name": seg}
    write_component = lambda *a, **k: globals()["write_component"](*a, **k, seg=seg)  # noqa: E731
    P = "[LiDARComponent].range_image_return"
    lidar_rows = []
    for ts in (T0, T1):
        # FRONT: 2 x 4, return 1: range 10 at (1, 1), intensity .5, elongation .25; NLZ pixel (0, 3) range 7
        f1 = image(2, 4, 4, {(1, 1): (10.0, 0.5, 0.25, -1.0), (0, 3): (7.0, 0.1, 0.2, 1.0)})
        f2 = image(2, 4, 4, {(0, 0): (3.0, 0.7, 0.0, -1.0)})
        # TOP: 3 x 2, return 1: range 2 at (0, 0) and range 4 at (2, 1); return 2 empty
        t1 = image(3, 2, 4, {(0, 0): (2.0, 1.0, 0.0, -1.0), (2, 1): (4.0, 2.0, 0.5, -1.0)})
        t2 = image(3, 2, 4, {})
        for laser, (a, b) in ((2, (f1, f2)), (1, (t1, t2))):
            lidar_rows.append({**key, "key.frame_timestamp_micros": ts, "key.laser_name": laser,
                               f"{P}1.values": a["values"], f"{P}1.shape": a["shape"],
                               f"{P}2.values": b["values"], f"{P}2.shape": b["shape"]})
    write_component(root, split, "lidar", lidar_rows)
    C = "[LiDARCalibrationComponent]"
    write_component(root, split, "lidar_calibration", [
        {**key, "key.laser_name": 2, f"{C}.extrinsic.transform": rz(math.pi / 2, (1.0, 0.0, 2.0)).reshape(-1).tolist(),
         f"{C}.beam_inclination.min": -0.2, f"{C}.beam_inclination.max": 0.2, f"{C}.beam_inclination.values": None},
        {**key, "key.laser_name": 1, f"{C}.extrinsic.transform": np.eye(4).reshape(-1).tolist(),
         f"{C}.beam_inclination.min": -0.3, f"{C}.beam_inclination.max": 0.2,
         f"{C}.beam_inclination.values": [-0.3, 0.0, 0.2]}])
    if with_pose:
        # every pixel: vehicle→world translation (5, 0, 0); pixel (2, 1) also yawed by +90°
        pose = np.zeros((3, 2, 6), np.float32)
        pose[..., 3] = 5.0
        pose[2, 1, 2] = math.pi / 2
        pose[2, 1, 3] = 4.0
        write_component(root, split, "lidar_pose", [
            {**key, "key.frame_timestamp_micros": ts, "key.laser_name": 1,
             "[LiDARPoseComponent].range_image_return1.values": pose.reshape(-1).tolist(),
             "[LiDARPoseComponent].range_image_return1.shape": [3, 2, 6]} for ts in (T0, T1)])
    write_component(root, split, "vehicle_pose", [
        {**key, "key.frame_timestamp_micros": ts,
         "[VehiclePoseComponent].world_from_vehicle.transform": rz(0.0, (4.0, 0.0, 0.0)).reshape(-1).tolist()}
        for ts in (T0, T1)])
    B = "[LiDARBoxComponent]"

    def box(ts, oid, c, s, h, typ, n, diff):
        row = {**key, "key.frame_timestamp_micros": ts, "key.laser_object_id": oid, f"{B}.box.heading": h,
               f"{B}.type": typ, f"{B}.num_lidar_points_in_box": n, f"{B}.num_top_lidar_points_in_box": n,
               f"{B}.difficulty_level.detection": diff, f"{B}.difficulty_level.tracking": 0}
        row.update({f"{B}.box.center.{a}": v for a, v in zip("xyz", c)})
        row.update({f"{B}.box.size.{a}": v for a, v in zip("xyz", s)})
        row.update({f"{B}.{a}.{b}": 0.0 for a in ("speed", "acceleration") for b in "xyz"})
        return row
    write_component(root, split, "lidar_box", [
        box(T0, "car", (10.0, 1.0, 1.0), (4.0, 2.0, 2.0), 0.3, 1, 120, 1),
        box(T0, "sign", (5.0, 5.0, 2.0), (0.1, 0.5, 0.5), 0.0, 3, 4, 1),
        box(T0, "bike", (-3.0, 2.0, 0.9), (1.8, 0.6, 1.8), -1.0, 4, 3, 2),
    ])


def expected_points(ts: int) -> np.ndarray:
    """The hand-computed points (return 1 of TOP, FRONT; then return 2 of FRONT)."""
    def sph(r, az, inc):
        return np.array([r * math.cos(az) * math.cos(inc), r * math.sin(az) * math.cos(inc), r * math.sin(inc)])
    rows = []
    # TOP: rows → inclinations (0.2, 0.0, -0.3); cols → azimuth (+pi/2, -pi/2); identity extrinsic.
    # pixel (0,0): world = p + (5,0,0), back to the vehicle: - (4,0,0)  → p + (1,0,0)
    rows.append([*(sph(2.0, math.pi / 2, 0.2) + [1, 0, 0]), 1.0, 0.0])
    # pixel (2,1): p = sph(4, -pi/2, -0.3); world = Rz(90) p + (4,0,0); vehicle = world - (4,0,0) = Rz(90) p
    p = sph(4.0, -math.pi / 2, -0.3)
    rows.append([-p[1], p[0], p[2], 2.0, 0.5])
    # FRONT: uniform inclinations min + (i + .5)/2 (max - min) = (-0.1, 0.1), reversed → rows (0.1, -0.1);
    # columns: ((4 - j - .5)/4 * 2 - 1) pi = (.75, .25, -.25, -.75) pi, minus the yaw correction pi/2;
    # then Rz(90) puts them back at (.75, .25, ...) pi in the vehicle frame, + (1, 0, 2).
    rows.append([*(sph(7.0, -0.75 * math.pi, 0.1) + [1, 0, 2]), 0.1, 0.2])      # (0, 3): NLZ pixel
    rows.append([*(sph(10.0, 0.25 * math.pi, -0.1) + [1, 0, 2]), 0.5, 0.25])   # (1, 1)
    rows.append([*(sph(3.0, 0.75 * math.pi, 0.1) + [1, 0, 2]), 0.7, 0.0])      # return 2, (0, 0)
    out = np.array(rows)
    return np.concatenate([out, np.full((len(out), 1), float(np.float32(ts)))], 1)


def test_inclination_and_azimuth_formulas():
    np.testing.assert_allclose(ri.compute_inclination(-0.2, 0.2, 2), [-0.1, 0.1])
    np.testing.assert_allclose(ri.row_inclinations(3, values=np.array([-0.3, 0.0, 0.2])), [0.2, 0.0, -0.3])
    np.testing.assert_allclose(ri.row_inclinations(2, -0.2, 0.2), [0.1, -0.1])
    np.testing.assert_allclose(ri.column_azimuths(4, np.eye(4)), np.array([0.75, 0.25, -0.25, -0.75]) * np.pi)
    np.testing.assert_allclose(ri.column_azimuths(4, rz(0.3)), np.array([0.75, 0.25, -0.25, -0.75]) * np.pi - 0.3)
    # Rz(yaw) Ry(pitch) Rx(roll): check against explicit products
    r, p, y = 0.1, -0.2, 0.7
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    np.testing.assert_allclose(ri.rotation_from_rpy(np.array(r), np.array(p), np.array(y)), rz(y)[:3, :3] @ ry @ rx)
    with pytest.raises(ValueError, match="entries"):
        ri.row_inclinations(4, values=np.array([0.1, 0.2]))


def test_hand_made_range_images(tmp_path):
    make_root(tmp_path)
    seg = WaymoV2Segment(tmp_path / "training", SEG)
    assert seg.timestamps == [T0, T1]
    pts, lasers, returns = seg.points(T0)
    assert pts.dtype == np.float32 and pts.shape == (5, 6)
    np.testing.assert_allclose(pts, expected_points(T0), rtol=1e-6, atol=1e-5)
    assert lasers.tolist() == [1, 1, 2, 2, 2] and returns.tolist() == [1, 1, 1, 1, 2]
    # the no-label-zone filter drops the one pixel whose channel 3 is 1
    seg_nlz = WaymoV2Segment(tmp_path / "training", SEG, filter_no_label_zone=True)
    np.testing.assert_allclose(seg_nlz.points(T0)[0], np.delete(expected_points(T0), 2, 0), rtol=1e-6, atol=1e-5)
    # only the first return
    assert WaymoV2Segment(tmp_path / "training", SEG, returns=(1,)).points(T1)[0].shape == (4, 6)


def test_top_without_pixel_pose_is_counted(tmp_path):
    make_root(tmp_path, with_pose=False)
    seg = WaymoV2Segment(tmp_path / "training", SEG)
    with pytest.warns(UserWarning, match="no rolling-shutter correction"):
        pts, _, _ = seg.points(T0)
    assert seg.num_missing_pixel_pose == 1
    # without the pose the TOP pixel (0, 0) is the sensor-frame point itself
    np.testing.assert_allclose(pts[0, :3], expected_points(T0)[0, :3] - [1, 0, 0], atol=1e-5)


def test_boxes_convention(tmp_path):
    make_root(tmp_path)
    boxes = read_lidar_boxes(tmp_path / "training" / "lidar_box" / f"{SEG}.parquet")
    b = boxes[T0]
    assert b["gt_bboxes_3d"].dtype == np.float32 and b["gt_labels_3d"].dtype == np.int64
    np.testing.assert_allclose(b["gt_bboxes_3d"], [[10, 1, 0, 4, 2, 2, 0.3], [-3, 2, 0, 1.8, 0.6, 1.8, -1.0]],
                               atol=1e-6)   # z: centre − dz/2; the sign is dropped
    assert b["gt_labels_3d"].tolist() == [0, 2] and b["num_lidar_pts"].tolist() == [120, 3]
    assert b["difficulty"].tolist() == [1, 2] and b["obj_ids"] == ["car", "bike"]
    seg = WaymoV2Segment(tmp_path / "training", SEG)
    assert seg.boxes(T1)["gt_bboxes_3d"].shape == (0, 7)          # a frame without boxes is valid


def test_calibration_reads_values_or_min_max(tmp_path):
    make_root(tmp_path)
    cal = read_lidar_calibrations(tmp_path / "training" / "lidar_calibration" / f"{SEG}.parquet")
    assert cal[2].inclination_values is None and cal[2].inclination_min == -0.2
    np.testing.assert_allclose(cal[1].inclination_values, [-0.3, 0.0, 0.2])


@pytest.mark.skipif(not REAL_POSE.is_file(), reason="../shared/data/waymo_v2 is absent")
def test_real_vehicle_pose_file():
    poses = read_vehicle_poses(REAL_POSE)
    assert len(poses) == 199
    m = poses[1552440195362591]
    assert m.dtype == np.float64 and m.shape == (4, 4)
    np.testing.assert_allclose(m[0, 3], 860.5947875976562)
    np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-5)   # float32 storage
    np.testing.assert_allclose(m[3], [0, 0, 0, 1])


@pytest.mark.skipif(not COLUMNS_TXT.is_file(), reason="../shared/data/waymo_v2 is absent")
def test_test_schema_matches_official_column_list():
    text = COLUMNS_TXT.read_text()
    for comp, fields in SCHEMAS.items():
        block = text.split(f"== {comp}/")[1].split("==")[0]
        names = [line.split(" : ")[0].strip() for line in block.splitlines()[1:] if " : " in line]
        assert [n for n, _ in fields] == names, comp


def test_bad_input_names_file_and_column(tmp_path):
    make_root(tmp_path)
    box_path = tmp_path / "training" / "lidar_box" / f"{SEG}.parquet"
    # missing column
    fields = [f for f in SCHEMAS["lidar_box"] if f[0] != "[LiDARBoxComponent].box.heading"]
    bad = tmp_path / "bad1"
    p = write_component(bad, "training", "lidar_box", [{"key.frame_timestamp_micros": T0}], schema=fields)
    with pytest.raises(ValueError, match=r"lidar_box/.*parquet.*missing column '\[LiDARBoxComponent\].box.heading'"):
        read_lidar_boxes(p)
    # wrong type in a column
    fields = [(n, STR if n == "[LiDARBoxComponent].box.heading" else t) for n, t in SCHEMAS["lidar_box"]]
    p = write_component(tmp_path / "bad2", "training", "lidar_box", [{"key.frame_timestamp_micros": T0}],
                        schema=fields)
    with pytest.raises(ValueError, match=r"parquet: column '\[LiDARBoxComponent\].box.heading' has type string"):
        read_lidar_boxes(p)
    # truncated file
    data = box_path.read_bytes()
    trunc = tmp_path / "trunc.parquet"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.parquet: not a readable parquet file"):
        read_lidar_boxes(trunc)
    # range image values that do not fit the shape
    lidar = tmp_path / "training" / "lidar" / f"{SEG}.parquet"
    t = pq.read_table(lidar)
    col = "[LiDARComponent].range_image_return1.shape"
    t = t.set_column(t.schema.get_field_index(col), t.schema.field(col),
                     pa.array([[2, 5, 4]] * t.num_rows, type=pa.list_(I32, 3)))
    pq.write_table(t, lidar)
    with pytest.raises(ValueError, match=r"lidar/.*parquet: column '\[LiDARComponent\].range_image_return1.values'"):
        WaymoV2Segment(tmp_path / "training", SEG).points(T0)


def test_create_data_waymo(tmp_path):
    from perception3d.datasets.waymo_v2 import convert_waymo_v2
    make_root(tmp_path / "waymo", "training")
    make_root(tmp_path / "waymo", "validation", seg="999_000_1000_000")
    out = tmp_path / "out"
    res = convert_waymo_v2(tmp_path / "waymo", out, workers=0)
    assert res["train"] == 2 and res["val"] == 2
    infos = pickle.load(open(out / "waymo_infos_train.pkl", "rb"))
    assert infos["metainfo"]["classes"] == ("Car", "Pedestrian", "Cyclist")
    first = infos["data_list"][0]
    assert first["lidar_points"]["num_pts_feats"] == 6
    pts = np.fromfile(out / first["lidar_points"]["lidar_path"], np.float32).reshape(-1, 6)
    np.testing.assert_allclose(pts, expected_points(T0), rtol=1e-6, atol=1e-5)
    inst = first["instances"]
    assert [i["bbox_label_3d"] for i in inst] == [0, 2] and inst[0]["num_lidar_pts"] == 120
    np.testing.assert_allclose(inst[0]["bbox_3d"], [10, 1, 0, 4, 2, 2, 0.3], atol=1e-6)
    assert infos["data_list"][1]["instances"] == []
    # resumable: a second run converts nothing new and gives the same infos; a missing .bin is redone
    bins = sorted((out / "points").glob("*.bin"))
    assert len(bins) == 4 and not list((out / "points").glob("*.tmp*"))
    (out / "points" / f"{bins[0].name}.abc123.tmp").write_bytes(b"half")     # left by a killed run
    mtimes = {b: b.stat().st_mtime_ns for b in bins}
    bins[0].unlink()
    res2 = convert_waymo_v2(tmp_path / "waymo", out, workers=0)
    assert res2["converted"] == 1 and res2["skipped_existing"] == 3
    assert all(b.stat().st_mtime_ns == mtimes[b] for b in bins[1:])
    assert not list((out / "points").glob("*.tmp"))
    assert pickle.load(open(out / "waymo_infos_train.pkl", "rb"))["data_list"] == infos["data_list"]


def test_create_data_tool_reports_bad_frames(tmp_path):
    """tools/create_data.py waymo: one frame with a broken range image is reported and left out, the rest kept."""
    import importlib.util
    make_root(tmp_path / "waymo", "training")
    lidar = tmp_path / "waymo" / "training" / "lidar" / f"{SEG}.parquet"
    t = pq.read_table(lidar)
    col = "[LiDARComponent].range_image_return1.shape"
    shapes = t.column(col).to_pylist()
    stamps = t.column("key.frame_timestamp_micros").to_pylist()
    shapes = [[2, 5, 4] if ts == T1 and s == [2, 4, 4] else s for s, ts in zip(shapes, stamps)]
    t = t.set_column(t.schema.get_field_index(col), t.schema.field(col), pa.array(shapes, type=pa.list_(I32, 3)))
    pq.write_table(t, lidar)
    spec = importlib.util.spec_from_file_location("create_data", Path(__file__).resolve().parents[1] / "tools" /
                                                  "create_data.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.warns(UserWarning, match="1 frames could not be converted"):
        res = tool.main(["waymo", "--root", str(tmp_path / "waymo"), "--out", str(tmp_path / "out"),
                         "--splits", "train", "val"])
    assert res["train"] == 1 and "val" not in res and len(res["bad"]) == 1 and str(T1) in res["bad"][0]
    infos = pickle.load(open(tmp_path / "out" / "waymo_infos_train.pkl", "rb"))
    assert [d["timestamp"] for d in infos["data_list"]] == [T0]


def test_camera_calibration_to_opencv(tmp_path):
    """Waymo camera frame (x forward, y left, z up) → OpenCV viewmat: a point straight ahead of a camera at
    (1, 0, 2) projects to the principal point; left of it → smaller u; above → smaller v."""
    from perception3d.datasets.waymo_v2 import read_camera_calibrations
    C = "[CameraCalibrationComponent]"
    row = {"key.segment_context_name": SEG, "key.camera_name": 1, f"{C}.intrinsic.f_u": 100.0,
           f"{C}.intrinsic.f_v": 110.0, f"{C}.intrinsic.c_u": 50.0, f"{C}.intrinsic.c_v": 40.0,
           f"{C}.extrinsic.transform": rz(0.0, (1.0, 0.0, 2.0)).reshape(-1).tolist(), f"{C}.width": 100,
           f"{C}.height": 80, f"{C}.rolling_shutter_direction": 5,
           **{f"{C}.intrinsic.{k}": 0.0 for k in ("k1", "k2", "p1", "p2", "k3")}}
    cal = read_camera_calibrations(write_component(tmp_path, "training", "camera_calibration", [row]))[1]

    def project(p):
        c = cal["viewmat"] @ np.array([*p, 1.0])
        uvw = cal["K"] @ c[:3]
        return uvw[:2] / uvw[2], c[2]
    (u, v), depth = project((11.0, 0.0, 2.0))
    np.testing.assert_allclose([u, v, depth], [50.0, 40.0, 10.0])
    (u, v), _ = project((11.0, 1.0, 2.0))
    np.testing.assert_allclose([u, v], [40.0, 40.0])
    (u, v), _ = project((11.0, 0.0, 3.0))
    np.testing.assert_allclose([u, v], [50.0, 29.0])


def test_mini_dataset_camera_images(tmp_path):
    from perception3d.datasets.synthetic.writer import generate_waymo_mini
    from perception3d.datasets.waymo_v2 import list_segments
    generate_waymo_mini(tmp_path, num_train=1, num_val=0, frames_per_segment=1, lidar_width=64, camera=True)
    seg = WaymoV2Segment(tmp_path / "training", list_segments(tmp_path / "training")[0])
    cal = seg.camera_calibrations()[1]
    img = seg.camera_images(seg.timestamps[0], decode=True)[1]
    assert img.dtype == np.float32 and img.shape == (cal["height"], cal["width"], 3)
    assert 0 <= img.min() <= img.max() <= 1
    assert isinstance(seg.camera_images(seg.timestamps[0])[1], bytes)


def test_duplicate_range_image_rows(tmp_path):
    make_root(tmp_path)
    lidar = tmp_path / "training" / "lidar" / f"{SEG}.parquet"
    t = pq.read_table(lidar)
    pq.write_table(pa.concat_tables([t, t.slice(0, 1)]), lidar)
    with pytest.raises(ValueError, match=r"lidar/.*parquet: 1 duplicate rows, e.g. 'key.frame_timestamp_micros' = "
                                         rf"{T0} with 'key.laser_name' = 2"):
        WaymoV2Segment(tmp_path / "training", SEG)


@pytest.mark.parametrize("component", ["lidar_box", "lidar", "lidar_calibration"])
def test_damaged_bytes_give_value_errors_naming_the_file(tmp_path, component):
    """Random byte damage anywhere in a component file: the reader either still reads it or raises a
    ValueError naming the file — never another exception type, never a silent wrong shape."""
    make_root(tmp_path)
    path = tmp_path / "training" / component / f"{SEG}.parquet"
    data = path.read_bytes()
    rng = np.random.default_rng(1)
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")       # parquet: metadata, length, "PAR1"
    cases = [bytes(data[:len(data) // 2]), data[:-8] + b"XXXXXXXX"]        # truncated; footer magic destroyed
    d = bytearray(data)
    d[footer:footer + 16] = b"\xff" * 16                                 # the thrift footer itself
    cases.append(bytes(d))
    for _ in range(12):
        d = bytearray(data)
        i = int(rng.integers(4, len(d) - 24))
        d[i:i + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
        cases.append(bytes(d))
    errors = []
    for k, case in enumerate(cases):
        path.write_bytes(case)
        try:
            seg = WaymoV2Segment(tmp_path / "training", SEG)
            for ts in seg.timestamps:
                pts, _, _ = seg.points(ts)
                assert pts.ndim == 2 and pts.shape[1] == 6
                seg.boxes(ts)
        except ValueError as exc:
            assert str(path) in str(exc)
            errors.append(k)
    assert {0, 1, 2} <= set(errors), errors          # the damage that cannot be harmless is always reported


def test_streaming_equals_random_access_on_shuffled_row_groups(tmp_path):
    """Rows in any order and split over many row groups: iter_points (streaming) = points (random access)."""
    make_root(tmp_path)
    for comp in ("lidar", "lidar_pose"):
        path = tmp_path / "training" / comp / f"{SEG}.parquet"
        t = pq.read_table(path)
        t = t.take(pa.array(np.random.default_rng(3).permutation(t.num_rows)))
        pq.write_table(t, path, row_group_size=1)
    seg = WaymoV2Segment(tmp_path / "training", SEG)
    streamed = dict(seg.iter_points())
    assert sorted(streamed) == [T0, T1]
    for ts in (T0, T1):
        np.testing.assert_array_equal(streamed[ts][0], seg.points(ts)[0])
    np.testing.assert_allclose(streamed[T0][0], expected_points(T0), rtol=1e-6, atol=1e-5)
    assert [t for t, _ in seg.iter_points([T1])] == [T1]


def test_rolling_shutter_correction_recovers_a_static_wall():
    """A vehicle that drives and turns during one sweep sees the static wall x_world = 20 from a different pose
    at every column.  Range image built by ray casting from each column's pose; converted with the per-pixel
    pose and the frame pose, every point must lie on the wall again (without the correction it is smeared)."""
    h, w = 4, 32
    incl = np.array([0.1, 0.03, -0.03, -0.1])                               # row 0 = highest
    az = ((w - np.arange(w) - 0.5) / w * 2 - 1) * np.pi                      # official column azimuths
    t = np.linspace(0, 0.1, w)                                               # firing time per column
    yaw, tx, ty = 0.3 * t, 2.0 + 15.0 * t, -1.0 + 2.0 * t                    # vehicle pose per column
    frame_pose = rz(0.3 * 0.05, (2.0 + 15.0 * 0.05, -1.0 + 2.0 * 0.05, 0.0))  # pose at the frame time
    rng_img = np.zeros((h, w, 4), np.float32)
    pose_img = np.zeros((h, w, 6), np.float32)
    for i in range(h):
        for j in range(w):
            d = np.array([math.cos(az[j]) * math.cos(incl[i]), math.sin(az[j]) * math.cos(incl[i]), math.sin(incl[i])])
            wd = rz(yaw[j])[:3, :3] @ d
            pose_img[i, j] = (0.0, 0.0, yaw[j], tx[j], ty[j], 0.0)
            if wd[0] > 0.2:
                rng_img[i, j, 0] = (20.0 - tx[j]) / wd[0]
    xyz, _, mask = ri.range_image_to_points(rng_img, np.eye(4), incl, pose_img, frame_pose)
    assert mask.sum() > 20
    world = xyz.astype(np.float64) @ frame_pose[:3, :3].T + frame_pose[:3, 3]
    np.testing.assert_allclose(world[:, 0], 20.0, atol=2e-4)
    naive, _, _ = ri.range_image_to_points(rng_img, np.eye(4), incl)          # no correction: smeared
    naive_world = naive.astype(np.float64) @ frame_pose[:3, :3].T + frame_pose[:3, 3]
    assert np.abs(naive_world[:, 0] - 20.0).max() > 0.3


def test_column_constant_pose_fast_path_equals_general_path():
    rng = np.random.default_rng(5)
    img = np.zeros((6, 40, 4), np.float32)
    img[..., 0] = rng.uniform(-5, 60, (6, 40))
    col = np.concatenate([rng.normal(0, 0.2, (40, 3)), rng.normal(0, 50, (40, 3))], 1).astype(np.float32)
    pose = np.broadcast_to(col, (6, 40, 6)).copy()
    ext, fp = rz(0.4, (1.0, 0.5, 2.0)), rz(-0.2, (10.0, 3.0, 1.0))
    incl = ri.row_inclinations(6, -0.3, 0.1)
    fast, _, m1 = ri.range_image_to_points(img, ext, incl, pose, fp)                          # [H, W, 6]
    general, _, m2 = ri.range_image_to_points(img, ext, incl, ri.pixel_pose_transforms(pose), fp)  # [H, W, 4, 4]
    dense = ri.range_image_to_cartesian(img[..., 0], ext, incl, ri.pixel_pose_transforms(pose), fp)[m1]
    assert (m1 == m2).all() and m1.sum() > 100
    np.testing.assert_allclose(fast, general, atol=1e-4)
    np.testing.assert_allclose(fast, dense, atol=1e-4)


def test_convert_top_first_return_only(tmp_path):
    from perception3d.datasets.waymo_v2 import convert_waymo_v2
    make_root(tmp_path / "waymo")
    convert_waymo_v2(tmp_path / "waymo", tmp_path / "out", splits=("train",), lasers=(1,), returns=(1,),
                     progress=False)
    pts = np.fromfile(tmp_path / "out" / "points" / f"{SEG}_{T0}.bin", np.float32).reshape(-1, 6)
    np.testing.assert_allclose(pts, expected_points(T0)[:2], rtol=1e-6, atol=1e-5)
