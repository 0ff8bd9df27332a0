"""Point-segmentation head and losses: a voxel-wise classifier, weighted cross-entropy and the Lovász-softmax loss.

Lovász-softmax (Berman, Rannen Triki, Blaschko, CVPR 2018): the convex Lovász extension of the Jaccard loss
``Δ_J(c) = 1 − |y = c ∩ ŷ = c| / |y = c ∪ ŷ = c|`` evaluated on the per-point errors ``m_i(c) = |[y_i = c] −
p_i(c)|`` (eq. 8): sort the errors in decreasing order, ``loss_c = Σ_i m_(i)(c) · g_i(c)`` with ``g`` the increments
of the Jaccard loss along that order (Alg. 1, eq. 9); averaged over the classes present in the batch.  On one-hot
probabilities it equals ``1 − IoU_c`` exactly.  MinkUNet / SPVCNN and E-3DSNN recipes train with
cross-entropy + Lovász.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception3d.registry import MODELS

__all__ = ["lovasz_softmax", "lovasz_grad", "seg_losses", "SegHead"]


def lovasz_grad(fg_sorted: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors (Alg. 1): ``[P]`` for the
    foreground indicator ``fg_sorted`` [P] ordered by decreasing error."""
    gts = fg_sorted.sum()
    inter = gts - fg_sorted.cumsum(0)
    union = gts + (1.0 - fg_sorted).cumsum(0)
    jac = 1.0 - inter / union.clamp(min=1e-12)
    if fg_sorted.numel() > 1:
        jac = torch.cat([jac[:1], jac[1:] - jac[:-1]])
    return jac


def lovasz_softmax(probs: Tensor, labels: Tensor, ignore_index: int = -1, classes: str = "present") -> Tensor:
    """Lovász-softmax loss of probabilities ``probs`` [N, C] against ``labels`` [N] (``ignore_index`` dropped).

    ``classes``: ``"present"`` averages over the classes in ``labels``, ``"all"`` over all C.
    """
    keep = labels != ignore_index
    probs, labels = probs[keep], labels[keep]
    if labels.numel() == 0:
        return probs.sum() * 0.0
    losses = []
    for c in range(probs.shape[1]):
        fg = (labels == c).to(probs.dtype)
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probs[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    return torch.stack(losses).mean() if losses else probs.sum() * 0.0


@MODELS.register_module()
class SegHead(nn.Module):
    """Voxel-wise classifier ``[M, C_in] → [M, num_classes]`` (optionally Linear → BN → ReLU first), the
    ``decode_head`` of a :class:`~perception3d.models.segmentors.PointSegmentor`.

    Args: in_channels, num_classes; hidden (optional hidden width); dropout (before the classifier).
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: Optional[int] = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        layers = []
        if hidden:
            layers += [nn.Linear(in_channels, hidden, bias=False), nn.BatchNorm1d(hidden, eps=1e-3, momentum=0.01),
                       nn.ReLU(inplace=True)]
            in_channels = hidden
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(in_channels, num_classes))
        self.cls = nn.Sequential(*layers)
        self.num_classes = num_classes

    def forward(self, feats: Tensor) -> Tensor:
        """[M, in_channels] → logits [M, num_classes]."""
        return self.cls(feats)


def seg_losses(logits: Tensor, labels: Tensor, weights: Dict[str, float], class_weight: Optional[Tensor] = None,
               ignore_index: int = -1) -> Dict[str, Tensor]:
    """``loss_ce`` / ``loss_lovasz`` (each times its weight in ``weights``) of point logits [N, C] against labels
    [N]; a batch with only ignored labels gives zero losses."""
    unknown = set(weights) - {"ce", "lovasz"}
    if unknown:
        raise ValueError(f"segmentation losses: unknown loss(es) {sorted(unknown)}; known: ce, lovasz")
    out: Dict[str, Tensor] = {}
    if weights.get("ce", 0.0):
        w = class_weight.to(logits.dtype) if class_weight is not None else None
        if bool((labels != ignore_index).any()):
            ce = F.cross_entropy(logits, labels, weight=w, ignore_index=ignore_index)
        else:
            ce = logits.sum() * 0.0
        out["loss_ce"] = weights["ce"] * ce
    if weights.get("lovasz", 0.0):
        out["loss_lovasz"] = weights["lovasz"] * lovasz_softmax(logits.float().softmax(1), labels, ignore_index)
    return out
