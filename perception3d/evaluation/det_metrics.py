"""mmengine metrics for LiDAR 3D detection: ``WaymoMetric`` and ``KittiMetric``.

Both take, per frame, a plain dict (``data_samples`` in ``process``) with::

    pred_instances_3d = {"bboxes_3d": Tensor [N, 7], "scores_3d": [N], "labels_3d": [N]}
    gt_bboxes_3d [M, 7], gt_labels_3d [M], num_lidar_pts [M], difficulty [M]
    (KITTI also: bbox [M, 4], truncated [M], occluded [M], alpha [M]; optional gt_names [M], calib dict)

and hand them to :func:`perception3d.evaluation.waymo.waymo_evaluate` /
:func:`perception3d.evaluation.kitti.kitti_evaluate`. ``result_file`` (optional) saves the predictions in
mmdet3d's result layout: a pickle list with one dict per frame ``{"bboxes_3d", "scores_3d", "labels_3d"}``
(numpy) plus ``sample_idx`` when known, written atomically (temporary file + ``os.replace``).
"""
from __future__ import annotations

import pickle
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from perception3d.fileio import atomic_path
from perception3d.evaluation.kitti import KITTI_CLASSES, kitti_evaluate
from perception3d.evaluation.waymo import WAYMO_CLASSES, waymo_evaluate
from perception3d.registry import METRICS

__all__ = ["WaymoMetric", "KittiMetric", "save_results_pkl"]


def _np(v: Any) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    if hasattr(v, "tensor") and isinstance(getattr(v, "tensor"), torch.Tensor):  # Boxes3D-like
        return v.tensor.detach().cpu().numpy()
    return np.asarray(v)


def _field(sample: Mapping, key: str, i: int):
    if key not in sample:
        raise KeyError(f"data_samples[{i}]: missing key {key!r} (has {sorted(sample.keys())})")
    return sample[key]


def save_results_pkl(results: Sequence[Mapping], path: str) -> None:
    """Write ``results`` (a list of dicts) to ``path`` as a pickle, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(list(results), f)


def _table(res: Mapping[str, float], rows: Sequence[str], cols: Sequence[str], fmt: str = "{:.4f}") -> str:
    width = max(len(r) for r in rows) + 2
    lines = [" " * width + "".join(f"{c:>14}" for c in cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = res.get(f"{r}/{c}")
            cells.append(f"{fmt.format(v):>14}" if v is not None else f"{'-':>14}")
        lines.append(f"{r:<{width}}" + "".join(cells))
    return "\n".join(lines)


class _DetMetric(BaseMetric):
    """Shared ``process``: turns each frame's dict into numpy prediction / ground-truth dicts."""

    gt_extra_keys: Sequence[str] = ()
    require_num_points: bool = False  # Waymo levels need the point counts; KITTI does not use them

    def __init__(self, result_file: Optional[str] = None, collect_device: str = "cpu",
                 prefix: Optional[str] = None, **kwargs):
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        self.result_file = result_file

    def process(self, data_batch: Any, data_samples: Sequence[Mapping]) -> None:
        for i, s in enumerate(data_samples):
            if not isinstance(s, Mapping):
                s = s.to_dict() if hasattr(s, "to_dict") else vars(s)
            pred = _field(s, "pred_instances_3d", i)
            pb = _np(_field(pred, "bboxes_3d", i)).astype(np.float32)
            p = {"boxes_3d": pb if pb.ndim == 2 else pb.reshape(-1, 7),
                 "scores_3d": _np(_field(pred, "scores_3d", i)).astype(np.float32).reshape(-1),
                 "labels_3d": _np(_field(pred, "labels_3d", i)).astype(np.int64).reshape(-1)}
            for k in ("bbox", "alpha"):
                if k in pred:
                    p[k] = _np(pred[k])
            gb = _np(_field(s, "gt_bboxes_3d", i)).astype(np.float32)
            g = {"boxes_3d": gb if gb.ndim == 2 else gb.reshape(-1, 7),
                 "labels_3d": _np(_field(s, "gt_labels_3d", i)).astype(np.int64).reshape(-1),
                 "num_points": _np(_field(s, "num_lidar_pts", i) if self.require_num_points
                                   else s.get("num_lidar_pts", np.full(len(gb), 100))).astype(np.int64).reshape(-1),
                 "difficulty": _np(s.get("difficulty", np.zeros(len(gb)))).astype(np.int64).reshape(-1)}
            for k in self.gt_extra_keys:
                g[k] = _np(_field(s, k, i))
            if "gt_names" in s:
                g["names"] = list(s["gt_names"])
            if "calib" in s:
                g["calib"] = s["calib"]
            self.results.append({"pred": p, "gt": g, "sample_idx": s.get("sample_idx")})

    def _save(self, results: List[dict]) -> None:
        if self.result_file:
            out = []
            for r in results:
                d = {"bboxes_3d": r["pred"]["boxes_3d"], "scores_3d": r["pred"]["scores_3d"],
                     "labels_3d": r["pred"]["labels_3d"]}
                if r.get("sample_idx") is not None:
                    d["sample_idx"] = r["sample_idx"]
                out.append(d)
            save_results_pkl(out, self.result_file)


