"""ModelNet40 in its common resampled layout (``modelnet40_normal_resampled``), as used by PointNet++,
Pointcept and E-3DSNN::

    <root>/modelnet40_shape_names.txt          one class name per line (line order = label)
    <root>/modelnet40_train.txt                one item per line, e.g. ``airplane_0001``
    <root>/modelnet40_test.txt
    <root>/<class>/<item>.txt                  one point per line: ``x,y,z,nx,ny,nz`` (comma-separated)

The item's class is its name without the trailing ``_NNNN`` (``night_stand_0001`` → ``night_stand``).
:func:`read_modelnet_txt` reads one shape; :class:`ModelNet40Dataset` serves ``dict(inputs=dict(points=[N, 6]),
data_samples=dict(gt_label=int, name=str))`` for mmengine's ``pseudo_collate``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from perception3d.registry import DATASETS

__all__ = ["read_modelnet_txt", "read_list", "ModelNet40Dataset", "normalize_coord", "random_rotation"]


def read_list(path: Path) -> List[str]:
    """Non-empty stripped lines of a list file (raises FileNotFoundError naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ModelNet40: list file not found: {path}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def read_modelnet_txt(path: Path, num_points: Optional[int] = None) -> np.ndarray:
    """One shape file → float32 ``[N, 6]`` (x, y, z, nx, ny, nz); the first ``num_points`` rows if given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ModelNet40: shape file not found: {path}")
    try:
        arr = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2,
                         max_rows=num_points if num_points else None)
    except ValueError as e:
        raise ValueError(f"ModelNet40: {path} is not comma-separated numbers (x,y,z,nx,ny,nz per line): {e}") from e
    if arr.shape[0] == 0 or arr.shape[1] != 6:
        raise ValueError(f"ModelNet40: {path} must have 6 comma-separated columns (x,y,z,nx,ny,nz), "
                         f"got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"ModelNet40: {path} contains non-finite values")
    return arr


def normalize_coord(xyz: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale into the unit sphere (Pointcept ``NormalizeCoord``)."""
    xyz = xyz - xyz.mean(0, keepdims=True)
    r = np.sqrt((xyz ** 2).sum(1)).max()
    return xyz / max(float(r), 1e-8)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3×3 rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@DATASETS.register_module()
class ModelNet40Dataset(Dataset):
    """ModelNet40 (resampled, with normals) for classification.

    Args:
        data_root: the ``modelnet40_normal_resampled`` folder.
        split: ``"train"`` or ``"test"``.
        num_points: keep the first N points of each file (files hold 10,000); None keeps all.
        normalize: centre + unit-sphere scale (``NormalizeCoord``).
        augment: training augmentation: ``dict(scale=(lo, hi), shift=s, rotate="z"|"so3"|None, jitter=σ)``;
            None disables it (the authors use scale (0.9, 1.1) and shift 0.2).
        shape_names_file / list_prefix: file names (``modelnet40_shape_names.txt``, ``modelnet40_{split}.txt``).
        cache: keep parsed arrays in memory.
        seed: seed of the augmentation generator (per worker it is offset by the item index).
    """

    def __init__(self, data_root: str, split: str = "train", num_points: Optional[int] = None,
                 normalize: bool = True, augment: Optional[Dict] = None,
                 shape_names_file: str = "modelnet40_shape_names.txt", list_prefix: str = "modelnet40",
                 cache: bool = True, seed: int = 0) -> None:
        super().__init__()
        if split not in ("train", "test"):
            raise ValueError(f"ModelNet40Dataset: split must be 'train' or 'test', got {split!r}")
        self.data_root = Path(data_root)
        self.split, self.num_points, self.normalize = split, num_points, normalize
        self.augment = dict(augment) if augment else None
        self.class_names = read_list(self.data_root / shape_names_file)
        self.class_to_label = {c: i for i, c in enumerate(self.class_names)}
        self.items: List[Tuple[str, int]] = []
        list_file = self.data_root / f"{list_prefix}_{split}.txt"
        for name in read_list(list_file):
            cls = name.rsplit("_", 1)[0]
            if cls not in self.class_to_label:
                raise ValueError(f"ModelNet40: {list_file}: item {name!r} has class {cls!r}, which is not in "
                                 f"{shape_names_file}")
            self.items.append((name, self.class_to_label[cls]))
        self.cache = cache
        self._cache: Dict[int, np.ndarray] = {}
        self.seed = seed
        self._epoch_rng = np.random.default_rng(seed)
        self.metainfo = dict(classes=tuple(self.class_names))

    def __len__(self) -> int:
        return len(self.items)

    def path(self, idx: int) -> Path:
        name, _ = self.items[idx]
        return self.data_root / name.rsplit("_", 1)[0] / f"{name}.txt"

    def load(self, idx: int) -> np.ndarray:
        if idx in self._cache:
            return self._cache[idx]
        arr = read_modelnet_txt(self.path(idx), self.num_points)
        if self.cache:
            self._cache[idx] = arr
        return arr

    def _augment(self, pts: np.ndarray) -> np.ndarray:
        aug, rng = self.augment, self._epoch_rng
        xyz, nrm = pts[:, :3], pts[:, 3:6]
        rot = aug.get("rotate")
        if rot == "so3":
            R = random_rotation(rng)
        elif rot == "z":
            a = rng.uniform(-np.pi, np.pi)
            R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        else:
            R = None
        if R is not None:
            xyz, nrm = xyz @ R.T, nrm @ R.T
        if aug.get("scale"):
            xyz = xyz * rng.uniform(*aug["scale"])
        if aug.get("shift"):
            xyz = xyz + rng.uniform(-aug["shift"], aug["shift"], size=(1, 3))
        if aug.get("jitter"):
            xyz = xyz + np.clip(rng.normal(scale=aug["jitter"], size=xyz.shape), -5 * aug["jitter"],
                                5 * aug["jitter"])
        return np.concatenate([xyz, nrm], 1).astype(np.float32)

    def __getitem__(self, idx: int) -> Dict:
        pts = self.load(idx).copy()
        if self.normalize:
            pts[:, :3] = normalize_coord(pts[:, :3])
        if self.augment and self.split == "train":
            pts = self._augment(pts)
        name, label = self.items[idx]
        return dict(inputs=dict(points=torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32))),
                    data_samples=dict(gt_label=label, name=name))
