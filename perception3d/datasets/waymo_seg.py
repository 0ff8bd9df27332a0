"""Waymo v2 LiDAR semantic segmentation: TOP return-1 points with their ``lidar_segmentation`` labels.

Reads ``<root>/<split>/{lidar,lidar_calibration,lidar_pose,vehicle_pose,lidar_segmentation}/<segment>.parquet``
(the official v2 layout; the built-in mini dataset writes the same, ``prepare_waymo_mini_seg``).  Only frames with
a label row are served.  Training ids: Waymo ``Segmentation.Type`` 1–22 → 0–21, undefined (0) → −1 (ignored),
as the Waymo semantic-segmentation benchmark scores the 22 classes.

Item: ``dict(inputs=dict(points=float32 [N, 4] (x, y, z, intensity)), data_samples=dict(gt_segment=int64 [N] in
−1..21, name))`` (the mini configs squash the intensity with tanh inside the model: ``tanh_channels=(3,)``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS
from torch.utils.data import Dataset

from perception3d.datasets.seg_transforms import apply_point_range, augment_xyz, check_augment, mixed_sample
from perception3d.datasets.waymo_v2 import (WaymoV2Segment, find_split_dir, list_segments, read_lidar_segmentation,
                                            top_points_with_labels)
from perception3d.registry import DATASETS

__all__ = ["WAYMO_SEG_CLASSES", "WaymoSegDataset", "prepare_waymo_mini_seg"]

#: the 22 scored classes (training ids 0–21 = Waymo types 1–22)
WAYMO_SEG_CLASSES: Tuple[str, ...] = (
    "car", "truck", "bus", "other_vehicle", "motorcyclist", "bicyclist", "pedestrian", "sign", "traffic_light",
    "pole", "construction_cone", "bicycle", "motorcycle", "building", "vegetation", "tree_trunk", "curb", "road",
    "lane_marker", "other_ground", "walkable", "sidewalk")


@FUNCTIONS.register_module(force=True)
def prepare_waymo_mini_seg(root: str = "data/waymo_mini", workers: Optional[int] = None) -> Path:
    """``prepare_data`` of the mini segmentation configs: the mini dataset and its ``lidar_segmentation`` labels
    (written when missing or stale; ~0.2 s of CPU per frame)."""
    from filelock import FileLock

    from perception3d.datasets.synthetic.labels import ensure_waymo_mini_labels
    root_p = Path(root).resolve()
    root_p.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root_p) + ".prepare.lock"):
        return ensure_waymo_mini_labels(root_p, workers=workers)


@DATASETS.register_module()
class WaymoSegDataset(Dataset):
    """Waymo v2 frames with 3D semantic labels.

    Args:
        data_root: the v2 root (holding ``training/`` / ``validation/``).
        split: ``"train"`` / ``"val"``.
        point_range: ``(x0, y0, z0, x1, y1, z1)``; ``range_mode`` ``"drop"`` (points outside are not served, nor
            scored) or ``"clip"`` (clipped onto the range, the authors' SemanticKITTI handling).
        augment: see :mod:`perception3d.datasets.seg_transforms` (train split only).
        mix_prob: Mix3D — with this probability a training sample is the union of two augmented frames.
        max_frames: serve only the first frames (quick runs).
        cache: keep decoded frames in memory (the mini data: ~1 MB per frame).

    Augmentation draws from numpy's global stream (one seed per item), so that ``SeededDataset`` makes it a pure
    function of (seed, epoch, index) for exact resume.
    """

    def __init__(self, data_root: str, split: str = "train", point_range: Optional[Sequence[float]] = None,
                 range_mode: str = "drop", augment: Optional[Dict] = None, mix_prob: float = 0.0,
                 max_frames: Optional[int] = None, cache: bool = True) -> None:
        super().__init__()
        self.split = split
        split_dir = find_split_dir(data_root, split)
        seg_dir = split_dir / "lidar_segmentation"
        self.frames: List[Tuple[Path, str, int]] = []
        for name in list_segments(split_dir):
            path = seg_dir / f"{name}.parquet"
            if not path.is_file():
                continue
            for ts, laser in sorted(read_lidar_segmentation(path)):
                if laser == 1:
                    self.frames.append((split_dir, name, ts))
        if not self.frames:
            raise FileNotFoundError(f"WaymoSegDataset: no 3D segmentation labels under {seg_dir} (the "
                                    f"'lidar_segmentation' component); a segmentation config needs a labelled "
                                    f"dataset (the mini data: prepare_data=dict(type='prepare_waymo_mini_seg'))")
        if max_frames is not None:
            self.frames = self.frames[:int(max_frames)]
        if range_mode not in ("drop", "clip"):
            raise ValueError(f"WaymoSegDataset: range_mode must be 'drop' or 'clip', got {range_mode!r}")
        self.point_range, self.range_mode = point_range, range_mode
        self.augment = check_augment(augment, "WaymoSegDataset")
        self.mix_prob = float(mix_prob)
        self._cache: Optional[Dict[int, Tuple[np.ndarray, np.ndarray]]] = {} if cache else None
        self._labels: Dict[Path, dict] = {}
        self.metainfo = dict(classes=WAYMO_SEG_CLASSES)

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, idx: int) -> Tuple[np.ndarray, np.ndarray]:
        """(points float32 [N, 4] x, y, z, intensity; training ids int64 [N]) of frame ``idx``, unaugmented."""
        if self._cache is not None and idx in self._cache:
            return self._cache[idx]
        split_dir, name, ts = self.frames[idx]
        path = split_dir / "lidar_segmentation" / f"{name}.parquet"
        if path not in self._labels:
            self._labels = {path: read_lidar_segmentation(path)}     # one segment's labels at a time
        seg = WaymoV2Segment(split_dir, name, lasers=(1,), returns=(1,))
        pts, types = top_points_with_labels(seg, ts, self._labels[path][(ts, 1)][0])
        out = np.ascontiguousarray(pts[:, :4], np.float32)
        item = (out, types - 1)                                      # undefined (0) → −1
        if self._cache is not None:
            self._cache[idx] = item
        return item

    def _sample(self, idx: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        pts, seg = self.load(idx)
        if self.augment and self.split == "train":
            pts = np.concatenate([augment_xyz(pts[:, :3], self.augment, rng), pts[:, 3:]], 1)
        return apply_point_range(pts, seg, self.point_range, self.range_mode)

    def __getitem__(self, idx: int) -> Dict:
        pts, seg = mixed_sample(self._sample, idx, len(self), self.mix_prob if self.split == "train" else 0.0)
        split_dir, name, ts = self.frames[idx]
        if pts.shape[0] == 0:
            print_log(f"WaymoSegDataset: {name} frame {ts} has no points in the range", logger="current")
        return dict(inputs=dict(points=torch.from_numpy(np.ascontiguousarray(pts))),
                    data_samples=dict(gt_segment=torch.from_numpy(seg.astype(np.int64)), name=f"{name}/{ts}"))
