"""Per-point labels of the mini dataset (Waymo v2 ``lidar_segmentation``), the reader, the segmentation dataset."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perception3d.datasets.synthetic import generate_waymo_mini
from perception3d.datasets.synthetic.labels import (SEG_MANIFEST_NAME, SEG_SCHEMA, WAYMO_SEG_TYPES,
                                                    ensure_waymo_mini_labels, generate_waymo_mini_labels,
                                                    waymo_mini_labels_current)
from perception3d.datasets.waymo_seg import WAYMO_SEG_CLASSES, WaymoSegDataset
from perception3d.datasets.waymo_v2 import (WaymoV2Segment, list_segments, read_lidar_segmentation,
                                            top_points_with_labels)
from perception3d.ops.points_in_boxes import points_in_boxes_count

SMALL = dict(num_train=2, num_val=1, lidar_width=256, camera=False, workers=1)
# content hash of the detection components written with SMALL, taken from the generator before the labels existed:
# the labels must leave the detection data (and the detectors' AP figures) exactly as they were
DETECTION_HASH = "91f16500bee838704480dab725c4721ba81367f765021634f9b0ab7ca7b69a2b"
T = {n: i for i, n in enumerate(WAYMO_SEG_TYPES)}


def _content_hash(root: Path, exclude=("lidar_segmentation",)) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.parquet")):
        if p.parent.name in exclude:
            continue
        h.update(str(p.relative_to(root)).encode())
        h.update(repr(pq.read_table(p).to_pydict()).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_seg")
    generate_waymo_mini(root, **SMALL)
    manifest = (root / "waymo_mini_manifest.json").read_bytes()
    summary = generate_waymo_mini_labels(root, workers=1)
    return root, manifest, summary


def test_detection_data_byte_identical_and_untouched_by_labels(labelled):
    root, manifest, summary = labelled
    assert _content_hash(root) == DETECTION_HASH
    assert (root / "waymo_mini_manifest.json").read_bytes() == manifest      # detection manifest not rewritten
    assert not any("lidar_segmentation" in f for f in json.loads(manifest)["files"])
    seg_manifest = json.loads((root / SEG_MANIFEST_NAME).read_text())
    assert len(seg_manifest["files"]) == 3 and waymo_mini_labels_current(root)
    # the scene's classes all show up (road, buildings, vehicles, people...)
    seen = set(summary["points"]["train"]) | set(summary["points"]["val"])
    assert {"car", "pedestrian", "road", "sidewalk", "building", "pole", "curb", "lane_marker"} <= seen


def test_schema_is_the_official_component(labelled):
    root, _, _ = labelled
    f = next((root / "training" / "lidar_segmentation").glob("*.parquet"))
    schema = pq.read_schema(f)
    names = [n for n in schema.names]
    assert names == ["key.segment_context_name", "key.frame_timestamp_micros", "key.laser_name",
                     "[LiDARSegmentationLabelComponent].range_image_return1.values",
                     "[LiDARSegmentationLabelComponent].range_image_return1.shape",
                     "[LiDARSegmentationLabelComponent].range_image_return2.values",
                     "[LiDARSegmentationLabelComponent].range_image_return2.shape"]
    assert schema.field(names[3]).type.value_type == pa.int32()
    assert str(schema.field(names[4]).type) == "fixed_size_list<item: int32>[3]"


def test_labels_agree_with_geometry_and_boxes(labelled):
    """Independent checks of every labelled point: agents' points lie in their class's label box, ground classes
    on the ground plane, sidewalk tops 0.15 m up, kerb points between the two."""
    root, _, _ = labelled
    split = root / "training"
    checked = 0
    for name in list_segments(split):
        seg = WaymoV2Segment(split, name, lasers=(1,), returns=(1,))
        labels = read_lidar_segmentation(split / "lidar_segmentation" / f"{name}.parquet")
        for (ts, laser), lab in labels.items():
            pts, types = top_points_with_labels(seg, ts, lab[0])
            assert pts.shape[0] == types.shape[0] > 1000
            pose = seg.vehicle_poses[ts]
            z_world = pts[:, :3] @ pose[2, :3] + pose[2, 3]
            ground = np.isin(types, [T["road"], T["lane_marker"], T["walkable"]])
            assert ground.sum() > 100 and np.abs(z_world[ground]).max() < 0.15
            side = types == T["sidewalk"]
            assert np.abs(z_world[side] - 0.15).max() < 0.15
            curb = types == T["curb"]
            assert curb.any() and (z_world[curb] > -0.1).all() and (z_world[curb] < 0.25).all()
            b = seg.boxes(ts)
            boxes = b["gt_bboxes_3d"].astype(np.float64)
            centre = boxes.copy()
            centre[:, 2] += boxes[:, 5] / 2
            near = (np.abs(pts[:, 0]) < 30) & (np.abs(pts[:, 1]) < 30)          # boxes are labelled within 32 m
            for types_of, cls in (((T["car"], T["truck"]), 0), ((T["pedestrian"],), 1),
                                  ((T["bicyclist"], T["bicycle"]), 2)):
                sel = np.isin(types, types_of) & near
                cb = centre[b["gt_labels_3d"] == cls]
                if not sel.any():
                    continue
                inside = np.zeros(int(sel.sum()), bool)
                p = pts[sel, :3].astype(np.float64)
                for box in cb:
                    inside |= count_points_in_boxes_mask(p, box)
                assert inside.mean() > 0.995, (cls, inside.mean())
                checked += int(sel.sum())
            # and points of static classes are (nearly) never inside a box
            static = ~np.isin(types, [T["car"], T["truck"], T["pedestrian"], T["bicyclist"], T["bicycle"],
                                      T["undefined"]]) & near & ~ground & ~side
            hit = np.zeros(int(static.sum()), bool)
            for box in centre:
                hit |= count_points_in_boxes_mask(pts[static, :3].astype(np.float64), box, grow=-0.1)
            assert hit.mean() < 0.01
    assert checked > 500


def count_points_in_boxes_mask(points: np.ndarray, box: np.ndarray, grow: float = 0.0) -> np.ndarray:
    cx, cy, cz, l, w, h, yaw = box
    l, w, h = l + 2 * grow, w + 2 * grow, h + 2 * grow
    rel = points - (cx, cy, cz)
    c, s = np.cos(yaw), np.sin(yaw)
    lx, ly = c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]
    return (np.abs(lx) <= l / 2) & (np.abs(ly) <= w / 2) & (np.abs(rel[:, 2]) <= h / 2)


def test_mask_helper_agrees_with_generator_count():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-3, 3, (500, 3))
    box = np.array([0.2, -0.1, 0.3, 2.0, 1.0, 1.5, 0.4])
    generator_count = points_in_boxes_count(pts, box[None], eps=0.0, z_center=True)[0]   # the generator's rule
    assert count_points_in_boxes_mask(pts, box).sum() == generator_count


def test_reader_errors_name_the_file(tmp_path):
    from perception3d.datasets.synthetic.writer import write_parquet_atomic
    p = tmp_path / "lidar_segmentation" / "x.parquet"
    col = "[LiDARSegmentationLabelComponent].range_image_return"
    rows = {"key.segment_context_name": ["x"], "key.frame_timestamp_micros": [5], "key.laser_name": [1],
            f"{col}1.values": [[0, 1, 0, 2, 0, 3]], f"{col}1.shape": [[1, 3, 2]],
            f"{col}2.values": [[0] * 6], f"{col}2.shape": [[1, 3, 2]]}
    write_parquet_atomic(p, rows, SEG_SCHEMA)
    assert read_lidar_segmentation(p)[(5, 1)][0, 0, :, 1].tolist() == [1, 2, 3]
    write_parquet_atomic(p, dict(rows, **{f"{col}1.shape": [[1, 2, 2]]}), SEG_SCHEMA)
    with pytest.raises(ValueError, match=r"x\.parquet.*6 values.*\[1, 2, 2\]"):
        read_lidar_segmentation(p)
    write_parquet_atomic(p, dict(rows, **{f"{col}1.values": [[0, 1, 0, 30, 0, 3]]}), SEG_SCHEMA)
    with pytest.raises(ValueError, match=r"x\.parquet.*0–22.*found 1–30"):
        read_lidar_segmentation(p)


def test_label_image_that_does_not_fit_the_range_image(labelled):
    root, _, _ = labelled
    split = root / "training"
    name = list_segments(split)[0]
    seg = WaymoV2Segment(split, name, lasers=(1,), returns=(1,))
    with pytest.raises(ValueError, match=rf"{name}\.parquet.*label image \[64, 100\] does not fit.*\[64, 256\]"):
        top_points_with_labels(seg, seg.timestamps[0], np.zeros((64, 100, 2), np.int32))


def test_dataset_items_mix3d_clip_and_missing_labels(labelled, tmp_path):
    root, _, _ = labelled
    ds = WaymoSegDataset(str(root), "train", point_range=(-20, -20, -3, 20, 20, 5))
    assert len(ds) == 2 and len(WAYMO_SEG_CLASSES) == 22
    item = ds[0]
    pts, seg = item["inputs"]["points"], item["data_samples"]["gt_segment"]
    assert pts.shape[1] == 4 and pts.shape[0] == seg.shape[0] and (pts[:, :2].abs() < 20).all()
    assert seg.min() >= -1 and seg.max() <= 21 and (seg == T["road"] - 1).any()
    full, _ = ds.load(0)
    clipped = WaymoSegDataset(str(root), "train", point_range=(-20, -20, -3, 20, 20, 5), range_mode="clip")[0]
    assert clipped["inputs"]["points"].shape[0] == full.shape[0]               # clipped, not dropped
    assert (clipped["inputs"]["points"][:, :2].abs() <= 20).all()
    mixed = WaymoSegDataset(str(root), "train", point_range=(-20, -20, -3, 20, 20, 5), mix_prob=1.0,
                            augment=dict(flip_x=0.5, flip_y=0.5))[0]
    n1 = WaymoSegDataset(str(root), "train", point_range=(-20, -20, -3, 20, 20, 5))[1]["inputs"]["points"].shape[0]
    assert mixed["inputs"]["points"].shape[0] == pts.shape[0] + n1          # Mix3D: both frames (flips keep the range)
    with pytest.raises(ValueError, match="unknown augment key"):
        WaymoSegDataset(str(root), "train", augment=dict(rotate=True))
    bare = tmp_path / "bare"
    generate_waymo_mini(bare, **dict(SMALL, num_train=1, num_val=0))
    with pytest.raises(FileNotFoundError, match="no 3D segmentation labels.*lidar_segmentation"):
        WaymoSegDataset(str(bare), "train")


def test_stale_labels_are_rewritten(tmp_path):
    root = tmp_path / "mini"
    ensure_waymo_mini_labels(root, **dict(SMALL, num_train=1, num_val=0))
    assert waymo_mini_labels_current(root)
    generate_waymo_mini(root, **dict(SMALL, num_train=1, num_val=0, seed=3))   # other data, old labels left
    assert not waymo_mini_labels_current(root)
    ensure_waymo_mini_labels(root)
    assert waymo_mini_labels_current(root)
