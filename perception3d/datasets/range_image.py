"""Waymo range images → points, in numpy (no TensorFlow).

The geometry of the official conversion (waymo-open-dataset ``utils/range_image_utils.py``:
``compute_inclination``, ``compute_range_image_polar``, ``compute_range_image_cartesian``, and
``v2/perception/utils/lidar_utils.py``: ``convert_range_image_to_point_cloud``), written from its definition:

1. Row → inclination.  A calibration gives either per-row ``beam_inclination.values`` or only ``min``/``max``;
   in the latter case the H rows are spaced uniformly, ``incl[i] = min + (i + 0.5) / H * (max - min)``.
   The stored order runs from the lowest beam up, the image's row 0 is the highest beam: reverse it.
2. Column → azimuth.  ``azimuth[j] = ((W - j - 0.5) / W * 2 - 1) * pi - atan2(E[1, 0], E[0, 0])``,
   i.e. column 0 looks backwards (+pi) and the sweep turns clockwise, corrected by the sensor's yaw in the
   vehicle frame (extrinsic E, sensor → vehicle).
3. Spherical → sensor-frame Cartesian: ``(cos az cos incl, sin az cos incl, sin incl) * range``; then the
   extrinsic ``p_vehicle = R p + t``.
4. TOP lidar only (rolling shutter while the car moves): every pixel carries its own vehicle pose
   (``lidar_pose`` range image, [H, W, 6] = roll, pitch, yaw, x, y, z, vehicle → world at the instant the pixel
   was fired).  ``p = T_frame^-1 · T_pixel · p``: to the world with the pixel's pose, back to the vehicle frame
   of the frame's pose (``vehicle_pose``).
5. Keep pixels with range > 0 (and finite).

Everything is computed in float64 and returned as float32, like the official code (which casts to float64
inside and back to the range image's float32).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = [
    "compute_inclination",
    "row_inclinations",
    "column_azimuths",
    "rotation_from_rpy",
    "pixel_pose_transforms",
    "range_image_to_cartesian",
    "range_image_to_points",
]


def compute_inclination(inclination_min: float, inclination_max: float, height: int) -> np.ndarray:
    """Uniform beam inclinations, lowest beam first.

    Returns:
        [height] float64: ``min + (i + 0.5) / height * (max - min)``.
    """
    i = np.arange(height, dtype=np.float64)
    return inclination_min + (i + 0.5) / height * (inclination_max - inclination_min)


def row_inclinations(height: int, inclination_min: Optional[float] = None,
                     inclination_max: Optional[float] = None,
                     values: Optional[np.ndarray] = None) -> np.ndarray:
    """Inclination of each range-image row (row 0 = highest beam).

    Uses ``values`` when given (non-empty), else the uniform spacing from ``min``/``max``; the stored order is
    lowest beam first, so the result is reversed to match image rows.

    Returns:
        [height] float64.
    """
    if values is not None and len(values) > 0:
        incl = np.asarray(values, dtype=np.float64).reshape(-1)
        if incl.shape[0] != height:
            raise ValueError(f"beam_inclination.values has {incl.shape[0]} entries but the range image has "
                             f"{height} rows")
    else:
        if inclination_min is None or inclination_max is None:
            raise ValueError("beam inclination: neither values nor min/max are given")
        incl = compute_inclination(float(inclination_min), float(inclination_max), height)
    return incl[::-1].copy()


def column_azimuths(width: int, extrinsic: np.ndarray) -> np.ndarray:
    """Azimuth of each range-image column in the sensor frame, corrected by the sensor's yaw.

    Returns:
        [width] float64: ``((W - j - 0.5) / W * 2 - 1) * pi - atan2(E[1,0], E[0,0])``.
    """
    extrinsic = np.asarray(extrinsic, dtype=np.float64)
    az_correction = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    ratios = (width - np.arange(width, dtype=np.float64) - 0.5) / width
    return (ratios * 2.0 - 1.0) * np.pi - az_correction


def rotation_from_rpy(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotation matrices ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (Waymo ``transform_utils.get_rotation_matrix``).

    Args:
        roll, pitch, yaw: arrays of one shape S.
    Returns:
        [*S, 3, 3] float64.
    """
    roll, pitch, yaw = (np.asarray(a, dtype=np.float64) for a in (roll, pitch, yaw))
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    sp_sr, sp_cr = sp * sr, sp * cr
    rot = np.stack([cy * cp, cy * sp_sr - sy * cr, cy * sp_cr + sy * sr,
                    sy * cp, sy * sp_sr + cy * cr, sy * sp_cr - cy * sr,
                    -sp, cp * sr, cp * cr], axis=-1)
    return rot.reshape(roll.shape + (3, 3))


