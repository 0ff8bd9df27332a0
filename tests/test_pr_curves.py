"""Per-class precision-recall curves of the Waymo metric (a hand-worked case, and AP equal to waymo_evaluate's),
the PR-curve PNG, and the BEV picture of tools/visualize.py (GT and predictions both drawn, in their colours)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.evaluation import waymo_evaluate
from perception3d.evaluation.pr_curves import plot_pr_curves, waymo_pr_curves

ROOT = Path(__file__).resolve().parents[1]


def _frames():
    """Frame 0: two cars; predictions: a hit at 0.9, a far-away miss at 0.8, the second car at 0.6."""
    gt = {"boxes_3d": np.array([[10, 0, 0, 4, 2, 1.5, 0], [-10, 5, 0, 4, 2, 1.5, 0]], np.float32),
          "labels_3d": np.array([0, 0]), "num_points": np.array([100, 100])}
    pred = {"boxes_3d": np.array([[10, 0, 0, 4, 2, 1.5, 0], [30, 30, 0, 4, 2, 1.5, 0], [-10, 5, 0, 4, 2, 1.5, 0]],
                                 np.float32),
            "scores_3d": np.array([0.9, 0.8, 0.6]), "labels_3d": np.array([0, 0, 0])}
    return [pred], [gt]


def test_pr_curve_hand_worked():
    preds, gts = _frames()
    cv = waymo_pr_curves(preds, gts)["Vehicle"]
    s, r, p = cv["score"], cv["recall"], cv["precision"]
    assert len(s) == 101 and cv["num_gt"] == 2 and cv["iou_threshold"] == 0.7
    at = {round(float(x), 2): (float(rr), float(pp)) for x, rr, pp in zip(s, r, p)}
    assert at[0.5] == pytest.approx((1.0, 2 / 3))   # all three kept: 2 TP, 1 FP
    assert at[0.7] == pytest.approx((0.5, 0.5))     # 0.9 and 0.8 kept: 1 TP, 1 FP
    assert at[0.85] == pytest.approx((0.5, 1.0))    # only 0.9: 1 TP
    assert at[0.95] == pytest.approx((0.0, 1.0))    # nothing kept: recall 0, precision 1 by convention
    ref = waymo_evaluate(preds, gts)
    assert cv["ap"] == pytest.approx(ref["Vehicle/L1 mAP"]) and cv["aph"] == pytest.approx(ref["Vehicle/L1 mAPH"])
    assert waymo_pr_curves(preds, gts)["Pedestrian"]["num_gt"] == 0
    with pytest.raises(ValueError, match="level"):
        waymo_pr_curves(preds, gts, level=3)


def test_pr_curve_png(tmp_path):
    import matplotlib.image as mpimg

    preds, gts = _frames()
    out = plot_pr_curves(waymo_pr_curves(preds, gts), str(tmp_path / "pr.png"), "test")
    img = mpimg.imread(out)
    assert img.shape[0] > 300 and img.shape[1] > 3 * 300  # one panel per class
    assert not list(tmp_path.glob(".*tmp*"))


def test_bev_picture_draws_gt_and_predictions_in_their_colours(tmp_path):
    import matplotlib.image as mpimg

    spec = importlib.util.spec_from_file_location("vis_tool_pr", ROOT / "tools" / "visualize.py")
    vis = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vis)
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-20, 20, (5000, 2)), rng.uniform(-0.2, 0.1, 5000)].astype(np.float32)
    gt = np.array([[8, 4, 0, 4.5, 2, 1.6, 0.3]])
    pred = {"bboxes_3d": torch.tensor([[-8.0, -6, 0, 4.4, 2, 1.6, 0.0], [0, 10, 0, 4, 2, 1.5, 0]]),
            "scores_3d": torch.tensor([0.8, 0.1]), "labels_3d": torch.tensor([0, 0])}
    path = tmp_path / "bev.png"
    vis.draw_bev(str(path), pts, pred, gt, ["Vehicle", "Pedestrian", "Cyclist"], 0.3, (-30, -30, 30, 30), "t")
    img = mpimg.imread(path)[..., :3]
    red = (img[..., 0] > 0.9) & (img[..., 1] < 0.15) & (img[..., 2] < 0.15)
    green = (img[..., 1] > 0.45) & (img[..., 0] < 0.3) & (img[..., 2] < 0.3)
    grey = (np.abs(img[..., 0] - img[..., 1]) < 0.03) & (img[..., 0] > 0.2) & (img[..., 0] < 0.8)
    assert red.sum() > 50 and green.sum() > 50 and grey.sum() > 500  # prediction, ground truth, points
    # the prediction below the score threshold is not drawn: red only in the lower half (y < 0) and legend
    h = img.shape[0]
    ys = np.nonzero(red)[0]
    assert (ys > h / 2).sum() > 0.5 * len(ys)


def test_waymo_metric_writes_the_pr_png_when_asked(tmp_path):
    """tools/test.py sets pr_curve_file on the config's WaymoMetric; the metric draws it after evaluating."""
    from perception3d.registry import METRICS

    preds, gts = _frames()
    metric = METRICS.build(dict(type="WaymoMetric", pr_curve_file=str(tmp_path / "test" / "pr_curves.png")))
    metric.process({}, [{"pred_instances_3d": {"bboxes_3d": torch.as_tensor(preds[0]["boxes_3d"]),
                                               "scores_3d": torch.as_tensor(preds[0]["scores_3d"]),
                                               "labels_3d": torch.as_tensor(preds[0]["labels_3d"])},
                         "gt_bboxes_3d": torch.as_tensor(gts[0]["boxes_3d"]), "gt_labels_3d": torch.tensor([0, 0]),
                         "num_lidar_pts": torch.tensor([100, 100])}])
    res = metric.evaluate(1)
    assert res["Waymo metric/Vehicle/L1 mAP"] == pytest.approx(waymo_pr_curves(preds, gts)["Vehicle"]["ap"])
    assert (tmp_path / "test" / "pr_curves.png").stat().st_size > 10_000
