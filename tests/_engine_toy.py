"""A toy dataset and model for the engine tests (fast: no sparse convs).

The dataset draws its "augmentation" from numpy / python / torch RNGs, and index ``bad_index`` raises,
so exact resume, per-sample seeding and bad-frame counting are all exercised. The model has dropout (main
process RNG) and BatchNorm.
"""
import random
import time

import numpy as np
import torch
from mmengine.model import BaseModel
from torch import nn

from perception3d.registry import DATASETS, MODELS


@DATASETS.register_module(force=True)
class ToyPointsDataset:
    metainfo = dict(classes=("thing",))

    def __init__(self, n: int = 16, bad_index: int = -1, delay: float = 0.0) -> None:
        self.n, self.bad_index, self.delay = n, bad_index, delay
        g = np.random.default_rng(0)
        self.base = g.normal(size=(n, 32, 4)).astype(np.float32)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if self.delay:
            time.sleep(self.delay)
        if i == self.bad_index:
            raise OSError(f"frame {i} is corrupt")
        pts = self.base[i] * np.random.uniform(0.9, 1.1) + random.random() * 0.1
        pts = torch.from_numpy(pts) + 0.01 * torch.randn(pts.shape)
        target = float(self.base[i, :, 0].mean() * 3 + 1)
        return dict(inputs=dict(points=pts), data_samples=dict(target=torch.tensor([target])))


@MODELS.register_module(force=True)
class ToyPointsModel(BaseModel):
    def __init__(self, hidden: int = 16, dropout: float = 0.2, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type="Det3DDataPreprocessor"))
        self.mlp = nn.Sequential(nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, 1))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        pts = inputs["points"]
        out = torch.cat([self.mlp(p).mean(0) for p in pts])
        if mode == "loss":
            tgt = torch.cat([s["target"] for s in data_samples])
            return dict(loss_mse=((out - tgt) ** 2).mean())
        return out
