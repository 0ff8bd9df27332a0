"""``PointSegmentor``: an mmengine ``BaseModel`` for voxel-based point segmentation (E-3DSNN U-Net).

The backbone maps a list of clouds to (per-voxel logits SparseTensor, point2voxel); logits go back to points
through point2voxel (points dropped by the voxel range get no prediction: label −1 / ignored in the loss).
Data: ``inputs = dict(points=[B × [N_b, C]])``, ``data_samples = dict(gt_segment=[B × int64 [N_b]])``
(−1 = ignore). Modes: ``"loss"`` → weighted CE over points; ``"predict"`` → list of
``dict(pred_segment [N_b], gt_segment [N_b])`` (read by ``SegMIoUMetric``); ``"tensor"`` → point logits.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from perception3d.registry import MODELS

__all__ = ["PointSegmentor"]


@MODELS.register_module()
class PointSegmentor(BaseModel):
    """Args: backbone config (e.g. ``E3DSNNUNet``), num_classes, class_weight (CE weights, the authors' list
    for SemanticKITTI), ignore_index (−1)."""

    def __init__(self, backbone: Dict, num_classes: int, class_weight: Optional[Sequence[float]] = None,
                 ignore_index: int = -1, data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        if class_weight is not None and len(class_weight) != num_classes:
            raise ValueError(f"PointSegmentor: class_weight has {len(class_weight)} entries, num_classes is {num_classes}")
        self.register_buffer("class_weight", torch.tensor(class_weight, dtype=torch.float32)
                             if class_weight is not None else None, persistent=False)

    def _point_logits(self, points: List[torch.Tensor]):
        vox_logits, p2v = self.backbone(points)
        valid = p2v >= 0
        logits = vox_logits.feats.new_zeros(p2v.shape[0], vox_logits.feats.shape[1])
        logits[valid] = vox_logits.feats[p2v[valid]]
        return logits, valid

    def forward(self, inputs, data_samples=None, mode: str = "tensor"):
        points = inputs["points"] if isinstance(inputs, dict) else inputs
        points = [points] if isinstance(points, torch.Tensor) else list(points)
        logits, valid = self._point_logits(points)
        if mode == "tensor":
            return logits
        gts = None
        if data_samples is not None:
            gts = data_samples["gt_segment"] if isinstance(data_samples, dict) else [d["gt_segment"] for d in data_samples]
            gts = [torch.as_tensor(g, dtype=torch.long, device=logits.device) for g in gts]
        if mode == "loss":
            if gts is None:
                raise ValueError("PointSegmentor: mode 'loss' needs data_samples with 'gt_segment'")
            y = torch.cat(gts)
            if y.shape[0] != logits.shape[0]:
                raise ValueError(f"PointSegmentor: {y.shape[0]} labels for {logits.shape[0]} points")
            y = torch.where(valid, y, torch.full_like(y, self.ignore_index))
            w = self.class_weight.to(logits.dtype) if self.class_weight is not None else None
            return dict(loss=F.cross_entropy(logits, y, weight=w, ignore_index=self.ignore_index))
        if mode == "predict":
            pred = logits.argmax(1)
            pred = torch.where(valid, pred, torch.zeros_like(pred))
            out, start = [], 0
            for i, p in enumerate(points):
                n = p.shape[0]
                d = dict(pred_segment=pred[start:start + n].cpu())
                if gts is not None:
                    d["gt_segment"] = gts[i].cpu()
                out.append(d)
                start += n
            return out
        raise ValueError(f"PointSegmentor: mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
