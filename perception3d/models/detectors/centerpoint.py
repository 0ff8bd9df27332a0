"""CenterPoint as an mmengine ``BaseModel``: points → voxel encoder → (3D backbone) → BEV → (2D backbone) → head.

``forward(inputs, data_samples, mode)``:
  - ``inputs``: ``{"points": [Tensor [N_i, F], ...]}`` (one tensor per frame) or the list itself;
  - ``data_samples``: one dict (or BaseDataElement) per frame with ``gt_bboxes_3d`` [M, 7] and ``gt_labels_3d`` [M]
    for training;
  - ``mode``: ``"loss"`` → dict of losses; ``"predict"`` → the data samples with ``pred_instances_3d``
    = {bboxes_3d [K, 7], scores_3d [K], labels_3d [K]} added; ``"tensor"`` → the raw head outputs.
Any stage may be swapped by config (DSVT: ``voxel_encoder=DynamicPillarVFE``, ``backbone_3d=DSVT``,
``map_to_bev=PointPillarScatter``, ``backbone_2d=BaseBEVResBackbone``).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

import perception3d.models.data_preprocessor  # noqa: F401  (registers the default Det3DDataPreprocessor)
from perception3d.deprecation import moved_names
from perception3d.ops.box_tensor import as_box_tensor
from perception3d.registry import MODELS
from perception3d.structures.bev_grid import BEVGrid

__all__ = ["CenterPoint", "to_box_tensor"]

__getattr__ = moved_names(__name__, {"Det3DDataPreprocessor": "perception3d.models.data_preprocessor"})  # old path


def to_box_tensor(x: Any, width: int = 7, name: str = "gt_bboxes_3d") -> torch.Tensor:
    """Boxes3D / ndarray / Tensor / list → float32 tensor [M, width] (the first ``width`` columns; any empty input
    → [0, width]); the shape is checked by :func:`perception3d.ops.box_tensor.as_box_tensor`."""
    t = x if isinstance(x, torch.Tensor) else getattr(x, "tensor", None)
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if t.numel() == 0:
        return t.reshape(0, width).float()
    return as_box_tensor(t, name, min_dim=width)[:, :width].float()


def _get(sample: Any, key: str, default=None):
    if isinstance(sample, dict):
        return sample.get(key, default)
    return getattr(sample, key, default)


def _set(sample: Any, key: str, value) -> None:
    if isinstance(sample, dict):
        sample[key] = value
    else:
        setattr(sample, key, value)


@MODELS.register_module()
class CenterPoint(BaseModel):
    """CenterPoint detector (voxel or pillar variant, set by the config's stages).

    Args:
        voxel_encoder: points → SparseTensor (``DynamicVFE`` / ``DynamicPillarVFE``).
        bbox_head: ``CenterHead`` config.
        backbone_3d: SparseTensor → SparseTensor (``VoxelResBackBone8x``, DSVT, ...), optional.
        map_to_bev: SparseTensor → dense [B, C, H, W] (``HeightCompression`` / ``PointPillarScatter``).
        backbone_2d: dense BEV → dense BEV (``BaseBEVBackbone`` / ``BaseBEVResBackbone``), optional.
        bn_momentum: if set, the momentum of every BatchNorm (OpenPCDet uses 0.01, too slow for a few hundred
            iterations).
        bev_channels_last: run the dense BEV backbone and head in channels-last memory layout ([B, H, W, C] in
            memory; the tensors keep their [B, C, H, W] shape). The same model and the same maths, only the
            order of float additions in the convolutions differs; on CPU oneDNN's channels-last convolution
            kernels make a DSVT-P mini iteration ~11 % faster (the BEV convs and head are half of it,
            ``bench/profile_dsvt_mini.py``). Off by default; the CPU mini configs turn it on.
    """

    def __init__(self, voxel_encoder: dict, bbox_head: dict, backbone_3d: Optional[dict] = None,
                 map_to_bev: Optional[dict] = None, backbone_2d: Optional[dict] = None,
                 bn_momentum: Optional[float] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None, bev_channels_last: bool = False) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type="Det3DDataPreprocessor")
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.voxel_encoder = MODELS.build(voxel_encoder)
        self.backbone_3d = MODELS.build(backbone_3d) if backbone_3d is not None else None
        self.map_to_bev = MODELS.build(map_to_bev if map_to_bev is not None else dict(type="HeightCompression"))
        self.backbone_2d = MODELS.build(backbone_2d) if backbone_2d is not None else None
        self.bbox_head = MODELS.build(bbox_head)
        self.bev_channels_last = bool(bev_channels_last)
        if self.bev_channels_last:  # the conv weights too, so that no layout conversion runs per call
            for m in (self.backbone_2d, self.bbox_head):
                if m is not None:
                    m.to(memory_format=torch.channels_last)
        if bn_momentum is not None:  # short CPU schedules: BN running stats must converge in few steps
            for m in self.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.momentum = float(bn_momentum)

    @property
    def class_names(self) -> list[str]:
        return list(self.bbox_head.class_names)

    def extract_bev(self, points: Sequence[torch.Tensor]) -> tuple[torch.Tensor, BEVGrid]:
        """Per-frame point tensors → (BEV feature map [B, C, H, W], its metric grid).

        The grid is read off the sparse tensor that is scattered to BEV (its ``voxel_size``, ``stride`` and
        ``origin``) and follows the 2-D backbone's resampling, so the head needs no ``out_size_factor``."""
        x = self.voxel_encoder(points)
        if self.backbone_3d is not None:
            x = self.backbone_3d(x)
        grid = BEVGrid.from_sparse(x)
        x = self.map_to_bev(x)
        if x.shape[0] != len(points):  # frames without any voxel at the end of the batch
            pad = x.new_zeros((len(points) - x.shape[0],) + tuple(x.shape[1:]))
            x = torch.cat([x, pad])
        if self.bev_channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.backbone_2d is not None:
            x = self.backbone_2d(x)
        return x, grid.resampled(x.shape[-2:])

    def extract_feat(self, points: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-frame point tensors → BEV feature map [B, C, H, W]."""
        return self.extract_bev(points)[0]

    def forward(self, inputs: Union[dict, Sequence[torch.Tensor]], data_samples: Optional[list] = None,
                mode: str = "tensor"):
        points = inputs["points"] if isinstance(inputs, dict) else inputs
        if isinstance(points, torch.Tensor):
            points = [points]
        feats, grid = self.extract_bev(points)
        preds = self.bbox_head(feats)
        if mode == "tensor":
            return preds
        if mode == "loss":
            if data_samples is None:
                raise ValueError("CenterPoint.forward(mode='loss') needs data_samples with gt_bboxes_3d/gt_labels_3d")
            dev = preds[0]["hm"].device
            boxes = [to_box_tensor(_get(s, "gt_bboxes_3d")).to(dev) for s in data_samples]
            labels = [torch.as_tensor(np.asarray(_get(s, "gt_labels_3d"))).long().reshape(-1).to(dev)
                      if not isinstance(_get(s, "gt_labels_3d"), torch.Tensor)
                      else _get(s, "gt_labels_3d").long().reshape(-1).to(dev) for s in data_samples]
            return self.bbox_head.loss(preds, boxes, labels, grid=grid)
        if mode == "predict":
            results = self.bbox_head.predict(preds, grid=grid)
            if data_samples is None:
                data_samples = [dict() for _ in results]
            for s, r in zip(data_samples, results):
                _set(s, "pred_instances_3d", r if isinstance(s, dict) else BaseDataElement(**r))
            return data_samples
        raise ValueError(f"CenterPoint.forward: mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
