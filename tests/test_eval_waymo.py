"""Waymo mAP/mAPH on small cases worked out by hand.

How the hand numbers come out (see perception3d/evaluation/waymo.py): the official AP integrates the
precision envelope over recall; with one ground truth and recall either 0 or 1, AP = precision at recall 1
(the envelope is flat from recall 0 to 1). Cutoffs above every score give recall 0, where precision is 1.
"""
import math

import numpy as np
import pytest

from perception3d.evaluation.waymo import mean_average_precision, waymo_evaluate

CAR = [0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.3]
PED = [10.0, 5.0, 0.0, 1.0, 1.0, 1.8, 0.0]
CYC = [-10.0, 5.0, 0.0, 2.0, 0.8, 1.7, 1.0]


def _gt(boxes, labels, points=None, difficulty=None):
    n = len(boxes)
    return {"boxes_3d": np.asarray(boxes, np.float32).reshape(n, 7), "labels_3d": np.asarray(labels, np.int64),
            "num_points": np.asarray(points if points is not None else [100] * n, np.int64),
            "difficulty": np.asarray(difficulty if difficulty is not None else [0] * n, np.int64)}


def _pred(boxes, labels, scores):
    n = len(boxes)
    return {"boxes_3d": np.asarray(boxes, np.float32).reshape(n, 7), "labels_3d": np.asarray(labels, np.int64),
            "scores_3d": np.asarray(scores, np.float32)}


def _shift(box, dx=0.0, dyaw=0.0):
    b = list(box)
    b[0] += dx
    b[6] += dyaw
    return b


def test_perfect_predictions_give_one():
    gts = [_gt([CAR, PED, CYC], [0, 1, 2]), _gt([_shift(CAR, 20), PED], [0, 1])]
    preds = [_pred([CAR, PED, CYC], [0, 1, 2], [0.9, 0.8, 0.7]), _pred([_shift(CAR, 20), PED], [0, 1], [0.6, 0.5])]
    res = waymo_evaluate(preds, gts)
    assert len(res) == 16
    for k, v in res.items():
        assert v == pytest.approx(1.0, abs=1e-6), k


def test_one_false_positive_at_higher_score():
    # cutoffs <= 0.5: TP 1, FP 1 -> P 0.5, R 1; cutoffs in (0.5, 0.8]: R 0 (P := 1). Envelope at R 1 is 0.5,
    # at R 0 it takes its neighbour's 0.5: AP = 0.5 * 1.0 = 0.5; heading exact so APH = 0.5 too.
    gts = [_gt([CAR], [0])]
    preds = [_pred([CAR, _shift(CAR, 30)], [0, 0], [0.5, 0.8])]
    res = waymo_evaluate(preds, gts)
    for key in ("Vehicle/L1 mAP", "Vehicle/L1 mAPH", "Vehicle/L2 mAP", "Vehicle/L2 mAPH", "Overall/L1 mAP"):
        assert res[key] == pytest.approx(0.5, abs=1e-6), key
    # the same FP at a LOWER score does not hurt: at cutoffs in (0.3, 0.5] P = 1 at R = 1 -> envelope 1
    res = waymo_evaluate([_pred([CAR, _shift(CAR, 30)], [0, 0], [0.5, 0.3])], gts)
    assert res["Vehicle/L1 mAP"] == pytest.approx(1.0, abs=1e-6)


def test_heading_off_by_half_pi_halves_aph():
    # a square footprint rotated by pi/2 is the same box (IoU 1), heading accuracy 1 - (pi/2)/pi = 0.5:
    # precision_ha at R 1 is 0.5 -> APH 0.5 while AP stays 1.
    sq = [0.0, 0.0, 0.0, 2.0, 2.0, 1.5, 0.2]
    res = waymo_evaluate([_pred([_shift(sq, dyaw=math.pi / 2)], [0], [0.9])], [_gt([sq], [0])])
    assert res["Vehicle/L1 mAP"] == pytest.approx(1.0, abs=1e-6)
    assert res["Vehicle/L1 mAPH"] == pytest.approx(0.5, abs=1e-6)
    assert res["Vehicle/L2 mAPH"] == pytest.approx(0.5, abs=1e-6)
    # wrap-around: -pi + 0.1 vs pi - 0.1 differ by 0.2 rad, not 2 pi - 0.2: ha = 1 - 0.2 / pi
    a = [0.0, 0.0, 0.0, 2.0, 2.0, 1.5, math.pi - 0.1]
    res = waymo_evaluate([_pred([_shift(a, dyaw=-2 * math.pi + 0.2)], [0], [0.9])], [_gt([a], [0])])
    assert res["Vehicle/L1 mAPH"] == pytest.approx(1 - 0.2 / math.pi, abs=1e-5)


