"""LiDAR augmentations: geometry kept consistent (points stay in their boxes), yaw conventions, filters, GT sampling."""
import math
import pickle

import numpy as np
import pytest
import torch

from perception3d.datasets.gt_database import DataBaseSampler, create_gt_database
from perception3d.datasets.transforms import (GlobalRotScaleTrans, ObjectNameFilter, ObjectRangeFilter, ObjectSample,
                                              Pack3DDetInputs, PointShuffle, PointsRangeFilter, RandomFlip3D)
from perception3d.ops import box_iou_bev, points_in_boxes
from perception3d.registry import TRANSFORMS


def _scene(seed=0, n_boxes=4, pts_per_box=60, n_bg=300):
    """Boxes on a ring (no overlap) filled with points, a 'nose' point at 0.45 * dx ahead of each centre,
    plus background points outside every box."""
    rng = np.random.default_rng(seed)
    boxes, pts = [], []
    for k in range(n_boxes):
        ang = 2 * math.pi * k / n_boxes
        b = [15 * math.cos(ang), 15 * math.sin(ang), -1.5, rng.uniform(3, 5), rng.uniform(1.5, 2), 1.6,
             rng.uniform(-math.pi, math.pi)]
        boxes.append(b)
        local = rng.uniform(-0.45, 0.45, (pts_per_box, 3)) * np.array(b[3:6])
        local[:, 2] += 0.5 * b[5]
        c, s = math.cos(b[6]), math.sin(b[6])
        pts.append(np.c_[b[0] + c * local[:, 0] - s * local[:, 1], b[1] + s * local[:, 0] + c * local[:, 1],
                         b[2] + local[:, 2], np.full(pts_per_box, k)])
    boxes = np.asarray(boxes, np.float32)
    noses = np.asarray([[b[0] + 0.45 * b[3] * math.cos(b[6]), b[1] + 0.45 * b[3] * math.sin(b[6]), b[2] + 0.8, -1]
                        for b in boxes])
    bg = np.c_[rng.uniform(-40, 40, (n_bg, 2)), rng.uniform(-2, 1, n_bg), np.full(n_bg, -2)]
    bg = bg[points_in_boxes(bg[:, :3], boxes).numpy() < 0]
    points = np.concatenate([noses, *pts, bg]).astype(np.float32)
    return {"points": points, "gt_bboxes_3d": boxes, "gt_labels_3d": np.arange(n_boxes) % 3,
            "num_lidar_pts": np.full(n_boxes, pts_per_box + 1), "difficulty": np.zeros(n_boxes, np.int64),
            "sample_idx": seed}


def _counts(r):
    idx = points_in_boxes(r["points"][:, :3], r["gt_bboxes_3d"]).numpy()
    return np.bincount(idx[idx >= 0], minlength=len(r["gt_bboxes_3d"]))


def _check_noses(r, n_boxes=4):
    """The first n_boxes points are the noses: each must lie ahead of its box along (cos yaw, sin yaw)."""
    b = r["gt_bboxes_3d"]
    expected = b[:, :2] + 0.45 * b[:, 3:4] * np.c_[np.cos(b[:, 6]), np.sin(b[:, 6])]
    return np.abs(r["points"][:n_boxes, :2] - expected).max()


def test_flip_keeps_points_in_boxes_and_yaw_convention():
    base = _scene()
    n0 = _counts(base)
    assert (n0 == 61).all()
    for h, v in ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0)):
        r = RandomFlip3D(flip_ratio_bev_horizontal=h, flip_ratio_bev_vertical=v)(_scene())
        assert r["pcd_horizontal_flip"] == bool(h) and r["pcd_vertical_flip"] == bool(v)
        assert (_counts(r) == n0).all()
        assert _check_noses(r) < 1e-4
    r = RandomFlip3D(flip_ratio_bev_horizontal=1.0)(_scene())
    assert np.allclose(r["gt_bboxes_3d"][:, 1], -base["gt_bboxes_3d"][:, 1])
    assert np.allclose(r["gt_bboxes_3d"][:, 6], -base["gt_bboxes_3d"][:, 6])
    r = RandomFlip3D(flip_ratio_bev_vertical=1.0)(_scene())
    assert np.allclose(r["gt_bboxes_3d"][:, 6], math.pi - base["gt_bboxes_3d"][:, 6])


