"""The built-in mini dataset (perception3d.datasets.synthetic: the street simulator and its Waymo v2 writer).

Checks: the written parquet schemas equal the official v2 column list; generation is deterministic in the seed
and idempotent; a wall at a known distance gives the analytic ranges; ``num_lidar_points_in_box`` equals a count
on points converted back from the written range image by an independent implementation of the official
conversion (and by the package's Waymo v2 reader); a box hidden behind a wall gets no points; the camera
renders an object where the calibration projects it.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from perception3d.datasets.synthetic import (CameraSpec, LidarSpec, SceneBuilder, pose_matrix, render_camera,
                                             rpy_from_rotation, simulate_lidar)
from perception3d.datasets.synthetic.writer import (MANIFEST_NAME, V2_SCHEMAS, ensure_waymo_mini,
                                                    generate_waymo_mini)

COLUMNS_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "waymo_v2" / "v2_component_columns.txt"
SMALL = dict(num_train=3, num_val=2, frames_per_segment=2, lidar_width=512, seed=3)   # segments: 2 train, 1 val


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("waymo_mini")
    summary = generate_waymo_mini(root, **SMALL)
    assert summary["skipped"] is False
    return root


def count_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Independent reference (not the generator's count): shapely's point-in-rotated-rectangle (boundary included)
    and a z interval, for centre boxes ``(cx, cy, cz, l, w, h, heading)``."""
    import shapely
    from shapely import affinity
    from shapely.geometry import box as rect
    pts = np.asarray(points, np.float64)
    out = []
    for cx, cy, cz, l, w, h, yaw in np.asarray(boxes, np.float64).reshape(-1, 7):
        poly = affinity.rotate(rect(cx - l / 2, cy - w / 2, cx + l / 2, cy + w / 2), yaw, origin=(cx, cy),
                               use_radians=True)
        inz = np.abs(pts[:, 2] - cz) <= h / 2
        out.append(int((shapely.intersects_xy(poly, pts[:, 0], pts[:, 1]) & inz).sum()))
    return np.array(out, np.int64)


def _official_columns() -> dict:
    if not COLUMNS_FILE.is_file():
        pytest.skip(f"official column list not found at {COLUMNS_FILE} (../shared/data is absent)")
    out, comp = {}, None
    for line in COLUMNS_FILE.read_text().splitlines():
        m = re.match(r"== (\w+)/", line)
        if m:
            comp = m.group(1)
            out[comp] = []
        elif comp and line.startswith("    ") and " : " in line:
            name, typ = line.strip().split(" : ", 1)
            out[comp].append((name, typ))
        elif not line.startswith("    "):
            comp = None
    return out


# ------------------------------------------------------------------------------------------------------------
# schema, determinism, idempotency
# ------------------------------------------------------------------------------------------------------------
def test_schema_equals_official_column_list(small_root):
    official = _official_columns()
    for comp, schema in V2_SCHEMAS.items():
        assert comp in official, comp
        assert [(f.name, str(f.type)) for f in schema] == official[comp], comp
        files = sorted((small_root / "training" / comp).glob("*.parquet"))
        assert len(files) == 2, comp
        written = pq.read_schema(files[0])
        assert [(f.name, str(f.type)) for f in written] == official[comp], comp


def _tables(root: Path) -> dict:
    return {str(p.relative_to(root)): pq.read_table(p) for p in sorted(root.glob("*/*/*.parquet"))}


def test_deterministic_in_seed(small_root, tmp_path):
    generate_waymo_mini(tmp_path / "again", **SMALL)
    a, b = _tables(small_root), _tables(tmp_path / "again")
    assert a.keys() == b.keys() and len(a) == 3 * len(V2_SCHEMAS)
    for k in a:
        assert a[k].equals(b[k]), k
    generate_waymo_mini(tmp_path / "other", **dict(SMALL, seed=4, num_train=0, num_val=1, camera=False))
    ri = lambda root: pq.read_table(next((root / "validation" / "lidar").glob("*.parquet"))).column(  # noqa
        "[LiDARComponent].range_image_return1.values")[0].values.to_numpy()
    assert not np.array_equal(ri(small_root), ri(tmp_path / "other"))


