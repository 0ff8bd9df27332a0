"""SemanticKITTI reader (the official on-disk layout)::

    <root>/sequences/<XX>/velodyne/<NNNNNN>.bin     float32 × 4 per point (x, y, z, remission)
    <root>/sequences/<XX>/labels/<NNNNNN>.label     uint32 per point: lower 16 bits semantic id,
                                                    upper 16 bits instance id

Labels go through the official ``learning_map`` (semantic-kitti.yaml) to the 0–19 training ids, where
0 = unlabeled / outlier / other-structure / other-object (ignored). The network predicts 19 classes, so the
dataset serves ``segment = learning_map − 1`` with ``ignore_index = -1`` (Pointcept's convention, used by the
authors' E-3DSNN config). Points outside the model's range are clipped onto it by default (the authors'
``PointClip``), so that every point of a scan is scored. Official split: train 00–07, 09, 10; val 08; test 11–21 (no labels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from perception3d.datasets.seg_transforms import apply_point_range, augment_xyz, check_augment, mixed_sample
from perception3d.registry import DATASETS

__all__ = ["LEARNING_MAP", "CLASS_NAMES", "learning_map_lut", "read_scan", "read_label", "SemanticKITTIDataset",
           "SPLITS"]

#: official semantic-kitti.yaml learning_map: raw semantic id -> training id (0 = ignored)
LEARNING_MAP: Dict[int, int] = {
    0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 7, 32: 8, 40: 9, 44: 10, 48: 11,
    49: 12, 50: 13, 51: 14, 52: 0, 60: 9, 70: 15, 71: 16, 72: 17, 80: 18, 81: 19, 99: 0, 252: 1, 253: 7,
    254: 6, 255: 8, 256: 5, 257: 5, 258: 4, 259: 5}
#: training ids 1..19 (index 0 here is training id 1)
CLASS_NAMES: Tuple[str, ...] = (
    "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist", "motorcyclist", "road",
    "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk", "terrain", "pole",
    "traffic-sign")
SPLITS = dict(train=["00", "01", "02", "03", "04", "05", "06", "07", "09", "10"], val=["08"],
              test=[f"{i:02d}" for i in range(11, 22)])


def learning_map_lut(mapping: Optional[Dict[int, int]] = None) -> np.ndarray:
    """A 65536-entry lookup table raw id -> training id; raw ids outside the map are −1 (:func:`read_label` rejects
    them)."""
    lut = np.full(1 << 16, -1, dtype=np.int64)
    for k, v in (mapping or LEARNING_MAP).items():
        lut[k] = v
    return lut


def read_scan(path: Union[str, Path]) -> np.ndarray:
    """``.bin`` scan → float32 ``[N, 4]`` (x, y, z, remission)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SemanticKITTI: scan not found: {path}")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise ValueError(f"SemanticKITTI: {path} has {raw.size} float32 values, not a multiple of 4 (x, y, z, r)")
    return raw.reshape(-1, 4)