@METRICS.register_module()
class WaymoMetric(_DetMetric):
    """Waymo mAP / mAPH at LEVEL_1 / LEVEL_2 (see :func:`waymo_evaluate`); keys like ``"Vehicle/L2 mAPH"``.

    Args:
        classes: class names, label id = index (default Vehicle, Pedestrian, Cyclist).
        iou_thresholds: per-class 3D IoU thresholds (default 0.7, 0.5, 0.5).
        zero_point_gt: ``"ignore"`` (default) or ``"drop"`` (see :mod:`perception3d.evaluation.waymo`).
        result_file: optional path of a pickle of the predictions (mmdet3d's result layout).
        pr_curve_file: optional path of a PNG of the LEVEL_1 precision-recall curve per class
            (:func:`perception3d.evaluation.pr_curves.waymo_pr_curves`; tools/test.py sets it).
    """

    default_prefix = "Waymo metric"
    require_num_points = True

    def __init__(self, classes: Sequence[str] = WAYMO_CLASSES, iou_thresholds: Sequence[float] = (0.7, 0.5, 0.5),
                 zero_point_gt: str = "ignore", result_file: Optional[str] = None,
                 pr_curve_file: Optional[str] = None, **kwargs):
        super().__init__(result_file=result_file, **kwargs)
        self.pr_curve_file = pr_curve_file
        self.classes = tuple(classes)
        self.iou_thresholds = tuple(iou_thresholds)
        self.zero_point_gt = zero_point_gt

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        self._save(results)
        res = waymo_evaluate([r["pred"] for r in results], [r["gt"] for r in results], classes=self.classes,
                             iou_thresholds=self.iou_thresholds, zero_point_gt=self.zero_point_gt)
        table = _table(res, list(self.classes) + ["Overall"], ["L1 mAP", "L1 mAPH", "L2 mAP", "L2 mAPH"])
        print_log(f"Waymo detection metrics ({len(results)} frames):\n{table}", logger="current")
        if self.pr_curve_file:
            from perception3d.evaluation.pr_curves import plot_pr_curves, waymo_pr_curves
            curves = waymo_pr_curves([r["pred"] for r in results], [r["gt"] for r in results], self.classes,
                                     self.iou_thresholds, zero_point_gt=self.zero_point_gt)
            plot_pr_curves(curves, self.pr_curve_file, f"Waymo LEVEL_1 precision-recall ({len(results)} frames)")
            print_log(f"precision-recall curves: {self.pr_curve_file}", logger="current")
        return res


@METRICS.register_module()
class KittiMetric(_DetMetric):
    """KITTI AP|R40 (percent) for 2D, BEV, 3D and AOS (see :func:`kitti_evaluate`); keys like
    ``"Car/3D_R40_moderate"``. Ground truth needs ``bbox``, ``truncated``, ``occluded``, ``alpha``."""

    default_prefix = "Kitti metric"
    gt_extra_keys = ("bbox", "truncated", "occluded", "alpha")

    def __init__(self, classes: Sequence[str] = KITTI_CLASSES, min_overlaps: Optional[Mapping[str, float]] = None,
                 result_file: Optional[str] = None, **kwargs):
        super().__init__(result_file=result_file, **kwargs)
        self.classes = tuple(classes)
        self.min_overlaps = dict(min_overlaps) if min_overlaps else None

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        self._save(results)
        res = kitti_evaluate([r["pred"] for r in results], [r["gt"] for r in results], classes=self.classes,
                             min_overlaps=self.min_overlaps)
        cols = [f"{m}_R40_{d}" for m in ("3D", "BEV", "2D", "AOS") for d in ("easy", "moderate", "hard")
                if any(k.endswith(f"/{m}_R40_{d}") for k in res)]
        table = _table(res, list(self.classes) + ["Overall"], cols, fmt="{:.2f}")
        print_log(f"KITTI detection metrics, AP|R40 ({len(results)} frames):\n{table}", logger="current")
        return res