def pixel_pose_transforms(pose_image: np.ndarray) -> np.ndarray:
    """Per-pixel vehicle→world transforms from a ``lidar_pose`` range image.

    Args:
        pose_image: [H, W, 6] (roll, pitch, yaw, x, y, z).
    Returns:
        [H, W, 4, 4] float64.
    """
    pose_image = np.asarray(pose_image, dtype=np.float64)
    if pose_image.ndim != 3 or pose_image.shape[-1] != 6:
        raise ValueError(f"lidar_pose range image must be [H, W, 6], got {list(pose_image.shape)}")
    h, w = pose_image.shape[:2]
    out = np.zeros((h, w, 4, 4), dtype=np.float64)
    out[..., :3, :3] = rotation_from_rpy(pose_image[..., 0], pose_image[..., 1], pose_image[..., 2])
    out[..., :3, 3] = pose_image[..., 3:6]
    out[..., 3, 3] = 1.0
    return out


def range_image_to_cartesian(range_: np.ndarray, extrinsic: np.ndarray, inclination: np.ndarray,
                             pixel_pose: Optional[np.ndarray] = None,
                             frame_pose: Optional[np.ndarray] = None) -> np.ndarray:
    """Every pixel of a range image as a point in the vehicle frame (steps 2–4 of the module docstring).

    Args:
        range_: [H, W] ranges in metres.
        extrinsic: [4, 4] sensor → vehicle.
        inclination: [H] row inclinations (row 0 = highest beam; see :func:`row_inclinations`).
        pixel_pose: optional [H, W, 4, 4] vehicle → world per pixel (TOP lidar).
        frame_pose: [4, 4] vehicle → world of the frame; required with ``pixel_pose``.
    Returns:
        [H, W, 3] float64.
    """
    range_ = np.asarray(range_, dtype=np.float64)
    extrinsic = np.asarray(extrinsic, dtype=np.float64).reshape(4, 4)
    inclination = np.asarray(inclination, dtype=np.float64).reshape(-1)
    h, w = range_.shape
    if inclination.shape[0] != h:
        raise ValueError(f"{inclination.shape[0]} inclinations for a range image of {h} rows")
    azimuth = column_azimuths(w, extrinsic)                               # [W]
    cos_az, sin_az = np.cos(azimuth)[None, :], np.sin(azimuth)[None, :]
    cos_in, sin_in = np.cos(inclination)[:, None], np.sin(inclination)[:, None]
    pts = np.stack([cos_az * cos_in * range_, sin_az * cos_in * range_, sin_in * range_], axis=-1)
    pts = pts @ extrinsic[:3, :3].T + extrinsic[:3, 3]
    if pixel_pose is not None:
        if frame_pose is None:
            raise ValueError("frame_pose (vehicle_pose) is required when pixel_pose is given")
        pixel_pose = np.asarray(pixel_pose, dtype=np.float64)
        if pixel_pose.shape != (h, w, 4, 4):
            raise ValueError(f"pixel pose is {list(pixel_pose.shape)}, expected {[h, w, 4, 4]}")
        pts = np.einsum("hwij,hwj->hwi", pixel_pose[..., :3, :3], pts) + pixel_pose[..., :3, 3]
        world_to_vehicle = np.linalg.inv(np.asarray(frame_pose, dtype=np.float64).reshape(4, 4))
        pts = pts @ world_to_vehicle[:3, :3].T + world_to_vehicle[:3, 3]
    return pts


