"""``Det3DDataset``: LiDAR 3D detection frames from an mmdet3d-layout info pkl, through a transform pipeline.

The info file is ``{"metainfo": ..., "data_list": [...]}`` (mmdet3d ≥ 1.1; the legacy list layout is read too,
see :mod:`perception3d.datasets.mmdet3d_info`), each entry::

    {"sample_idx": ..., "lidar_points": {"lidar_path": "points/x.bin", "num_pts_feats": 6},
     "instances": [{"bbox_3d": [x, y, z, dx, dy, dz, yaw], "bbox_label_3d": 0, "num_lidar_pts": 12,
                    "difficulty": 1}, ...]}

Boxes are LiDAR boxes (z at the bottom) after loading: mmdet3d KITTI infos' camera boxes are converted at load.
Labels are mapped by class name from the file's classes to ``metainfo["classes"]``; instances of other classes
are dropped, except in test mode with ``eval_all_instances`` (default: for KITTI-style infos), where they stay
with label -1 and their own name, as KITTI's evaluation needs (DontCare regions, Van next to Car).

A frame's results dict, before the pipeline:

============== ==================================================================================
points         float32 [N, len(use_dim)] (rows with NaN/inf dropped, counted in ``num_nan_points``)
gt_bboxes_3d   float32 [M, 7]
gt_labels_3d   int64 [M]
num_lidar_pts  int64 [M] (-1 where the file does not say)
difficulty     int64 [M]
gt_names       list[str] [M] (the class names; other classes' names for label -1 in evaluation, see above)
bbox, truncated, occluded, alpha   [M] KITTI 2D annotations, when the info has them;  calib: dict(P2, R0_rect,
               Tr_velo_to_cam, image_shape) when the info has them (what KittiMetric needs)
sample_idx     the index in this dataset (mmengine sets it);  sample_id: the entry's own ``sample_idx``;
               lidar_path: str;  box_mode_3d: "lidar";  classes; plus ``timestamp`` / ``ego2global`` /
               ``context_name`` when the entry has them
============== ==================================================================================

Bad frames (missing or truncated .bin: a size that is not a whole number of ``load_dim`` float32 points) are
never lost silently: a warning names the file, ``num_skipped`` counts the skips, ``bad_frames`` maps the index to
the reason, and the next index is used instead.  Frames without boxes are valid; ``filter_empty_gt`` (training
only) leaves them out of the index at start-up (counted in ``num_filtered_empty``).  Counters live in the process
that loads the frame (a DataLoader worker keeps its own).
"""
from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from perception3d.datasets.mmdet3d_info import (KITTI_2D_KEYS, info_box_mode, info_classes, kitti_calib,
                                                load_info_file, parse_instances, resolve_lidar_path)
from perception3d.registry import DATASETS
from perception3d.structures.points import point_columns

__all__ = ["Det3DDataset", "BadFrameError", "create_gt_database_from_infos"]


class BadFrameError(ValueError):
    """A frame whose data cannot be used (missing or truncated points file)."""


