"""LiDAR detection augmentations with mmdet3d's names, on plain results dicts.

A results dict holds (as :class:`perception3d.datasets.det3d_dataset.Det3DDataset` produces it)::

    points          float32 [N, F]   x, y, z first
    gt_bboxes_3d    float32 [M, 7+]  LiDAR boxes (x, y, z_bottom, dx, dy, dz, yaw[, vx, vy])
    gt_labels_3d    int64 [M]
    num_lidar_pts, difficulty (optional) [M], and any meta keys

Transforms edit the dict and return it; every per-instance array (``INSTANCE_KEYS``) is filtered together with
the boxes. They are registered in ``perception3d.registry.TRANSFORMS`` so configs name them
(``dict(type="GlobalRotScaleTrans", rot_range=[-0.785, 0.785])``).

Randomness: a transform built with ``seed=None`` (the default, as in mmdet3d) draws from numpy's global RNG
(``np.random``), which ``mmengine``'s ``set_random_seed`` / ``--seed`` seeds, so a seeded run repeats itself;
``seed=<int>`` gives the transform its own ``np.random.Generator`` instead (used by the tests).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from perception3d.registry import TRANSFORMS
from perception3d.structures.boxes import limit_period

__all__ = ["RandomFlip3D", "GlobalRotScaleTrans", "PointShuffle", "PointsRangeFilter", "ObjectRangeFilter",
           "ObjectNameFilter", "ObjectSample", "Pack3DDetInputs", "INSTANCE_KEYS", "filter_instances"]

INSTANCE_KEYS = ("gt_labels_3d", "num_lidar_pts", "difficulty", "gt_names", "instance_ids", "bbox", "truncated",
                 "occluded", "alpha", "gt_bboxes_3d_velocity")


class _Transform:
    """A callable ``results -> results`` with an optional private RNG (see the module docstring)."""

    def __init__(self, seed: Optional[int] = None):
        self._gen = np.random.default_rng(seed) if seed is not None else None

    @property
    def rng(self):
        """``np.random.Generator`` when seeded, else the ``np.random`` module (global RNG)."""
        return self._gen if self._gen is not None else np.random

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        return self.transform(results)

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _points(results: Mapping, name: str = "points") -> np.ndarray:
    if name not in results:
        raise KeyError(f"results: missing key {name!r} (has {sorted(results.keys())})")
    p = results[name]
    if isinstance(p, torch.Tensor):
        p = p.numpy()
    if not isinstance(p, np.ndarray) or p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"results[{name!r}]: expected a [N, >=3] array (x, y, z first), got "
                         f"{getattr(p, 'shape', type(p))}")
    return p


def _boxes(results: Mapping) -> np.ndarray:
    b = results.get("gt_bboxes_3d")
    if b is None:
        return np.zeros((0, 7), np.float32)
    if isinstance(b, torch.Tensor):
        b = b.numpy()
    b = np.asarray(b)
    if b.ndim != 2 or b.shape[1] < 7:
        if b.size == 0:
            return np.zeros((0, 7), np.float32)
        raise ValueError(f"results['gt_bboxes_3d']: expected a [M, >=7] array, got shape {b.shape}")
    return b


def filter_instances(results: Dict[str, Any], mask: np.ndarray) -> Dict[str, Any]:
    """Keep instances where ``mask`` is True in ``gt_bboxes_3d`` and every per-instance key present."""
    mask = np.asarray(mask, dtype=bool)
    m = len(mask)
    if "gt_bboxes_3d" in results:
        results["gt_bboxes_3d"] = _boxes(results)[mask]
    for k in INSTANCE_KEYS:
        v = results.get(k)
        if v is None:
            continue
        if len(v) != m:
            raise ValueError(f"results[{k!r}] has {len(v)} entries but gt_bboxes_3d has {m}")
        results[k] = np.asarray(v)[mask] if not isinstance(v, list) else [x for x, keep in zip(v, mask) if keep]
    return results


def _rotate_xy(xy: np.ndarray, angle: float) -> np.ndarray:
    """Rotate [N, 2] about the origin counter-clockwise by ``angle`` (x' = x cos - y sin)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([c * xy[:, 0] - s * xy[:, 1], s * xy[:, 0] + c * xy[:, 1]], axis=1)


@TRANSFORMS.register_module()
class RandomFlip3D(_Transform):
    """Mirror points and boxes in BEV (mmdet3d's ``RandomFlip3D`` for LiDAR).

    ``horizontal`` (probability ``flip_ratio_bev_horizontal``): y -> -y, yaw -> -yaw;
    ``vertical`` (``flip_ratio_bev_vertical``): x -> -x, yaw -> pi - yaw. Velocities (columns 7, 8) follow.
    Sets ``pcd_horizontal_flip`` / ``pcd_vertical_flip``; flags already in the results are applied as given.
    """

    def __init__(self, flip_ratio_bev_horizontal: float = 0.0, flip_ratio_bev_vertical: float = 0.0,
                 seed: Optional[int] = None, **kwargs):
        super().__init__(seed)
        for name, v in (("flip_ratio_bev_horizontal", flip_ratio_bev_horizontal),
                        ("flip_ratio_bev_vertical", flip_ratio_bev_vertical)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"RandomFlip3D: {name} must be in [0, 1], got {v}")
        self.flip_ratio_bev_horizontal = flip_ratio_bev_horizontal
        self.flip_ratio_bev_vertical = flip_ratio_bev_vertical

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        if "pcd_horizontal_flip" not in results:
            results["pcd_horizontal_flip"] = bool(self.rng.uniform() < self.flip_ratio_bev_horizontal)
        if "pcd_vertical_flip" not in results:
            results["pcd_vertical_flip"] = bool(self.rng.uniform() < self.flip_ratio_bev_vertical)
        pts = _points(results).copy()
        boxes = _boxes(results).copy()
        if results["pcd_horizontal_flip"]:
            pts[:, 1] = -pts[:, 1]
            boxes[:, 1] = -boxes[:, 1]
            boxes[:, 6] = -boxes[:, 6]
            if boxes.shape[1] >= 9:
                boxes[:, 8] = -boxes[:, 8]
        if results["pcd_vertical_flip"]:
            pts[:, 0] = -pts[:, 0]
            boxes[:, 0] = -boxes[:, 0]
            boxes[:, 6] = -boxes[:, 6] + np.pi
            if boxes.shape[1] >= 9:
                boxes[:, 7] = -boxes[:, 7]
        results["points"] = pts
        if "gt_bboxes_3d" in results:
            results["gt_bboxes_3d"] = boxes
        return results


@TRANSFORMS.register_module()
class GlobalRotScaleTrans(_Transform):
    """Global rotation about z, uniform scaling and translation of points and boxes (mmdet3d's order:
    rotate, then scale, then translate).

    Args:
        rot_range: [min, max] rotation angle (radians), drawn uniformly; counter-clockwise, yaw += angle.
        scale_ratio_range: [min, max] scale factor, drawn uniformly.
        translation_std: per-axis std of a normal translation (metres).
    Sets ``pcd_rotation_angle``, ``pcd_rotation`` (3x3, points' new xyz = ``R @ xyz``), ``pcd_scale_factor`` and
    ``pcd_trans``.
    """

    def __init__(self, rot_range: Sequence[float] = (-0.78539816, 0.78539816),
                 scale_ratio_range: Sequence[float] = (0.95, 1.05),
                 translation_std: Union[float, Sequence[float]] = (0.0, 0.0, 0.0),
                 shift_height: bool = False, seed: Optional[int] = None, **kwargs):
        super().__init__(seed)
        if not isinstance(rot_range, (list, tuple)):
            rot_range = [-rot_range, rot_range]
        if len(rot_range) != 2 or rot_range[0] > rot_range[1]:
            raise ValueError(f"GlobalRotScaleTrans: rot_range must be [min, max], got {rot_range}")
        if len(scale_ratio_range) != 2 or not 0 < scale_ratio_range[0] <= scale_ratio_range[1]:
            raise ValueError(f"GlobalRotScaleTrans: scale_ratio_range must be [min, max] > 0, got {scale_ratio_range}")
        if not isinstance(translation_std, (list, tuple, np.ndarray)):
            translation_std = [translation_std] * 3
        if len(translation_std) != 3 or min(translation_std) < 0:
            raise ValueError(f"GlobalRotScaleTrans: translation_std must be 3 values >= 0, got {translation_std}")
        self.rot_range = list(rot_range)
        self.scale_ratio_range = list(scale_ratio_range)
        self.translation_std = list(translation_std)
        self.shift_height = shift_height

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        pts = _points(results).copy()
        boxes = _boxes(results).copy()
        angle = float(self.rng.uniform(self.rot_range[0], self.rot_range[1]))
        scale = float(self.rng.uniform(self.scale_ratio_range[0], self.scale_ratio_range[1]))
        trans = np.asarray(self.rng.normal(0.0, 1.0, 3), np.float64) * np.asarray(self.translation_std)
        # rotate
        pts[:, :2] = _rotate_xy(pts[:, :2].astype(np.float64), angle)
        if len(boxes):
            boxes[:, :2] = _rotate_xy(boxes[:, :2].astype(np.float64), angle)
            boxes[:, 6] = boxes[:, 6] + angle
            if boxes.shape[1] >= 9:
                boxes[:, 7:9] = _rotate_xy(boxes[:, 7:9].astype(np.float64), angle)
        # scale
        pts[:, :3] *= scale
        if self.shift_height and pts.shape[1] >= 4:
            pts[:, 3] *= scale  # mmdet3d scales the 'height' attribute when shift_height is used
        boxes[:, :6] *= scale
        if boxes.shape[1] >= 9:
            boxes[:, 7:9] *= scale
        # translate
        pts[:, :3] += trans.astype(pts.dtype)
        boxes[:, :3] += trans.astype(boxes.dtype)
        c, s = math.cos(angle), math.sin(angle)
        results.update(points=pts, pcd_rotation_angle=angle, pcd_scale_factor=scale, pcd_trans=trans,
                       pcd_rotation=np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]))
        if "gt_bboxes_3d" in results:
            results["gt_bboxes_3d"] = boxes
        return results


