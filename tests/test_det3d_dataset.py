"""Det3DDataset: real mmdet3d infos, our own infos with bad frames (counted skips, NaN points), empty frames,
registry build, and the Waymo-v2 → create_data → dataset path on the built-in mini dataset."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from perception3d.datasets.det3d_dataset import Det3DDataset
from perception3d.datasets.mmdet3d_info import save_infos
from perception3d.ops import points_in_boxes_count

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO = SHARED / "kitti_demo"
MMW = SHARED / "mmdet3d_tests" / "waymo" / "kitti_format"


def count_in_boxes(r: dict) -> np.ndarray:
    """[M] points of a loaded frame inside each of its boxes."""
    return points_in_boxes_count(r["points"], r["gt_bboxes_3d"]).numpy()


class Record:
    """A pipeline step that keeps what it saw and passes it on."""

    def __init__(self):
        self.seen = []

    def __call__(self, results):
        self.seen.append(results)
        return results


@pytest.mark.skipif(not DEMO.is_dir(), reason="../shared/data/kitti_demo is absent")
def test_kitti_demo_results_dict():
    rec = Record()
    ds = Det3DDataset(data_root=str(DEMO), ann_file="000008.pkl", pipeline=[rec], load_dim=4, use_dim=4)
    assert len(ds) == 1
    r = ds[0]
    assert r["points"].dtype == np.float32 and r["points"].shape == (17238, 4)
    assert r["gt_bboxes_3d"].dtype == np.float32 and r["gt_bboxes_3d"].shape == (6, 7)
    assert r["gt_labels_3d"].dtype == np.int64 and r["gt_labels_3d"].tolist() == [0] * 6
    np.testing.assert_array_equal(count_in_boxes(r), r["num_lidar_pts"])
    assert r["sample_idx"] == 0 and r["sample_id"] == 8 and r["lidar_path"].endswith("000008.bin") and rec.seen


@pytest.mark.skipif(not MMW.is_dir(), reason="../shared/data/mmdet3d_tests is absent")
def test_mmdet3d_waymo_infos_and_registry():
    from mmengine.registry import init_default_scope
    from perception3d.registry import DATASETS
    init_default_scope("perception3d")
    ds = DATASETS.build(dict(type="Det3DDataset", data_root=str(MMW), ann_file="waymo_infos_train.pkl",
                             data_prefix=dict(pts="training/velodyne"), load_dim=6, use_dim=[0, 1, 2, 3, 4]))
    r = ds[0]
    assert r["points"].shape == (800, 5) and r["gt_labels_3d"].tolist() == [0]
    assert r["num_lidar_pts"].tolist() == [309] and r["context_name"] == "10017090168044687777_6380_000_6400_000"
    with pytest.raises(ValueError, match="num_pts_feats=6 in the info but load_dim=4"):
        Det3DDataset(data_root=str(MMW), ann_file="waymo_infos_train.pkl", load_dim=4, use_dim=4)
    with pytest.raises(ValueError, match="use_dim"):
        Det3DDataset(data_root=str(MMW), ann_file="waymo_infos_train.pkl", load_dim=6, use_dim=7)


def write_own_infos(root: Path) -> None:
    """Four frames: good, empty (no boxes), truncated .bin, and one with NaN points."""
    rng = np.random.default_rng(0)
    (root / "points").mkdir(parents=True)
    pts = rng.uniform(-5, 5, (100, 6)).astype(np.float32)
    pts.tofile(root / "points" / "good.bin")
    pts[:20].tofile(root / "points" / "empty.bin")
    (root / "points" / "trunc.bin").write_bytes(pts.tobytes()[:1000])          # 1000 % 24 != 0
    nan = pts.copy()
    nan[[3, 7, 9], 2] = np.nan
    nan.tofile(root / "points" / "nan.bin")
    box = dict(bbox_3d=[0, 0, -5, 4, 4, 10, 0.0], bbox_label_3d=1, num_lidar_pts=7, difficulty=1)
    other = dict(bbox_3d=[1, 1, 0, 1, 1, 1, 0.0], bbox_label_3d=3, num_lidar_pts=1, difficulty=0)  # not a class
    entries = [dict(sample_idx=i, lidar_points=dict(lidar_path=f"points/{n}.bin", num_pts_feats=6),
                    instances=inst)
               for i, (n, inst) in enumerate([("good", [box, other]), ("empty", [other]), ("trunc", [box]),
                                              ("nan", [box])])]
    save_infos(root / "infos.pkl", entries, metainfo=dict(classes=("Car", "Pedestrian", "Cyclist", "Sign"),
                                                          box_mode="lidar"))


def test_bad_frames_are_counted_and_skipped(tmp_path):
    write_own_infos(tmp_path)
    ds = Det3DDataset(data_root=str(tmp_path), ann_file="infos.pkl", test_mode=True)
    assert len(ds) == 4
    empty = ds[1]
    assert empty["gt_bboxes_3d"].shape == (0, 7) and empty["gt_labels_3d"].shape == (0,)   # valid, no boxes
    good = ds[0]
    assert good["points"].shape == (100, 5) and good["gt_labels_3d"].tolist() == [1]       # "Sign" dropped
    with pytest.warns(UserWarning, match=r"trunc.bin: 1000 bytes is not a whole number"):
        r = ds[2]
    assert ds.num_nan_points == 3                   # frame 3 (3 NaN points) stood in for frame 2
    assert r["sample_idx"] == 3 and r["sample_id"] == 3                    # the next frame stood in
    assert ds.num_skipped == 1 and 2 in ds.bad_frames
    with pytest.warns(UserWarning, match=r"nan.bin: dropped 3 of 100 points"):
        r = ds[3]
    assert r["points"].shape == (97, 5) and np.isfinite(r["points"]).all() and ds.num_nan_points == 6


def test_filter_empty_gt_in_training(tmp_path):
    write_own_infos(tmp_path)
    ds = Det3DDataset(data_root=str(tmp_path), ann_file="infos.pkl", filter_empty_gt=True)
    assert len(ds) == 3 and ds.num_filtered_empty == 1
    assert Det3DDataset(data_root=str(tmp_path), ann_file="infos.pkl", filter_empty_gt=False).__len__() == 4
    # mmdet3d-config keywords: every 2nd frame (0, 2), then frame 2 kept (it has a box)
    ds2 = Det3DDataset(data_root=str(tmp_path), ann_file="infos.pkl", load_interval=2, box_type_3d="LiDAR",
                       modality=dict(use_lidar=True, use_camera=False), backend_args=None)
    assert [ds2.get_data_info(i)["sample_id"] for i in range(len(ds2))] == [0, 2]
    with pytest.raises(ValueError, match="LiDAR boxes only"):
        Det3DDataset(data_root=str(tmp_path), ann_file="infos.pkl", box_type_3d="Camera")
    # every frame bad → a clear error, not a hang
    for p in (tmp_path / "points").glob("*.bin"):
        p.write_bytes(b"123")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="no usable frame"):
            Det3DDataset(data_root=str(tmp_path), ann_file="infos.pkl", max_refetch=5)[0]


def test_with_pack_transform(tmp_path):
    """The pipeline's transforms are found by name without a Runner or any import of ours beforehand."""
    import torch
    write_own_infos(tmp_path)
    ds = Det3DDataset(data_root=str(tmp_path), ann_file="infos.pkl", test_mode=True,
                      pipeline=[dict(type="Pack3DDetInputs")])
    out = ds[0]
    assert isinstance(out["inputs"]["points"], torch.Tensor) and out["inputs"]["points"].shape == (100, 5)


