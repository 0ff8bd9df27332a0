"""The data preprocessor of the LiDAR detectors: normalises what a data loader (or a user) hands the model into
``{"inputs": {"points": [Tensor [N_i, F], ...]}, "data_samples": [...]}`` on the model's device."""
from __future__ import annotations

import torch
from mmengine.model import BaseDataPreprocessor

from perception3d.registry import MODELS

__all__ = ["Det3DDataPreprocessor"]


@MODELS.register_module()
class Det3DDataPreprocessor(BaseDataPreprocessor):
    """Moves a batch to the model's device and normalises its layout.

    Accepts what mmengine's ``pseudo_collate`` makes of ``Pack3DDetInputs`` output (a dict of lists for dict
    data samples) as well as a list of per-frame dicts, and returns
    ``{"inputs": {"points": [Tensor, ...]}, "data_samples": [dict | BaseDataElement, ...]}``.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data.get("inputs", data)
        points = inputs["points"] if isinstance(inputs, dict) else inputs
        if isinstance(points, torch.Tensor):
            points = [points] if points.dim() == 2 else list(points)
        points = [p.float() for p in points]
        samples = data.get("data_samples")
        if isinstance(samples, dict):  # dict of lists → list of dicts
            n = len(points)
            samples = [{k: (v[i] if isinstance(v, (list, tuple)) and len(v) == n else v)
                        for k, v in samples.items()} for i in range(n)]
        return dict(inputs=dict(points=points), data_samples=samples)