def test_idempotent_and_repairs_partial_runs(tmp_path):
    params = dict(num_train=1, num_val=1, frames_per_segment=2, lidar_width=256, camera=False, seed=1)
    root = tmp_path / "mini"
    assert generate_waymo_mini(root, **params)["skipped"] is False
    lidar = next((root / "training" / "lidar").glob("*.parquet"))
    stamp = lidar.stat().st_mtime_ns
    assert generate_waymo_mini(root, **params)["skipped"] is True
    assert ensure_waymo_mini(root, **params) == root and lidar.stat().st_mtime_ns == stamp
    assert ensure_waymo_mini(root) == root and lidar.stat().st_mtime_ns == stamp   # any complete dataset
    before = _tables(root)
    # a partial run: a file gone (and with it the guarantee) → regenerated, same content
    lidar.unlink()
    assert generate_waymo_mini(root, **params)["skipped"] is False
    after = _tables(root)
    assert before.keys() == after.keys() and all(before[k].equals(after[k]) for k in before)
    # other parameters → the old segments are replaced, not mixed in
    generate_waymo_mini(root, **dict(params, num_train=3))
    assert len(list((root / "training" / "lidar").glob("*.parquet"))) == 2
    assert (root / MANIFEST_NAME).is_file() and not list(root.glob("**/.*.tmp"))


def test_bad_arguments_and_foreign_data(tmp_path):
    with pytest.raises(ValueError, match="frames_per_segment"):
        generate_waymo_mini(tmp_path / "a", frames_per_segment=0)
    real = tmp_path / "real" / "training" / "lidar"
    real.mkdir(parents=True)
    (real / "10023947602400723454_1120_000_1140_000.parquet").write_bytes(b"PAR1")
    with pytest.raises(FileExistsError, match="did not write"):
        generate_waymo_mini(tmp_path / "real", num_train=1, num_val=0)
    assert (real / "10023947602400723454_1120_000_1140_000.parquet").is_file()


@pytest.mark.slow
def test_default_dataset_size_and_time(tmp_path):
    """The default dataset: 160 + 40 frames, each its own scene, every class present (the generation time is
    printed: about a minute on a 2-core machine with nothing else running)."""
    s = generate_waymo_mini(tmp_path / "mini")
    print(f"default mini dataset: {s['seconds']} s wall, {s['cpu_seconds']} s CPU")
    tr, va = s["splits"]["train"], s["splits"]["val"]
    assert (tr["frames"], va["frames"], tr["segments"], va["segments"]) == (160, 40, 160, 40)
    for split in (tr, va):
        assert split["boxes"]["vehicle"]["level_1"] >= 10 * split["frames"] // 2
        assert split["boxes"]["pedestrian"]["level_1"] >= 3 * split["frames"]
    assert tr["boxes"]["cyclist"]["level_1"] >= 20


# ------------------------------------------------------------------------------------------------------------
# an independent implementation of the official range image → points conversion (range_image_utils.py)
# ------------------------------------------------------------------------------------------------------------
def _rot_rpy(roll, pitch, yaw):
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.stack([np.ones_like(cr), 0 * cr, 0 * cr, 0 * cr, cr, -sr, 0 * cr, sr, cr], -1)
    ry = np.stack([cp, 0 * cp, sp, 0 * cp, np.ones_like(cp), 0 * cp, -sp, 0 * cp, cp], -1)
    rz = np.stack([cy, -sy, 0 * cy, sy, cy, 0 * cy, 0 * cy, 0 * cy, np.ones_like(cy)], -1)
    sh = np.shape(roll) + (3, 3)
    return rz.reshape(sh) @ ry.reshape(sh) @ rx.reshape(sh)


def _to_points(ri, extrinsic, incl_lowest_first, pose_img=None, frame_pose=None):
    h, w = ri.shape[:2]
    incl = np.asarray(incl_lowest_first, np.float64)[::-1]                   # row 0 = highest beam
    az = ((w - np.arange(w) - 0.5) / w * 2.0 - 1.0) * np.pi - np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    r = ri[..., 0].astype(np.float64)
    p = np.stack([np.cos(az)[None] * np.cos(incl)[:, None] * r, np.sin(az)[None] * np.cos(incl)[:, None] * r,
                  np.sin(incl)[:, None] * r], -1)
    p = p @ extrinsic[:3, :3].T + extrinsic[:3, 3]
    if pose_img is not None:
        pim = pose_img.astype(np.float64)
        rot = _rot_rpy(pim[..., 0], pim[..., 1], pim[..., 2])
        p = np.einsum("hwij,hwj->hwi", rot, p) + pim[..., 3:6]
        inv = np.linalg.inv(frame_pose)
        p = p @ inv[:3, :3].T + inv[:3, 3]
    return p[r > 0]