def test_mini_waymo_to_dataset(tmp_path):
    """Built-in mini dataset (Waymo v2 layout) → convert_waymo_v2 → Det3DDataset; the generator's
    num_lidar_points_in_box equals what we count in our converted points."""
    from perception3d.datasets.synthetic.writer import generate_waymo_mini
    from perception3d.datasets.waymo_v2 import convert_waymo_v2
    summary = generate_waymo_mini(tmp_path / "waymo", num_train=2, num_val=1, frames_per_segment=2,
                                  lidar_width=128, camera=False)
    res = convert_waymo_v2(tmp_path / "waymo", tmp_path / "out", workers=0, progress=False)
    assert res["train"] == 2 and res["val"] == 1
    ds = Det3DDataset(data_root=str(tmp_path / "out"), ann_file="waymo_infos_train.pkl", test_mode=True)
    total = 0
    for i in range(len(ds)):
        r = ds[i]
        total += r["points"].shape[0]
        assert r["points"].shape[1] == 5
        np.testing.assert_array_equal(count_in_boxes(r), r["num_lidar_pts"])
    assert total == summary["splits"]["train"]["points"]
    # the ground truth itself as predictions: Waymo mAP / mAPH 1.0 at both levels
    from perception3d.evaluation.det_metrics import WaymoMetric
    from perception3d.registry import TRANSFORMS
    import perception3d.datasets.transforms  # noqa: F401
    pack = TRANSFORMS.build(dict(type="Pack3DDetInputs"))
    metric = WaymoMetric()
    for i in range(len(ds)):
        s = pack(ds[i])["data_samples"]
        n = len(s["gt_labels_3d"])
        s["pred_instances_3d"] = dict(bboxes_3d=s["gt_bboxes_3d"], labels_3d=s["gt_labels_3d"],
                                      scores_3d=np.linspace(0.9, 0.1, n).astype(np.float32))
        metric.process(None, [s])
    res = metric.compute_metrics(metric.results)
    assert res["Vehicle/L1 mAP"] == pytest.approx(1.0) and res["Vehicle/L2 mAPH"] == pytest.approx(1.0)
    infos = pickle.load(open(tmp_path / "out" / "waymo_infos_val.pkl", "rb"))
    assert len(infos["data_list"]) == 1 and infos["metainfo"]["dataset"] == "waymo"
    # GT database from the infos: every object's cut-out holds exactly its num_lidar_pts points (5 features)
    from perception3d.datasets.det3d_dataset import create_gt_database_from_infos
    res = create_gt_database_from_infos(tmp_path / "out" / "waymo_infos_train.pkl", tmp_path / "out",
                                        tmp_path / "out", "waymo")
    train = pickle.load(open(tmp_path / "out" / "waymo_infos_train.pkl", "rb"))["data_list"]
    expected = sorted(i["num_lidar_pts"] for d in train for i in d["instances"])
    got = sorted(e["num_points_in_gt"] for v in res["dbinfos"].values() for e in v)
    assert got == expected and res["num_skipped"] == 0
    e = max((e for v in res["dbinfos"].values() for e in v), key=lambda e: e["num_points_in_gt"])
    assert np.fromfile(tmp_path / "out" / e["path"], np.float32).size == 5 * e["num_points_in_gt"]


