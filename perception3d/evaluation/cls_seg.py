"""Classification and semantic-segmentation metrics: top-1, mean-class accuracy, mIoU with an ignore label.

Plain functions on label tensors/arrays, and mmengine ``BaseMetric`` wrappers registered in ``METRICS``
(``ClsAccuracyMetric``, ``SegMIoUMetric``). The metrics read the dicts a classifier / segmentor returns in
``predict`` mode: ``dict(pred_label, gt_label)`` and ``dict(pred_segment [N], gt_segment [N])``.
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from perception3d.fileio import atomic_write_bytes
from perception3d.registry import METRICS

__all__ = ["confusion_matrix", "top1_accuracy", "mean_class_accuracy", "iou_per_class", "mean_iou",
           "ClsAccuracyMetric", "SegMIoUMetric", "plot_confusion_matrix"]


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x).reshape(-1).astype(np.int64)


def confusion_matrix(pred, gt, num_classes: int, ignore_index: Optional[int] = None) -> np.ndarray:
    """``[num_classes, num_classes]`` counts, rows = ground truth, columns = prediction.

    Entries whose gt equals ``ignore_index`` (or lies outside 0..num_classes−1) are dropped.
    """
    p, g = _np(pred), _np(gt)
    if p.shape != g.shape:
        raise ValueError(f"confusion_matrix: pred has {p.shape[0]} entries, gt has {g.shape[0]}")
    keep = (g >= 0) & (g < num_classes)
    if ignore_index is not None:
        keep &= g != ignore_index
    p, g = p[keep], g[keep]
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"confusion_matrix: predictions must be in [0, {num_classes}), got [{p.min()}, {p.max()}]")
    return np.bincount(g * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def top1_accuracy(pred, gt) -> float:
    """Fraction of exact matches (overall accuracy, OA)."""
    p, g = _np(pred), _np(gt)
    if p.shape != g.shape:
        raise ValueError(f"top1_accuracy: pred has {p.shape[0]} entries, gt has {g.shape[0]}")
    return float((p == g).mean()) if p.size else float("nan")


def mean_class_accuracy(pred, gt, num_classes: int) -> float:
    """Mean over the classes present in gt of per-class recall (mAcc)."""
    cm = confusion_matrix(pred, gt, num_classes)
    support = cm.sum(1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean()) if present.any() else float("nan")


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class from a confusion matrix; NaN where the class never occurs."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def mean_iou(pred, gt, num_classes: int, ignore_index: Optional[int] = -1) -> float:
    """mIoU over the classes with a non-empty union (ignore_index entries of gt are dropped)."""
    return float(np.nanmean(iou_per_class(confusion_matrix(pred, gt, num_classes, ignore_index))))


@METRICS.register_module()
class ClsAccuracyMetric(BaseMetric):
    """Top-1 (OA) and mean-class accuracy (mAcc) over a dataset, in percent."""

    default_prefix = "cls"

    def __init__(self, num_classes: int, collect_device: str = "cpu", prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = num_classes

    def process(self, data_batch, data_samples: Sequence[Dict]) -> None:
        for s in data_samples:
            self.results.append((int(s["pred_label"]), int(s["gt_label"])))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        p = np.array([r[0] for r in results])
        g = np.array([r[1] for r in results])
        return dict(top1=100 * top1_accuracy(p, g), mAcc=100 * mean_class_accuracy(p, g, self.num_classes))


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path, title: str = "") -> None:
    """Write a row-normalised confusion matrix (rows = ground truth, columns = prediction) to a PNG, restricted to
    the classes that occur in ground truth or prediction; written to a temporary file and renamed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keep = np.nonzero((cm.sum(0) + cm.sum(1)) > 0)[0]
    sub = cm[np.ix_(keep, keep)].astype(np.float64)
    norm = sub / np.maximum(sub.sum(1, keepdims=True), 1)
    names = [class_names[i] if i < len(class_names) else str(i) for i in keep]
    n = len(keep)
    fig, ax = plt.subplots(figsize=(2 + 0.45 * n, 1.5 + 0.45 * n), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    for i in range(n):
        for j in range(n):
            if norm[i, j] >= 0.005:
                ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


@METRICS.register_module()
class SegMIoUMetric(BaseMetric):
    """mIoU, overall accuracy and mean-class accuracy of point labels (percent), ignoring ``ignore_index``.

    mIoU is the mean over the classes whose union is non-empty (the classes present in ground truth or
    prediction).  With ``class_names`` the per-class IoUs are reported too (``IoU.<name>``, classes with a
    non-empty union); with ``confusion_png`` the confusion matrix is drawn there (``{timestamp}`` in the path is
    filled in) and the raw counts saved beside it (``.npy``).
    """

    default_prefix = "seg"

    def __init__(self, num_classes: int, ignore_index: int = -1, class_names: Optional[Sequence[str]] = None,
                 confusion_png: Optional[str] = None, collect_device: str = "cpu",
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"SegMIoUMetric: {len(class_names)} class_names for {num_classes} classes")
        self.class_names = None if class_names is None else list(class_names)
        self.confusion_png = confusion_png
        self.last_confusion: Optional[np.ndarray] = None

    def process(self, data_batch, data_samples: Sequence[Dict]) -> None:
        for s in data_samples:
            self.results.append(confusion_matrix(s["pred_segment"], s["gt_segment"], self.num_classes,
                                                 self.ignore_index))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        cm = np.sum(results, axis=0)
        self.last_confusion = cm
        iou = iou_per_class(cm)
        support = cm.sum(1)
        acc = np.diag(cm)[support > 0] / support[support > 0]
        out = dict(mIoU=100 * float(np.nanmean(iou)), aAcc=100 * float(np.diag(cm).sum() / max(cm.sum(), 1)),
                   mAcc=100 * float(acc.mean()) if acc.size else float("nan"))
        if self.class_names is not None:
            for name, v in zip(self.class_names, iou):
                if not np.isnan(v):
                    out[f"IoU.{name}"] = 100 * float(v)
        if self.confusion_png:
            path = self.confusion_png.format(timestamp=time.strftime("%Y%m%d_%H%M%S"))
            plot_confusion_matrix(cm, self.class_names or [str(i) for i in range(self.num_classes)], path,
                                  title=f"mIoU {out['mIoU']:.1f}")
            buf = io.BytesIO()
            np.save(buf, cm)
            atomic_write_bytes(Path(path).with_suffix(".npy"), buf.getvalue())
        return out
