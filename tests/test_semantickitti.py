"""SemanticKITTI reader on the real sample scan, and on files written in the exact layout."""
from pathlib import Path

import numpy as np
import pytest

from perception3d.datasets.semantickitti import LEARNING_MAP, SemanticKITTIDataset, read_label, read_scan

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmdet3d_tests" / "semantickitti"


def test_real_sample():
    if not DATA.is_dir():
        pytest.skip(f"real SemanticKITTI sample not found at {DATA}")
    ds = SemanticKITTIDataset(str(DATA), sequences=["00"])
    item = ds[0]
    pts, seg = item["inputs"]["points"], item["data_samples"]["gt_segment"]
    assert pts.shape == (50, 4) and seg.shape == (50,)
    raw = np.fromfile(DATA / "sequences/00/labels/000000.label", dtype=np.uint32) & 0xFFFF
    expect = np.array([LEARNING_MAP[int(r)] - 1 for r in raw])
    assert (seg.numpy() == expect).all()
    # raw ids in this scan: 50 building, 52 other-structure (ignored), 70 vegetation, 71 trunk, 80 pole
    assert set(seg.tolist()) <= {-1, 12, 14, 15, 17}
    assert (seg.numpy()[raw == 52] == -1).all() and (seg.numpy()[raw == 50] == 12).all()


def test_written_layout_instance_bits_and_errors(tmp_path):
    vel = tmp_path / "sequences" / "08" / "velodyne"
    lab = tmp_path / "sequences" / "08" / "labels"
    vel.mkdir(parents=True), lab.mkdir()
    pts = np.arange(20, dtype=np.float32).reshape(5, 4)
    pts.tofile(vel / "000000.bin")
    sem = np.array([10, 252, 0, 81, 99], np.uint32)
    inst = np.array([7, 7, 0, 1, 0], np.uint32)
    ((inst << 16) | sem).tofile(lab / "000000.label")
    ds = SemanticKITTIDataset(str(tmp_path), split="val")
    assert ds[0]["data_samples"]["gt_segment"].tolist() == [0, 0, -1, 18, -1]     # car, moving-car→car, sign
    s, i = read_label(lab / "000000.label")
    assert i.tolist() == [7, 7, 0, 1, 0] and s.tolist() == [1, 1, 0, 19, 0]
    np.zeros(3, np.float32).tofile(vel / "000001.bin")
    with pytest.raises(ValueError, match="000001.bin.*multiple of 4"):
        read_scan(vel / "000001.bin")
    with pytest.raises(ValueError, match="5 labels but its scan has 4"):
        read_label(lab / "000000.label", num_points=4)
    with pytest.raises(FileNotFoundError, match="no scans"):
        SemanticKITTIDataset(str(tmp_path), split="train")


def test_miou_with_ignore_by_hand():
    import torch
    from perception3d.evaluation.cls_seg import SegMIoUMetric, confusion_matrix, mean_iou
    gt = torch.tensor([0, 0, 1, 1, 2, -1])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])          # the last prediction sits on an ignored point
    cm = confusion_matrix(pred, gt, 3, ignore_index=-1)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # IoU0 = 1 / (1 + 1 + 1), IoU1 = 2 / (2 + 1), IoU2 = 0 / 1
    assert abs(mean_iou(pred, gt, 3, ignore_index=-1) - (1 / 3 + 2 / 3 + 0) / 3) < 1e-12
    m = SegMIoUMetric(num_classes=3, ignore_index=-1)
    m.process(None, [dict(pred_segment=pred[:3], gt_segment=gt[:3]), dict(pred_segment=pred[3:], gt_segment=gt[3:])])
    res = m.evaluate(2)
    assert abs(res["seg/mIoU"] - 100 / 3) < 1e-9 and abs(res["seg/aAcc"] - 60.0) < 1e-9
    with pytest.raises(ValueError, match="pred has 2 entries, gt has 3"):
        confusion_matrix([0, 1], [0, 1, 1], 3)