@DATASETS.register_module()
class Det3DDataset(BaseDataset):
    """LiDAR detection dataset over an info pkl (see the module docstring).

    Args:
        data_root: folder the info's point paths (and a relative ``ann_file``) are relative to.
        ann_file: the info pkl.
        pipeline: transforms (config dicts or callables), applied to the results dict.
        metainfo: ``dict(classes=(...))``; labels are the indices into ``classes``.
        load_dim: float32 values per point in the .bin files (an entry's ``num_pts_feats`` must agree).
        use_dim: an int (the first ``use_dim`` columns) or a list of column indices.
        test_mode: evaluation mode (no filtering of empty frames).
        filter_empty_gt: in training, leave out frames without boxes of ``classes``.
        data_prefix: ``dict(pts='training/velodyne')`` when the point paths are relative to a sub-folder;
            by default the usual places are searched (see ``resolve_lidar_path``).
        box_mode: 'lidar' | 'camera' to override the frame of ``bbox_3d`` named by the file's metainfo.
        max_refetch: how many other indices to try after bad frames before giving up.
        load_interval: use every n-th frame of the info file (mmdet3d's Waymo configs use 5).
        eval_all_instances: in test mode, keep the instances of other classes too (label -1, named in
            ``gt_names``: KITTI's DontCare / Van / … that its evaluation needs).  Default: when every instance
            carries KITTI's 2D annotations (``bbox``, ``truncated``, ``occluded``, ``alpha``).
        box_type_3d, modality, backend_args: accepted for mmdet3d config compatibility; ``box_type_3d`` must be
            'LiDAR', the others are not used (local files, LiDAR only).
    """

    METAINFO = dict(classes=("Car", "Pedestrian", "Cyclist"))

    def __init__(self, data_root: str = "", ann_file: str = "", pipeline: Sequence[Union[dict, Callable]] = (),
                 metainfo: Optional[Mapping] = None, load_dim: int = 6, use_dim: Union[int, Sequence[int]] = 5,
                 test_mode: bool = False, filter_empty_gt: bool = True, data_prefix: Optional[dict] = None,
                 box_mode: Optional[str] = None, max_refetch: int = 20, load_interval: int = 1,
                 box_type_3d: str = "LiDAR", modality: Optional[dict] = None, backend_args: Optional[dict] = None,
                 eval_all_instances: Optional[bool] = None, **kwargs: Any):
        self.eval_all_instances = eval_all_instances
        if str(box_type_3d).lower() != "lidar":
            raise ValueError(f"box_type_3d={box_type_3d!r}: Det3DDataset gives LiDAR boxes only (DESIGN §4)")
        if int(load_interval) < 1:
            raise ValueError(f"load_interval={load_interval} must be >= 1")
        self.load_interval = int(load_interval)
        self.modality = modality or dict(use_lidar=True, use_camera=False)
        self.load_dim = int(load_dim)
        self.use_dim = point_columns(use_dim, self.load_dim)
        self.filter_empty_gt = bool(filter_empty_gt)
        self.box_mode = box_mode
        self._search_pts = data_prefix is None or "pts" not in data_prefix
        self.num_skipped = 0
        self.num_nan_points = 0
        self.num_filtered_empty = 0
        self.bad_frames: dict = {}
        # the pipeline's transform names are ours: build them in the perception3d scope also when the dataset is
        # made outside a Runner (a script, a notebook), and make sure they are registered
        import perception3d.datasets.transforms  # noqa: F401
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope("perception3d"):
            super().__init__(ann_file=ann_file, metainfo=metainfo, data_root=data_root,
                             data_prefix=dict(data_prefix) if data_prefix else dict(pts=""),
                             pipeline=list(pipeline), test_mode=test_mode, max_refetch=max_refetch, **kwargs)

    # ------------------------------------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Read the info file (either layout) and parse every entry (boxes → LiDAR, labels → ``classes``)."""
        file_meta, raw_list = load_info_file(self.ann_file)
        for k, v in file_meta.items():
            if k != "classes":
                self._metainfo.setdefault(k, v)
        self._src_classes = info_classes(file_meta)
        self._file_box_mode = self.box_mode or info_box_mode(file_meta)
        out = []
        for i, raw in enumerate(raw_list):
            try:
                out.append(self.parse_data_info(raw))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{self.ann_file}: entry {i}: {exc}") from exc
        return out

    def parse_data_info(self, info: dict) -> dict:
        """One raw entry → dict(sample_id, lidar_path, num_pts_feats, ann arrays, extra keys)."""
        lp = info.get("lidar_points")
        if not lp or "lidar_path" not in lp:
            raise ValueError("no lidar_points.lidar_path")
        feats = int(lp.get("num_pts_feats", self.load_dim))
        if feats != self.load_dim:
            raise ValueError(f"num_pts_feats={feats} in the info but load_dim={self.load_dim}: set load_dim to "
                             f"the files' point width")
        prefix = None if self._search_pts else self.data_prefix["pts"]
        root = self.data_root or str(Path(self.ann_file).parent)
        insts = info.get("instances", []) or []
        keep_all = self.test_mode and (self.eval_all_instances if self.eval_all_instances is not None else
                                       bool(insts) and all(all(k in i for k in KITTI_2D_KEYS) for i in insts))
        ann = parse_instances(info, self._src_classes, tuple(self.metainfo["classes"]), self._file_box_mode,
                              keep_all=keep_all)
        data = dict(sample_id=info.get("sample_idx", info.get("sample_id")),
                    lidar_path=str(resolve_lidar_path(lp["lidar_path"], root, prefix)), num_pts_feats=feats, **ann)
        for key in ("timestamp", "context_name", "ego2global"):
            if key in info:
                data[key] = info[key]
        calib = kitti_calib(info)
        if calib is not None:
            data["calib"] = calib
        return data

    def filter_data(self) -> List[dict]:
        """Every ``load_interval``-th frame; in training with ``filter_empty_gt``, without the frames that have
        no box of ``classes`` (counted in ``num_filtered_empty``)."""
        data = self.data_list[:: self.load_interval]
        if self.test_mode or not self.filter_empty_gt:
            return data
        kept = [d for d in data if len(d["gt_labels_3d"]) > 0]
        self.num_filtered_empty = len(data) - len(kept)
        if self.num_filtered_empty:
            print_log(f"Det3DDataset: {self.num_filtered_empty} of {len(self.data_list)} frames have no boxes of "
                      f"{tuple(self.metainfo['classes'])} and are left out of training (filter_empty_gt=True)",
                      logger="current")
        return kept

    def load_points(self, path: str) -> np.ndarray:
        """float32 [N, len(use_dim)]; ``BadFrameError`` for a missing or truncated file; NaN rows dropped."""
        p = Path(path)
        if not p.is_file():
            raise BadFrameError(f"{p}: points file not found")
        size = p.stat().st_size
        if size % (4 * self.load_dim):
            raise BadFrameError(f"{p}: {size} bytes is not a whole number of {self.load_dim}-float32 points "
                                f"(truncated?)")
        pts = np.fromfile(p, dtype=np.float32).reshape(-1, self.load_dim)[:, self.use_dim]
        finite = np.isfinite(pts).all(1)
        if not finite.all():
            n_bad = int((~finite).sum())
            self.num_nan_points += n_bad
            warnings.warn(f"{p}: dropped {n_bad} of {len(pts)} points with NaN/inf values")
            pts = pts[finite]
        return np.ascontiguousarray(pts)

    def get_results(self, idx: int) -> dict:
        """The results dict of frame ``idx`` before the pipeline (see the module docstring)."""
        info = self.get_data_info(idx)
        results = dict(points=self.load_points(info["lidar_path"]),
                       gt_bboxes_3d=np.asarray(info["gt_bboxes_3d"], np.float32).reshape(-1, 7),
                       gt_labels_3d=np.asarray(info["gt_labels_3d"], np.int64),
                       num_lidar_pts=np.asarray(info["num_lidar_pts"], np.int64),
                       difficulty=np.asarray(info["difficulty"], np.int64),
                       sample_idx=info["sample_idx"], sample_id=info["sample_id"], lidar_path=info["lidar_path"],
                       box_mode_3d="lidar",
                       classes=tuple(self.metainfo["classes"]))
        results["gt_names"] = list(info["gt_names"])
        for key in ("timestamp", "context_name", "ego2global", "calib", *KITTI_2D_KEYS):
            if key in info:
                results[key] = copy.deepcopy(info[key])
        return results

    def iter_results(self) -> Iterator[dict]:
        """Every frame's results dict (no pipeline), in order; bad frames are counted, warned about and left
        out (not replaced, so that nothing is seen twice)."""
        for i in range(len(self)):
            try:
                yield self.get_results(i)
            except BadFrameError as exc:
                self.num_skipped += 1
                self.bad_frames[i] = str(exc)
                warnings.warn(f"Det3DDataset: skipping frame {i} ({exc}); {self.num_skipped} skipped so far")

    def prepare_data(self, idx: int) -> Any:
        return self.pipeline(self.get_results(idx))

    def __getitem__(self, idx: int) -> Any:
        """Frame ``idx`` after the pipeline; a bad frame is counted, warned about and replaced by the next one."""
        if not self._fully_initialized:
            self.full_init()
        n = len(self)
        if n == 0:
            raise IndexError("Det3DDataset is empty")
        for _ in range(self.max_refetch + 1):
            try:
                data = self.prepare_data(idx)
            except BadFrameError as exc:
                self.num_skipped += 1
                self.bad_frames[idx] = str(exc)
                msg = f"Det3DDataset: skipping frame {idx} ({exc}); {self.num_skipped} skipped so far"
                warnings.warn(msg)
                print_log(msg, logger="current", level=logging.WARNING)
                idx = (idx + 1) % n
                continue
            if data is None:                  # a transform dropped the frame (e.g. no box left after cropping)
                if self.test_mode:
                    raise RuntimeError(f"the test pipeline returned None for frame {idx}")
                idx = self._rand_another()
                continue
            return data
        raise RuntimeError(f"Det3DDataset: no usable frame after {self.max_refetch + 1} tries; bad frames: "
                           f"{dict(list(self.bad_frames.items())[:5])}")