def read_label(path: Union[str, Path], num_points: Optional[int] = None, lut: Optional[np.ndarray] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
    """``.label`` → (training id 0–19 per point (int64, 0 = ignored), instance id per point (int64))."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SemanticKITTI: label file not found: {path}")
    raw = np.fromfile(path, dtype=np.uint32)
    if num_points is not None and raw.size != num_points:
        raise ValueError(f"SemanticKITTI: {path} has {raw.size} labels but its scan has {num_points} points")
    lut = learning_map_lut() if lut is None else lut
    sem = lut[raw & 0xFFFF]
    if (sem < 0).any():
        bad = np.unique(raw[sem < 0] & 0xFFFF)
        raise ValueError(f"SemanticKITTI: {path} has {int((sem < 0).sum())} labels outside the learning map "
                         f"(semantic-kitti.yaml), raw ids {bad[:10].tolist()}")
    return sem, (raw >> 16).astype(np.int64)


@DATASETS.register_module()
class SemanticKITTIDataset(Dataset):
    """SemanticKITTI scans for semantic segmentation.

    Args:
        data_root: folder holding ``sequences/``.
        split: ``"train"``/``"val"``/``"test"`` (official sequences) — or give ``sequences`` explicitly.
        point_range: optional ``(x0, y0, z0, x1, y1, z1)``; ``range_mode`` ``"clip"`` (the authors': points
            outside are clipped onto the range, every point keeps a label and a prediction) or ``"drop"``.
        augment: training augmentation (:mod:`perception3d.datasets.seg_transforms`), e.g. the E-3DSNN recipe
            ``dict(rotate_z=True, rotate_p=0.5, flip_x=0.5, flip_y=0.5, scale=(0.9, 1.1), jitter=0.005)``.
        mix_prob: Mix3D — with this probability a training sample is the union of two augmented scans (0.8).
        max_points: random subsample to at most this many points (None keeps all).

    Item: ``dict(inputs=dict(points=float32 [N, 4]), data_samples=dict(gt_segment=int64 [N] in −1..18, name))``.
    Augmentation draws from numpy's global stream (``SeededDataset`` makes it a function of seed, epoch, index).
    """

    def __init__(self, data_root: str, split: str = "train", sequences: Optional[Sequence[str]] = None,
                 point_range: Optional[Sequence[float]] = None, range_mode: str = "clip",
                 augment: Optional[Dict] = None, mix_prob: float = 0.0, max_points: Optional[int] = None) -> None:
        super().__init__()
        self.data_root = Path(data_root)
        if sequences is None:
            if split not in SPLITS:
                raise ValueError(f"SemanticKITTIDataset: split must be one of {list(SPLITS)}, got {split!r}")
            sequences = SPLITS[split]
        self.split = split
        seq_root = self.data_root / "sequences"
        if not seq_root.is_dir():
            raise FileNotFoundError(f"SemanticKITTI: no 'sequences' folder under {self.data_root}")
        self.items: List[Tuple[Path, Optional[Path]]] = []
        for seq in sequences:
            vel = seq_root / f"{int(seq):02d}" / "velodyne"
            if not vel.is_dir():
                continue
            for scan in sorted(vel.glob("*.bin")):
                lab = scan.parent.parent / "labels" / (scan.stem + ".label")
                self.items.append((scan, lab if lab.is_file() else None))
        if not self.items:
            raise FileNotFoundError(f"SemanticKITTI: no scans found for sequences {list(sequences)} under {seq_root}")
        if range_mode not in ("clip", "drop"):
            raise ValueError(f"SemanticKITTIDataset: range_mode must be 'clip' or 'drop', got {range_mode!r}")
        self.point_range, self.range_mode = point_range, range_mode
        self.augment = check_augment(augment, "SemanticKITTIDataset")
        self.mix_prob = float(mix_prob)
        self.max_points = max_points
        self.lut = learning_map_lut()
        self.metainfo = dict(classes=CLASS_NAMES)

    def __len__(self) -> int:
        return len(self.items)

    def _sample(self, idx: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        scan_path, label_path = self.items[idx]
        pts = read_scan(scan_path)
        if label_path is not None:
            sem, _ = read_label(label_path, pts.shape[0], self.lut)
            segment = sem - 1                       # 0..18, ignored -> -1
        else:
            segment = np.full(pts.shape[0], -1, np.int64)
        if self.augment and self.split == "train":
            pts = np.concatenate([augment_xyz(pts[:, :3], self.augment, rng), pts[:, 3:]], 1)
        pts, segment = apply_point_range(pts, segment, self.point_range, self.range_mode)
        if self.max_points is not None and pts.shape[0] > self.max_points:
            sel = np.sort(rng.choice(pts.shape[0], self.max_points, replace=False))
            pts, segment = pts[sel], segment[sel]
        return pts, segment

    def __getitem__(self, idx: int) -> Dict:
        pts, segment = mixed_sample(self._sample, idx, len(self), self.mix_prob if self.split == "train" else 0.0)
        scan_path = self.items[idx][0]
        name = f"{scan_path.parent.parent.name}/{scan_path.stem}"
        return dict(inputs=dict(points=torch.from_numpy(np.ascontiguousarray(pts, np.float32))),
                    data_samples=dict(gt_segment=torch.from_numpy(segment.astype(np.int64)), name=name))
