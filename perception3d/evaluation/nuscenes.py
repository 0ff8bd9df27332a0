"""nuScenes detection metric (mAP, TP errors, NDS) in numpy: the official devkit's algorithm without the devkit.

A re-implementation of ``nuscenes/eval/detection`` (``algo.py``: ``accumulate``, ``calc_ap``, ``calc_tp``;
``evaluate.py``; ``common/utils.py``; ``common/loaders.py: filter_eval_boxes``) with the ``detection_cvpr_2019``
configuration, on per-frame dicts of LiDAR-frame boxes (the interface of
:func:`perception3d.evaluation.waymo.waymo_evaluate`):

1. **Filtering** (``filter_eval_boxes``): predictions and ground truth farther than the class range from the
   ego vehicle (BEV distance; car/truck/bus/trailer/construction_vehicle 50 m, pedestrian/motorcycle/bicycle
   40 m, traffic_cone/barrier 30 m) are dropped; ground truth with 0 LiDAR + radar points is dropped (a negative
   count means "unknown" and keeps the box). The bicycle-rack filter needs the rack annotations and is not done.
2. **Matching** per class and distance threshold ``d`` in {0.5, 1, 2, 4} m: predictions of all frames sorted by
   score (descending), each greedily takes the nearest not-yet-taken ground truth of its frame by BEV centre
   distance and is a TP when that distance is ``< d``.
3. **AP**: precision ``cumTP / (cumTP + cumFP)`` and recall ``cumTP / npos`` interpolated (``np.interp``, 0 past
   the maximum recall) at 101 recall points 0, 0.01, …, 1; ``AP = mean(max(p - 0.1, 0)) / 0.9`` over the recall
   points above ``min_recall`` = 0.1. (The devkit takes no precision envelope: the interpolated curve is used
   as it is.) mAP = mean over classes of the mean over the 4 thresholds; a class without ground truth has AP 0.
4. **TP errors** at ``d`` = 2 m, per match: ATE = BEV centre distance, ASE = ``1 - IoU`` of the two boxes
   aligned (same centre and yaw: ``prod(min(size)) / union``), AOE = smallest yaw difference (period π for
   barrier), AVE = ``||v_pred - v_gt||`` (xy), AAE = ``1 - [attribute correct]``. Their running mean over the
   score-sorted matches is interpolated at the recall points' confidences, and the class error is its mean over
   recall indices ``11 … max-recall index`` (1 when the maximum recall is below 0.1+). traffic_cone has no
   AOE/AVE/AAE, barrier no AVE/AAE (NaN, left out of the class mean); NaN errors of a match (ground truth
   without velocity or attribute) are left out of the running mean.
5. **NDS** = ``(5 mAP + Σ_k (1 - min(1, mTP_k))) / 10`` over the five mean TP errors (mean over classes).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log

from perception3d.datasets.nuscenes import NUSCENES_ATTRIBUTES, NUSCENES_CLASSES
from perception3d.evaluation.det_metrics import _DetMetric, _np, _table
from perception3d.registry import METRICS
from perception3d.structures.boxes import as_box_tensor, check_boxes

__all__ = ["nuscenes_evaluate", "NuScenesMetric", "NUSCENES_CLASS_RANGE", "TP_METRICS", "accumulate", "calc_ap", "calc_tp"]

#: ``detection_cvpr_2019.json``'s class_range (m).
NUSCENES_CLASS_RANGE = {"car": 50, "truck": 50, "bus": 50, "trailer": 50, "construction_vehicle": 50,
                        "pedestrian": 40, "motorcycle": 40, "bicycle": 40, "traffic_cone": 30, "barrier": 30}
TP_METRICS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
_SHORT = {"trans_err": "ATE", "scale_err": "ASE", "orient_err": "AOE", "vel_err": "AVE", "attr_err": "AAE"}
_NELEM = 101


def _angle_diff(x: np.ndarray, y: np.ndarray, period: float) -> np.ndarray:
    """|smallest difference| of two angles (the devkit's ``angle_diff``), in [0, pi]."""
    d = (x - y + period / 2) % period - period / 2
    d = np.where(d > np.pi, d - 2 * np.pi, d)
    return np.abs(d)


def _cummean(x: np.ndarray) -> np.ndarray:
    """Running mean ignoring NaN; all NaN → ones (the devkit's ``cummean``)."""
    if np.isnan(x).all():
        return np.ones(len(x))
    s = np.nancumsum(x.astype(float))
    c = np.cumsum(~np.isnan(x))
    return np.divide(s, c, out=np.zeros_like(s), where=c != 0)


def _no_predictions() -> Dict[str, np.ndarray]:
    d = dict(recall=np.linspace(0, 1, _NELEM), precision=np.zeros(_NELEM), confidence=np.zeros(_NELEM))
    d.update({k: np.ones(_NELEM) for k in TP_METRICS})
    return d


def accumulate(preds: List[dict], gts: List[dict], cls: int, dist_th: float, period: float) -> Dict[str, np.ndarray]:
    """The devkit's ``accumulate`` for one class and threshold over per-frame arrays (see :func:`_frame`)."""
    npos = sum(int((g["labels"] == cls).sum()) for g in gts)
    if npos == 0:
        return _no_predictions()
    scores, frames, idx = [], [], []
    for f, p in enumerate(preds):
        k = np.nonzero(p["labels"] == cls)[0]
        scores.extend(p["scores"][k].tolist())
        frames.extend([f] * len(k))
        idx.extend(k.tolist())
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i), reverse=True)  # devkit's tie order
    taken = [np.zeros(len(g["labels"]), bool) for g in gts]
    tp, conf = [], []
    md: Dict[str, list] = {k: [] for k in TP_METRICS}
    mconf = []
    for i in order:
        f, j = frames[i], idx[i]
        p, g = preds[f], gts[f]
        cand = np.nonzero((g["labels"] == cls) & ~taken[f])[0]
        conf.append(scores[i])
        if len(cand) == 0:
            tp.append(0)
            continue
        dist = np.linalg.norm(g["boxes"][cand, :2] - p["boxes"][j, :2], axis=1)
        m = int(np.argmin(dist))  # first minimum, as the devkit's strict '<' scan
        if not dist[m] < dist_th:
            tp.append(0)
            continue
        gi = cand[m]
        taken[f][gi] = True
        tp.append(1)
        gb, pb = g["boxes"][gi], p["boxes"][j]
        md["trans_err"].append(float(dist[m]))
        md["vel_err"].append(float(np.linalg.norm(pb[7:9] - gb[7:9])))
        gs, ps = gb[3:6], pb[3:6]
        inter = np.prod(np.minimum(gs, ps))
        md["scale_err"].append(1.0 - inter / (np.prod(gs) + np.prod(ps) - inter))
        md["orient_err"].append(float(_angle_diff(gb[6], pb[6], period)))
        ga, pa = g["attrs"][gi], p["attrs"][j]
        md["attr_err"].append(np.nan if ga < 0 else float(ga != pa))
        mconf.append(scores[i])
    if not mconf:
        return _no_predictions()
    tp_c = np.cumsum(tp).astype(float)
    fp_c = np.cumsum(1 - np.asarray(tp)).astype(float)
    conf_a = np.asarray(conf, float)
    prec = tp_c / (tp_c + fp_c)
    rec = tp_c / float(npos)
    rec_i = np.linspace(0, 1, _NELEM)
    out = dict(recall=rec_i, precision=np.interp(rec_i, rec, prec, right=0),
               confidence=np.interp(rec_i, rec, conf_a, right=0))
    mc = np.asarray(mconf, float)
    for k in TP_METRICS:
        tmp = _cummean(np.asarray(md[k], float))
        out[k] = np.interp(out["confidence"][::-1], mc[::-1], tmp[::-1])[::-1]
    return out