def test_rot_scale_trans_keeps_points_in_boxes():
    base = _scene()
    n0 = _counts(base)
    t = GlobalRotScaleTrans(rot_range=[-math.pi, math.pi], scale_ratio_range=[0.8, 1.2],
                            translation_std=[0.5, 0.5, 0.2], seed=3)
    for _ in range(5):
        r = t(_scene())
        assert (_counts(r) == n0).all()
        assert _check_noses(r) < 1e-3
        R, s, tr = r["pcd_rotation"], r["pcd_scale_factor"], r["pcd_trans"]
        assert np.allclose(r["points"][:, :3], (base["points"][:, :3] @ R.T) * s + tr, atol=1e-4)
        assert np.allclose(r["gt_bboxes_3d"][:, 3:6], base["gt_bboxes_3d"][:, 3:6] * s, atol=1e-5)
    # a quarter turn by hand: (1, 0) -> (0, 1), yaw + pi/2
    r = GlobalRotScaleTrans(rot_range=[math.pi / 2, math.pi / 2], scale_ratio_range=[1, 1])(
        {"points": np.array([[1.0, 0, 0]], np.float32),
         "gt_bboxes_3d": np.array([[1.0, 0, 0, 2, 1, 1, 0.1]], np.float32), "gt_labels_3d": np.array([0])})
    assert np.allclose(r["points"][0, :2], [0, 1], atol=1e-6)
    assert np.allclose(r["gt_bboxes_3d"][0, [0, 1, 6]], [0, 1, 0.1 + math.pi / 2], atol=1e-6)


def test_seeded_transforms_are_deterministic():
    def run():
        pipe = [RandomFlip3D(0.5, 0.5, seed=1), GlobalRotScaleTrans(seed=2), PointShuffle(seed=4)]
        outs = []
        for k in range(4):
            r = _scene(k)
            for t in pipe:
                r = t(r)
            outs.append(r)
        return outs
    a, b = run(), run()
    for x, y in zip(a, b):
        assert np.array_equal(x["points"], y["points"]) and np.array_equal(x["gt_bboxes_3d"], y["gt_bboxes_3d"])
    # global RNG mode follows np.random.seed
    np.random.seed(5)
    r1 = GlobalRotScaleTrans()(_scene())
    np.random.seed(5)
    r2 = GlobalRotScaleTrans()(_scene())
    assert r1["pcd_rotation_angle"] == r2["pcd_rotation_angle"]


def test_shuffle_and_range_filters():
    r = _scene()
    pts0 = r["points"].copy()
    r = PointShuffle(seed=0)(r)
    assert sorted(map(tuple, r["points"])) == sorted(map(tuple, pts0))
    pr = [-10.0, -20.0, -3.0, 20.0, 20.0, 1.0]
    r = PointsRangeFilter(pr)(_scene())
    p = r["points"]
    assert ((p[:, 0] > -10) & (p[:, 0] < 20) & (p[:, 1] > -20) & (p[:, 1] < 20) & (p[:, 2] > -3) & (p[:, 2] < 1)).all()
    keep = ((pts0[:, 0] > -10) & (pts0[:, 0] < 20) & (pts0[:, 1] > -20) & (pts0[:, 1] < 20)
            & (pts0[:, 2] > -3) & (pts0[:, 2] < 1))
    assert len(p) == keep.sum()
    # boxes at x = 15, 0, -15, 0 (ring): the one at x = -15 is outside x > -10
    s = _scene()
    s["gt_bboxes_3d"][1, 6] = 3 * math.pi  # wrapped to -pi by the filter
    r = ObjectRangeFilter(pr)(s)
    assert len(r["gt_bboxes_3d"]) == 3 and len(r["gt_labels_3d"]) == 3 and len(r["num_lidar_pts"]) == 3
    assert r["gt_labels_3d"].tolist() == [0, 1, 0]
    assert (r["gt_bboxes_3d"][:, 6] >= -math.pi).all() and (r["gt_bboxes_3d"][:, 6] < math.pi).all()
    r = ObjectNameFilter(classes=["Car", "Pedestrian"])(_scene())
    assert r["gt_labels_3d"].tolist() == [0, 1, 0] and len(r["difficulty"]) == 3
    with pytest.raises(ValueError, match="point_cloud_range"):
        PointsRangeFilter([0, 0, 0, -1, 1, 1])


