"""LiDAR + multi-camera detection dataset over mmdet3d-layout info files (e.g. the Waymo mini dataset converted
with ``convert_waymo_v2(..., cameras=True)``).

Each item is :class:`~perception3d.datasets.det3d_dataset.Det3DDataset`'s results dict plus the keys of
:func:`perception3d.datasets.nuscenes.load_camera_images` (``images`` list of [H, W, 3] float32 in [0, 1],
``cam2img`` [C, 3, 3], ``lidar2cam`` / ``lidar2img`` [C, 4, 4], ``img_shapes``, ``cam_names``), read from the
entry's ``images`` dict (``CAM_<NAME>``: ``img_path``, ``cam2img``, ``lidar2cam``, ``height``, ``width``), so the
multi-modal transforms (:mod:`perception3d.datasets.transforms_multimodal`) and SparseFusion take it as they take
nuScenes.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Sequence

from perception3d.datasets.det3d_dataset import Det3DDataset
from perception3d.datasets.nuscenes import NuScenesDataError, load_camera_images
from perception3d.registry import DATASETS

__all__ = ["MultiViewDet3DDataset", "WAYMO_SURROUND_CAMERAS", "CAMERA_DATASETS", "set_skip_missing_cameras"]

#: the cameras of the Waymo mini dataset's surround rig (``generate_waymo_mini(surround_cameras=True)``)
WAYMO_SURROUND_CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT")


@DATASETS.register_module()
class MultiViewDet3DDataset(Det3DDataset):
    """:class:`Det3DDataset` whose frames also carry their camera images and calibrations.

    Args:
        cameras: the info's camera keys to load, in this order (``None`` / ``()``: LiDAR only).
        skip_missing_cameras: a frame whose cameras cannot be read (no ``images`` entry, a missing camera, file or
            calibration field, an image of another size than its calibration, a non-invertible ``lidar2img``) is
            used LiDAR-only (no ``images`` key, ``cameras_skipped=True``) with a warning, counted in
            ``num_missing_cameras``; otherwise the error names the frame and the field.
        Everything else as :class:`Det3DDataset`.
    """

    def __init__(self, *args: Any, cameras: Optional[Sequence[str]] = WAYMO_SURROUND_CAMERAS,
                 skip_missing_cameras: bool = False, **kwargs: Any):
        self.cameras = tuple(cameras) if cameras else None
        self.skip_missing_cameras = bool(skip_missing_cameras)
        self.num_missing_cameras = 0
        import perception3d.datasets.transforms_multimodal  # noqa: F401  (register the multi-modal transforms)
        super().__init__(*args, **kwargs)

    def parse_data_info(self, info: dict) -> dict:
        data = super().parse_data_info(info)
        data["images"] = info.get("images")
        return data

    def get_results(self, idx: int) -> Dict[str, Any]:
        results = super().get_results(idx)
        if not self.cameras:
            return results
        info = self.get_data_info(idx)
        entry = dict(sample_idx=f"{info.get('sample_id')} ({info['lidar_path']})", images=info.get("images"))
        try:
            results.update(load_camera_images(entry, self.data_root, self.cameras))
        except NuScenesDataError as exc:
            if not self.skip_missing_cameras:
                raise ValueError(f"{self.ann_file}: {exc} (or set skip_missing_cameras=True to use such frames "
                                 f"LiDAR-only)") from None
            self.num_missing_cameras += 1
            warnings.warn(f"{self.ann_file}: {exc}; this frame is used LiDAR-only (skip_missing_cameras; "
                          f"{self.num_missing_cameras} so far)")
            results["cameras_skipped"] = True
        return results


#: the dataset types that read cameras and take ``skip_missing_cameras``
CAMERA_DATASETS = ("MultiViewDet3DDataset", "NuScenesDataset")


def set_skip_missing_cameras(cfg: Any) -> int:
    """Set ``skip_missing_cameras=True`` on every camera dataset of a config's train / val / test dataloaders
    (through wrappers such as ``SeededDataset``): the tools' ``--skip-missing-cameras``. Returns how many datasets
    were changed; a ``ValueError`` when the config has none (the flag would do nothing)."""
    changed = 0
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        ds = (cfg.get(key) or {}).get("dataset")
        while isinstance(ds, dict):
            if str(ds.get("type", "")).split(".")[-1] in CAMERA_DATASETS:
                ds["skip_missing_cameras"] = True
                changed += 1
                break
            ds = ds.get("dataset")
    if not changed:
        raise ValueError("--skip-missing-cameras: this config's dataloaders have no camera dataset "
                         f"({' / '.join(CAMERA_DATASETS)})")
    return changed
