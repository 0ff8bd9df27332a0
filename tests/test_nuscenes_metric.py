"""nuScenes detection metric on cases worked out by hand (perception3d.evaluation.nuscenes_evaluate)."""
import math

import numpy as np
import pytest

from perception3d.evaluation import nuscenes_evaluate

CAR = ("car",)
# three cars 10-20 m away, moving, with attributes (5 = vehicle.moving)
GT_BOXES = np.array([[10.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.3, 1.0, 0.0],
                     [0.0, 15.0, -1.0, 4.5, 2.0, 1.6, -1.0, 0.0, 2.0],
                     [-12.0, -5.0, -1.0, 4.0, 1.8, 1.5, 2.0, 0.0, 0.0]])


def gt(boxes=GT_BOXES, labels=None, **kw):
    return dict(boxes_3d=boxes, labels_3d=np.zeros(len(boxes), np.int64) if labels is None else labels,
                attr_labels=np.full(len(boxes), 5), **kw)


def pred(boxes, scores=None, labels=None, attrs=5):
    n = len(boxes)
    return dict(boxes_3d=boxes, scores_3d=np.linspace(0.9, 0.5, n) if scores is None else np.asarray(scores),
                labels_3d=np.zeros(n, np.int64) if labels is None else labels, attr_labels=np.full(n, attrs))


def test_perfect_predictions_give_map_1_and_nds_1():
    r = nuscenes_evaluate([pred(GT_BOXES.copy())], [gt()], classes=CAR)
    assert r["mAP"] == pytest.approx(1.0)
    for k in ("mATE", "mASE", "mAOE", "mAVE", "mAAE"):
        assert r[k] == pytest.approx(0.0, abs=1e-12)
    assert r["NDS"] == pytest.approx(1.0)


def test_known_errors_give_known_tp_metrics_and_nds():
    p = GT_BOXES.copy()
    p[:, 0] += 0.3            # ATE 0.3 m (matched at every threshold: 0.3 < 0.5)
    p[:, 3] = p[:, 3] / 2     # half the length: aligned IoU = 0.5 → ASE 0.5
    p[:, 6] += 0.2            # AOE 0.2 rad
    p[:, 7] += 0.5            # AVE 0.5 m/s
    r = nuscenes_evaluate([pred(p, attrs=6)], [gt()], classes=CAR)  # every attribute wrong: AAE 1
    assert r["mAP"] == pytest.approx(1.0)
    assert r["mATE"] == pytest.approx(0.3)
    assert r["mASE"] == pytest.approx(0.5)
    assert r["mAOE"] == pytest.approx(0.2)
    assert r["mAVE"] == pytest.approx(0.5)
    assert r["mAAE"] == pytest.approx(1.0)
    assert r["NDS"] == pytest.approx((5 * 1.0 + 0.7 + 0.5 + 0.8 + 0.5 + 0.0) / 10)


def test_prediction_at_1_5_m_counts_at_2_and_4_only():
    p = GT_BOXES[:1].copy()
    p[0, 1] += 1.5
    r = nuscenes_evaluate([pred(p)], [gt(GT_BOXES[:1])], classes=CAR)
    assert r["car/AP_dist_0.5"] == 0.0 and r["car/AP_dist_1.0"] == 0.0
    assert r["car/AP_dist_2.0"] == pytest.approx(1.0) and r["car/AP_dist_4.0"] == pytest.approx(1.0)
    assert r["mAP"] == pytest.approx(0.5)
    assert r["mATE"] == pytest.approx(1.5)
    # NDS: 5 * 0.5 + (1 - min(1, 1.5)) + 4 perfect errors
    assert r["NDS"] == pytest.approx((2.5 + 0.0 + 4.0) / 10)


def test_half_recall_ap_is_4_over_9():
    # 2 ground truths, one perfect prediction: precision 1 up to recall 0.5, 0 after. Recall points 0.11 … 0.50
    # (40 of the 90 above min_recall) score (1 - 0.1) / 0.9 = 1: AP = 40 / 90
    r = nuscenes_evaluate([pred(GT_BOXES[:1].copy())], [gt(GT_BOXES[:2])], classes=CAR)
    assert r["mAP"] == pytest.approx(40 / 90)


def test_false_positive_ranked_first_gives_ap_0_2():
    # scores: FP 0.9 then TP 0.8 on one ground truth → points (recall 0, precision 0), (1, 0.5); interpolated
    # p(r) = 0.5 r; AP = Σ_{i=21}^{100} (0.005 i - 0.1) / 90 / 0.9 = 16.2 / 81 = 0.2
    fp = GT_BOXES[:1].copy()
    fp[0, :2] = [30.0, 30.0]
    boxes = np.concatenate([fp, GT_BOXES[:1]])
    r = nuscenes_evaluate([pred(boxes, scores=[0.9, 0.8])], [gt(GT_BOXES[:1])], classes=CAR)
    assert r["mAP"] == pytest.approx(0.2)


