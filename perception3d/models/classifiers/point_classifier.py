"""``PointClassifier``: an mmengine ``BaseModel`` around a point-cloud classification network (E-3DSNN).

Data contract (what ``ModelNet40Dataset`` + mmengine's ``pseudo_collate`` give):
``inputs = dict(points=[B × float [N_b, C]])``, ``data_samples = dict(gt_label=[B ints], name=[B strs])``.
``forward(inputs, data_samples, mode)``:
  ``"loss"`` → ``dict(loss=CE with label smoothing)``;
  ``"predict"`` → list of ``dict(pred_label, gt_label, scores [num_classes], name)`` (read by ``ClsAccuracyMetric``);
  ``"tensor"`` → logits ``[B, num_classes]``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from perception3d.registry import MODELS

__all__ = ["PointClassifier"]


def _labels(data_samples, device) -> torch.Tensor:
    if data_samples is None:
        raise ValueError("PointClassifier: mode 'loss' needs data_samples with 'gt_label'")
    if isinstance(data_samples, dict):
        labels = data_samples["gt_label"]
    else:
        labels = [d["gt_label"] for d in data_samples]
    return torch.as_tensor([int(v) for v in labels], dtype=torch.long, device=device)


@MODELS.register_module()
class PointClassifier(BaseModel):
    """Args: backbone (config of a network mapping a list of point clouds to logits, e.g. ``E3DSNN``),
    label_smoothing (the authors use 0.2), data_preprocessor (mmengine's default moves data to the device)."""

    def __init__(self, backbone: Dict, label_smoothing: float = 0.2, data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.label_smoothing = label_smoothing

    @staticmethod
    def _points(inputs) -> List[torch.Tensor]:
        pts = inputs["points"] if isinstance(inputs, dict) else inputs
        if isinstance(pts, torch.Tensor):
            pts = [pts] if pts.dim() == 2 else list(pts)
        return list(pts)

    def forward(self, inputs: Union[Dict, List[torch.Tensor]], data_samples=None, mode: str = "tensor"):
        points = self._points(inputs)
        logits = self.backbone(points)
        if mode == "tensor":
            return logits
        if mode == "loss":
            y = _labels(data_samples, logits.device)
            return dict(loss=F.cross_entropy(logits, y, label_smoothing=self.label_smoothing))
        if mode == "predict":
            scores = logits.softmax(-1).detach().cpu()
            out = []
            for i in range(len(points)):
                d = dict(pred_label=int(scores[i].argmax()), scores=scores[i])
                if data_samples is not None:
                    ds = data_samples if isinstance(data_samples, dict) else None
                    d["gt_label"] = int(ds["gt_label"][i] if ds else data_samples[i]["gt_label"])
                    if ds and "name" in ds:
                        d["name"] = ds["name"][i]
                out.append(d)
            return out
        raise ValueError(f"PointClassifier: mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
