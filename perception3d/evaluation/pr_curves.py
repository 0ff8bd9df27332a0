"""Per-class precision-recall curves of the Waymo metric, and a PNG of them.

The points are the ones the AP is integrated from (:mod:`perception3d.evaluation.waymo`, steps 1-5): one
(recall, precision) pair per score cutoff 0.00, 0.01, ..., 1.00, from the Hungarian matching of that cutoff's
predictions. ``waymo_pr_curves(...)[c]["ap"]`` equals ``waymo_evaluate(...)[f"{c}/L1 mAP"]`` (level 1).
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Sequence

import numpy as np

from perception3d.evaluation.waymo import WAYMO_CLASSES, _pr_points, mean_average_precision

__all__ = ["waymo_pr_curves", "plot_pr_curves"]


def waymo_pr_curves(predictions: Sequence[Mapping], ground_truths: Sequence[Mapping],
                    classes: Sequence[str] = WAYMO_CLASSES, iou_thresholds: Sequence[float] = (0.7, 0.5, 0.5),
                    level: int = 1, zero_point_gt: str = "ignore", level2_max_points: int = 5,
                    desired_recall_delta: float = 0.05) -> Dict[str, Dict[str, np.ndarray]]:
    """Precision-recall curve per class at Waymo LEVEL_``level`` (inputs as :func:`waymo_evaluate`).

    Returns ``{class: {"score": [K], "recall": [K], "precision": [K], "precision_h": [K], "ap": float,
    "aph": float, "num_gt": int, "iou_threshold": float}}``: point k keeps the predictions with
    score ≥ ``score[k]``; where nothing is recalled precision is 1 (the official convention).
    """
    if level not in (1, 2):
        raise ValueError(f"level must be 1 or 2, got {level!r}")
    prec, prec_h, rec, n_gt, cutoffs = _pr_points(predictions, ground_truths, classes, iou_thresholds, None,
                                                  level2_max_points, zero_point_gt, 0.0)
    lv = level - 1
    out = {}
    for c, name in enumerate(classes):
        out[name] = {"score": cutoffs.copy(), "recall": rec[c, lv], "precision": prec[c, lv],
                     "precision_h": prec_h[c, lv],
                     "ap": float(mean_average_precision(prec[c, lv].tolist(), rec[c, lv].tolist(),
                                                        desired_recall_delta)),
                     "aph": float(mean_average_precision(prec_h[c, lv].tolist(), rec[c, lv].tolist(),
                                                         desired_recall_delta)),
                     "num_gt": int(n_gt[c, lv]), "iou_threshold": float(iou_thresholds[c])}
    return out


def plot_pr_curves(curves: Mapping[str, Mapping], path: str, title: str = "") -> str:
    """Write one PNG with a precision-recall panel per class (AP in the legend, the 0.1 / 0.3 / 0.5 score
    points marked); written atomically. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(curves)
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 4.2), dpi=100,
                             squeeze=False)
    for ax, name in zip(axes[0], names):
        cv = curves[name]
        r, p, s = np.asarray(cv["recall"]), np.asarray(cv["precision"]), np.asarray(cv["score"])
        seen = r > 0  # the recall-0 points carry the convention precision = 1, not a measurement
        ax.plot(r[seen], p[seen], "-", color="tab:blue", lw=1.8,
                label=f"AP {cv['ap']:.3f} (IoU ≥ {cv.get('iou_threshold', 0):.1f})")
        ax.plot(r[seen], np.asarray(cv["precision_h"])[seen], "--", color="tab:orange", lw=1.2,
                label=f"heading-weighted, APH {cv['aph']:.3f}")
        for thr, mk in ((0.1, "o"), (0.3, "s"), (0.5, "^")):
            k = int(np.argmin(np.abs(s - thr)))
            if seen[k]:
                ax.plot(r[k], p[k], mk, color="black", ms=5, label=f"score ≥ {thr:g}")
        if not cv.get("num_gt", 1):
            ax.text(0.5, 0.5, "no ground-truth boxes", ha="center", va="center", color="grey")
        ax.set_xlim(0, 1.0)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{name} ({cv.get('num_gt', 0)} GT boxes)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