def calc_ap(md: Mapping[str, np.ndarray], min_recall: float = 0.1, min_precision: float = 0.1) -> float:
    """The devkit's ``calc_ap``: mean of ``max(p - min_precision, 0)`` above ``min_recall``, normalised."""
    prec = np.copy(md["precision"])[round(100 * min_recall) + 1:] - min_precision
    prec[prec < 0] = 0
    return float(np.mean(prec)) / (1.0 - min_precision)


def calc_tp(md: Mapping[str, np.ndarray], metric: str, min_recall: float = 0.1) -> float:
    """The devkit's ``calc_tp``: mean error from just above ``min_recall`` to the maximum recall reached."""
    first = round(100 * min_recall) + 1
    nz = np.nonzero(md["confidence"])[0]
    last = int(nz[-1]) if len(nz) else 0
    if last < first:
        return 1.0
    return float(np.mean(md[metric][first:last + 1]))


def _arr(d: Mapping, key: str, where: str, default=None):
    if key not in d:
        if default is not None:
            return default
        raise KeyError(f"{where}: missing key {key!r} (has {sorted(d.keys())})")
    v = d[key]
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _frame(d: Mapping, where: str, is_gt: bool, classes: Sequence[str], ranges: np.ndarray,
           max_boxes: int) -> dict:
    """One frame's boxes [N, 9] (velocity NaN when absent), labels, scores, attributes (-1: none), filtered."""
    b = as_box_tensor(_arr(d, "boxes_3d", where), f"{where}['boxes_3d']").double()
    check_boxes(b, f"{where}['boxes_3d']")
    b = b.numpy()
    n = len(b)
    boxes = np.full((n, 9), np.nan)
    boxes[:, :b.shape[1] if b.shape[1] <= 9 else 9] = b[:, :9]
    if "velocities" in d:
        boxes[:, 7:9] = _arr(d, "velocities", where).reshape(-1, 2)
    labels = _arr(d, "labels_3d", where).reshape(-1).astype(np.int64)
    attrs = _arr(d, "attr_labels", where, np.full(n, -1)).reshape(-1).astype(np.int64)
    attrs = np.where((attrs >= 0) & (attrs < len(NUSCENES_ATTRIBUTES) - 1), attrs, -1)  # 'None' → no attribute
    if len(labels) != n or len(attrs) != n:
        raise ValueError(f"{where}: boxes_3d ({n}), labels_3d ({len(labels)}) and attr_labels ({len(attrs)}) "
                         f"must have the same length")
    out = dict(boxes=boxes, labels=labels, attrs=attrs)
    keep = (labels >= 0) & (labels < len(classes))
    if is_gt:
        if "velocity_valid" in d:
            boxes[~_arr(d, "velocity_valid", where).reshape(-1).astype(bool), 7:9] = np.nan
        npts = _arr(d, "num_points", where, np.full(n, -1)).reshape(-1).astype(np.int64)
        keep &= npts != 0
    else:
        scores = _arr(d, "scores_3d", where).reshape(-1).astype(np.float64)
        if len(scores) != n:
            raise ValueError(f"{where}: scores_3d ({len(scores)}) and boxes_3d ({n}) must have the same length")
        if not np.isfinite(scores).all():
            raise ValueError(f"{where}['scores_3d']: contains NaN or infinite values")
        if n > max_boxes:
            raise ValueError(f"{where}: {n} boxes, the nuScenes evaluation allows at most {max_boxes} per sample")
        out["scores"] = scores
    # ego distance: the BEV distance from the ego origin (lidar2ego moves LiDAR centres into the ego frame)
    centre = boxes[:, :3]
    if "lidar2ego" in d:
        m = _arr(d, "lidar2ego", where).astype(np.float64)
        centre = centre @ m[:3, :3].T + m[:3, 3]
    ego_dist = np.linalg.norm(centre[:, :2], axis=1)
    lab = np.clip(labels, 0, len(classes) - 1)
    keep &= ego_dist < ranges[lab]
    return {k: v[keep] for k, v in out.items()}