@TRANSFORMS.register_module()
class PointShuffle(_Transform):
    """Shuffle the order of the points (and of per-point ``pts_semantic_mask`` / ``pts_instance_mask``)."""

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        pts = _points(results)
        perm = self.rng.permutation(len(pts))
        results["points"] = pts[perm]
        for k in ("pts_semantic_mask", "pts_instance_mask"):
            if results.get(k) is not None:
                results[k] = np.asarray(results[k])[perm]
        return results


def _check_range(point_cloud_range: Sequence[float], who: str) -> np.ndarray:
    r = np.asarray(point_cloud_range, np.float64).reshape(-1)
    if r.shape != (6,) or not (r[:3] < r[3:]).all():
        raise ValueError(f"{who}: point_cloud_range must be [x_min, y_min, z_min, x_max, y_max, z_max] with "
                         f"min < max, got {list(r)}")
    return r


@TRANSFORMS.register_module()
class PointsRangeFilter(_Transform):
    """Keep points strictly inside ``point_cloud_range`` = [x_min, y_min, z_min, x_max, y_max, z_max]."""

    def __init__(self, point_cloud_range: Sequence[float], **kwargs):
        super().__init__(None)
        self.point_cloud_range = _check_range(point_cloud_range, "PointsRangeFilter")

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        pts = _points(results)
        r = self.point_cloud_range
        keep = ((pts[:, 0] > r[0]) & (pts[:, 1] > r[1]) & (pts[:, 2] > r[2])
                & (pts[:, 0] < r[3]) & (pts[:, 1] < r[4]) & (pts[:, 2] < r[5]))
        results["points"] = pts[keep]
        for k in ("pts_semantic_mask", "pts_instance_mask"):
            if results.get(k) is not None:
                results[k] = np.asarray(results[k])[keep]
        return results