def test_gt_sampling_adds_non_colliding_boxes_with_points(tmp_path):
    classes = ["Car", "Pedestrian", "Cyclist"]
    frames = []
    for k in range(1, 4):  # database objects shifted so that some land on the target scene's boxes
        f = _scene(seed=k)
        shift = np.array([3.0 * k, -2.0 * k])
        f["gt_bboxes_3d"][:, :2] += shift
        f["points"][:, :2] += shift
        frames.append(f)
    infos = create_gt_database(frames, tmp_path, classes, info_prefix="toy")
    assert sum(len(v) for v in infos.values()) == 12
    assert not list(tmp_path.rglob(".tmp_*"))
    with open(tmp_path / "toy_dbinfos_train.pkl", "rb") as f:
        assert pickle.load(f)["Car"][0]["num_points_in_gt"] == 61
    sampler = dict(info_path=str(tmp_path / "toy_dbinfos_train.pkl"), classes=classes,
                   sample_groups={"Car": 6, "Pedestrian": 5, "Cyclist": 4}, min_points={"Car": 5})
    t = TRANSFORMS.build(dict(type="ObjectSample", db_sampler=sampler, seed=0))
    scene = _scene(seed=0)
    n_orig = len(scene["gt_bboxes_3d"])
    r = t(_scene(seed=0))
    boxes = r["gt_bboxes_3d"]
    n_new = r["num_sampled_objects"]
    # drawn: Car min(6 - 2, 6) = 4, Pedestrian min(5 - 1, 3) = 3, Cyclist min(4 - 1, 3) = 3 -> 10 candidates,
    # several of which overlap the scene's boxes or each other and must be rejected
    assert 1 <= n_new < 10
    assert n_new >= 1 and len(boxes) == n_orig + n_new == len(r["gt_labels_3d"]) == len(r["num_lidar_pts"])
    iou = box_iou_bev(torch.as_tensor(boxes), torch.as_tensor(boxes)).numpy()
    assert (iou[~np.eye(len(boxes), dtype=bool)] == 0).all()  # no collisions
    counts = _counts(r)
    assert (counts[:n_orig] == 61).all()                     # original objects untouched
    assert (counts[n_orig:] == r["num_lidar_pts"][n_orig:]).all()  # pasted objects carry their points
    # determinism
    r2 = TRANSFORMS.build(dict(type="ObjectSample", db_sampler=sampler, seed=0))(_scene(seed=0))
    assert np.array_equal(r["gt_bboxes_3d"], r2["gt_bboxes_3d"]) and np.array_equal(r["points"], r2["points"])
    # the pasted class counts never exceed the groups
    lab = r["gt_labels_3d"]
    assert (lab == 0).sum() <= 6 and (lab == 1).sum() <= 5 and (lab == 2).sum() <= 4


def test_gt_sampling_removes_scene_points_inside_pasted_boxes(tmp_path):
    # database: one car; scene: no boxes but background points where the car will be pasted
    db_frame = {"points": np.array([[10.0, 0, -1.0, 0.5], [10.5, 0.2, -0.5, 0.5]], np.float32),
                "gt_bboxes_3d": np.array([[10.0, 0, -1.5, 4, 2, 1.5, 0]], np.float32), "gt_labels_3d": np.array([0])}
    create_gt_database([db_frame], tmp_path, ["Car"], info_prefix="one")
    t = ObjectSample(dict(info_path=str(tmp_path / "one_dbinfos_train.pkl"), classes=["Car"],
                          sample_groups={"Car": 1}), seed=0)
    scene = {"points": np.array([[10.0, 0.5, -1.0, 9.0], [30.0, 0, -1, 9.0]], np.float32),
             "gt_bboxes_3d": np.zeros((0, 7), np.float32), "gt_labels_3d": np.zeros(0, np.int64)}
    r = t(scene)
    assert r["points"][:, 3].tolist() == [0.5, 0.5, 9.0]  # pasted points first; the scene point inside is gone
    assert np.allclose(r["points"][:2, :3], db_frame["points"][:, :3])


