"""KITTI 3D object detection metric: AP|R40 for 2D box, BEV, 3D and AOS at easy / moderate / hard.

A re-implementation of the official devkit as ported by OpenPCDet / mmdet3d
(``kitti_object_eval_python/eval.py``), in plain numpy plus our exact rotated IoU (theirs needs
numba.cuda):

* **Difficulty filter** (``clean_data``): a ground truth of the evaluated class is *ignored* (matches to
  it are neither TP nor FP) when its occlusion > (0, 1, 2), truncation > (0.15, 0.3, 0.5) or 2D box height
  <= (40, 25, 25) px for easy / moderate / hard. Van counts as an ignored neighbour of Car and
  Person_sitting of Pedestrian; other classes and DontCare play no part, except that for the 2D-box
  metric (and AOS) unmatched detections inside a DontCare region (intersection / detection area >
  the class threshold) are not FPs. A detection with 2D height < (40, 25, 25) px is ignored.
* **Matching** (``compute_statistics_jit``): ground truths in order, each takes the free detection with
  the largest overlap ``> min_overlap`` (strict), preferring non-ignored detections. IoU thresholds
  (``min_overlaps``): 0.7 Car, 0.5 Pedestrian / Cyclist, for 2D box, BEV and 3D alike (the "strict" row).
* **Score thresholds** (``get_thresholds``): from the scores of true positives at score 0, about one per
  1/40 of recall; precision at each, made monotone (max over higher thresholds); **AP|R40** = the mean
  of precision at threshold indices 1..40, in percent. AOS replaces precision by the orientation
  similarity ``sum((1 + cos(dalpha)) / 2) / (TP + FP)``. As in the devkit, the discretisation means that
  few ground truths give low numbers (one perfect detection of one car scores 0 AP|R40, 40 of 40 score
  97.5, 80 of 80 score 100).

Inputs are LiDAR boxes (``perception3d`` convention); BEV / 3D IoU are computed in the LiDAR frame,
which equals the devkit's camera-frame IoU for upright boxes. 2D boxes of predictions are taken from
``"bbox"`` when given, else projected from the 3D box with the frame's calibration (``"calib"`` with
``P2``, ``R0_rect``, ``Tr_velo_to_cam`` and optionally ``image_shape`` (H, W)) as mmdet3d's
``bbox2result_kitti`` does (8 corners, min/max, clipped to the image; predictions whose 2D box misses the
image are dropped as there; where mmdet3d also drops boxes whose centre is outside its range
[0, -40, -3, 70.4, 40, 0], we drop those whose centre is behind the camera). Without either, the detection
height filter is skipped and the 2D-box / AOS metrics are not reported (their keys are absent).
Prediction ``alpha`` defaults to mmdet3d's ``-arctan2(-y, x) + rotation_y``.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from perception3d.ops.iou3d import box_iou_3d, box_iou_bev
from perception3d.structures.boxes import Boxes3D, as_box_tensor, check_boxes, limit_period

__all__ = ["kitti_evaluate", "KITTI_CLASSES", "project_boxes_to_image", "get_thresholds"]

KITTI_CLASSES = ("Car", "Pedestrian", "Cyclist")
DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40, 25, 25)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
_NEIGHBOUR = {"car": "van", "pedestrian": "person_sitting"}
_DEFAULT_MIN_OVERLAP = {"car": 0.7, "pedestrian": 0.5, "cyclist": 0.5, "van": 0.7, "person_sitting": 0.5,
                        "truck": 0.7}
_N_SAMPLE = 41
_NO_DET = -1e7


def get_thresholds(scores: np.ndarray, num_gt: int, num_sample_pts: int = _N_SAMPLE) -> np.ndarray:
    """Score thresholds at (about) every 1/(num_sample_pts - 1) of recall (the devkit's ``get_thresholds``)."""
    scores = np.sort(np.asarray(scores, np.float64))[::-1]
    current_recall = 0.0
    out = []
    n = len(scores)
    for i, s in enumerate(scores):
        l_recall = (i + 1) / num_gt
        r_recall = (i + 2) / num_gt if i < n - 1 else l_recall
        if (r_recall - current_recall) < (current_recall - l_recall) and i < n - 1:
            continue
        out.append(s)
        current_recall += 1.0 / (num_sample_pts - 1.0)
    return np.asarray(out, np.float64)


def _image_box_overlap(boxes: np.ndarray, query: np.ndarray, criterion: int = -1) -> np.ndarray:
    """[N, K] 2D overlap; criterion -1: IoU, 0: intersection / area of ``boxes``."""
    if len(boxes) == 0 or len(query) == 0:
        return np.zeros((len(boxes), len(query)))
    iw = np.minimum(boxes[:, None, 2], query[None, :, 2]) - np.maximum(boxes[:, None, 0], query[None, :, 0])
    ih = np.minimum(boxes[:, None, 3], query[None, :, 3]) - np.maximum(boxes[:, None, 1], query[None, :, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_q = (query[:, 2] - query[:, 0]) * (query[:, 3] - query[:, 1])
    if criterion == -1:
        ua = area_b[:, None] + area_q[None, :] - inter
    else:
        ua = np.broadcast_to(area_b[:, None], inter.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / ua, 0.0)


def _mat4(m, name: str) -> np.ndarray:
    a = np.asarray(m, np.float64)
    out = np.eye(4)
    if a.shape == (3, 3):
        out[:3, :3] = a
    elif a.shape == (3, 4):
        out[:3, :] = a
    elif a.shape == (4, 4):
        out = a
    else:
        raise ValueError(f"calib[{name!r}]: expected a 3x3, 3x4 or 4x4 matrix, got shape {a.shape}")
    return out


def project_boxes_to_image(boxes, calib: Mapping) -> tuple:
    """Project LiDAR boxes [N, 7] to 2D image boxes like mmdet3d's ``bbox2result_kitti``.

    Returns ``(bbox [N, 4] (x1, y1, x2, y2) clipped to the image, valid [N] bool)``; ``valid`` is False for
    boxes whose centre is behind the camera or whose 2D box misses the image (``calib['image_shape']``
    = (H, W); without it only the depth test applies).
    """
    for k in ("P2", "R0_rect", "Tr_velo_to_cam"):
        if k not in calib:
            raise KeyError(f"calib: missing key {k!r} (has {sorted(calib.keys())})")
    b = Boxes3D(as_box_tensor(boxes, "boxes").double(), check=False)
    corners = b.corners().numpy().reshape(-1, 3)  # [N*8, 3]
    lidar_to_cam = _mat4(calib["R0_rect"], "R0_rect") @ _mat4(calib["Tr_velo_to_cam"], "Tr_velo_to_cam")
    P2 = _mat4(calib["P2"], "P2")
    cam = corners @ lidar_to_cam[:3, :3].T + lidar_to_cam[:3, 3]
    img = cam @ P2[:3, :3].T + P2[:3, 3]
    depth = img[:, 2:3]
    uv = img[:, :2] / np.where(np.abs(depth) < 1e-6, 1e-6, depth)
    uv = uv.reshape(-1, 8, 2)
    bbox = np.concatenate([uv.min(1), uv.max(1)], axis=1)
    centre = b.gravity_center.numpy() @ lidar_to_cam[:3, :3].T + lidar_to_cam[:3, 3]
    valid = centre[:, 2] > 0
    if "image_shape" in calib and calib["image_shape"] is not None:
        h, w = [float(v) for v in list(calib["image_shape"])[:2]]
        valid &= (bbox[:, 0] < w) & (bbox[:, 1] < h) & (bbox[:, 2] > 0) & (bbox[:, 3] > 0)
        bbox[:, 0:2] = np.maximum(bbox[:, 0:2], 0)
        bbox[:, 2] = np.minimum(bbox[:, 2], w)
        bbox[:, 3] = np.minimum(bbox[:, 3], h)
    return bbox, valid


def _arr(d: Mapping, key: str, where: str, dtype=np.float64) -> np.ndarray:
    if key not in d:
        raise KeyError(f"{where}: missing key {key!r} (has {sorted(d.keys())})")
    v = d[key]
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=dtype)


class _Frame:
    """One frame's data in the devkit's terms (lower-case names, 2D boxes, alphas, overlaps)."""

    def __init__(self, pred: Mapping, gt: Mapping, i: int, classes: Sequence[str], calib: Optional[Mapping],
                 filter_out_of_image: bool):
        gw, pw = f"ground_truths[{i}]", f"predictions[{i}]"
        # ---- ground truth
        gl = _arr(gt, "labels_3d", gw, np.int64).reshape(-1)
        if "names" in gt:
            names = [str(n).lower() for n in list(gt["names"])]
        else:
            names = [classes[k].lower() if 0 <= k < len(classes) else "other" for k in gl]
        M = len(names)
        gb = as_box_tensor(_arr(gt, "boxes_3d", gw), f"{gw}['boxes_3d']").double()
        self.gt_bbox = _arr(gt, "bbox", gw).reshape(-1, 4)
        self.truncated = _arr(gt, "truncated", gw).reshape(-1)
        self.occluded = _arr(gt, "occluded", gw).reshape(-1)
        self.gt_alpha = _arr(gt, "alpha", gw).reshape(-1) if "alpha" in gt else np.full(M, -10.0)
        for key, v in (("labels_3d", gl), ("boxes_3d", gb), ("bbox", self.gt_bbox), ("truncated", self.truncated),
                       ("occluded", self.occluded), ("alpha", self.gt_alpha)):
            if len(v) != M:
                raise ValueError(f"{gw}: {key} has {len(v)} entries, expected {M} (one per object)")
        self.gt_names = np.asarray(names, dtype=object)
        dc = self.gt_names == "dontcare"
        gb = gb.clone()
        if dc.any():  # DontCare rows carry no usable 3D box: park them far away
            gb[torch.as_tensor(dc)] = torch.tensor([1e5, 1e5, 0.0, 1.0, 1.0, 1.0, 0.0], dtype=gb.dtype)
        check_boxes(gb, f"{gw}['boxes_3d']")
        self.dc_bbox = self.gt_bbox[dc]
        # ---- predictions
        pb = as_box_tensor(_arr(pred, "boxes_3d", pw), f"{pw}['boxes_3d']").double()
        check_boxes(pb, f"{pw}['boxes_3d']")
        ps = _arr(pred, "scores_3d", pw).reshape(-1)
        pl = _arr(pred, "labels_3d", pw, np.int64).reshape(-1)
        N = pb.shape[0]
        if not (len(ps) == len(pl) == N):
            raise ValueError(f"{pw}: boxes_3d ({N}), scores_3d ({len(ps)}) and labels_3d ({len(pl)}) "
                             f"must have the same length")
        if not np.isfinite(ps).all():
            raise ValueError(f"{pw}['scores_3d']: contains NaN or infinite values")
        keep = np.ones(N, dtype=bool)
        if "bbox" in pred:
            pbbox = _arr(pred, "bbox", pw).reshape(-1, 4)
            if len(pbbox) != N:
                raise ValueError(f"{pw}: bbox has {len(pbbox)} rows, expected {N}")
        elif calib is not None:
            pbbox, valid = project_boxes_to_image(pb, calib)
            if filter_out_of_image:
                keep = valid
        else:
            pbbox = np.zeros((0, 4)) if N == 0 else None  # a frame without predictions needs no 2D boxes
        if "alpha" in pred:
            palpha = _arr(pred, "alpha", pw).reshape(-1)
            if len(palpha) != N:
                raise ValueError(f"{pw}: alpha has {len(palpha)} entries, expected {N}")
        else:
            ry = limit_period(-pb[:, 6] - math.pi / 2).numpy()
            palpha = -np.arctan2(-pb[:, 1].numpy(), pb[:, 0].numpy()) + ry
        self.dt_scores = ps[keep]
        self.dt_names = np.asarray([classes[k].lower() if 0 <= k < len(classes) else "other" for k in pl[keep]],
                                   dtype=object)
        self.dt_bbox = pbbox[keep] if pbbox is not None else None
        self.dt_alpha = palpha[keep]
        pb = pb[torch.as_tensor(keep)]
        # overlaps [N_dt, M_gt] per metric
        self.overlaps = {"bev": box_iou_bev(pb, gb).numpy(), "3d": box_iou_3d(pb, gb).numpy()}
        if self.dt_bbox is not None:
            self.overlaps["bbox"] = _image_box_overlap(self.dt_bbox, self.gt_bbox, -1)
            self.dc_overlaps = _image_box_overlap(self.dt_bbox, self.dc_bbox, 0)

    def clean(self, cls: str, difficulty: int):
        """``clean_data``: (num_valid_gt, ignored_gt [M], ignored_dt [N]) with values -1 / 0 / 1."""
        heights = self.gt_bbox[:, 3] - self.gt_bbox[:, 1]
        valid_class = np.where(self.gt_names == cls, 1,
                               np.where(self.gt_names == _NEIGHBOUR.get(cls, "\0"), 0, -1))
        ignore = ((self.occluded > MAX_OCCLUSION[difficulty]) | (self.truncated > MAX_TRUNCATION[difficulty])
                  | (heights <= MIN_HEIGHT[difficulty]))
        ig_gt = np.where((valid_class == 1) & ~ignore, 0,
                         np.where((valid_class == 0) | (ignore & (valid_class == 1)), 1, -1))
        dt_valid = self.dt_names == cls
        if self.dt_bbox is not None:
            small = np.abs(self.dt_bbox[:, 3] - self.dt_bbox[:, 1]) < MIN_HEIGHT[difficulty]
        else:
            small = np.zeros(len(self.dt_names), dtype=bool)
        ig_dt = np.where(small, 1, np.where(dt_valid, 0, -1))
        return int((ig_gt == 0).sum()), ig_gt, ig_dt


def _statistics(ov: np.ndarray, ig_gt: np.ndarray, ig_dt: np.ndarray, scores: np.ndarray, thresh: float,
                min_overlap: float, compute_fp: bool, dc_ov: Optional[np.ndarray] = None,
                gt_alpha: Optional[np.ndarray] = None, dt_alpha: Optional[np.ndarray] = None,
                compute_aos: bool = False):
    """``compute_statistics_jit`` of the devkit for one frame: (tp, fp, fn, similarity, tp_scores)."""
    D, G = ov.shape
    assigned = np.zeros(D, dtype=bool)
    below = (scores < thresh) if compute_fp else np.zeros(D, dtype=bool)
    tp = fp = fn = 0
    tp_scores: List[float] = []
    deltas: List[float] = []
    usable = (ig_dt != -1) & ~below
    for i in range(G):
        if ig_gt[i] == -1:
            continue
        det_idx, valid, max_ov, assigned_ignored = -1, _NO_DET, 0.0, False
        for j in np.nonzero(usable & (ov[:, i] > min_overlap))[0]:
            if assigned[j]:
                continue
            o = ov[j, i]
            if not compute_fp and scores[j] > valid:
                det_idx, valid = j, scores[j]
            elif compute_fp and (o > max_ov or assigned_ignored) and ig_dt[j] == 0:
                max_ov, det_idx, valid, assigned_ignored = o, j, 1.0, False
            elif compute_fp and valid == _NO_DET and ig_dt[j] == 1:
                det_idx, valid, assigned_ignored = j, 1.0, True
        if valid == _NO_DET and ig_gt[i] == 0:
            fn += 1
        elif valid != _NO_DET and (ig_gt[i] == 1 or ig_dt[det_idx] == 1):
            assigned[det_idx] = True
        elif valid != _NO_DET:
            tp += 1
            tp_scores.append(float(scores[det_idx]))
            if compute_aos:
                deltas.append(float(gt_alpha[i] - dt_alpha[det_idx]))
            assigned[det_idx] = True
    similarity = 0.0
    if compute_fp:
        fp = int((~assigned & (ig_dt == 0) & ~below).sum())
        if dc_ov is not None and dc_ov.shape[1] > 0:
            nstuff = 0
            for k in range(dc_ov.shape[1]):
                for j in range(D):
                    if assigned[j] or ig_dt[j] != 0 or below[j]:
                        continue
                    if dc_ov[j, k] > min_overlap:
                        assigned[j] = True
                        nstuff += 1
            fp -= nstuff
        if compute_aos:
            similarity = float(sum((1.0 + math.cos(d)) / 2.0 for d in deltas)) if (tp > 0 or fp > 0) else -1.0
    return tp, fp, fn, similarity, tp_scores


def _eval_class(frames: List[_Frame], cls: str, difficulty: int, metric: str, min_overlap: float):
    """``eval_class`` for one class / difficulty / metric: (precision [41], recall [41], aos [41], num_gt)."""
    compute_aos = metric == "bbox"
    cleaned = [f.clean(cls, difficulty) for f in frames]
    num_gt = sum(c[0] for c in cleaned)
    all_scores: List[float] = []
    for f, (_, ig_gt, ig_dt) in zip(frames, cleaned):
        all_scores += _statistics(f.overlaps[metric], ig_gt, ig_dt, f.dt_scores, 0.0, min_overlap, False)[4]
    prec, rec, aos = np.zeros(_N_SAMPLE), np.zeros(_N_SAMPLE), np.zeros(_N_SAMPLE)
    if num_gt == 0:
        return prec, rec, aos, 0
    thresholds = get_thresholds(np.asarray(all_scores), num_gt)[:_N_SAMPLE]
    pr = np.zeros((len(thresholds), 4))
    for f, (_, ig_gt, ig_dt) in zip(frames, cleaned):
        relevant = np.sort(f.dt_scores[ig_dt != -1])[::-1]
        cache: Dict[int, tuple] = {}
        dc_ov = f.dc_overlaps if metric == "bbox" else None
        for t, thr in enumerate(thresholds):
            key = int((relevant >= thr).sum())  # the active detections are those above thr
            if key not in cache:
                cache[key] = _statistics(f.overlaps[metric], ig_gt, ig_dt, f.dt_scores, thr, min_overlap, True,
                                         dc_ov, f.gt_alpha, f.dt_alpha, compute_aos)[:4]
            tp, fp, fn, sim = cache[key]
            pr[t, 0] += tp
            pr[t, 1] += fp
            pr[t, 2] += fn
            if sim != -1:
                pr[t, 3] += sim
    n = len(thresholds)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec[:n] = pr[:, 0] / (pr[:, 0] + pr[:, 2])
        prec[:n] = np.nan_to_num(pr[:, 0] / (pr[:, 0] + pr[:, 1]))
        aos[:n] = np.nan_to_num(pr[:, 3] / (pr[:, 0] + pr[:, 1]))
    for i in range(n):
        prec[i] = prec[i:].max()
        rec[i] = rec[i:].max()
        aos[i] = aos[i:].max()
    return prec, rec, aos, num_gt


def _ap_r40(prec: np.ndarray) -> float:
    return float(prec[1:_N_SAMPLE].sum() / 40.0 * 100.0)


def _ap_r11(prec: np.ndarray) -> float:
    """The devkit's older 11-point AP: precision at threshold indices 0, 4, ..., 40, in percent."""
    return float(prec[0:_N_SAMPLE:4].sum() / 11.0 * 100.0)


def kitti_evaluate(predictions: Sequence[Mapping], ground_truths: Sequence[Mapping],
                   classes: Sequence[str] = KITTI_CLASSES,
                   min_overlaps: Optional[Mapping[str, float]] = None,
                   calibs: Optional[Sequence[Optional[Mapping]]] = None,
                   filter_out_of_image: bool = True, include_r11: bool = False) -> Dict[str, float]:
    """KITTI AP|R40 (percent) for 2D box, BEV, 3D and AOS at easy / moderate / hard.

    Args:
        predictions: one dict per frame: ``boxes_3d`` [N, 7] LiDAR boxes, ``scores_3d`` [N], ``labels_3d`` [N]
            (index into ``classes``), optional ``bbox`` [N, 4] image boxes and ``alpha`` [N].
        ground_truths: one dict per frame: ``boxes_3d`` [M, 7], ``labels_3d`` [M], ``bbox`` [M, 4],
            ``truncated`` [M], ``occluded`` [M], ``alpha`` [M], optional ``names`` [M] (KITTI type strings,
            which lets Van / Person_sitting / DontCare play their devkit roles) and ``calib``.
        classes: class names, label id = index.
        min_overlaps: per-class IoU threshold (default 0.7 Car, 0.5 Pedestrian / Cyclist).
        calibs: per-frame calibration dicts (``P2``, ``R0_rect``, ``Tr_velo_to_cam``, ``image_shape``) used to
            project predictions without ``bbox``; default: ``ground_truths[i]['calib']`` when present.
        include_r11: also report the 11-point AP (``"<Class>/<Metric>_R11_<difficulty>"``).

    Returns:
        ``{"<Class>/<Metric>_R40_<difficulty>": AP}`` with Metric in 2D, BEV, 3D, AOS (2D and AOS only when
        prediction 2D boxes are available), plus ``"Overall/<Metric>_R40_<difficulty>"`` = mean over classes
        with ground truth at that difficulty.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f"predictions ({len(predictions)} frames) and ground_truths "
                         f"({len(ground_truths)} frames) must have the same length")
    if calibs is not None and len(calibs) != len(ground_truths):
        raise ValueError(f"calibs ({len(calibs)}) must have one entry per frame ({len(ground_truths)})")
    frames = []
    for i, (p, g) in enumerate(zip(predictions, ground_truths)):
        calib = calibs[i] if calibs is not None else g.get("calib", p.get("calib"))
        frames.append(_Frame(p, g, i, classes, calib, filter_out_of_image))
    has_2d = all(f.dt_bbox is not None for f in frames)
    metrics = [("3d", "3D"), ("bev", "BEV")] + ([("bbox", "2D")] if has_2d else [])
    out: Dict[str, float] = {}
    overall: Dict[str, List[float]] = {}
    for cls in classes:
        thr = (min_overlaps or {}).get(cls, _DEFAULT_MIN_OVERLAP.get(cls.lower(), 0.5))
        for d, dname in enumerate(DIFFICULTIES):
            for metric, mname in metrics:
                prec, _, aos, num_gt = _eval_class(frames, cls.lower(), d, metric, thr)
                keys = [(mname, prec)] + ([("AOS", aos)] if metric == "bbox" else [])
                for name, curve in keys:
                    for tag, fn in (("R40", _ap_r40), ("R11", _ap_r11))[:2 if include_r11 else 1]:
                        val = fn(curve)
                        out[f"{cls}/{name}_{tag}_{dname}"] = val
                        if num_gt > 0:
                            overall.setdefault(f"Overall/{name}_{tag}_{dname}", []).append(val)
    for k, v in overall.items():
        out[k] = float(np.mean(v))
    return out