def nuscenes_evaluate(predictions: Sequence[Mapping], ground_truths: Sequence[Mapping],
                      classes: Sequence[str] = NUSCENES_CLASSES,
                      class_range: Optional[Mapping[str, float]] = None,
                      dist_ths: Sequence[float] = (0.5, 1.0, 2.0, 4.0), dist_th_tp: float = 2.0,
                      min_recall: float = 0.1, min_precision: float = 0.1, max_boxes_per_sample: int = 500,
                      mean_ap_weight: float = 5.0) -> Dict[str, float]:
    """nuScenes mAP / mATE / mASE / mAOE / mAVE / mAAE / NDS (see the module docstring for the definition).

    Args:
        predictions: one dict per frame: ``boxes_3d`` [N, 7 | 9] LiDAR boxes (x, y, z_bottom, dx, dy, dz, yaw
            [, vx, vy]), ``scores_3d`` [N], ``labels_3d`` [N] (indices into ``classes``); optional
            ``velocities`` [N, 2] (instead of columns 7-8; without either, AVE is 1), ``attr_labels`` [N]
            (mmdet3d's attribute order, :data:`NUSCENES_ATTRIBUTES`).
        ground_truths: one dict per frame: ``boxes_3d`` [M, 7 | 9], ``labels_3d`` [M]; optional ``num_points``
            [M] (LiDAR + radar points; 0 → not evaluated; negative → unknown, kept), ``attr_labels`` [M] (8 =
            'None': no attribute), ``velocity_valid`` [M] bool, ``lidar2ego`` [4, 4] (for the class range: the
            distance from the ego origin; without it, from the LiDAR origin).
        classes: class names (label = index); the class-specific rules (ranges, barrier's π-periodic yaw,
            traffic_cone/barrier without some TP errors) go by name.
        class_range: metres per class name (default: ``detection_cvpr_2019``; a class not named has no limit).
    Returns:
        ``{"mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE"}`` plus per class ``"<class>/AP"``,
        ``"<class>/AP_dist_<d>"`` and ``"<class>/ATE"`` … ``"<class>/AAE"`` (NaN where not defined).
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f"predictions ({len(predictions)} frames) and ground_truths ({len(ground_truths)} frames) "
                         f"must have the same length")
    cr = dict(NUSCENES_CLASS_RANGE if class_range is None else class_range)
    ranges = np.asarray([float(cr.get(c, np.inf)) for c in classes])
    preds = [_frame(p, f"predictions[{i}]", False, classes, ranges, max_boxes_per_sample)
             for i, p in enumerate(predictions)]
    gts = [_frame(g, f"ground_truths[{i}]", True, classes, ranges, max_boxes_per_sample)
           for i, g in enumerate(ground_truths)]
    out: Dict[str, float] = {}
    aps, tp_err = [], {k: [] for k in TP_METRICS}
    for c, name in enumerate(classes):
        period = np.pi if name == "barrier" else 2 * np.pi
        class_aps = []
        md_tp = None
        for d in dist_ths:
            md = accumulate(preds, gts, c, float(d), period)
            ap = calc_ap(md, min_recall, min_precision)
            out[f"{name}/AP_dist_{d}"] = ap
            class_aps.append(ap)
            if float(d) == float(dist_th_tp):
                md_tp = md
        if md_tp is None:
            md_tp = accumulate(preds, gts, c, float(dist_th_tp), period)
        out[f"{name}/AP"] = float(np.mean(class_aps))
        aps.append(out[f"{name}/AP"])
        for k in TP_METRICS:
            if (name == "traffic_cone" and k in ("attr_err", "vel_err", "orient_err")) or \
                    (name == "barrier" and k in ("attr_err", "vel_err")):
                err = np.nan
            else:
                err = calc_tp(md_tp, k, min_recall)
            out[f"{name}/{_SHORT[k]}"] = err
            tp_err[k].append(err)
    out["mAP"] = float(np.mean(aps)) if aps else 0.0
    score_sum = 0.0
    for k in TP_METRICS:
        vals = np.asarray(tp_err[k], float)
        m = float(np.mean(vals[~np.isnan(vals)])) if (~np.isnan(vals)).any() else float("nan")
        out[f"m{_SHORT[k]}"] = m
        score_sum += max(0.0, 1.0 - m) if np.isfinite(m) else 0.0
    out["NDS"] = float((mean_ap_weight * out["mAP"] + score_sum) / (mean_ap_weight + len(TP_METRICS)))
    return out


@METRICS.register_module()
class NuScenesMetric(_DetMetric):
    """nuScenes mAP / NDS (see :func:`nuscenes_evaluate`); keys ``"NDS"``, ``"mAP"``, ``"car/AP"`` …

    Per frame it also takes, when present: predicted ``attr_labels`` (in ``pred_instances_3d``) and velocities
    (box columns 7-8); ground truth ``attr_labels``, ``velocity_valid``, ``num_lidar_pts`` (+ ``num_radar_pts``)
    and ``lidar2ego`` (the ego distance of the class ranges).
    """

    default_prefix = "NuScenes metric"

    def __init__(self, classes: Sequence[str] = NUSCENES_CLASSES, class_range: Optional[Mapping[str, float]] = None,
                 result_file: Optional[str] = None, **kwargs):
        super().__init__(result_file=result_file, **kwargs)
        self.classes = tuple(classes)
        self.class_range = dict(class_range) if class_range else None

    def process(self, data_batch, data_samples) -> None:
        n0 = len(self.results)
        super().process(data_batch, data_samples)
        for r, s in zip(self.results[n0:], data_samples):
            if not isinstance(s, Mapping):
                s = s.to_dict() if hasattr(s, "to_dict") else vars(s)
            pred = s["pred_instances_3d"]
            if "attr_labels" in pred:
                r["pred"]["attr_labels"] = _np(pred["attr_labels"]).reshape(-1)
            for k in ("attr_labels", "velocity_valid", "lidar2ego"):
                if k in s:
                    r["gt"][k] = _np(s[k])
            if "num_lidar_pts" in s:
                r["gt"]["num_points"] = (_np(s["num_lidar_pts"]).reshape(-1)
                                         + _np(s.get("num_radar_pts", 0)).reshape(-1)).astype(np.int64)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        self._save(results)
        res = nuscenes_evaluate([r["pred"] for r in results], [r["gt"] for r in results], classes=self.classes,
                                class_range=self.class_range)
        table = _table(res, list(self.classes), ["AP", "ATE", "ASE", "AOE", "AVE", "AAE"], fmt="{:.3f}")
        summary = "  ".join(f"{k} {res[k]:.4f}" for k in ("mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE"))
        print_log(f"nuScenes detection metrics ({len(results)} frames):\n{table}\n{summary}", logger="current")
        return res