def range_image_to_points(range_image: np.ndarray, extrinsic: np.ndarray, inclination: np.ndarray,
                          pixel_pose: Optional[np.ndarray] = None, frame_pose: Optional[np.ndarray] = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of the valid (range > 0) pixels of one range-image return.

    The same geometry as :func:`range_image_to_cartesian`, evaluated on the valid pixels only.

    Args:
        range_image: [H, W, C] with channel 0 = range, 1 = intensity, 2 = elongation, 3 = no-label-zone.
        extrinsic, inclination, frame_pose: as in :func:`range_image_to_cartesian`.
        pixel_pose: optional per-pixel vehicle → world pose, either [H, W, 4, 4] transforms or the raw
            ``lidar_pose`` range image [H, W, 6] (roll, pitch, yaw, x, y, z).
    Returns:
        xyz [N, 3] float32 in the vehicle frame, features [N, C - 1] float32 (the channels after range, in the
        image's order), mask [H, W] bool (which pixels became points, row-major order).
    """
    range_image = np.asarray(range_image)
    if range_image.ndim != 3 or range_image.shape[-1] < 1:
        raise ValueError(f"range image must be [H, W, C], got {list(range_image.shape)}")
    h, w = range_image.shape[:2]
    inclination = np.asarray(inclination, dtype=np.float64).reshape(-1)
    if inclination.shape[0] != h:
        raise ValueError(f"{inclination.shape[0]} inclinations for a range image of {h} rows")
    mask = (range_image[..., 0] > 0) & np.isfinite(range_image[..., 0])   # (official: range > 0; inf is junk)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return (np.zeros((0, 3), np.float32), np.zeros((0, range_image.shape[-1] - 1), np.float32), mask)
    extrinsic = np.asarray(extrinsic, dtype=np.float64).reshape(4, 4)
    r = range_image[rows, cols, 0].astype(np.float64)
    az = column_azimuths(w, extrinsic)[cols]
    inc = inclination[rows]
    cos_inc = np.cos(inc)
    pts = np.stack([np.cos(az) * cos_inc * r, np.sin(az) * cos_inc * r, np.sin(inc) * r], axis=-1)
    pts = pts @ extrinsic[:3, :3].T + extrinsic[:3, 3]
    if pixel_pose is not None:
        if frame_pose is None:
            raise ValueError("frame_pose (vehicle_pose) is required when pixel_pose is given")
        pixel_pose = np.asarray(pixel_pose)
        if pixel_pose.shape[:2] != (h, w) or pixel_pose.shape[2:] not in ((4, 4), (6,)):
            raise ValueError(f"pixel pose is {list(pixel_pose.shape)}, expected [{h}, {w}, 4, 4] or [{h}, {w}, 6]")
        if pixel_pose.shape[2:] == (6,) and (pixel_pose == pixel_pose[:1]).all():
            # all beams of a column fire together, so Waymo's pixel poses are usually constant down a column:
            # build the W column rotations once (exact; the general path below gives the same numbers)
            col_pose = pixel_pose[0].astype(np.float64)
            rot = rotation_from_rpy(col_pose[:, 0], col_pose[:, 1], col_pose[:, 2])[cols]
            trans = col_pose[cols, 3:6]
        else:
            sel = pixel_pose[rows, cols].astype(np.float64)
            if sel.shape[1:] == (6,):
                rot, trans = rotation_from_rpy(sel[:, 0], sel[:, 1], sel[:, 2]), sel[:, 3:6]
            else:
                rot, trans = sel[:, :3, :3], sel[:, :3, 3]
        pts = np.einsum("nij,nj->ni", rot, pts) + trans
        world_to_vehicle = np.linalg.inv(np.asarray(frame_pose, dtype=np.float64).reshape(4, 4))
        pts = pts @ world_to_vehicle[:3, :3].T + world_to_vehicle[:3, 3]
    return pts.astype(np.float32), range_image[rows, cols, 1:].astype(np.float32), mask