def test_pack_inputs():
    r = Pack3DDetInputs()(_scene())
    assert set(r) == {"inputs", "data_samples"}
    assert r["inputs"]["points"].dtype == torch.float32 and r["inputs"]["points"].shape[1] == 4
    ds = r["data_samples"]
    assert ds["gt_bboxes_3d"].dtype == torch.float32 and ds["gt_bboxes_3d"].shape == (4, 7)
    assert ds["gt_labels_3d"].dtype == torch.int64
    assert ds["num_lidar_pts"].tolist() == [61] * 4 and ds["sample_idx"] == 0
    assert isinstance(ds, dict)


def test_bad_inputs():
    with pytest.raises(KeyError, match="points"):
        RandomFlip3D(1.0)({"gt_bboxes_3d": np.zeros((0, 7))})
    with pytest.raises(ValueError, match=r"results\['points'\]: expected a \[N, >=3\]"):
        GlobalRotScaleTrans()({"points": np.zeros((5, 2), np.float32)})
    with pytest.raises(ValueError, match="flip_ratio_bev_horizontal"):
        RandomFlip3D(1.5)
    s = _scene()
    s["difficulty"] = s["difficulty"][:2]
    with pytest.raises(ValueError, match=r"results\['difficulty'\] has 2 entries"):
        ObjectNameFilter(classes=["Car"])(s)
    with pytest.raises(FileNotFoundError, match="db info file"):
        DataBaseSampler("/nonexistent/x.pkl", ["Car"], {"Car": 1})


SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "kitti_demo").is_dir() or not (SHARED / "mmdet3d_tests").is_dir(),
                    reason="../shared/data is absent")
def test_real_kitti_frame_augment_and_paste_mmdet3d_database():
    """KITTI frame 000008 (6 cars, mmdet3d's point counts) through flip / rot-scale-trans, then GT sampling from
    mmdet3d's own GT database (one Pedestrian): counts are kept and the pasted object brings its points."""
    from perception3d.datasets.kitti_raw import read_velodyne
    from perception3d.datasets.mmdet3d_info import load_mmdet3d_infos

    _, (e,) = load_mmdet3d_infos(SHARED / "kitti_demo" / "000008.pkl", classes=("Car", "Pedestrian", "Cyclist"))
    pts = read_velodyne(e["lidar_path"], e["num_pts_feats"])
    res = {"points": pts, "gt_bboxes_3d": e["gt_bboxes_3d"], "gt_labels_3d": e["gt_labels_3d"],
           "num_lidar_pts": e["num_lidar_pts"]}
    expected = [1325, 1900, 881, 659, 55, 162]
    assert _counts(res).tolist() == expected
    pipe = [RandomFlip3D(1.0, 1.0), GlobalRotScaleTrans(rot_range=[-0.785, 0.785], scale_ratio_range=[0.95, 1.05],
                                                        translation_std=[0.2, 0.2, 0.2], seed=0)]
    for t in pipe:
        res = t(res)
    assert _counts(res).tolist() == expected
    db = SHARED / "mmdet3d_tests" / "kitti" / "kitti_dbinfos_train.pkl"
    sampler = DataBaseSampler(db, classes=["Car", "Pedestrian", "Cyclist"], sample_groups={"Pedestrian": 1},
                              load_dim=4, use_dim=4)
    res = ObjectSample(sampler, seed=0)(res)
    assert res["num_sampled_objects"] == 1 and res["gt_labels_3d"].tolist()[-1] == 1
    counts = _counts(res)
    assert counts[:6].tolist() == expected and counts[6] == res["num_lidar_pts"][6] > 0