def test_three_point_box_only_in_level2():
    # GT A has 100 points (L1), GT B has 3 points (L2); only A is detected.
    # L1: TP 1, FN 0 -> AP 1. L2: TP 1, FN 1 -> P 1 at R 0.5: area 0.5 * 1 = 0.5.
    gts = [_gt([CAR, _shift(CAR, 10)], [0, 0], points=[100, 3])]
    preds = [_pred([CAR], [0], [0.9])]
    res = waymo_evaluate(preds, gts)
    assert res["Vehicle/L1 mAP"] == pytest.approx(1.0, abs=1e-6)
    assert res["Vehicle/L2 mAP"] == pytest.approx(0.5, abs=1e-6)
    # a labelled difficulty-2 box with many points is L2 in the same way
    gts = [_gt([CAR, _shift(CAR, 10)], [0, 0], points=[100, 300], difficulty=[0, 2])]
    res = waymo_evaluate(preds, gts)
    assert res["Vehicle/L1 mAP"] == pytest.approx(1.0, abs=1e-6)
    assert res["Vehicle/L2 mAP"] == pytest.approx(0.5, abs=1e-6)


def test_zero_point_box_is_ignored():
    # GT A (50 points) detected at 0.9; GT Z (0 points) "detected" at 0.95.
    gts = [_gt([CAR, _shift(CAR, 10)], [0, 0], points=[50, 0])]
    preds = [_pred([CAR, _shift(CAR, 10)], [0, 0], [0.9, 0.95])]
    res = waymo_evaluate(preds, gts)  # "ignore": the prediction on Z is neither TP nor FP -> AP 1
    assert res["Vehicle/L1 mAP"] == pytest.approx(1.0, abs=1e-6)
    assert res["Vehicle/L2 mAP"] == pytest.approx(1.0, abs=1e-6)
    # official command-line tool: Z is dropped before matching, so its prediction is an FP at 0.95
    # -> P 0.5 at R 1 (cutoffs <= 0.9), R 0 above: AP 0.5 (as the higher-score FP case)
    res = waymo_evaluate(preds, gts, zero_point_gt="drop")
    assert res["Vehicle/L1 mAP"] == pytest.approx(0.5, abs=1e-6)


def test_iou_just_under_and_over_threshold():
    # same box shifted along its length (yaw 0): IoU = (l - d) / (l + d).
    # vehicle l = 4, threshold 0.7: d = 0.69 -> 0.7058 (TP), d = 0.72 -> 0.6949 (FP + FN).
    car = [0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]
    assert waymo_evaluate([_pred([_shift(car, 0.69)], [0], [0.9])], [_gt([car], [0])])["Vehicle/L1 mAP"] == \
        pytest.approx(1.0, abs=1e-6)
    assert waymo_evaluate([_pred([_shift(car, 0.72)], [0], [0.9])], [_gt([car], [0])])["Vehicle/L1 mAP"] == 0.0
    # pedestrian l = 1, threshold 0.5: d = 0.32 -> 0.515 (TP), d = 0.35 -> 0.481 (miss)
    ped = [0.0, 0.0, 0.0, 1.0, 1.0, 1.8, 0.0]
    assert waymo_evaluate([_pred([_shift(ped, 0.32)], [1], [0.9])], [_gt([ped], [1])])["Pedestrian/L1 mAP"] == \
        pytest.approx(1.0, abs=1e-6)
    assert waymo_evaluate([_pred([_shift(ped, 0.35)], [1], [0.9])], [_gt([ped], [1])])["Pedestrian/L1 mAP"] == 0.0
    # a vehicle at the pedestrian's 0.515 IoU is not a match: class thresholds are per class
    assert waymo_evaluate([_pred([_shift(ped, 0.32)], [0], [0.9])], [_gt([ped], [0])])["Vehicle/L1 mAP"] == 0.0


