"""KITTI AP|R40 on small cases worked out by hand.

The devkit picks score thresholds at about every 1/40 of recall (``get_thresholds``) and AP|R40 averages
precision at threshold indices 1..40. With n ground truths all detected, distinct scores and no FP:
* n = 80: thresholds at TP ranks 0, 1, 3, 5, ..., 79 -> 41 thresholds, precision 1 everywhere -> 100.
* n = 40: one threshold per TP -> 40 thresholds (indices 0..39), index 40 stays 0 -> 39/40 = 97.5.
"""
import math

import numpy as np
import pytest

from perception3d.evaluation.kitti import get_thresholds, kitti_evaluate, project_boxes_to_image

EASY_BOX2D = [100.0, 100.0, 200.0, 160.0]  # 60 px tall


def _car(k):
    # cars on a grid, 10 m apart
    return [10.0 * (k % 10), 10.0 * (k // 10), -1.6, 4.0, 1.8, 1.5, 0.2]


def _frames(n_cars=80, per_frame=10, **gt_overrides):
    gts, preds = [], []
    for f in range(n_cars // per_frame):
        boxes = np.asarray([_car(k) for k in range(per_frame)], np.float32)
        gt = {"boxes_3d": boxes, "labels_3d": np.zeros(per_frame, np.int64),
              "bbox": np.tile(EASY_BOX2D, (per_frame, 1)), "truncated": np.zeros(per_frame),
              "occluded": np.zeros(per_frame), "alpha": np.full(per_frame, 0.3)}
        gt.update({k: v(f) if callable(v) else v for k, v in gt_overrides.items()})
        scores = 0.99 - 0.01 * (f * per_frame + np.arange(per_frame))  # distinct scores
        preds.append({"boxes_3d": boxes.copy(), "labels_3d": np.zeros(per_frame, np.int64),
                      "scores_3d": scores, "bbox": np.tile(EASY_BOX2D, (per_frame, 1)),
                      "alpha": np.full(per_frame, 0.3)})
        gts.append(gt)
    return preds, gts


def test_get_thresholds_counts():
    s = np.linspace(0.99, 0.2, 80)
    assert len(get_thresholds(s, 80)) == 41
    assert len(get_thresholds(s[:40], 40)) == 40
    assert len(get_thresholds(s[:80], 160)) == 21  # ranks 0, 3, 7, ..., 79


def test_perfect_80_and_40():
    preds, gts = _frames(80)
    res = kitti_evaluate(preds, gts)
    for m in ("3D", "BEV", "2D", "AOS"):
        for d in ("easy", "moderate", "hard"):
            assert res[f"Car/{m}_R40_{d}"] == pytest.approx(100.0), (m, d)
    assert "Pedestrian/3D_R40_easy" in res and res["Pedestrian/3D_R40_easy"] == 0.0
    assert res["Overall/3D_R40_moderate"] == pytest.approx(100.0)  # only Car has GT
    preds, gts = _frames(40)
    assert kitti_evaluate(preds, gts)["Car/3D_R40_moderate"] == pytest.approx(97.5)


def test_false_positive_at_highest_score():
    # 80 TPs + 1 FP above all of them. Threshold k (0..40) keeps tp_k TPs and the FP: tp_0 = 1, tp_k = 2k.
    # precision_k = tp_k / (tp_k + 1) grows with k; the envelope is the max over k' >= k, i.e. p_40 = 80/81
    # at every index -> AP = 100 * 80 / 81 = 98.77
    preds, gts = _frames(80)
    p = preds[0]
    p["boxes_3d"] = np.concatenate([p["boxes_3d"], [[500.0, 500.0, -1.6, 4.0, 1.8, 1.5, 0.0]]]).astype(np.float32)
    p["scores_3d"] = np.concatenate([p["scores_3d"], [0.999]])
    p["labels_3d"] = np.concatenate([p["labels_3d"], [0]])
    p["bbox"] = np.concatenate([p["bbox"], [[300.0, 100.0, 400.0, 160.0]]])
    p["alpha"] = np.concatenate([p["alpha"], [0.0]])
    expected = 100.0 * 80.0 / 81.0
    res = kitti_evaluate(preds, gts)
    assert res["Car/3D_R40_easy"] == pytest.approx(expected, abs=1e-9)
    assert res["Car/BEV_R40_hard"] == pytest.approx(expected, abs=1e-9)
    assert res["Car/2D_R40_moderate"] == pytest.approx(expected, abs=1e-9)
    # the same FP inside a DontCare region is forgiven for the 2D metric only (devkit: metric 0)
    g = gts[0]
    for k in ("bbox", "truncated", "occluded", "alpha"):
        extra = {"bbox": [[290.0, 90.0, 410.0, 170.0]], "truncated": [0.0], "occluded": [0.0], "alpha": [0.0]}[k]
        g[k] = np.concatenate([g[k], extra])
    g["boxes_3d"] = np.concatenate([g["boxes_3d"], [[0, 0, 0, -1, -1, -1, 0]]]).astype(np.float32)  # DontCare
    g["labels_3d"] = np.concatenate([g["labels_3d"], [-1]])
    g["names"] = ["Car"] * 10 + ["DontCare"]
    res = kitti_evaluate(preds, gts)
    assert res["Car/2D_R40_moderate"] == pytest.approx(100.0)
    assert res["Car/3D_R40_moderate"] == pytest.approx(expected, abs=1e-9)


def test_van_is_ignored_neighbour_but_truck_is_not():
    preds, gts = _frames(80)
    p, g = preds[0], gts[0]
    extra_box = [[500.0, 500.0, -1.6, 5.0, 2.0, 2.0, 0.0]]
    p["boxes_3d"] = np.concatenate([p["boxes_3d"], extra_box]).astype(np.float32)
    p["scores_3d"] = np.concatenate([p["scores_3d"], [0.999]])
    p["labels_3d"] = np.concatenate([p["labels_3d"], [0]])
    p["bbox"] = np.concatenate([p["bbox"], [EASY_BOX2D]])
    p["alpha"] = np.concatenate([p["alpha"], [0.0]])
    g["boxes_3d"] = np.concatenate([g["boxes_3d"], extra_box]).astype(np.float32)
    g["labels_3d"] = np.concatenate([g["labels_3d"], [-1]])
    for k, v in (("bbox", [EASY_BOX2D]), ("truncated", [0.0]), ("occluded", [0.0]), ("alpha", [0.0])):
        g[k] = np.concatenate([g[k], v])
    g["names"] = ["Car"] * 10 + ["Van"]
    assert kitti_evaluate(preds, gts)["Car/3D_R40_moderate"] == pytest.approx(100.0)  # match to a Van: ignored
    g["names"] = ["Car"] * 10 + ["Truck"]
    expected = 100.0 * 80.0 / 81.0  # now an FP at the top score (as in the test above)
    assert kitti_evaluate(preds, gts)["Car/3D_R40_moderate"] == pytest.approx(expected, abs=1e-9)


def test_difficulty_filters():
    # 80 easy cars detected + 80 cars 30 px tall (moderate / hard only) never detected.
    # easy: the short ones are ignored -> 100. moderate: 80 of 160 found -> 21 thresholds -> 20/40 -> 50.
    preds, gts = _frames(160, per_frame=20)
    for p, g in zip(preds, gts):
        g["bbox"][10:] = [100.0, 100.0, 200.0, 130.0]
        for k in ("boxes_3d", "labels_3d", "scores_3d", "bbox", "alpha"):
            p[k] = p[k][:10]
    res = kitti_evaluate(preds, gts)
    assert res["Car/3D_R40_easy"] == pytest.approx(100.0)
    assert res["Car/3D_R40_moderate"] == pytest.approx(50.0)
    assert res["Car/3D_R40_hard"] == pytest.approx(50.0)
    # occlusion 1 instead: ignored in easy only; truncation 0.4: ignored in easy and moderate
    preds, gts = _frames(160, per_frame=20)
    for p, g in zip(preds, gts):
        g["occluded"][10:] = 1
        g["truncated"][10:] = 0.4
        for k in ("boxes_3d", "labels_3d", "scores_3d", "bbox", "alpha"):
            p[k] = p[k][:10]
    res = kitti_evaluate(preds, gts)
    assert res["Car/3D_R40_easy"] == pytest.approx(100.0)
    assert res["Car/3D_R40_moderate"] == pytest.approx(100.0)
    assert res["Car/3D_R40_hard"] == pytest.approx(50.0)


def test_aos_half_when_alpha_off_by_half_pi():
    # every TP has |d alpha| = pi/2 -> similarity (1 + cos) / 2 = 0.5 -> AOS 50 while 2D AP is 100
    preds, gts = _frames(80)
    for p in preds:
        p["alpha"] = p["alpha"] + math.pi / 2
    res = kitti_evaluate(preds, gts)
    assert res["Car/2D_R40_easy"] == pytest.approx(100.0)
    assert res["Car/AOS_R40_easy"] == pytest.approx(50.0)


def test_iou_just_under_and_over_threshold():
    # shift every prediction along the car's length: IoU = (4 - d) / (4 + d); 0.7 at d = 0.70588
    for d, expected in ((0.69, 100.0), (0.72, 0.0)):
        preds, gts = _frames(80)
        for p in preds:
            yaw = p["boxes_3d"][:, 6]
            p["boxes_3d"][:, 0] += d * np.cos(yaw)
            p["boxes_3d"][:, 1] += d * np.sin(yaw)
        res = kitti_evaluate(preds, gts)
        assert res["Car/3D_R40_moderate"] == pytest.approx(expected), d
        assert res["Car/BEV_R40_moderate"] == pytest.approx(expected), d


def test_projection_and_missing_bbox():
    # P2 with f = 800, principal point (600, 200); cam x = -lidar y, cam y = -lidar z, cam z = lidar x.
    # box x 8..12, y -1..1, z -1.5..0 -> u in [600 - 800/8, 600 + 800/8] = [500, 700], v in [200, 200 + 1.5*100]
    calib = {"P2": [[800, 0, 600, 0], [0, 800, 200, 0], [0, 0, 1, 0]], "R0_rect": np.eye(3),
             "Tr_velo_to_cam": [[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0]], "image_shape": (375, 1242)}
    bbox, valid = project_boxes_to_image(np.array([[10.0, 0, -1.5, 4, 2, 1.5, 0], [-10.0, 0, -1.5, 4, 2, 1.5, 0]]),
                                         calib)
    assert np.allclose(bbox[0], [500, 200, 700, 350])
    assert valid.tolist() == [True, False]  # the second box is behind the camera
    # without bbox and calib the 2D / AOS keys are absent but 3D / BEV are computed
    preds, gts = _frames(80)
    for p in preds:
        del p["bbox"]
    res = kitti_evaluate(preds, gts)
    assert "Car/2D_R40_easy" not in res and "Car/AOS_R40_easy" not in res
    assert res["Car/3D_R40_easy"] == pytest.approx(100.0)


def test_bad_input():
    preds, gts = _frames(10)
    with pytest.raises(ValueError, match="same length"):
        kitti_evaluate(preds[:0], gts)
    bad = dict(gts[0])
    bad["truncated"] = bad["truncated"][:3]
    with pytest.raises(ValueError, match=r"ground_truths\[0\]: truncated has 3 entries"):
        kitti_evaluate(preds, [bad])
    bad = dict(preds[0])
    bad["boxes_3d"] = bad["boxes_3d"].copy()
    bad["boxes_3d"][2, 3] = np.nan
    with pytest.raises(ValueError, match=r"predictions\[0\]\['boxes_3d'\]: box 2 has a NaN"):
        kitti_evaluate([bad], gts)
    bad = dict(gts[0])
    del bad["occluded"]
    with pytest.raises(KeyError, match="occluded"):
        kitti_evaluate(preds, [bad])


def test_kitti_metric_mmengine():
    import torch

    from perception3d.registry import METRICS

    metric = METRICS.build(dict(type="KittiMetric"))
    preds, gts = _frames(80)
    for p, g in zip(preds, gts):
        metric.process({}, [{"pred_instances_3d": {"bboxes_3d": torch.as_tensor(p["boxes_3d"]),
                                                   "scores_3d": torch.as_tensor(p["scores_3d"]),
                                                   "labels_3d": torch.as_tensor(p["labels_3d"]),
                                                   "bbox": p["bbox"], "alpha": p["alpha"]},
                             "gt_bboxes_3d": torch.as_tensor(g["boxes_3d"]), "gt_labels_3d": g["labels_3d"],
                             "bbox": g["bbox"], "truncated": g["truncated"], "occluded": g["occluded"],
                             "alpha": g["alpha"]}])
    res = metric.evaluate(len(preds))
    assert res["Kitti metric/Car/3D_R40_moderate"] == pytest.approx(100.0)
    assert res["Kitti metric/Car/AOS_R40_hard"] == pytest.approx(100.0)


_SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (_SHARED / "mmdet3d_tests" / "kitti").is_dir(), reason="../shared/data is absent")
def test_matches_mmdet3d_kitti_metric_test_case():
    """mmdet3d's own KittiMetric test: its KITTI frame 000000 (one Pedestrian) and its prediction
    [8.7314, -1.8559, -1.5997, 0.48, 1.2, 1.89, 0.01] (score 0.9), 2D box projected with the frame's calibration.
    mmdet3d expects Overall 3D/BEV/2D AP11 = 3.0303 for easy/moderate/hard, i.e. 100/11 for Pedestrian averaged
    with 0 for its two classes without ground truth. AP|R40 of a single object is 0 (one threshold, see above)."""
    import pickle

    from perception3d.datasets.mmdet3d_info import load_mmdet3d_infos

    root = _SHARED / "mmdet3d_tests" / "kitti"
    _, (e,) = load_mmdet3d_infos(root / "kitti_infos_train.pkl", classes=("Car", "Pedestrian", "Cyclist"))
    raw = pickle.load(open(root / "kitti_infos_train.pkl", "rb"))["data_list"][0]
    inst = raw["instances"]
    cam = raw["images"]["CAM2"]
    calib = {"P2": cam["cam2img"], "R0_rect": raw["images"]["R0_rect"],
             "Tr_velo_to_cam": raw["lidar_points"]["Tr_velo_to_cam"], "image_shape": (cam["height"], cam["width"])}
    gt = {"boxes_3d": e["gt_bboxes_3d"], "labels_3d": e["gt_labels_3d"], "names": ["Pedestrian"],
          "bbox": [i["bbox"] for i in inst], "truncated": [i["truncated"] for i in inst],
          "occluded": [i["occluded"] for i in inst], "alpha": [i["alpha"] for i in inst], "calib": calib}
    pred = {"boxes_3d": [[8.7314, -1.8559, -1.5997, 0.4800, 1.2000, 1.8900, 0.0100]], "scores_3d": [0.9],
            "labels_3d": [1]}
    res = kitti_evaluate([pred], [gt], include_r11=True)
    for m in ("3D", "BEV", "2D"):
        for d in ("easy", "moderate", "hard"):
            assert res[f"Pedestrian/{m}_R11_{d}"] == pytest.approx(100.0 / 11.0), (m, d)
            assert res[f"Pedestrian/{m}_R40_{d}"] == 0.0
    assert np.mean([res["Car/3D_R11_easy"], res["Pedestrian/3D_R11_easy"], res["Cyclist/3D_R11_easy"]]) == \
        pytest.approx(3.0303030303030307)
