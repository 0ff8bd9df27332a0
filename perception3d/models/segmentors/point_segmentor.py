"""``PointSegmentor``: an mmengine ``BaseModel`` for voxel-based point segmentation (MinkUNet, DSVT, E-3DSNN).

The backbone maps a list of clouds to (per-voxel SparseTensor, point2voxel).  Without a ``decode_head`` the
backbone's output already holds the class logits (E-3DSNN's U-Net ends in its own 1×1 classifier); with one
(:class:`~perception3d.models.heads.SegHead`) the head classifies the backbone's voxel features.  Logits go back to
the points through point2voxel (**voxel → point label projection**: every point takes its voxel's logits; points
dropped by the voxel range get no prediction and are ignored in the loss).

Data: ``inputs = dict(points=[B × [N_b, C]])``, ``data_samples = dict(gt_segment=[B × int64 [N_b]])`` (−1 =
ignore).  Modes: ``"loss"`` → CE / Lovász over points (``loss_weights``); ``"predict"`` → list of
``dict(pred_segment [N_b], pred_valid [N_b], gt_segment [N_b])`` (read by ``SegMIoUMetric``; ``pred_valid`` is
False for points without a voxel, whose ``pred_segment`` is 0); ``"tensor"`` → point logits.

Test-time augmentation (``test_cfg=dict(tta_rotations=4, tta_flips=False)``): the E-3DSNN / Pointcept recipe —
the cloud rotated about z by k · 2π / n (k < n), optionally also mirrored in x and y; the point probabilities of
all views are averaged.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseModel

from perception3d.models.heads.seg_head import seg_losses
from perception3d.registry import MODELS

__all__ = ["PointSegmentor"]


@MODELS.register_module()
class PointSegmentor(BaseModel):
    """Args: backbone config (``E3DSNNUNet``, ``MinkUNetBackbone``, ``DSVTSegBackbone``), num_classes,
    decode_head (optional ``SegHead`` config; its ``in_channels`` default to the backbone's ``out_channels``),
    class_weight (CE weights), ignore_index (−1), loss_weights (``dict(ce=1.0, lovasz=1.0)``; None: CE only,
    returned as ``loss``), test_cfg (``tta_rotations``, ``tta_flips``), tanh_channels (point feature columns
    squashed by tanh before voxelisation, e.g. ``(3,)`` for Waymo intensities, which have a long tail; done in the
    model so that raw clouds, e.g. from a bag, need no other preparation)."""

    def __init__(self, backbone: Dict, num_classes: int, decode_head: Optional[Dict] = None,
                 class_weight: Optional[Sequence[float]] = None, ignore_index: int = -1,
                 loss_weights: Optional[Dict[str, float]] = None, test_cfg: Optional[Dict] = None,
                 tanh_channels: Sequence[int] = (), data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.in_channels = int(backbone.get("in_channels", 4))     # point columns the model reads
        self.decode_head = None
        if decode_head is not None:
            head = dict(decode_head)
            head.setdefault("in_channels", getattr(self.backbone, "out_channels", None))
            head.setdefault("num_classes", num_classes)
            if head["num_classes"] != num_classes:
                raise ValueError(f"PointSegmentor: decode_head has {head['num_classes']} classes, the model "
                                 f"{num_classes}")
            self.decode_head = MODELS.build(head)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        if class_weight is not None and len(class_weight) != num_classes:
            raise ValueError(f"PointSegmentor: class_weight has {len(class_weight)} entries, num_classes is {num_classes}")
        self.register_buffer("class_weight", torch.tensor(class_weight, dtype=torch.float32)
                             if class_weight is not None else None, persistent=False)
        self.loss_weights = None if loss_weights is None else dict(loss_weights)
        if self.loss_weights is not None:
            seg_losses(torch.zeros(1, num_classes), torch.full((1,), ignore_index), self.loss_weights,
                       ignore_index=ignore_index)                    # checks the keys now, not at the first step
        self.tanh_channels = [int(c) for c in tanh_channels]
        if any(c < 3 for c in self.tanh_channels):
            raise ValueError(f"PointSegmentor: tanh_channels {self.tanh_channels} must be feature columns (>= 3)")
        self.test_cfg = dict(test_cfg or {})
        unknown = set(self.test_cfg) - {"tta_rotations", "tta_flips"}
        if unknown:
            raise ValueError(f"PointSegmentor: unknown test_cfg key(s) {sorted(unknown)}")

    def _point_logits(self, points: List[torch.Tensor]):
        out, p2v = self.backbone(points)
        feats = out.feats if self.decode_head is None else self.decode_head(out.feats)
        valid = p2v >= 0
        logits = feats.new_zeros(p2v.shape[0], feats.shape[1])
        logits[valid] = feats[p2v[valid]]
        return logits, valid

    def _tta_probs(self, points: List[torch.Tensor]):
        """Averaged point probabilities over the test-time views (rotations about z, optional x / y mirrors)."""
        n_rot = int(self.test_cfg.get("tta_rotations", 1))
        flips = [(1, 1)] + ([(-1, 1), (1, -1)] if self.test_cfg.get("tta_flips") else [])
        total, valid_any = None, None
        for k in range(max(n_rot, 1)):
            a = 2 * math.pi * k / max(n_rot, 1)
            c, s = math.cos(a), math.sin(a)
            for fx, fy in flips:
                views = []
                for p in points:
                    q = p.clone()
                    x, y = p[:, 0] * fx, p[:, 1] * fy
                    q[:, 0], q[:, 1] = c * x - s * y, s * x + c * y
                    views.append(q)
                logits, valid = self._point_logits(views)
                probs = logits.softmax(1) * valid[:, None]
                total = probs if total is None else total + probs
                valid_any = valid if valid_any is None else valid_any | valid
        return total, valid_any

    def forward(self, inputs, data_samples=None, mode: str = "tensor"):
        points = inputs["points"] if isinstance(inputs, dict) else inputs
        points = [points] if isinstance(points, torch.Tensor) else list(points)
        if self.tanh_channels:
            points = [torch.cat([p[:, :3], _tanh_cols(p[:, 3:], [c - 3 for c in self.tanh_channels])], 1)
                      for p in points]
        gts = None
        if data_samples is not None:
            gts = data_samples["gt_segment"] if isinstance(data_samples, dict) else [d["gt_segment"] for d in data_samples]
            gts = [torch.as_tensor(g, dtype=torch.long, device=points[0].device) for g in gts]
        if mode == "predict":
            tta = int(self.test_cfg.get("tta_rotations", 1)) > 1 or self.test_cfg.get("tta_flips")
            scores, valid = self._tta_probs(points) if tta else self._point_logits(points)
            pred = torch.where(valid, scores.argmax(1), torch.zeros_like(valid, dtype=torch.long))
            out, start = [], 0
            for i, p in enumerate(points):
                n = p.shape[0]
                d = dict(pred_segment=pred[start:start + n].cpu(), pred_valid=valid[start:start + n].cpu())
                if gts is not None:
                    d["gt_segment"] = gts[i].cpu()
                out.append(d)
                start += n
            return out
        logits, valid = self._point_logits(points)
        if mode == "tensor":
            return logits
        if mode == "loss":
            if gts is None:
                raise ValueError("PointSegmentor: mode 'loss' needs data_samples with 'gt_segment'")
            y = torch.cat(gts)
            if y.shape[0] != logits.shape[0]:
                raise ValueError(f"PointSegmentor: {y.shape[0]} labels for {logits.shape[0]} points")
            bad = (y != self.ignore_index) & ((y < 0) | (y >= self.num_classes))
            if bool(bad.any()):
                raise ValueError(f"PointSegmentor: labels must be in [0, {self.num_classes}) or "
                                 f"{self.ignore_index} (ignored); found {int(y[bad][0])}")
            y = torch.where(valid, y, torch.full_like(y, self.ignore_index))
            if self.loss_weights is None:
                return dict(loss=seg_losses(logits, y, dict(ce=1.0), self.class_weight, self.ignore_index)["loss_ce"])
            return seg_losses(logits, y, self.loss_weights, self.class_weight, self.ignore_index)
        raise ValueError(f"PointSegmentor: mode must be 'loss', 'predict' or 'tensor', got {mode!r}")


def _tanh_cols(f: torch.Tensor, cols: List[int]) -> torch.Tensor:
    if max(cols) >= f.shape[1]:
        raise ValueError(f"PointSegmentor: tanh_channels need {max(cols) + 4} point columns, the cloud has "
                         f"{f.shape[1] + 3}")
    f = f.clone()
    f[:, cols] = torch.tanh(f[:, cols])
    return f