def create_gt_database_from_infos(ann_file: Union[str, Path], data_root: Union[str, Path],
                                  out_dir: Union[str, Path], info_prefix: str,
                                  classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"), load_dim: int = 6,
                                  use_dim: Union[int, Sequence[int]] = 5, min_points: int = 0) -> dict:
    """Build the GT database (``perception3d.datasets.gt_database``) of an info file's frames.

    Points are read from ``data_root`` (as :class:`Det3DDataset` resolves them); ``<out_dir>/<info_prefix>_
    gt_database/`` and ``<out_dir>/<info_prefix>_dbinfos_train.pkl`` are written.  Bad frames are counted and
    left out (``num_skipped`` in the result).

    Returns:
        dict(dbinfos={class: [info, ...]}, num_skipped=int).
    """
    from perception3d.datasets.gt_database import create_gt_database
    ds = Det3DDataset(data_root=str(data_root), ann_file=str(ann_file), metainfo=dict(classes=tuple(classes)),
                      load_dim=load_dim, use_dim=use_dim, test_mode=True, filter_empty_gt=False,
                      eval_all_instances=False)
    dbinfos = create_gt_database(ds.iter_results(), out_dir, tuple(classes), info_prefix=info_prefix,
                                 min_points=min_points)
    return dict(dbinfos=dbinfos, num_skipped=ds.num_skipped)