def _cell(table, col, row, dtype=np.float64):
    return np.asarray(table.column(col)[row].values.to_numpy(zero_copy_only=False), dtype)


def test_num_points_in_box_matches_points_from_range_image(small_root):
    split = small_root / "training"
    checked = 0
    for lidar_file in sorted((split / "lidar").glob("*.parquet")):
        seg = lidar_file.stem
        lidar = pq.read_table(lidar_file)
        calib = pq.read_table(split / "lidar_calibration" / f"{seg}.parquet")
        poses = pq.read_table(split / "lidar_pose" / f"{seg}.parquet")
        vpose = pq.read_table(split / "vehicle_pose" / f"{seg}.parquet")
        boxes = {k: np.asarray(v) for k, v in pq.read_table(split / "lidar_box" / f"{seg}.parquet")
                 .to_pydict().items()}
        extr = _cell(calib, "[LiDARCalibrationComponent].extrinsic.transform", 0).reshape(4, 4)
        incl = _cell(calib, "[LiDARCalibrationComponent].beam_inclination.values", 0)
        assert np.all(np.diff(incl) > 0), "inclinations are stored lowest beam first"
        for i in range(lidar.num_rows):
            ts = lidar.column("key.frame_timestamp_micros")[i].as_py()
            shape = _cell(lidar, "[LiDARComponent].range_image_return1.shape", i, np.int64)
            ri = _cell(lidar, "[LiDARComponent].range_image_return1.values", i, np.float32).reshape(shape)
            j = vpose.column("key.frame_timestamp_micros").to_pylist().index(ts)
            fp = _cell(vpose, "[VehiclePoseComponent].world_from_vehicle.transform", j).reshape(4, 4)
            k = poses.column("key.frame_timestamp_micros").to_pylist().index(ts)
            pim = _cell(poses, "[LiDARPoseComponent].range_image_return1.values", k, np.float32).reshape(
                _cell(poses, "[LiDARPoseComponent].range_image_return1.shape", k, np.int64))
            pts = _to_points(ri, extr, incl, pim, fp)
            sel = boxes["key.frame_timestamp_micros"] == ts
            b = {k: v[sel] for k, v in boxes.items()}
            c = "[LiDARBoxComponent]."
            arr = np.stack([b[f"{c}box.{k}"] for k in ("center.x", "center.y", "center.z", "size.x", "size.y",
                                                        "size.z", "heading")], 1)
            counts = count_points_in_boxes(pts, arr)
            assert np.array_equal(counts, b[f"{c}num_lidar_points_in_box"])
            assert np.array_equal(counts, b[f"{c}num_top_lidar_points_in_box"])
            assert np.array_equal(b[f"{c}difficulty_level.detection"], np.where(counts <= 5, 2, 1))
            assert (counts > 0).sum() >= 5 and set(b[f"{c}type"].tolist()) <= {1, 2, 4}
            # return 2 holds no returns, no-label-zone is -1
            assert (_cell(lidar, "[LiDARComponent].range_image_return2.values", i) == -1).all()
            assert set(np.unique(ri[..., 3])) == {-1.0}
            checked += 1
    assert checked == 3


