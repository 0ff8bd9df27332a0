"""Ground-truth database for GT sampling (SECOND / mmdet3d ``create_groundtruth_database`` + ``DataBaseSampler``).

Layout (mmdet3d's, so databases made by mmdet3d's tools can be read too)::

    <data_root>/<prefix>_gt_database/<sample_idx>_<Class>_<k>.bin   float32 [K, F] object points, xyz relative
                                                                   to the box's bottom centre
    <data_root>/<prefix>_dbinfos_train.pkl                         {class_name: [info, ...]}

with ``info = {"name", "path" (relative to data_root), "sample_idx", "image_idx", "gt_idx", "box3d_lidar" [7],
"num_points_in_gt", "difficulty", "group_id"}``. Every file is written to a temporary name and renamed, so an
interrupted build leaves no half-written file behind.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from perception3d.fileio import atomic_write_bytes
from perception3d.ops.iou3d import box_iou_bev
from perception3d.ops.points_in_boxes import points_in_boxes_mask
from perception3d.structures.points import point_columns

__all__ = ["create_gt_database", "DataBaseSampler"]


def _np(v) -> np.ndarray:
    return v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def create_gt_database(frames: Iterable[Mapping[str, Any]], data_root: Union[str, Path],
                       classes: Sequence[str], info_prefix: str = "kitti",
                       min_points: int = 0) -> Dict[str, List[dict]]:
    """Cut every ground-truth object out of ``frames`` and save the database (see the module docstring).

    Args:
        frames: results dicts (e.g. ``Det3DDataset`` items with an empty pipeline) with ``points`` [N, F],
            ``gt_bboxes_3d`` [M, 7], ``gt_labels_3d`` [M] (index into ``classes``; others skipped), optional
            ``difficulty`` [M] and ``sample_idx``.
        data_root: folder that receives ``<prefix>_gt_database/`` and ``<prefix>_dbinfos_train.pkl``.
        min_points: objects with fewer points are not stored.

    Returns:
        the db infos ``{class_name: [info, ...]}`` (also written to the pkl).
    """
    root = Path(data_root)
    db_dir = root / f"{info_prefix}_gt_database"
    db_dir.mkdir(parents=True, exist_ok=True)
    infos: Dict[str, List[dict]] = {c: [] for c in classes}
    group = 0
    for fi, frame in enumerate(frames):
        for key in ("points", "gt_bboxes_3d", "gt_labels_3d"):
            if key not in frame:
                raise KeyError(f"frames[{fi}]: missing key {key!r} (has {sorted(frame.keys())})")
        pts = _np(frame["points"]).astype(np.float32)
        boxes = _np(frame["gt_bboxes_3d"]).astype(np.float32).reshape(-1, _np(frame["gt_bboxes_3d"]).shape[-1]
                                                                      if _np(frame["gt_bboxes_3d"]).ndim == 2 else 7)
        labels = _np(frame["gt_labels_3d"]).astype(np.int64).reshape(-1)
        if len(labels) != len(boxes):
            raise ValueError(f"frames[{fi}]: gt_labels_3d ({len(labels)}) and gt_bboxes_3d ({len(boxes)}) "
                             f"differ in length")
        diff = _np(frame.get("difficulty", np.zeros(len(boxes)))).astype(np.int64).reshape(-1)
        sample_idx = frame.get("sample_idx", fi)
        if len(boxes) == 0:
            continue
        mask = points_in_boxes_mask(pts[:, :3], boxes[:, :7]).numpy()
        for j in range(len(boxes)):
            if not 0 <= labels[j] < len(classes):
                continue
            obj = pts[mask[:, j]].copy()
            if len(obj) < min_points:
                continue
            obj[:, :3] -= boxes[j, :3]
            name = classes[labels[j]]
            rel = f"{info_prefix}_gt_database/{sample_idx}_{name}_{j}.bin"
            atomic_write_bytes(root / rel, obj.tobytes())
            infos[name].append({"name": name, "path": rel, "sample_idx": sample_idx, "image_idx": sample_idx,
                                "gt_idx": j, "box3d_lidar": boxes[j, :7].copy(), "num_points_in_gt": int(len(obj)),
                                "difficulty": int(diff[j]) if j < len(diff) else 0, "group_id": group,
                                "num_point_features": int(pts.shape[1])})
            group += 1
    atomic_write_bytes(root / f"{info_prefix}_dbinfos_train.pkl", pickle.dumps(infos))
    return infos


class DataBaseSampler:
    """Draws database objects to paste into a scene (mmdet3d's ``DataBaseSampler``, simplified).

    Args:
        info_path: the ``*_dbinfos_train.pkl``.
        data_root: folder the infos' ``path`` entries are relative to (default: the pkl's folder).
        classes: the dataset's classes; label = index.
        sample_groups: ``{class: max objects of that class in a scene after sampling}``.
        min_points: ``{class: n}``, drop database objects with fewer points (mmdet3d's ``filter_by_min_points``).
        filter_difficulty: difficulties to drop (mmdet3d's ``filter_by_difficulty``, e.g. ``[-1]``).
        rate: multiplies the number to sample.
        load_dim / use_dim: float32 values per point in the .bin files and the columns to keep (default: the
            ``num_point_features`` stored by :func:`create_gt_database`, all columns).

    Candidates are drawn without replacement from the class's list (uniformly, per call) and accepted in turn
    when their rotated BEV IoU with every existing and already accepted box is 0 (mmdet3d tests collisions of
    corner polygons the same way, but rejects a candidate that collides with any other candidate, even a
    later-rejected one; we only test against accepted ones).
    """

    def __init__(self, info_path: Union[str, Path], classes: Sequence[str], sample_groups: Mapping[str, int],
                 data_root: Optional[Union[str, Path]] = None, min_points: Optional[Mapping[str, int]] = None,
                 filter_difficulty: Sequence[int] = (), rate: float = 1.0, load_dim: Optional[int] = None,
                 use_dim: Optional[Union[int, Sequence[int]]] = None, **kwargs):
        info_path = Path(info_path)
        if not info_path.is_file():
            raise FileNotFoundError(f"DataBaseSampler: db info file {info_path} does not exist")
        with open(info_path, "rb") as f:
            infos = pickle.load(f)
        if not isinstance(infos, Mapping):
            raise ValueError(f"{info_path}: expected a dict {{class_name: [info, ...]}}, got {type(infos).__name__}")
        self.data_root = Path(data_root) if data_root is not None else info_path.parent
        self.classes = list(classes)
        for c in sample_groups:
            if c not in self.classes:
                raise ValueError(f"DataBaseSampler: sample_groups names {c!r}, not one of classes {self.classes}")
        self.sample_groups = dict(sample_groups)
        self.rate = float(rate)
        self.load_dim = load_dim
        self.use_dim = use_dim
        min_points = dict(min_points or {})
        self.db: Dict[str, List[dict]] = {}
        for c in self.classes:
            lst = list(infos.get(c, []))
            lst = [i for i in lst if int(i.get("difficulty", 0)) not in set(filter_difficulty)]
            lst = [i for i in lst if int(i.get("num_points_in_gt", 0)) >= int(min_points.get(c, 0))]
            self.db[c] = lst

    def _load_points(self, info: Mapping) -> np.ndarray:
        path = self.data_root / info["path"]
        raw = np.fromfile(path, dtype=np.float32)
        dim = self.load_dim or int(info.get("num_point_features", 4))
        if raw.size % dim:
            raise ValueError(f"{path}: {raw.size} float32 values is not a whole number of {dim}-value points")
        pts = raw.reshape(-1, dim)
        if self.use_dim is not None:
            pts = pts[:, point_columns(self.use_dim)]
        return pts

    def sample_all(self, gt_bboxes: np.ndarray, gt_labels: np.ndarray, rng=np.random) -> Optional[Dict[str, Any]]:
        """Sample objects for a scene with ``gt_bboxes`` [M, 7+] / ``gt_labels`` [M].

        Returns ``None`` when nothing was pasted, else ``{"gt_bboxes_3d" [K, 7], "gt_labels_3d" [K],
        "points" [P, F] (in scene coordinates), "num_lidar_pts" [K], "difficulty" [K]}``.
        """
        existing = np.asarray(gt_bboxes, np.float64).reshape(-1, np.asarray(gt_bboxes).shape[-1]
                                                            if np.asarray(gt_bboxes).ndim == 2 else 7)[:, :7]
        accepted: List[dict] = []
        acc_labels: List[int] = []
        for c, max_num in self.sample_groups.items():
            label = self.classes.index(c)
            n = int(np.round(self.rate * (max_num - int((np.asarray(gt_labels) == label).sum()))))
            pool = self.db.get(c, [])
            if n <= 0 or not pool:
                continue
            pick = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
            cand = np.stack([np.asarray(pool[k]["box3d_lidar"], np.float64)[:7] for k in pick])
            iou = box_iou_bev(torch.as_tensor(cand), torch.as_tensor(existing)).numpy() if len(existing) \
                else np.zeros((len(cand), 0))
            cand_iou = box_iou_bev(torch.as_tensor(cand), torch.as_tensor(cand)).numpy()
            taken: List[int] = []
            for a in range(len(cand)):
                if (iou[a] > 0).any() or any(cand_iou[a, b] > 0 for b in taken):
                    continue
                taken.append(a)
            for a in taken:
                accepted.append(pool[pick[a]])
                acc_labels.append(label)
            if taken:
                existing = np.concatenate([existing, cand[taken]], axis=0)
        if not accepted:
            return None
        boxes = np.stack([np.asarray(i["box3d_lidar"], np.float32)[:7] for i in accepted])
        pts = []
        for i, b in zip(accepted, boxes):
            p = self._load_points(i).copy()
            p[:, :3] += b[:3]
            pts.append(p)
        return {"gt_bboxes_3d": boxes, "gt_labels_3d": np.asarray(acc_labels, np.int64),
                "points": np.concatenate(pts, axis=0),
                "num_lidar_pts": np.asarray([int(i.get("num_points_in_gt", 0)) for i in accepted], np.int64),
                "difficulty": np.asarray([int(i.get("difficulty", 0)) for i in accepted], np.int64)}