def test_hungarian_not_greedy_matching():
    # g1 at x=0, g2 at x=0.3; p1 (0.9) at x=0.2: IoU 0.905 with g1, 0.951 with g2; p2 (0.8) at x=1.0: IoU 0.702
    # with g2, 0.6 with g1. Score-first greedy gives p1-g2 and leaves p2 unmatched (AP 0.5 area at R 0.5 ... );
    # Hungarian maximises the IoU sum: p1-g1 + p2-g2 = 1.607 > 0.951 -> both TP -> AP 1.
    car = [0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]
    gts = [_gt([car, _shift(car, 0.3)], [0, 0])]
    preds = [_pred([_shift(car, 0.2), _shift(car, 1.0)], [0, 0], [0.9, 0.8])]
    assert waymo_evaluate(preds, gts)["Vehicle/L1 mAP"] == pytest.approx(1.0, abs=1e-6)


def test_overall_is_mean_over_classes_with_gt():
    # vehicle AP 1; pedestrian: one of two found -> AP 0.5; no cyclist GT -> cyclist 0.0 and not averaged
    gts = [_gt([CAR, PED, _shift(PED, 5)], [0, 1, 1])]
    preds = [_pred([CAR, PED], [0, 1], [0.9, 0.9])]
    res = waymo_evaluate(preds, gts)
    assert res["Cyclist/L1 mAP"] == 0.0
    assert res["Overall/L1 mAP"] == pytest.approx(0.75, abs=1e-6)
    assert res["Overall/L2 mAPH"] == pytest.approx(0.75, abs=1e-6)


def test_envelope_between_recall_points():
    # two GTs; cutoff sweep gives (R 0.5, P 1) and (R 1, P 0.5): envelope 1 on [0, 0.5], 0.5 at 1.0.
    # Fill points between 0.5 and 1.0 carry 0.5, so the trapezoid from 0.55 (0.5) to 0.5 (1.0) adds 0.0375:
    # area = 0.5 * 1 + 0.45 * 0.5 + 0.05 * 0.75 = 0.7625 (the official integration, not 0.75)
    ap = mean_average_precision([1.0, 0.5, 1.0], [0.5, 1.0, 0.0])
    assert ap == pytest.approx(0.7625, abs=1e-5)


def test_bad_input_errors():
    gts = [_gt([CAR], [0])]
    with pytest.raises(ValueError, match="same length"):
        waymo_evaluate([], gts)
    with pytest.raises(ValueError, match=r"predictions\[0\]\['boxes_3d'\]: box 0 has a NaN"):
        waymo_evaluate([_pred([[np.nan] * 7], [0], [0.5])], gts)
    with pytest.raises(ValueError, match=r"predictions\[0\]: boxes_3d \(1\), scores_3d \(2\)"):
        waymo_evaluate([_pred([CAR], [0], [0.5, 0.4])], gts)
    with pytest.raises(KeyError, match="num_points"):
        waymo_evaluate([_pred([CAR], [0], [0.5])], [{"boxes_3d": np.zeros((0, 7)), "labels_3d": np.zeros(0)}])


def test_waymo_metric_mmengine(tmp_path):
    import pickle

    import torch

    from perception3d.registry import METRICS

    metric = METRICS.build(dict(type="WaymoMetric", result_file=str(tmp_path / "res" / "preds.pkl")))
    gt_box = torch.tensor([CAR])
    samples = [{"pred_instances_3d": {"bboxes_3d": torch.tensor([CAR, _shift(CAR, 30)]),
                                      "scores_3d": torch.tensor([0.5, 0.8]), "labels_3d": torch.tensor([0, 0])},
                "gt_bboxes_3d": gt_box, "gt_labels_3d": torch.tensor([0]), "num_lidar_pts": torch.tensor([50]),
                "difficulty": torch.tensor([0]), "sample_idx": 7}]
    metric.process({}, samples)
    res = metric.evaluate(1)
    assert res["Waymo metric/Vehicle/L1 mAP"] == pytest.approx(0.5, abs=1e-6)  # the FP-at-higher-score case
    with open(tmp_path / "res" / "preds.pkl", "rb") as f:
        saved = pickle.load(f)
    assert saved[0]["sample_idx"] == 7 and saved[0]["bboxes_3d"].shape == (2, 7)
    assert isinstance(saved[0]["scores_3d"], np.ndarray)
    assert not [p for p in (tmp_path / "res").iterdir() if p.name.startswith(".tmp_")]
    with pytest.raises(KeyError, match=r"data_samples\[0\]: missing key 'gt_bboxes_3d'"):
        metric.process({}, [{"pred_instances_3d": {"bboxes_3d": torch.zeros(0, 7), "scores_3d": torch.zeros(0),
                                                   "labels_3d": torch.zeros(0)}}])


