"""Rotated NMS (greedy, exact rotated IoU) and CenterPoint's circle NMS.

Greedy NMS: sort by score (descending), keep the best, drop every remaining box whose IoU with a
kept box is above ``iou_threshold``, repeat. ``pre_max_size`` truncates the sorted input first,
``post_max_size`` the kept list (mmdet3d's ``nms_bev`` / OpenPCDet's ``nms_gpu`` semantics, with an
exact IoU instead of their CUDA kernels).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from perception3d.ops.iou3d import pairwise_iou_sparse
from perception3d.ops.box_tensor import as_box_tensor

__all__ = ["nms_rotated", "batched_nms_rotated", "circle_nms"]


def _scores(scores, n: int, device) -> torch.Tensor:
    s = scores if isinstance(scores, torch.Tensor) else torch.as_tensor(np.asarray(scores))
    s = s.reshape(-1).to(device)
    if s.shape[0] != n:
        raise ValueError(f"scores: expected {n} values (one per box), got {s.shape[0]}")
    if not bool(torch.isfinite(s).all()):
        raise ValueError("scores: contains NaN or infinite values")
    return s


def nms_rotated(boxes, scores, iou_threshold: float, pre_max_size: Optional[int] = None,
                post_max_size: Optional[int] = None, mode: str = "bev") -> torch.Tensor:
    """Greedy rotated NMS.

    Args:
        boxes: [N, 7] LiDAR boxes. scores: [N].
        iou_threshold: suppress boxes with IoU strictly above this with a kept, higher-scored box.
        pre_max_size / post_max_size: keep at most this many boxes before / after NMS (None: all).
        mode: ``'bev'`` (rotated BEV IoU, the usual choice) or ``'3d'``.

    Returns:
        [K] long indices into ``boxes``, in descending score order.
    """
    b = as_box_tensor(boxes, "boxes")
    s = _scores(scores, b.shape[0], b.device)
    if mode not in ("bev", "3d"):
        raise ValueError(f"nms_rotated: mode must be 'bev' or '3d', got {mode!r}")
    if b.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=b.device)
    order = torch.sort(s, descending=True, stable=True).indices
    if pre_max_size is not None:
        order = order[:pre_max_size]
    bs = b[order]
    # sparse self-IoU over the pairs that can overlap (i < j in score order), then greedy suppression
    i, j, iou = pairwise_iou_sparse(bs, three_d=(mode == "3d"))
    hit = (iou > float(iou_threshold)).cpu().numpy()
    i, j = i.cpu().numpy()[hit], j.cpu().numpy()[hit]
    srt = np.argsort(i, kind="stable")
    i, j = i[srt], j[srt]
    n = bs.shape[0]
    ptr = np.searchsorted(i, np.arange(n + 1))
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for k in range(n):
        if suppressed[k]:
            continue
        keep.append(k)
        suppressed[j[ptr[k]:ptr[k + 1]]] = True
    keep_t = order[torch.as_tensor(keep, dtype=torch.long, device=b.device)]
    if post_max_size is not None:
        keep_t = keep_t[:post_max_size]
    return keep_t


def circle_nms(centers, scores, thresh: float, post_max_size: Optional[int] = None) -> torch.Tensor:
    """CenterPoint's circle NMS.

    Greedy by score: a box is suppressed when the **squared** BEV distance between its centre and
    a kept centre is ``<= thresh`` (CenterPoint/mmdet3d compare the squared distance with the
    value they call ``min_radius``; we keep that so their configs carry over).

    Args:
        centers: [N, >=2] (x, y first; a [N, 7] box array works). scores: [N].
    Returns:
        [K] long indices, descending score.
    """
    c = centers if isinstance(centers, torch.Tensor) else torch.as_tensor(np.asarray(centers))
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"centers: expected [N, >=2], got shape {tuple(c.shape)}")
    s = _scores(scores, c.shape[0], c.device)
    if c.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=c.device)
    order = torch.sort(s, descending=True, stable=True).indices
    xy = c[order, :2].double().cpu().numpy()
    n = xy.shape[0]
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):  # distances only from kept boxes: O(kept * N) time, O(N) memory
        if suppressed[i]:
            continue
        keep.append(i)
        if post_max_size is not None and len(keep) >= post_max_size:
            break
        d2 = ((xy[i + 1:] - xy[i]) ** 2).sum(axis=1)
        suppressed[i + 1:] |= d2 <= thresh
    return order[torch.as_tensor(keep, dtype=torch.long, device=c.device)]


def batched_nms_rotated(boxes, scores, labels, iou_threshold: float, pre_max_size: Optional[int] = None,
                        post_max_size: Optional[int] = None, mode: str = "bev") -> torch.Tensor:
    """Class-aware rotated NMS: :func:`nms_rotated` within each label, kept indices merged by descending score.

    ``pre_max_size`` / ``post_max_size`` apply per class before / to the merged list after NMS.
    """
    b = as_box_tensor(boxes, "boxes")
    s = _scores(scores, b.shape[0], b.device)
    lab = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    lab = lab.reshape(-1).to(b.device)
    if lab.shape[0] != b.shape[0]:
        raise ValueError(f"labels: expected {b.shape[0]} values (one per box), got {lab.shape[0]}")
    kept = []
    for c in torch.unique(lab):
        idx = (lab == c).nonzero().reshape(-1)
        kept.append(idx[nms_rotated(b[idx], s[idx], iou_threshold, pre_max_size, None, mode)])
    if not kept:
        return torch.zeros(0, dtype=torch.long, device=b.device)
    k = torch.cat(kept)
    k = k[torch.sort(s[k], descending=True, stable=True).indices]
    return k[:post_max_size] if post_max_size is not None else k
