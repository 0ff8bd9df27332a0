"""High-level inference: build a detector from a config (+ checkpoint) and run it on point clouds.

    model = init_model("configs/centerpoint_voxel_waymo_mini.py", "work_dirs/.../epoch_20.pth")
    det = inference_detector(model, points)          # points: [N, F] Tensor / ndarray / path to a .bin
    dets = inference_detector(model, [p1, p2, p3])   # a list: one batched forward pass, one result each
    det["bboxes_3d"]  # [K, 7] (x, y, z_bottom, dx, dy, dz, yaw), det["scores_3d"] [K], det["labels_3d"] [K]
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from perception3d.structures.points import point_columns

__all__ = ["init_model", "inference_detector", "load_points", "model_point_dims", "is_segmentor",
           "inference_segmentor"]

PointsLike = Union[torch.Tensor, np.ndarray, str, Path]


def init_model(config: Union[str, Path, Config], checkpoint: Optional[str] = None, device: str = "cpu",
               cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build ``config.model`` (eval mode, on ``device``); load ``checkpoint`` strictly (KeyError naming
    missing / unexpected keys for a checkpoint of another model). The config is kept as ``model.cfg``."""
    import perception3d.models  # noqa: F401  (registration)
    from perception3d.engine import load_state_dict_strict, merge_cfg_options
    from perception3d.registry import MODELS
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    cfg = merge_cfg_options(cfg, cfg_options)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    if checkpoint is not None:
        load_state_dict_strict(model, checkpoint)
    model.cfg = cfg
    return model.to(device).eval()


def model_point_dims(model) -> tuple[int, Union[int, list]]:
    """``(load_dim, use_dim)`` of the model's test dataset config (the columns stored per point and those the model
    reads); (6, 5), the Waymo layout, when the model carries no config."""
    cfg = getattr(model, "cfg", None)
    try:
        ds = cfg.test_dataloader.dataset
        return int(ds.get("load_dim", 6)), ds.get("use_dim", 5)
    except Exception:
        return 6, 5


def load_points(p: PointsLike, load_dim: int = 6, use_dim: Union[int, Sequence[int]] = 5) -> torch.Tensor:
    """A cloud as float32 [N, len(use_dim)]: a ``.bin`` file read as float32 × load_dim, then its ``use_dim`` columns;
    a tensor / array with exactly the model's columns as is, or with ``load_dim`` columns (the raw layout) cut the
    same way as a file. Any other width is an error naming both widths."""
    cols = point_columns(use_dim)
    if isinstance(p, (str, Path)):
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"points file not found: {path}")
        raw = np.fromfile(path, dtype=np.float32)
        if raw.size % load_dim:
            raise ValueError(f"{path}: {raw.size} floats is not a whole number of {load_dim}-float points")
        return torch.from_numpy(raw.reshape(-1, load_dim)[:, cols].copy())
    t = p if isinstance(p, torch.Tensor) else torch.as_tensor(np.asarray(p))
    if t.dim() != 2 or t.shape[1] < 3:
        raise ValueError(f"points: expected [N, F >= 3], got shape {tuple(t.shape)}")
    if t.shape[1] == len(cols):
        return t.float()
    if t.shape[1] == load_dim:
        return t[:, cols].float()
    raise ValueError(f"points have {t.shape[1]} columns; the model reads {len(cols)} (use_dim) of the {load_dim} "
                     f"raw columns (load_dim): pass [N, {len(cols)}] or [N, {load_dim}]")


@torch.no_grad()
def inference_detector(model: torch.nn.Module, points: Union[PointsLike, Sequence[PointsLike]],
                       batch_size: int = 4) -> Union[dict, list[dict]]:
    """Detect objects in one cloud (→ one dict) or a list of clouds (→ a list, run ``batch_size`` at a time).

    Each result: ``{"bboxes_3d": [K, 7], "scores_3d": [K], "labels_3d": [K]}`` (CPU tensors), labels index
    ``model.class_names``.
    """
    load_dim, use_dim = model_point_dims(model)

    def run(chunk):
        data = model.data_preprocessor(dict(inputs=dict(points=chunk), data_samples=None), False)
        samples = model(data["inputs"], [dict() for _ in chunk], mode="predict")
        return [s["pred_instances_3d"] for s in samples]
    return _batched(model, points, batch_size, lambda c: load_points(c, load_dim, use_dim), run)


def _batched(model: torch.nn.Module, points, batch_size: int, load, run) -> Union[dict, list[dict]]:
    """``run`` (list of loaded clouds on the model's device → list of results) over ``points`` (one cloud or a
    list), ``batch_size`` clouds at a time, in eval mode (the model's mode is restored)."""
    single = not isinstance(points, (list, tuple))
    clouds = [points] if single else list(points)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[dict] = []
    try:
        for i in range(0, len(clouds), max(1, batch_size)):
            out += run([load(c).to(device) for c in clouds[i:i + batch_size]])
    finally:
        model.train(was_training)
    return out[0] if single else out


def is_segmentor(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a point segmentor (per-point labels) rather than a detector (boxes)."""
    from perception3d.models.segmentors import PointSegmentor
    return isinstance(model, PointSegmentor)


@torch.no_grad()
def inference_segmentor(model: torch.nn.Module, points: Union[PointsLike, Sequence[PointsLike]],
                        batch_size: int = 4) -> Union[dict, list[dict]]:
    """Label every point of one cloud (→ one dict) or of a list of clouds (→ a list).

    A cloud is [N, F ≥ C] (its first C = ``model.in_channels`` columns are read: x, y, z, intensity …) or a
    ``.bin`` file of float32 × C.  Each result: ``{"labels": int64 [N]}`` (class index into the config's
    ``class_names``; −1 for points the model gives no prediction, e.g. outside its voxel range).
    """
    c = int(getattr(model, "in_channels", 4))

    def load(cloud):
        t = load_points(cloud, c, c) if isinstance(cloud, (str, Path)) else torch.as_tensor(np.asarray(cloud))
        if t.dim() != 2 or t.shape[1] < c:
            raise ValueError(f"points: the segmentor reads {c} columns, got shape {tuple(t.shape)}")
        return t[:, :c].float()

    def run(chunk):
        preds = model(dict(points=chunk), None, mode="predict")
        return [dict(labels=torch.where(p["pred_valid"], p["pred_segment"], torch.full_like(p["pred_segment"], -1)))
                for p in preds]
    return _batched(model, points, batch_size, load, run)