def test_barrier_yaw_is_pi_periodic_and_cones_have_no_orientation():
    classes = ("car", "barrier", "traffic_cone")
    g = GT_BOXES.copy()
    labels = np.array([0, 1, 2])
    p = g.copy()
    p[:, 6] += math.pi  # facing backwards
    r = nuscenes_evaluate([pred(p, labels=labels)], [gt(g, labels=labels)], classes=classes)
    assert r["car/AOE"] == pytest.approx(math.pi)
    assert r["barrier/AOE"] == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(r["traffic_cone/AOE"]) and math.isnan(r["barrier/AVE"]) and math.isnan(r["barrier/AAE"])
    assert r["mAOE"] == pytest.approx(math.pi / 2)  # mean over the classes that have it (car, barrier)


def test_class_range_and_zero_point_filters():
    # a car GT at 60 m (car range 50) and a pedestrian GT at 45 m (range 40): not evaluated; a prediction on
    # them is not a false positive either (predictions are range-filtered too)
    classes = ("car", "pedestrian")
    far = np.array([[60.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0], [0.0, 45.0, -1.0, 0.6, 0.6, 1.7, 0.0, 0.0, 0.0]])
    g = np.concatenate([GT_BOXES[:1], far])
    labels = np.array([0, 0, 1])
    r = nuscenes_evaluate([pred(g.copy(), labels=labels)], [gt(g, labels=labels)], classes=classes)
    assert r["car/AP"] == pytest.approx(1.0)
    assert r["pedestrian/AP"] == 0.0  # no ground truth left: AP 0 (the devkit's rule), errors 1
    shift = np.eye(4)
    shift[0, 3] = 45.0  # LiDAR 45 m ahead of the ego origin: the ground truth at x = 10 is 55 m away, out of range
    # (the prediction has no lidar2ego: it stays in range and is a false positive)
    r2 = nuscenes_evaluate([pred(GT_BOXES[:1].copy())], [gt(GT_BOXES[:1], lidar2ego=shift)], classes=CAR)
    assert r2["car/AP"] == 0.0
    # a ground truth with 0 points is dropped; the prediction on it becomes a false positive
    r3 = nuscenes_evaluate([pred(GT_BOXES[:2].copy(), scores=[0.9, 0.8])],
                           [gt(GT_BOXES[:2], num_points=np.array([0, 10]))], classes=CAR)
    assert r3["mAP"] == pytest.approx(0.2)  # same curve as the FP-first case


def test_missing_velocity_and_bad_input():
    r = nuscenes_evaluate([pred(GT_BOXES[:, :7].copy())], [gt()], classes=CAR)
    assert r["mAVE"] == pytest.approx(1.0) and r["mATE"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"predictions\[0\]\['scores_3d'\]: contains NaN"):
        nuscenes_evaluate([pred(GT_BOXES.copy(), scores=[np.nan, 1, 1])], [gt()], classes=CAR)
    with pytest.raises(ValueError, match="same length"):
        nuscenes_evaluate([pred(GT_BOXES.copy())], [gt(), gt()], classes=CAR)
    with pytest.raises(KeyError, match="labels_3d"):
        nuscenes_evaluate([pred(GT_BOXES.copy())], [dict(boxes_3d=GT_BOXES)], classes=CAR)


def test_mmengine_metric_wraps_nuscenes_evaluate():
    import torch
    from perception3d.registry import METRICS
    m = METRICS.build(dict(type="NuScenesMetric", classes=CAR))
    sample = dict(pred_instances_3d=dict(bboxes_3d=torch.tensor(GT_BOXES, dtype=torch.float32),
                                         scores_3d=torch.tensor([0.9, 0.8, 0.7]), labels_3d=torch.zeros(3),
                                         attr_labels=torch.full((3,), 5)),
                  gt_bboxes_3d=torch.tensor(GT_BOXES, dtype=torch.float32), gt_labels_3d=torch.zeros(3),
                  attr_labels=np.full(3, 5), num_lidar_pts=np.array([3, 0, 5]), num_radar_pts=np.array([0, 2, 0]))
    m.process({}, [sample])
    r = m.compute_metrics(m.results)
    assert r["mAP"] == pytest.approx(1.0) and r["NDS"] == pytest.approx(1.0, abs=1e-6)