def test_hungarian_matches_brute_force_optimum():
    """The matcher maximises the summed quantised IoU over pairs above the threshold (checked by enumeration)."""
    import itertools

    from perception3d.evaluation.waymo import _hungarian

    rng = np.random.default_rng(0)
    for _ in range(200):
        P, G = rng.integers(1, 5), rng.integers(1, 5)
        iou = rng.uniform(0, 1, (P, G)) * (rng.uniform(size=(P, G)) < 0.6)
        thr = 0.5
        m = _hungarian(iou, thr)
        got = sum(round(iou[p, g] * 1e6) for p, g in enumerate(m) if g >= 0)
        assert all(iou[p, g] >= thr for p, g in enumerate(m) if g >= 0)
        assert len({g for g in m if g >= 0}) == (m >= 0).sum()  # one prediction per ground truth
        best = 0
        n = max(P, G)
        for perm in itertools.permutations(range(n)):
            s = sum(round(iou[p, perm[p]] * 1e6) for p in range(P) if perm[p] < G and iou[p, perm[p]] >= thr)
            best = max(best, s)
        assert got == best


def test_ap_integration_matches_official_test_vectors():
    """The official ``MetricsUtilsTest.ComputeMeanAveragePrecision`` cases (precisions, recalls, delta) -> AP."""
    assert mean_average_precision([], [], 0.05) == pytest.approx(0.0, abs=1e-6)
    assert mean_average_precision([0.1], [0.2], 0.05) == pytest.approx(0.2 * 0.1, abs=1e-6)
    assert mean_average_precision([0.1, 0.05], [0.2, 1.0], 0.05) == pytest.approx(
        0.05 * 0.8 + 0.1 * 0.2 + (0.1 - 0.05) * 0.5 * 0.05, abs=1e-6)
    assert mean_average_precision([0.1, 0.05], [0.2, 1.0], 1.0) == pytest.approx(
        0.2 * 0.1 + 0.5 * (0.1 + 0.05) * 0.8, abs=1e-6)
    assert mean_average_precision([0.1, 0.0, 0.05], [0.2, 0.4, 1.0], 0.05) == pytest.approx(
        0.05 * 0.8 + 0.1 * 0.2 + (0.1 - 0.05) * 0.5 * 0.05, abs=1e-6)


def test_official_one_shard_case():
    """The official ``DetectionMetricsTest.OneShard``: GT box length 100 (1 x 1 cross-section), predictions of length
    90 (IoU 0.9, score 0.0) and 60 (IoU 0.6, score 0.5), cutoffs {0, 0.5, 1}, two identical frames:
    mAP = mAPH = 1 (p(r=1) = 0.5 at cutoff 0, 1.0 at cutoff 0.5)."""
    def box(length):
        return [0.0, 0.0, -0.5, length, 1.0, 1.0, 0.0]
    gt = _gt([box(100.0)], [0])
    pred = _pred([box(90.0), box(60.0)], [0, 0], [0.0, 0.5])
    res = waymo_evaluate([pred, pred], [gt, gt], iou_thresholds=(0.5, 0.5, 0.5), score_cutoffs=[0.0, 0.5, 1.0])
    assert res["Vehicle/L2 mAP"] == pytest.approx(1.0, abs=1e-6)
    assert res["Vehicle/L2 mAPH"] == pytest.approx(1.0, abs=1e-6)


def test_waymo_metric_requires_point_counts():
    import torch

    from perception3d.evaluation.det_metrics import WaymoMetric

    with pytest.raises(KeyError, match="num_lidar_pts"):
        WaymoMetric().process({}, [{"pred_instances_3d": {"bboxes_3d": torch.zeros(0, 7), "scores_3d": torch.zeros(0),
                                                          "labels_3d": torch.zeros(0)},
                                    "gt_bboxes_3d": torch.zeros(0, 7), "gt_labels_3d": torch.zeros(0)}])