@TRANSFORMS.register_module()
class ObjectRangeFilter(_Transform):
    """Keep boxes whose BEV centre is strictly inside the range's x/y limits; then wrap yaw to [-pi, pi)."""

    def __init__(self, point_cloud_range: Sequence[float], **kwargs):
        super().__init__(None)
        self.point_cloud_range = _check_range(point_cloud_range, "ObjectRangeFilter")

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        b = _boxes(results)
        r = self.point_cloud_range
        keep = (b[:, 0] > r[0]) & (b[:, 1] > r[1]) & (b[:, 0] < r[3]) & (b[:, 1] < r[4])
        filter_instances(results, keep)
        b = results["gt_bboxes_3d"] if "gt_bboxes_3d" in results else b[keep]
        if len(b):
            b = b.copy()
            b[:, 6] = limit_period(torch.as_tensor(b[:, 6], dtype=torch.float64)).numpy().astype(b.dtype)
            results["gt_bboxes_3d"] = b
        return results


@TRANSFORMS.register_module()
class ObjectNameFilter(_Transform):
    """Keep instances whose label is one of ``classes`` (labels are indices into ``classes``, so this keeps
    ``0 <= label < len(classes)``), or of ``labels`` when given explicitly."""

    def __init__(self, classes: Sequence[str] = (), labels: Optional[Sequence[int]] = None, **kwargs):
        super().__init__(None)
        self.classes = list(classes)
        self.labels = list(labels) if labels is not None else list(range(len(self.classes)))

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        lab = np.asarray(results.get("gt_labels_3d", np.zeros(0, np.int64)))
        return filter_instances(results, np.isin(lab, self.labels))