def test_package_reader_agrees(small_root):
    """The package's v2 reader (another module) gets the same points and the same per-box counts."""
    import perception3d.datasets.waymo_v2 as wv2
    split = wv2.find_split_dir(small_root, "val")
    seg = wv2.WaymoV2Segment(split, wv2.list_segments(split)[0])
    assert len(seg) == 2 and seg.num_missing_pixel_pose == 0
    for ts in seg.timestamps:
        fr = seg.frame(ts)
        b = fr["gt_bboxes_3d"].astype(np.float64)
        centre = b.copy()
        centre[:, 2] += b[:, 5] / 2
        assert np.array_equal(count_points_in_boxes(fr["points"], centre), fr["num_lidar_pts"])
    cal = seg.camera_calibrations()[1]
    assert (cal["width"], cal["height"]) == (320, 192)
    import cv2
    img = cv2.imdecode(np.frombuffer(seg.camera_images(seg.timestamps[0])[1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (192, 320, 3)


# ------------------------------------------------------------------------------------------------------------
# hand-checkable geometry
# ------------------------------------------------------------------------------------------------------------
def _wall_scene(x_face=10.0, height=50.0, ground=False):
    sb = SceneBuilder(ground=ground)
    sb.box((x_face + 0.5, 0.0, height / 2 - 5.0), (1.0, 200.0, height), 0.0, 0.3, (0.5, 0.5, 0.5))
    return sb


def test_wall_ranges_equal_analytic_distance():
    spec = LidarSpec(width=512, range_noise=0.0, dropout=0.0)
    rng = np.random.default_rng(0)
    ri, _ = simulate_lidar(_wall_scene().finish(), np.eye(4), spec, rng)
    d = spec.sensor_dirs() @ spec.extrinsic[:3, :3].T                        # [H, W, 3] vehicle frame
    o = spec.extrinsic[:3, 3]
    with np.errstate(divide="ignore"):
        t = np.where(d[..., 0] > 1e-9, (10.0 - o[0]) / d[..., 0], np.inf)
    z = o[2] + t * d[..., 2]
    expect = np.isfinite(t) & (t < spec.max_range) & (z > -5) & (z < 45) & (np.abs(o[1] + t * d[..., 1]) < 100)
    assert expect.sum() > 10000
    assert np.array_equal(ri[..., 0] > 0, expect)
    np.testing.assert_allclose(ri[..., 0][expect], t[expect], rtol=0, atol=1e-4)
    pts = _to_points(ri, spec.extrinsic, spec.inclinations)
    np.testing.assert_allclose(pts[:, 0], 10.0, atol=1e-4)                    # the wall's face, x = 10 m
    # with the default noise (sigma 2 cm) and 2 % dropouts
    spec = LidarSpec(width=512)
    ri, _ = simulate_lidar(_wall_scene().finish(), np.eye(4), spec, rng)
    valid = ri[..., 0] > 0
    assert not (valid & ~expect).any()
    res = ri[..., 0][valid] - t[valid]
    assert abs(res.mean()) < 2e-3 and 0.018 < res.std() < 0.022 and np.abs(res).max() < 0.15
    assert 0.015 < 1 - valid[expect].mean() < 0.025
    assert (ri[..., 1][valid] > 0).all() and (ri[..., 2][valid] > 0).all()


def test_rolling_shutter_pixel_pose_undoes_ego_motion():
    """Ego at 10 m/s during the sweep: with the per-pixel poses (official conversion) the wall is flat again."""
    spec = LidarSpec(width=256, range_noise=0.0, dropout=0.0)
    k = 16
    taus = ((np.arange(k) + 0.5) / k - 0.5) * 0.1
    frame_pose = pose_matrix(3.0, 1.0, 0.0, yaw=0.0)
    col_poses = np.repeat(frame_pose[None], k, 0)
    col_poses[:, 0, 3] += 10.0 * taus                                         # up to ±0.47 m
    ri, _ = simulate_lidar(_wall_scene(x_face=13.0).finish(), frame_pose, spec, np.random.default_rng(0),
                           column_poses=col_poses)
    pose_img = np.zeros((spec.height, spec.width, 6), np.float32)
    pose_img[..., 3:6] = np.repeat(col_poses[:, :3, 3], spec.width // k, 0)[None]
    pts = _to_points(ri, spec.extrinsic, spec.inclinations, pose_img, frame_pose)
    np.testing.assert_allclose(pts[:, 0], 10.0, atol=1e-4)                    # wall at x = 13 m world, 10 m vehicle
    naive = _to_points(ri, spec.extrinsic, spec.inclinations)                 # ignoring the pixel poses
    assert np.abs(naive[:, 0] - 10.0).max() > 0.1                             # the wall faces the middle columns


def test_occluded_box_gets_no_points():
    spec = LidarSpec(width=1024)
    box = (16.0, 0.0, 0.75, 4.5, 1.9, 1.5, 0.3)                              # centre, size, heading (vehicle)

    def points_in_box(with_wall: bool) -> int:
        sb = _wall_scene(x_face=10.0, height=5.0 + 4.0) if with_wall else SceneBuilder(ground=False)
        sb.box(box[:3], box[3:6], box[6], 0.4, (0.8, 0.1, 0.1), obj=0)
        ri, obj = simulate_lidar(sb.finish(), np.eye(4), spec, np.random.default_rng(1))
        pts = _to_points(ri, spec.extrinsic, spec.inclinations)
        label = np.array([box]) + [0, 0, 0, 0.2, 0.2, 0.2, 0]                  # 10 cm margin for the noise
        n = int(count_points_in_boxes(pts, label)[0])
        assert n == int((obj == 0).sum())
        return n

    assert points_in_box(with_wall=False) > 100
    assert points_in_box(with_wall=True) == 0


def test_camera_renders_object_where_calibration_projects_it():
    cam = CameraSpec()
    sb = SceneBuilder(ground=True)
    centre_v = np.array([20.0, 3.0, 1.0])
    pose = pose_matrix(5.0, -2.0, 0.0, yaw=0.4)                               # world_from_vehicle
    centre_w = pose[:3, :3] @ centre_v + pose[:3, 3]
    sb.box(centre_w, (1.5, 1.5, 2.0), 0.0, 0.3, (1.0, 0.0, 0.0))
    img = render_camera(sb.finish(), pose, cam, np.random.default_rng(0), sun=np.array([0.0, 0.0, 1.0]))
    assert img.shape == (192, 320, 3) and img.dtype == np.uint8
    uv, depth = cam.project(centre_v[None])
    u, v = int(round(uv[0, 0])), int(round(uv[0, 1]))
    assert depth[0] > 0 and 0 <= u < 320 and 0 <= v < 192
    r, g, b = img[v, u].astype(int)
    assert r > 80 and g < 40 and b < 40                                      # the red box
    # Waymo camera frame: y left → the object (y = +3 m) is left of the image centre; ground below it is grey
    assert u < cam.c_u
    gr, gg, gb = img[185, 160].astype(int)
    assert abs(gr - gg) < 25 and abs(gg - gb) < 25


def test_pose_rpy_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(5):
        rpy = rng.uniform(-0.5, 0.5, 3)
        m = pose_matrix(1.0, 2.0, 3.0, *rpy)
        np.testing.assert_allclose(rpy_from_rotation(m[:3, :3]), rpy, atol=1e-12)
        np.testing.assert_allclose(m[:3, :3], _rot_rpy(*rpy), atol=1e-12)


def test_no_label_zone_points_kept_by_default_dropped_on_request(small_root, tmp_path):
    """The authors' Waymo config (DSVT / OpenPCDet ``waymo_dataset.yaml``: ``DISABLE_NLZ_FLAG_ON_POINTS: True``)
    keeps no-label-zone points, so the converter's default keeps them; ``filter_no_label_zone=True`` drops exactly
    the returns flagged 1 in range-image channel 3 (mmdet3d's converter default)."""
    import shutil

    import pyarrow as pa
    wv2 = pytest.importorskip("perception3d.datasets.waymo_v2")
    root = tmp_path / "nlz"
    shutil.copytree(small_root / "validation", root / "validation")
    split = wv2.find_split_dir(root, "val")
    name = wv2.list_segments(split)[0]
    path = split / "lidar" / f"{name}.parquet"
    table = pq.read_table(path)
    col = "[LiDARComponent].range_image_return1.values"
    rows = table.column(col).to_pylist()
    flagged = 0
    for r, values in enumerate(rows):
        img = np.asarray(values, np.float32).reshape(-1, 4)
        returns = np.flatnonzero(img[:, 0] > 0)
        hit = returns[::7]                      # every 7th return of every TOP image lies in a no-label zone
        img[hit, 3] = 1.0
        flagged += len(hit) if table.column("key.laser_name")[r].as_py() == 1 else 0
        rows[r] = img.reshape(-1).tolist()
    i = table.schema.get_field_index(col)
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(rows, table.schema.field(i).type)), path)
    assert flagged > 0
    counts = {}
    for flag in (None, False, True):
        seg = wv2.WaymoV2Segment(split, name) if flag is None else \
            wv2.WaymoV2Segment(split, name, filter_no_label_zone=flag)
        counts[flag] = sum(seg.frame(ts)["points"].shape[0] for ts in seg.timestamps)
    assert counts[None] == counts[False]
    assert counts[False] - counts[True] == flagged


def test_cars_show_their_heading():
    """A car's cabin (glass + roof) sits towards its rear: the points of the upper half of a ray-cast car lie
    behind its box centre along the heading, so front and back differ (generator version 7)."""
    from perception3d.datasets.synthetic import sample_street_segment
    cars = [a for i in range(4) for a in sample_street_segment(np.random.default_rng([7, i]), num_frames=1).agents
            if a.subtype == "car"]
    assert len(cars) >= 10
    for a in cars:
        frac, off = a.params["cabin_frac"], a.params["cabin_off"]
        rear_overhang = off - frac / 2 + 0.5                   # cabin's rear end, from the rear bumper, / length
        assert 0.02 <= rear_overhang <= 0.12 + 1e-9 and off < -0.05, a.params
    # ray-cast one car seen from its side: its high points are behind the box centre
    sb = SceneBuilder(ground=False)
    car = cars[0]
    from perception3d.datasets.synthetic import Agent
    from perception3d.datasets.synthetic.objects import _add_agent_shape
    probe = Agent("probe", "vehicle", "car", car.size, 0.0, np.array([[0.0, 8.0, 0.0]]), np.zeros((1, 2)),
                  car.paint, car.paint_refl, car.params)
    _add_agent_shape(sb, probe, 0, 0)
    spec = LidarSpec(width=2048, dropout=0.0)
    ri, _ = simulate_lidar(sb.finish(), np.eye(4), spec, np.random.default_rng(0))
    pts = _to_points(ri, spec.extrinsic, spec.inclinations)
    on_car = pts[np.abs(pts[:, 1] - 8.0) < 2.0]
    high = on_car[on_car[:, 2] > 0.75 * car.size[2]]
    assert len(high) > 10
    assert high[:, 0].mean() < -0.05 * car.size[0]             # heading +x: the cabin is behind x = 0


def test_parallel_workers_write_byte_identical_files(tmp_path):
    """Segments simulated in 2 worker processes give the same files and summary as one process."""
    import hashlib
    params = dict(SMALL, num_train=3, num_val=1, frames_per_segment=1, lidar_width=128, camera=False)
    one = generate_waymo_mini(tmp_path / "one", workers=1, **params)
    two = generate_waymo_mini(tmp_path / "two", workers=2, **params)

    def digests(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*.parquet"))}
    assert len(digests(tmp_path / "one")) == 4 * 5                  # 4 segments × 5 lidar components
    assert digests(tmp_path / "one") == digests(tmp_path / "two")
    assert one["splits"] == two["splits"]


def test_generator_point_count_equals_testing_every_point():
    """The generator counts ``num_lidar_points_in_box`` with ``ops.points_in_boxes_count(eps=0, z_center=True)``:
    its sorted-x candidate window only skips points that cannot be inside, so the counts equal the centre-z test
    applied to every point in numpy (the generator's own rule before it used the ops kernel), exactly, on random
    boxes and on points placed on the box corners and faces (where a tolerance or a window too tight would change
    them)."""
    from perception3d.ops.points_in_boxes import points_in_boxes_count

    rng = np.random.default_rng(3)
    boxes = np.c_[rng.uniform(-20, 20, (30, 2)), rng.uniform(-1, 1, 30), rng.uniform(0.5, 9, (30, 3)),
                  rng.uniform(-np.pi, np.pi, 30)]
    pts = rng.uniform(-25, 25, (20000, 3))
    pts[:, 2] = rng.uniform(-3, 3, 20000)
    face = []
    for cx, cy, cz, l, w, h, yaw in boxes:
        for u, v in ((0.5, 0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.0), (0.0, -0.5), (0.499999, 0.499999)):
            face.append((cx + np.cos(yaw) * u * l - np.sin(yaw) * v * w,
                         cy + np.sin(yaw) * u * l + np.cos(yaw) * v * w, cz + h / 2))
    pts = np.concatenate([pts, np.array(face)])
    expected = []
    for cx, cy, cz, l, w, h, yaw in boxes:              # every point, no candidate window
        rel = pts - (cx, cy, cz)
        c, s = np.cos(yaw), np.sin(yaw)
        lx, ly = c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]
        expected.append(int(((np.abs(lx) <= l / 2) & (np.abs(ly) <= w / 2) & (np.abs(rel[:, 2]) <= h / 2)).sum()))
    got = points_in_boxes_count(pts, boxes, eps=0.0, z_center=True)
    assert got.tolist() == expected
    assert points_in_boxes_count(pts, boxes, z_center=True).tolist() != expected  # the 1e-6 m tolerance would not
    assert sum(expected) > 30 * 2                        # the corner points the window must not drop are counted