def _naive_waymo(preds, gts, thr=(0.7, 0.5, 0.5), cutoffs=None):
    """Straight per-cutoff loop (full Hungarian on every score subset, no shortcuts) for the parity test below."""
    from scipy.optimize import linear_sum_assignment

    box_iou_3d, heading_accuracy, mean_average_precision = _ref_iou_3d, _ref_heading_accuracy, _ref_ap
    cutoffs = [i * 0.01 for i in range(100)] + [1.0] if cutoffs is None else cutoffs
    out = {}
    for c, name in enumerate(("Vehicle", "Pedestrian", "Cyclist")):
        frames = []
        for p, g in zip(preds, gts):
            pi = np.nonzero(p["labels_3d"] == c)[0]
            gi = np.nonzero(g["labels_3d"] == c)[0]
            iou = box_iou_3d(torch_t(p["boxes_3d"][pi]), torch_t(g["boxes_3d"][gi]))
            frames.append((p, g, pi, gi, iou))
        curves = {1: ([], [], []), 2: ([], [], [])}
        for cut in cutoffs:
            cnt = {1: [0, 0, 0, 0.0], 2: [0, 0, 0, 0.0]}  # tp, fp, fn, sum_ha
            for p, g, pi, gi, iou in frames:
                sel = np.nonzero(p["scores_3d"][pi] >= cut)[0]
                ign = g["num_points"][gi] <= 0
                level = np.where((g["difficulty"][gi] == 2) | (g["num_points"][gi] <= 5), 2, 1)
                m = np.full(len(sel), -1)
                if len(sel) and len(gi):
                    sub = iou[sel]
                    r, k = linear_sum_assignment(np.where(sub >= thr[c], np.round(sub * 1e6), 0), maximize=True)
                    for a, b in zip(r, k):
                        if sub[a, b] >= thr[c]:
                            m[a] = b
                matched = np.zeros(len(gi), bool)
                for lv in (1, 2):
                    for a, b in enumerate(m):
                        if b < 0:
                            cnt[lv][1] += 1
                            continue
                        matched[b] = True
                        h = float(heading_accuracy(p["boxes_3d"][pi[sel[a]], 6], g["boxes_3d"][gi[b], 6]))
                        if not ign[b] and h > 0:
                            cnt[lv][0] += 1
                            cnt[lv][3] += h
                    cnt[lv][2] += int(((~matched) & (~ign) & (level <= lv)).sum())
            for lv in (1, 2):
                tp, fp, fn, sha = cnt[lv]
                prec = tp / (tp + fp) if tp + fp else 0.0
                prech = sha / (tp + fp) if tp + fp else 0.0
                rec = tp / (tp + fn) if tp + fn else 0.0
                if rec == 0:
                    prec = prech = 1.0
                curves[lv][0].append(prec)
                curves[lv][1].append(prech)
                curves[lv][2].append(rec)
        for lv in (1, 2):
            P, PH, R = curves[lv]
            out[f"{name}/L{lv} mAP"] = mean_average_precision(P, R)
            out[f"{name}/L{lv} mAPH"] = mean_average_precision(PH, R)
    return out


def torch_t(a):
    return np.asarray(a, np.float64)


# --- independent references for the naive evaluator (none of them calls perception3d code) -------------------
def _ref_iou_3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3D IoU of bottom-centre boxes (x, y, z, dx, dy, dz, yaw) with shapely polygons × the z overlap."""
    from shapely import affinity
    from shapely.geometry import box as rect

    def poly(x):
        return affinity.rotate(rect(x[0] - x[3] / 2, x[1] - x[4] / 2, x[0] + x[3] / 2, x[1] + x[4] / 2), x[6],
                               origin=(x[0], x[1]), use_radians=True)
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            dz = max(0.0, min(x[2] + x[5], y[2] + y[5]) - max(x[2], y[2]))
            inter = poly(x).intersection(poly(y)).area * dz
            out[i, j] = inter / (np.prod(x[3:6]) + np.prod(y[3:6]) - inter)
    return out


def _ref_heading_accuracy(a: float, b: float) -> float:
    d = abs((a - b + np.pi) % (2 * np.pi) - np.pi)          # wrapped to [0, π]
    return 1.0 - d / np.pi


def _ref_ap(precisions, recalls, delta: float = 0.05) -> float:
    """Official ComputeMeanAveragePrecision re-derived: the envelope env(r) = max precision at recall ≥ r (with
    (0, 1) added), sampled at every recall and every ``delta`` below each recall down to the next one; the
    trapezoid sum, the sample at recall 0 taking its neighbour's value."""
    if not len(precisions):
        return 0.0
    r = np.r_[0.0, recalls]
    p = np.r_[1.0, precisions]

    def env(x):
        return p[r >= x - 1e-12].max()
    levels = np.unique(r)
    grid = [levels[-1]]
    for hi, lo in zip(levels[::-1][:-1], levels[::-1][1:]):
        x = hi
        while x - lo > delta + 1e-6:
            x -= delta
            grid.append(x)
        grid.append(lo)
    g = np.array(grid)                                        # descending
    v = np.array([env(x) for x in g])
    # inserted samples take the envelope of the recall above them (official behaviour)
    for k in range(1, len(g)):
        if not np.isclose(g[k], levels).any():
            v[k] = v[k - 1]
    if len(v) >= 2:
        v[-1] = v[-2]
    return float(np.sum(0.5 * (g[:-1] - g[1:]) * (v[:-1] + v[1:])))


