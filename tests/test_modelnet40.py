"""ModelNet40 reader on files written in the exact resampled layout, and the synthetic shape generator."""
from pathlib import Path

import numpy as np
import pytest

from perception3d.datasets.modelnet40 import ModelNet40Dataset, read_modelnet_txt
from perception3d.datasets.synthetic_shapes import SHAPE_CLASSES, SyntheticShapesDataset, generate_shapes, sample_shape


def _write_modelnet(root: Path):
    rng = np.random.default_rng(0)
    (root / "night_stand").mkdir(parents=True)
    (root / "airplane").mkdir()
    (root / "modelnet40_shape_names.txt").write_text("airplane\nnight_stand\n")
    (root / "modelnet40_train.txt").write_text("airplane_0001\nnight_stand_0001\n")
    (root / "modelnet40_test.txt").write_text("night_stand_0002\n")
    data = {}
    for name in ["airplane_0001", "night_stand_0001", "night_stand_0002"]:
        arr = rng.normal(size=(30, 6)).astype(np.float32)
        np.savetxt(root / name.rsplit("_", 1)[0] / f"{name}.txt", arr, fmt="%.6f", delimiter=",")
        data[name] = arr
    return data


def test_modelnet_reader_layout(tmp_path):
    data = _write_modelnet(tmp_path)
    ds = ModelNet40Dataset(str(tmp_path), "train", normalize=False)
    assert len(ds) == 2 and ds.class_names == ["airplane", "night_stand"]
    item = ds[1]
    assert item["data_samples"]["gt_label"] == 1 and item["data_samples"]["name"] == "night_stand_0001"
    np.testing.assert_allclose(item["inputs"]["points"].numpy(), data["night_stand_0001"], atol=1e-6)
    test = ModelNet40Dataset(str(tmp_path), "test", num_points=10)
    pts = test[0]["inputs"]["points"].numpy()
    assert pts.shape == (10, 6)
    assert np.allclose(pts[:, :3].mean(0), 0, atol=1e-5) and np.isclose(np.linalg.norm(pts[:, :3], axis=1).max(), 1)


def test_modelnet_bad_input(tmp_path):
    _write_modelnet(tmp_path)
    (tmp_path / "airplane" / "airplane_0001.txt").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="airplane_0001.txt.*6 comma-separated"):
        read_modelnet_txt(tmp_path / "airplane" / "airplane_0001.txt")
    (tmp_path / "modelnet40_test.txt").write_text("chair_0001\n")
    with pytest.raises(ValueError, match="chair"):
        ModelNet40Dataset(str(tmp_path), "test")
    with pytest.raises(FileNotFoundError, match="modelnet40_shape_names"):
        ModelNet40Dataset(str(tmp_path / "nowhere"), "train")


def test_synthetic_shapes_generated_deterministic_and_readable(tmp_path):
    assert len(SHAPE_CLASSES) >= 10
    a = generate_shapes(tmp_path / "a", num_train=2, num_test=1, num_points=64, seed=3)
    b = generate_shapes(tmp_path / "b", num_train=2, num_test=1, num_points=64, seed=3)
    fa = (a / "torus" / "torus_0002.txt").read_bytes()
    assert fa == (b / "torus" / "torus_0002.txt").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]       # no temporary folder left
    ds = SyntheticShapesDataset(str(a), "test", num_train=2, num_test=1, gen_points=64)
    assert len(ds) == len(SHAPE_CLASSES)
    pts = ds[0]["inputs"]["points"].numpy()
    assert pts.shape == (64, 6)
    np.testing.assert_allclose(np.linalg.norm(pts[:, 3:], axis=1), 1, atol=1e-4)   # unit normals


def test_shape_normals_point_outward_on_convex_shapes():
    for cls in ["sphere", "cube", "cylinder", "cone", "pyramid", "capsule", "ellipsoid", "prism", "dome"]:
        p = sample_shape(cls, 500, np.random.default_rng(1), noise=0.0)
        outward = ((p[:, 3:] * (p[:, :3] - p[:, :3].mean(0))).sum(1) > 0).mean()
        assert outward > 0.97, cls


def test_classification_metrics_by_hand():
    from perception3d.evaluation.cls_seg import ClsAccuracyMetric, mean_class_accuracy, top1_accuracy
    pred, gt = [0, 1, 2, 2], [0, 1, 1, 2]
    assert top1_accuracy(pred, gt) == 0.75
    assert abs(mean_class_accuracy(pred, gt, 3) - (1 + 0.5 + 1) / 3) < 1e-12   # class 1: 1 of 2
    m = ClsAccuracyMetric(num_classes=3)
    m.process(None, [dict(pred_label=p, gt_label=g) for p, g in zip(pred, gt)])
    res = m.evaluate(4)
    assert res["cls/top1"] == 75.0 and abs(res["cls/mAcc"] - 250 / 3) < 1e-9