@TRANSFORMS.register_module()
class ObjectSample(_Transform):
    """GT sampling (SECOND's "ground-truth augmentation", mmdet3d's ``ObjectSample``).

    Pastes objects cut from other frames (a database built by :func:`perception3d.datasets.gt_database.
    create_gt_database`) into the scene: per class, ``sample_groups[class] - (GT of that class)`` candidates are
    drawn, candidates whose BEV box overlaps (rotated BEV IoU > 0) an existing or already-pasted box are
    dropped, scene points inside the pasted boxes are removed and the objects' points are added (first, as
    mmdet3d does). ``num_lidar_pts`` / ``difficulty`` of pasted boxes come from the database.

    Args:
        db_sampler: a :class:`~perception3d.datasets.gt_database.DataBaseSampler` or its config dict
            (``info_path``, ``data_root``, ``classes``, ``sample_groups``, ``min_points``, ...).
        sample_2d: not supported (raises if True).
    """

    def __init__(self, db_sampler: Union[Mapping, Any], sample_2d: bool = False, seed: Optional[int] = None,
                 **kwargs):
        super().__init__(seed)
        from perception3d.datasets.gt_database import DataBaseSampler
        if sample_2d:
            raise ValueError("ObjectSample: sample_2d (pasting image patches) is not supported")
        if isinstance(db_sampler, Mapping):
            cfg = dict(db_sampler)
            cfg.pop("type", None)
            db_sampler = DataBaseSampler(**cfg)
        self.db_sampler = db_sampler

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        from perception3d.ops.points_in_boxes import points_in_boxes
        pts = _points(results)
        boxes = _boxes(results)
        labels = np.asarray(results.get("gt_labels_3d", np.zeros(len(boxes), np.int64)), np.int64)
        if len(labels) != len(boxes):
            raise ValueError(f"results: gt_labels_3d ({len(labels)}) and gt_bboxes_3d ({len(boxes)}) differ in length")
        sampled = self.db_sampler.sample_all(boxes, labels, rng=self.rng)
        if sampled is None:
            return results
        s_boxes = sampled["gt_bboxes_3d"].astype(boxes.dtype if len(boxes) else np.float32)
        if boxes.shape[1] > 7:  # keep extra columns (velocity) as zeros for pasted boxes
            s_boxes = np.concatenate([s_boxes[:, :7], np.zeros((len(s_boxes), boxes.shape[1] - 7), s_boxes.dtype)], 1)
        inside = points_in_boxes(pts[:, :3], s_boxes[:, :7]).numpy() >= 0
        s_pts = sampled["points"]
        if s_pts.shape[1] != pts.shape[1]:
            raise ValueError(f"ObjectSample: database points have {s_pts.shape[1]} features, the scene has "
                             f"{pts.shape[1]} (set load_dim/use_dim of the DataBaseSampler)")
        results["points"] = np.concatenate([s_pts.astype(pts.dtype), pts[~inside]], axis=0)
        n_new = len(s_boxes)
        results["gt_bboxes_3d"] = np.concatenate([boxes, s_boxes], axis=0) if len(boxes) else s_boxes
        results["gt_labels_3d"] = np.concatenate([labels, sampled["gt_labels_3d"]]).astype(np.int64)
        for k, default in (("num_lidar_pts", sampled["num_lidar_pts"]), ("difficulty", sampled["difficulty"])):
            if k in results and results[k] is not None:
                results[k] = np.concatenate([np.asarray(results[k]), default.astype(np.asarray(results[k]).dtype)])
        for k in INSTANCE_KEYS:
            if k in ("gt_labels_3d", "num_lidar_pts", "difficulty"):
                continue
            v = results.get(k)
            if v is not None and len(v) == len(boxes):  # other per-instance keys: no value for pasted objects
                results.pop(k)
        results["num_sampled_objects"] = n_new
        return results