@pytest.mark.skipif(not DEMO.is_dir(), reason="../shared/data/kitti_demo is absent")
def test_kitti_eval_annotations_and_metric():
    """Test mode on KITTI infos keeps DontCare with its 2D annotations and calib; KittiMetric then scores the
    ground truth itself as a perfect detector.  (With one frame the devkit's R40 sampling has only as many
    thresholds as true positives: 4 moderate cars → precision 1 at recall positions 0..3 → AP = 3/40 = 7.5.)"""
    ds = Det3DDataset(data_root=str(DEMO), ann_file="000008.pkl", load_dim=4, use_dim=4, test_mode=True)
    r = ds[0]
    assert r["gt_labels_3d"].tolist() == [0] * 6 + [-1] * 4 and r["gt_names"] == ["Car"] * 6 + ["DontCare"] * 4
    assert r["bbox"].shape == (10, 4) and r["occluded"].tolist()[:2] == [3, 1]
    assert r["calib"]["image_shape"] == (375, 1242) and r["calib"]["P2"].shape == (4, 4)
    train = Det3DDataset(data_root=str(DEMO), ann_file="000008.pkl", load_dim=4, use_dim=4)[0]
    assert train["gt_labels_3d"].tolist() == [0] * 6 and "calib" in train
    import torch
    from perception3d.evaluation.det_metrics import KittiMetric
    from perception3d.registry import TRANSFORMS
    import perception3d.datasets.transforms  # noqa: F401
    pack = TRANSFORMS.build(dict(type="Pack3DDetInputs"))
    sample = pack(r)["data_samples"]
    car = sample["gt_labels_3d"] == 0
    sample["pred_instances_3d"] = dict(bboxes_3d=sample["gt_bboxes_3d"][car], labels_3d=sample["gt_labels_3d"][car],
                                       scores_3d=np.linspace(0.9, 0.5, int(car.sum())).astype(np.float32))
    metric = KittiMetric(classes=("Car", "Pedestrian", "Cyclist"))
    metric.process(None, [sample])
    res = metric.compute_metrics(metric.results)
    for m in ("3D", "BEV", "2D", "AOS"):                   # projected 2D boxes and headings match too
        assert res[f"Car/{m}_R40_moderate"] == pytest.approx(7.5, abs=1e-3), m
    assert res["Car/3D_R40_easy"] == 0.0                   # one easy car: a single threshold, index 0 only
    # a detector that misses a moderate car scores lower
    metric2 = KittiMetric(classes=("Car", "Pedestrian", "Cyclist"))
    keep = torch.arange(6) != 3
    s2 = dict(sample, pred_instances_3d={k: v[keep.numpy()] if isinstance(v, np.ndarray) else v[keep]
                                         for k, v in sample["pred_instances_3d"].items()})
    metric2.process(None, [s2])
    assert metric2.compute_metrics(metric2.results)["Car/3D_R40_moderate"] == pytest.approx(5.0)