def test_references_agree_with_official_vectors_and_hand_values():
    assert _ref_ap([0.1, 0.05], [0.2, 1.0], 0.05) == pytest.approx(0.05 * 0.8 + 0.1 * 0.2 + 0.05 * 0.5 * 0.05)
    assert _ref_ap([0.1, 0.0, 0.05], [0.2, 0.4, 1.0], 0.05) == pytest.approx(0.05 * 0.8 + 0.1 * 0.2 + 0.05 * 0.5 * 0.05)
    assert _ref_ap([0.1, 0.05], [0.2, 1.0], 1.0) == pytest.approx(0.2 * 0.1 + 0.5 * 0.15 * 0.8)
    a = np.array([[0, 0, 0, 2, 2, 2, 0.0]])
    assert _ref_iou_3d(a, a + [1, 0, 0, 0, 0, 0, 0])[0, 0] == pytest.approx(4 / 12)        # half overlap in x
    assert _ref_iou_3d(a, a + [0, 0, 1, 0, 0, 0, 0])[0, 0] == pytest.approx(4 / 12)        # half overlap in z
    assert _ref_iou_3d(a, a + [0, 0, 0, 0, 0, 0, np.pi / 2])[0, 0] == pytest.approx(1.0)
    assert _ref_heading_accuracy(0.1, 0.1 + 2 * np.pi) == pytest.approx(1.0)
    assert _ref_heading_accuracy(0.0, np.pi / 2) == pytest.approx(0.5)


def test_matches_naive_per_cutoff_loop_on_random_scenes():
    rng = np.random.default_rng(1)
    preds, gts = [], []
    for _ in range(6):
        n = 12
        g = np.c_[rng.uniform(-15, 15, (n, 2)), rng.uniform(-1, 0, n), rng.uniform(1, 4.5, (n, 3)),
                  rng.uniform(-3, 3, n)]
        gl = rng.integers(0, 3, n)
        # several noisy predictions per object (some competing for the same GT) plus clutter
        k = rng.integers(0, n, 30)
        p = g[k] + rng.normal(0, 0.15, (30, 7)) * np.r_[1, 1, 0.3, 0.2, 0.2, 0.2, 2]
        p[:, 3:6] = np.abs(p[:, 3:6]) + 0.1
        p = np.r_[p, np.c_[rng.uniform(-15, 15, (8, 2)), rng.uniform(-1, 0, 8), rng.uniform(1, 4, (8, 3)),
                           rng.uniform(-3, 3, 8)]]
        pl = np.r_[gl[k], rng.integers(0, 3, 8)]
        gts.append({"boxes_3d": g, "labels_3d": gl, "num_points": rng.choice([0, 3, 50, 200], n),
                    "difficulty": rng.choice([0, 2], n)})
        preds.append({"boxes_3d": p, "labels_3d": pl, "scores_3d": np.round(rng.uniform(0, 1, len(p)), 2)})
    ours = waymo_evaluate(preds, gts)
    ref = _naive_waymo(preds, gts)
    for key, v in ref.items():
        assert ours[key] == pytest.approx(v, abs=1e-9), key
    assert max(ref.values()) > 0.2  # a non-trivial case


def test_unknown_point_count_is_kept():
    # num_points = -1 (the dataset reader's "not in the file"): neither ignored nor forced to LEVEL_2
    gts = [_gt([CAR, _shift(CAR, 10)], [0, 0], points=[-1, -1], difficulty=[0, 2])]
    res = waymo_evaluate([_pred([CAR], [0], [0.9])], gts)
    assert res["Vehicle/L1 mAP"] == pytest.approx(1.0, abs=1e-6)   # the detected box is L1, the other L2
    assert res["Vehicle/L2 mAP"] == pytest.approx(0.5, abs=1e-6)   # the L2 box counts as a miss at L2