@TRANSFORMS.register_module()
class Pack3DDetInputs(_Transform):
    """Pack a results dict for the model: ``{"inputs": {"points": Tensor}, "data_samples": dict(...)}``.

    ``data_samples`` is a plain dict with ``gt_bboxes_3d`` (float32 Tensor [M, 7+]), ``gt_labels_3d`` (int64
    Tensor [M]), ``num_lidar_pts`` / ``difficulty`` (Tensors, when present) and the ``meta_keys`` present in
    the results (as given).
    """

    DEFAULT_META = ("sample_idx", "sample_id", "lidar_path", "timestamp", "context_name", "ego2global",
                    "box_mode_3d", "pcd_horizontal_flip", "pcd_vertical_flip", "pcd_rotation", "pcd_rotation_angle",
                    "pcd_scale_factor", "pcd_trans", "num_sampled_objects", "calib", "gt_names")

    def __init__(self, keys: Sequence[str] = ("points", "gt_bboxes_3d", "gt_labels_3d"),
                 meta_keys: Sequence[str] = DEFAULT_META, **kwargs):
        super().__init__(None)
        self.keys = list(keys)
        self.meta_keys = list(meta_keys)

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        pts = _points(results)
        inputs = {"points": torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32))}
        ds: Dict[str, Any] = {}
        if "gt_bboxes_3d" in self.keys:
            b = _boxes(results)
            ds["gt_bboxes_3d"] = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
        if "gt_labels_3d" in self.keys:
            ds["gt_labels_3d"] = torch.from_numpy(np.asarray(results.get("gt_labels_3d", np.zeros(0)), np.int64))
        for k in ("num_lidar_pts", "difficulty", "bbox", "truncated", "occluded", "alpha"):
            if results.get(k) is not None:
                ds[k] = torch.as_tensor(np.asarray(results[k]))
        for k in self.keys:
            if k not in ("points", "gt_bboxes_3d", "gt_labels_3d") and k in results:
                ds[k] = results[k]
        for k in self.meta_keys:
            if k in results:
                ds[k] = results[k]
        return {"inputs": inputs, "data_samples": ds}
