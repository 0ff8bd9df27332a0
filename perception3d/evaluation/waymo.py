"""Waymo Open Dataset 3D detection metrics (mAP / mAPH at LEVEL_1 / LEVEL_2) without TensorFlow.

A re-implementation of the official C++ metric (``waymo_open_dataset/metrics``: ``detection_metrics.cc``,
``matcher.cc``, ``metrics_utils.cc`` and the config of ``tools/compute_detection_metrics_main.cc``):

1. **Ground truth levels.** A box with 0 LiDAR points is left out (see ``zero_point_gt``; a negative count
   means "unknown" and keeps the box, its level then coming from the label alone). A box is
   LEVEL_2 when it is labelled difficulty 2 or has ``<= 5`` points, else LEVEL_1 (the official tool applies
   the point rule only to boxes whose label difficulty is unset; Waymo labels carry 0 = unset or 2, so the
   two agree on real data).
2. **Score cutoffs.** ``0.00, 0.01, ..., 0.99, 1.00`` (101 cutoffs). At each cutoff the predictions with
   ``score >= cutoff`` are kept.
3. **Matching**, per frame, per class, per cutoff: Hungarian matching maximising the sum of quantised
   3D IoU (``round(iou * 1e6)``) over pairs with ``IoU >= threshold`` (0.7 vehicle, 0.5 pedestrian and
   cyclist); 3D IoU of upright boxes with exact rotated BEV overlap.
4. **Counts** at difficulty level L (``ComputeDetectionMeasurementFromMatchingResult``): a matched
   prediction is a TP (whatever the level of its ground truth, as the official code does for the
   OBJECT_TYPE breakdown) with heading accuracy ``ha = 1 - |dheading| / pi`` (difference wrapped to
   [0, pi]); a match with ``ha <= min_heading_accuracy`` (0) counts as neither TP nor FP. An unmatched
   prediction is an FP. An unmatched ground truth is an FN when its level is ``<= L`` (so LEVEL_2 counts
   LEVEL_1 and LEVEL_2 boxes, LEVEL_1 only LEVEL_1 boxes).
5. **Curves and AP** (``ToDetectionMetrics`` / ``ComputeMeanAveragePrecision``): counts are summed over
   frames per cutoff; precision ``TP / (TP + FP)`` (APH: ``sum(ha) / (TP + FP)``), recall ``TP / (TP + FN)``;
   precision is set to 1 where recall is 0. AP is the area under the precision envelope
   (max precision at recall >= r), integrated by trapezoids over the recall points, with extra points
   every ``desired_recall_delta`` = 0.05 between them; the point at recall 0 takes the precision of its
   neighbour.

Simplifications, documented: no no-label-zone handling (``overlap_with_nlz`` is never set, so no
prediction is excused for overlapping a NLZ); no range/velocity breakdowns; the Hungarian solver is
scipy's (ties between equally good assignments may be broken differently).

``zero_point_gt``: ``"ignore"`` (default, as the issue specifies) keeps 0-point boxes in the matching
but a prediction matched to one is neither TP nor FP and the box is never an FN; ``"drop"`` removes them
before matching, as the official command-line tool does (a prediction on such a box is then an FP).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from perception3d.ops.iou3d import box_iou_3d
from perception3d.structures.boxes import as_box_tensor, check_boxes

__all__ = ["waymo_evaluate", "WAYMO_CLASSES", "mean_average_precision", "heading_accuracy"]

WAYMO_CLASSES = ("Vehicle", "Pedestrian", "Cyclist")
_DEFAULT_IOU = (0.7, 0.5, 0.5)
_QUANT = 1_000_000  # kMaxIoU of matcher.cc


def heading_accuracy(pred_yaw: np.ndarray, gt_yaw: np.ndarray) -> np.ndarray:
    """``1 - |dheading| / pi`` with the difference wrapped to [0, pi], clamped to [0, 1]."""
    p = np.mod(np.asarray(pred_yaw, np.float64) + np.pi, 2 * np.pi) - np.pi
    g = np.mod(np.asarray(gt_yaw, np.float64) + np.pi, 2 * np.pi) - np.pi
    d = np.abs(p - g)
    d = np.where(d > np.pi, 2 * np.pi - d, d)
    return np.clip(1.0 - d / np.pi, 0.0, 1.0)


def mean_average_precision(precisions: Sequence[float], recalls: Sequence[float],
                           max_recall_delta: float = 0.05) -> float:
    """Area under the precision envelope (``ComputeMeanAveragePrecision`` of the official metric).

    ``precisions[i]``, ``recalls[i]``: one point per score cutoff. A point (recall 0, precision 1) is
    always added; precision at recall r is the max over recalls >= r; between consecutive recall points,
    extra points are inserted every ``max_recall_delta`` (at the envelope of the higher recall) and the
    area is the trapezoid sum. The point at recall 0 takes its neighbour's precision.
    """
    if len(precisions) != len(recalls):
        raise ValueError("precisions and recalls must have the same length")
    if not precisions:
        return 0.0
    rp: Dict[float, float] = {0.0: 1.0}
    for p, r in zip(precisions, recalls):
        rp[r] = max(rp.get(r, 0.0), p)
    keys = sorted(rp)
    last_recall = keys[0]
    max_p = 0.0
    pr: List[List[float]] = []  # [precision, recall], recall descending
    for r in reversed(keys):
        while last_recall - r > max_recall_delta + 1e-6:
            last_recall -= max_recall_delta
            pr.append([max_p, last_recall])
        max_p = max(rp[r], max_p)
        pr.append([max_p, r])
        last_recall = r
    if len(pr) >= 2:
        pr[-1][0] = pr[-2][0]
    ap = 0.0
    for i in range(1, len(pr)):
        ap += 0.5 * (pr[i - 1][1] - pr[i][1]) * (pr[i - 1][0] + pr[i][0])
    return ap


def _hungarian(iou: np.ndarray, thr: float) -> np.ndarray:
    """Official HungarianMatcher: max-sum assignment of quantised IoU over pairs with IoU >= thr.

    Returns [P] index of the matched ground truth or -1."""
    from scipy.optimize import linear_sum_assignment

    P, G = iou.shape
    out = np.full(P, -1, dtype=np.int64)
    if P == 0 or G == 0:
        return out
    ok = iou >= thr
    rows = np.nonzero(ok.any(1))[0]
    cols = np.nonzero(ok.any(0))[0]
    if rows.size == 0:
        return out
    sub = ok[np.ix_(rows, cols)]
    if (sub.sum(1) <= 1).all() and (sub.sum(0) <= 1).all():  # no competition: the matching is forced
        out[rows] = cols[sub.argmax(1)]
        return out
    w = np.where(ok, np.round(iou * _QUANT), 0.0)[np.ix_(rows, cols)]
    r, c = linear_sum_assignment(w, maximize=True)
    good = ok[rows[r], cols[c]]
    out[rows[r[good]]] = cols[c[good]]
    return out


def _get(d: Mapping, key: str, where: str):
    if key not in d:
        raise KeyError(f"{where}: missing key {key!r} (has {sorted(d.keys())})")
    v = d[key]
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _check_frame(pred: Mapping, gt: Mapping, i: int):
    pb = as_box_tensor(_get(pred, "boxes_3d", f"predictions[{i}]"), f"predictions[{i}]['boxes_3d']")
    check_boxes(pb, f"predictions[{i}]['boxes_3d']")
    ps = _get(pred, "scores_3d", f"predictions[{i}]").reshape(-1).astype(np.float64)
    pl = _get(pred, "labels_3d", f"predictions[{i}]").reshape(-1).astype(np.int64)
    if not (len(ps) == len(pl) == pb.shape[0]):
        raise ValueError(f"predictions[{i}]: boxes_3d ({pb.shape[0]}), scores_3d ({len(ps)}) and labels_3d "
                         f"({len(pl)}) must have the same length")
    if not np.isfinite(ps).all():
        raise ValueError(f"predictions[{i}]['scores_3d']: contains NaN or infinite values")
    gb = as_box_tensor(_get(gt, "boxes_3d", f"ground_truths[{i}]"), f"ground_truths[{i}]['boxes_3d']")
    check_boxes(gb, f"ground_truths[{i}]['boxes_3d']")
    gl = _get(gt, "labels_3d", f"ground_truths[{i}]").reshape(-1).astype(np.int64)
    gn = _get(gt, "num_points", f"ground_truths[{i}]").reshape(-1).astype(np.int64)
    gd = (_get(gt, "difficulty", f"ground_truths[{i}]").reshape(-1).astype(np.int64)
          if "difficulty" in gt else np.zeros(len(gl), np.int64))
    if not (len(gl) == len(gn) == len(gd) == gb.shape[0]):
        raise ValueError(f"ground_truths[{i}]: boxes_3d ({gb.shape[0]}), labels_3d ({len(gl)}), num_points "
                         f"({len(gn)}) and difficulty ({len(gd)}) must have the same length")
    return pb.double(), ps, pl, gb.double(), gl, gn, gd


def _pr_points(predictions: Sequence[Mapping], ground_truths: Sequence[Mapping], classes: Sequence[str],
               iou_thresholds: Sequence[float], score_cutoffs: Optional[Sequence[float]], level2_max_points: int,
               zero_point_gt: str, min_heading_accuracy: float):
    """Steps 1-5 up to the curves: precision, heading-weighted precision and recall, each [C, 2 levels, K
    cutoffs], the ground-truth count [C, 2] per class and level, and the cutoffs [K]."""
    if len(predictions) != len(ground_truths):
        raise ValueError(f"predictions ({len(predictions)} frames) and ground_truths "
                         f"({len(ground_truths)} frames) must have the same length")
    if len(iou_thresholds) != len(classes):
        raise ValueError(f"iou_thresholds ({len(iou_thresholds)}) must give one value per class ({len(classes)})")
    if zero_point_gt not in ("ignore", "drop"):
        raise ValueError(f"zero_point_gt must be 'ignore' or 'drop', got {zero_point_gt!r}")
    cutoffs = np.asarray([i * 0.01 for i in range(100)] + [1.0] if score_cutoffs is None else score_cutoffs,
                         dtype=np.float64)
    C, K = len(classes), len(cutoffs)
    # counts[c, level(0: L1, 1: L2), cutoff] for tp, fp, fn, sum_ha
    tp = np.zeros((C, 2, K))
    fp = np.zeros((C, 2, K))
    fn = np.zeros((C, 2, K))
    sha = np.zeros((C, 2, K))
    n_gt = np.zeros((C, 2), dtype=np.int64)

    for i, (pred, gt) in enumerate(zip(predictions, ground_truths)):
        pb, ps, pl, gb, gl, gn, gd = _check_frame(pred, gt, i)
        # one IoU matrix per frame (pairs of different classes are masked per class below)
        known_p = np.nonzero((pl >= 0) & (pl < C))[0]
        known_g = np.nonzero((gl >= 0) & (gl < C))[0]
        iou_frame = np.zeros((len(pl), len(gl)))
        if len(known_p) and len(known_g):
            iou_frame[np.ix_(known_p, known_g)] = box_iou_3d(pb[known_p], gb[known_g]).numpy()
        for c in range(C):
            gmask = gl == c
            if zero_point_gt == "drop":
                gmask &= gn != 0
            g_idx = np.nonzero(gmask)[0]
            p_idx = np.nonzero(pl == c)[0]
            g_ignored = gn[g_idx] == 0  # negative = count unknown: kept, level from the label only
            g_level = np.where((gd[g_idx] == 2) | ((gn[g_idx] >= 0) & (gn[g_idx] <= level2_max_points)), 2, 1)
            n_gt[c, 0] += int(((g_level == 1) & ~g_ignored).sum())
            n_gt[c, 1] += int((~g_ignored).sum())
            if len(p_idx) == 0 and len(g_idx) == 0:
                continue
            order = np.argsort(-ps[p_idx], kind="stable")
            p_idx = p_idx[order]
            p_scores = ps[p_idx]
            iou = iou_frame[np.ix_(p_idx, g_idx)]
            ha_all = (heading_accuracy(pb[p_idx, 6].numpy()[:, None], gb[g_idx, 6].numpy()[None, :])
                      if len(p_idx) and len(g_idx) else np.zeros((len(p_idx), len(g_idx))))
            # predictions with no ground truth above the threshold never change the assignment, so the
            # matching of a score prefix only depends on how many "edge" predictions it holds
            edge_rows = np.nonzero((iou >= float(iou_thresholds[c])).any(1))[0]
            # predictions are sorted by score, so each cutoff keeps a prefix. Predictions without any ground
            # truth above the threshold never change the matching, so the matching of a prefix depends only on
            # how many "edge" predictions it holds (e); its FPs are the prefix length minus the matches.
            n_keep_all = (p_scores[None, :] >= cutoffs[:, None]).sum(axis=1)  # [K]
            e_all = np.searchsorted(edge_rows, n_keep_all, side="left")          # edge rows inside each prefix
            uniq_e, inv = np.unique(e_all, return_inverse=True)
            stats = np.zeros((len(uniq_e), 2, 3))  # [e, level, (tp, fn, sum_ha)]
            n_matched = np.zeros(len(uniq_e))
            for u, e in enumerate(uniq_e):
                rows = edge_rows[:e]
                m = _hungarian(iou[rows], float(iou_thresholds[c]))
                ok = m >= 0
                gi = m[ok]
                h = ha_all[rows[ok], gi]
                is_tp = ~g_ignored[gi] & (h > min_heading_accuracy)
                matched = np.zeros(len(g_idx), dtype=bool)
                matched[gi] = True
                unmatched_gt = (~matched) & (~g_ignored)
                n_matched[u] = ok.sum()
                for lv in range(2):
                    stats[u, lv] = (is_tp.sum(), (unmatched_gt & (g_level <= lv + 1)).sum(), h[is_tp].sum())
            per_cut = stats[inv]  # [K, level, 3]
            tp[c] += per_cut[:, :, 0].T
            fn[c] += per_cut[:, :, 1].T
            sha[c] += per_cut[:, :, 2].T
            fp[c] += (n_keep_all - n_matched[inv])[None, :]

    C, K = tp.shape[0], tp.shape[2]
    prec, prec_h, rec = np.zeros((C, 2, K)), np.zeros((C, 2, K)), np.zeros((C, 2, K))
    for c in range(C):
        for lv in range(2):
            for k in range(K):
                t, f, n_fn, s = tp[c, lv, k], fp[c, lv, k], fn[c, lv, k], sha[c, lv, k]
                p = t / (t + f) if t + f > 0 else 0.0
                ph = s / (t + f) if t + f > 0 else 0.0
                r = t / (t + n_fn) if t + n_fn > 0 else 0.0
                if r == 0.0:
                    p, ph = 1.0, 1.0
                prec[c, lv, k], prec_h[c, lv, k], rec[c, lv, k] = p, ph, r
    return prec, prec_h, rec, n_gt, cutoffs


def waymo_evaluate(predictions: Sequence[Mapping], ground_truths: Sequence[Mapping],
                   classes: Sequence[str] = WAYMO_CLASSES,
                   iou_thresholds: Sequence[float] = _DEFAULT_IOU,
                   score_cutoffs: Optional[Sequence[float]] = None,
                   desired_recall_delta: float = 0.05,
                   level2_max_points: int = 5,
                   zero_point_gt: str = "ignore",
                   min_heading_accuracy: float = 0.0) -> Dict[str, float]:
    """Waymo mAP / mAPH at LEVEL_1 and LEVEL_2 (see the module docstring for the exact definition).

    Args:
        predictions: one dict per frame: ``boxes_3d`` [N, 7] LiDAR boxes, ``scores_3d`` [N],
            ``labels_3d`` [N] (0 vehicle, 1 pedestrian, 2 cyclist; other labels are skipped).
        ground_truths: one dict per frame (same order): ``boxes_3d`` [M, 7], ``labels_3d`` [M],
            ``num_points`` [M] (LiDAR points in the box; a negative value means "unknown": the box is kept
            and its level comes from ``difficulty`` alone), ``difficulty`` [M] (labelled detection
            difficulty, 2 = LEVEL_2; optional, default 0).
        classes / iou_thresholds: class names (index = label id) and their 3D IoU thresholds.
        score_cutoffs: default ``[0.00, 0.01, ..., 0.99, 1.0]``.
        zero_point_gt: ``"ignore"`` or ``"drop"`` (see the module docstring).

    Returns:
        ``{"<Class>/L1 mAP", "<Class>/L1 mAPH", "<Class>/L2 mAP", "<Class>/L2 mAPH"}`` per class plus
        ``"Overall/..."`` = mean over the classes that have ground truth at that level (a class with
        none reports 0.0, as the official code does, and is left out of Overall).
    """
    prec, prec_h, rec, n_gt, _ = _pr_points(predictions, ground_truths, classes, iou_thresholds, score_cutoffs,
                                            level2_max_points, zero_point_gt, min_heading_accuracy)
    out: Dict[str, float] = {}
    overall = {(lv, kind): [] for lv in range(2) for kind in ("mAP", "mAPH")}
    for c, name in enumerate(classes):
        for lv in range(2):
            ap = mean_average_precision(prec[c, lv].tolist(), rec[c, lv].tolist(), desired_recall_delta)
            aph = mean_average_precision(prec_h[c, lv].tolist(), rec[c, lv].tolist(), desired_recall_delta)
            out[f"{name}/L{lv + 1} mAP"] = float(ap)
            out[f"{name}/L{lv + 1} mAPH"] = float(aph)
            if n_gt[c, lv] > 0:
                overall[(lv, "mAP")].append(ap)
                overall[(lv, "mAPH")].append(aph)
    for lv in range(2):
        for kind in ("mAP", "mAPH"):
            vals = overall[(lv, kind)]
            out[f"Overall/L{lv + 1} {kind}"] = float(np.mean(vals)) if vals else 0.0
    return out
