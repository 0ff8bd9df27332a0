"""The built-in mini dataset: procedural street scenes written in the Waymo Open Dataset v2 parquet layout.

``generate_waymo_mini(root)`` writes ``<root>/<split>/<component>/<segment>.parquet`` for the splits
``training`` and ``validation`` and the components

=====================  ==========================================================================================
``lidar``              TOP lidar (laser_name 1) range images, return 1 and 2, ``[H, W, 4]`` = range, intensity,
                       elongation, no-label-zone; -1 in every channel where there is no return.  Return 2 is
                       written (same shape) but holds no returns.
``lidar_calibration``  extrinsic (sensor → vehicle, row-major 4×4), ``beam_inclination.values`` (lowest beam
                       first, as Waymo stores them; row 0 of the image is the highest beam) and min/max.
``lidar_pose``         per-pixel vehicle pose ``[H, W, 6]`` (roll, pitch, yaw, x, y, z): the ego keeps moving during
                       the 0.1 s sweep (rolling shutter, 16 steps; the middle column = the frame's
                       ``vehicle_pose``); the scene's objects are frozen at the frame time.
``vehicle_pose``       world_from_vehicle (row-major 4×4).
``lidar_box``          vehicles (type 1), pedestrians (2), cyclists (4) whose box centre lies within
                       ``label_range`` of the vehicle origin (|x|, |y|); centre = box centre, heading in the vehicle
                       frame, speed in the vehicle frame, ``num_lidar_points_in_box`` = TOP return-1 points inside
                       (counted on the points converted back from the written range image), difficulty 2 when
                       ≤ 5 points, else 1.
``camera_image``       FRONT camera (camera_name 1) JPEG, ``pose`` = world_from_vehicle.
``camera_calibration`` pinhole intrinsics (no distortion), extrinsic vehicle ← camera in Waymo's camera frame
                       (x forward, y left, z up), global shutter.
=====================  ==========================================================================================

With ``surround_cameras=True`` the two camera components hold the surround rig of :mod:`.cameras` instead
(FRONT, FRONT_LEFT, FRONT_RIGHT, 240 × 160, class-textured objects), drawn from the cameras' own random generator:
the LiDAR components are byte-identical to those of the same call without it (the default datasets, and what
they cost to generate, are unchanged).

Column names and types equal the official v2 dataclasses (``../shared/data/waymo_v2/v2_component_columns.txt``).
By default every frame is its own segment (its own street, agents and ego): 160 training and 40 validation
frames are then 200 different scenes (the earlier default, 50 frames in segments of 5, showed a detector only 8
training streets; the mini detectors learn far better from the new one, see the mini configs). With
``frames_per_segment`` > 1 the frames of a segment are ``frame_interval_s`` apart (default 0.5 s, not Waymo's
0.1 s: the ego moves a few metres between frames).  Generation is deterministic in ``seed``: segment
``i`` of a split draws from ``np.random.default_rng([seed, split, i])``.

Every file is written to a temporary name and renamed; a manifest (``waymo_mini_manifest.json``) with the
parameters and a summary is written last.  A call finding a manifest with the same parameters (and every file
it lists) returns at once; anything else (a partial run, other parameters) is removed and regenerated.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import pyarrow as pa

from perception3d.datasets.range_image import pixel_pose_transforms, range_image_to_points, row_inclinations
from perception3d.datasets.synthetic.cameras import render_surround, surround_camera_specs
from perception3d.datasets.synthetic.layout import sample_street_segment
from perception3d.datasets.synthetic.objects import CLASS_TO_WAYMO_TYPE, frame_scene
from perception3d.datasets.synthetic.sensors import (CameraSpec, LidarSpec, render_camera, rpy_from_rotation,
                                                     simulate_lidar)
from perception3d.fileio import atomic_write_parquet, atomic_write_text
from perception3d.ops.points_in_boxes import points_in_boxes_count

__all__ = ["V2_SCHEMAS", "generate_waymo_mini", "ensure_waymo_mini", "waymo_mini_is_current", "MANIFEST_NAME",
           "SPLITS", "write_parquet_atomic"]

PathLike = Union[str, Path]
MANIFEST_NAME = "waymo_mini_manifest.json"
SPLITS = {"train": "training", "val": "validation"}
GENERATOR_VERSION = 7          # bump whenever the generated data change, so that old datasets are regenerated
# written into the manifest; the module's name before it moved into datasets/synthetic/, kept so that the manifests
# (which prepare_waymo_mini fingerprints to decide whether to convert again) stay byte-identical
_GENERATOR_NAME = "perception3d.datasets.synthetic_street"
                               # (7: car cabins towards the rear, so a car's heading shows in its points)
TOP, FRONT = 1, 1

_F32, _F64, _I8, _I32, _I64, _STR = pa.float32(), pa.float64(), pa.int8(), pa.int32(), pa.int64(), pa.string()
_M16 = pa.list_(_F64, 16)
_RI = {"values": pa.list_(_F32), "shape": pa.list_(_I32, 3)}


def _ri_fields(comp: str, returns=(1, 2)) -> list:
    return [(f"[{comp}].range_image_return{r}.{k}", _RI[k]) for r in returns for k in ("values", "shape")]


_KEY_SEG, _KEY_TS = ("key.segment_context_name", _STR), ("key.frame_timestamp_micros", _I64)
_BOX = "[LiDARBoxComponent]"
_CIM = "[CameraImageComponent]"
_CCA = "[CameraCalibrationComponent]"
_LCA = "[LiDARCalibrationComponent]"

#: official column names and types of the written components (waymo-open-dataset v2 dataclasses)
V2_SCHEMAS: Dict[str, pa.Schema] = {
    "lidar": pa.schema([_KEY_SEG, _KEY_TS, ("key.laser_name", _I8)] + _ri_fields("LiDARComponent")),
    "lidar_calibration": pa.schema([
        _KEY_SEG, ("key.laser_name", _I8), (f"{_LCA}.extrinsic.transform", _M16),
        (f"{_LCA}.beam_inclination.min", _F64), (f"{_LCA}.beam_inclination.max", _F64),
        (f"{_LCA}.beam_inclination.values", pa.list_(_F64))]),
    "lidar_box": pa.schema([
        _KEY_SEG, _KEY_TS, ("key.laser_object_id", _STR),
        *[(f"{_BOX}.box.center.{a}", _F64) for a in "xyz"], *[(f"{_BOX}.box.size.{a}", _F64) for a in "xyz"],
        (f"{_BOX}.box.heading", _F64), (f"{_BOX}.type", _I8), (f"{_BOX}.num_lidar_points_in_box", _I64),
        (f"{_BOX}.num_top_lidar_points_in_box", _I64), *[(f"{_BOX}.speed.{a}", _F64) for a in "xyz"],
        *[(f"{_BOX}.acceleration.{a}", _F64) for a in "xyz"], (f"{_BOX}.difficulty_level.detection", _I8),
        (f"{_BOX}.difficulty_level.tracking", _I8)]),
    "camera_image": pa.schema([
        _KEY_SEG, _KEY_TS, ("key.camera_name", _I8), (f"{_CIM}.image", pa.binary()),
        (f"{_CIM}.pose.transform", _M16),
        *[(f"{_CIM}.velocity.linear_velocity.{a}", _F32) for a in "xyz"],
        *[(f"{_CIM}.velocity.angular_velocity.{a}", _F64) for a in "xyz"],
        (f"{_CIM}.pose_timestamp", _F64), (f"{_CIM}.rolling_shutter_params.shutter", _F64),
        (f"{_CIM}.rolling_shutter_params.camera_trigger_time", _F64),
        (f"{_CIM}.rolling_shutter_params.camera_readout_done_time", _F64)]),
    "camera_calibration": pa.schema([
        _KEY_SEG, ("key.camera_name", _I8),
        *[(f"{_CCA}.intrinsic.{k}", _F64) for k in ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3")],
        (f"{_CCA}.extrinsic.transform", _M16), (f"{_CCA}.width", _I32), (f"{_CCA}.height", _I32),
        (f"{_CCA}.rolling_shutter_direction", _I8)]),
    "vehicle_pose": pa.schema([_KEY_SEG, _KEY_TS, ("[VehiclePoseComponent].world_from_vehicle.transform", _M16)]),
    "lidar_pose": pa.schema([_KEY_SEG, _KEY_TS, ("key.laser_name", _I8)]
                            + _ri_fields("LiDARPoseComponent", returns=(1,))),
}
_GLOBAL_SHUTTER = 5            # RollingShutterReadOutDirection.GLOBAL_SHUTTER
_SWEEP_S = 0.1                 # one revolution of the TOP lidar (10 Hz)


def write_parquet_atomic(path: Path, rows: Dict[str, list], schema: pa.Schema) -> None:
    """Write ``rows`` (column → values) with ``schema`` to ``path`` via a temporary file + ``os.replace``."""
    missing = [n for n in schema.names if n not in rows]
    if missing:
        raise ValueError(f"{path}: rows lack the columns {missing}")
    table = pa.table({n: pa.array(rows[n], type=schema.field(n).type) for n in schema.names}, schema=schema)
    # list items named "item" as in the official files (pyarrow now defaults to "element")
    atomic_write_parquet(path, table, compression="zstd", use_compliant_nested_type=False)


def _flat(m: np.ndarray) -> list:
    return [float(v) for v in np.asarray(m, np.float64).reshape(-1)]


def _segment_rows(name: str, rng: np.random.Generator, num_frames: int, frame_dt: float, t0_us: int,
                  lidar: LidarSpec, camera: Optional[CameraSpec], label_range: float, jpeg_quality: int,
                  stats: dict, rolling_shutter: bool = True, surround_rng: Optional[np.random.Generator] = None
                  ) -> Dict[str, Dict[str, list]]:
    """Simulate one segment; returns {component: {column: [values per row]}}.

    ``surround_rng``: render the surround cameras (:mod:`.cameras`) from this generator instead of ``camera``."""
    import cv2

    seg = sample_street_segment(rng, num_frames, frame_dt, name_prefix="")
    rows: Dict[str, Dict[str, list]] = {c: {n: [] for n in s.names} for c, s in V2_SCHEMAS.items()}
    incl_min, incl_max = lidar.inclination_bounds
    r = rows["lidar_calibration"]
    for k, v in (("key.segment_context_name", name), ("key.laser_name", TOP),
                 (f"{_LCA}.extrinsic.transform", _flat(lidar.extrinsic)), (f"{_LCA}.beam_inclination.min", incl_min),
                 (f"{_LCA}.beam_inclination.max", incl_max),
                 (f"{_LCA}.beam_inclination.values", [float(x) for x in lidar.inclinations])):
        r[k].append(v)
    rig = surround_camera_specs() if surround_rng is not None else {FRONT: camera} if camera is not None else {}
    for cam_name, cam_spec in rig.items():
        r = rows["camera_calibration"]
        vals = {"key.segment_context_name": name, "key.camera_name": cam_name, f"{_CCA}.intrinsic.f_u": cam_spec.f_u,
                f"{_CCA}.intrinsic.f_v": cam_spec.f_v, f"{_CCA}.intrinsic.c_u": cam_spec.c_u,
                f"{_CCA}.intrinsic.c_v": cam_spec.c_v, f"{_CCA}.extrinsic.transform": _flat(cam_spec.extrinsic),
                f"{_CCA}.width": cam_spec.width, f"{_CCA}.height": cam_spec.height,
                f"{_CCA}.rolling_shutter_direction": _GLOBAL_SHUTTER}
        for k in ("k1", "k2", "p1", "p2", "k3"):
            vals[f"{_CCA}.intrinsic.{k}"] = 0.0
        for k, v in vals.items():
            r[k].append(v)
    row_incl = row_inclinations(lidar.height, incl_min, incl_max, lidar.inclinations)
    h, w = lidar.height, lidar.width
    for f in range(num_frames):
        ts = int(t0_us + round(seg.times[f] * 1e6))
        pose = seg.ego_poses[f]
        prims, boxes_w, _ = frame_scene(seg, f)
        # rolling shutter: column j fires at frame time + ((j + 0.5) / W - 0.5) * sweep (the middle column,
        # looking forward, at the frame time); the ego moves on meanwhile, in K steps of W / K columns
        k_groups = 16 if (rolling_shutter and w % 16 == 0) else 1
        taus = ((np.arange(k_groups) + 0.5) / k_groups - 0.5) * _SWEEP_S if k_groups > 1 else np.zeros(1)
        col_poses = np.repeat(pose[None], k_groups, 0)
        col_poses[:, :3, 3] += taus[:, None] * seg.ego_velocity[None, :]
        ri, _ = simulate_lidar(prims, pose, lidar, rng, seg.layout, column_poses=col_poses)
        roll, pitch, yaw = rpy_from_rotation(pose[:3, :3])
        pose_img = np.empty((h, w, 6), np.float32)
        for k, cp in enumerate(col_poses):
            pose_img[:, k * (w // k_groups):(k + 1) * (w // k_groups)] = np.array([roll, pitch, yaw, *cp[:3, 3]],
                                                                                  np.float32)
        no_return = np.full((h, w, 4), -1.0, np.float32)
        r = rows["lidar"]
        for k, v in (("key.segment_context_name", name), ("key.frame_timestamp_micros", ts), ("key.laser_name", TOP),
                     ("[LiDARComponent].range_image_return1.values", ri.reshape(-1)),
                     ("[LiDARComponent].range_image_return1.shape", [h, w, 4]),
                     ("[LiDARComponent].range_image_return2.values", no_return.reshape(-1)),
                     ("[LiDARComponent].range_image_return2.shape", [h, w, 4])):
            r[k].append(v)
        r = rows["lidar_pose"]
        for k, v in (("key.segment_context_name", name), ("key.frame_timestamp_micros", ts), ("key.laser_name", TOP),
                     ("[LiDARPoseComponent].range_image_return1.values", pose_img.reshape(-1)),
                     ("[LiDARPoseComponent].range_image_return1.shape", [h, w, 6])):
            r[k].append(v)
        rows["vehicle_pose"]["key.segment_context_name"].append(name)
        rows["vehicle_pose"]["key.frame_timestamp_micros"].append(ts)
        rows["vehicle_pose"]["[VehiclePoseComponent].world_from_vehicle.transform"].append(_flat(pose))
        # points exactly as a reader following the official conversion gets them from the written data
        xyz, _, _ = range_image_to_points(ri, lidar.extrinsic, row_incl, pixel_pose_transforms(pose_img), pose)
        stats["points"] += int(xyz.shape[0])
        # label boxes → vehicle frame
        vehicle_from_world = np.linalg.inv(pose)
        veh_yaw = np.arctan2(pose[1, 0], pose[0, 0])
        centers = boxes_w[:, :3] @ vehicle_from_world[:3, :3].T + vehicle_from_world[:3, 3]
        heading = np.arctan2(np.sin(boxes_w[:, 6] - veh_yaw), np.cos(boxes_w[:, 6] - veh_yaw))
        boxes_v = np.concatenate([centers, boxes_w[:, 3:6], heading[:, None]], 1)
        inside = (np.abs(centers[:, 0]) <= label_range) & (np.abs(centers[:, 1]) <= label_range)
        # Waymo's count: centre-z boxes, boundaries inside, no tolerance (the ray-cast points lie on box faces,
        # where a tolerance changes counts)
        counts = points_in_boxes_count(xyz, boxes_v[inside], eps=0.0, z_center=True).numpy()
        r = rows["lidar_box"]
        for j, a_idx in enumerate(np.nonzero(inside)[0]):
            ag = seg.agents[a_idx]
            b = boxes_v[a_idx]
            vel = vehicle_from_world[:3, :3] @ np.array([*ag.velocity[f], 0.0])
            npts = int(counts[j])
            level = 2 if npts <= 5 else 1
            vals = {"key.segment_context_name": name, "key.frame_timestamp_micros": ts,
                    "key.laser_object_id": f"{name}_{ag.name}", f"{_BOX}.type": CLASS_TO_WAYMO_TYPE[ag.cls],
                    f"{_BOX}.box.heading": float(b[6]), f"{_BOX}.num_lidar_points_in_box": npts,
                    f"{_BOX}.num_top_lidar_points_in_box": npts, f"{_BOX}.difficulty_level.detection": level,
                    f"{_BOX}.difficulty_level.tracking": level}
            for i, a in enumerate("xyz"):
                vals[f"{_BOX}.box.center.{a}"] = float(b[i])
                vals[f"{_BOX}.box.size.{a}"] = float(b[3 + i])
                vals[f"{_BOX}.speed.{a}"] = float(vel[i])
                vals[f"{_BOX}.acceleration.{a}"] = 0.0
            for k, v in vals.items():
                r[k].append(v)
            cs = stats["boxes"].setdefault(ag.cls, {"total": 0, "with_points": 0, "level_1": 0, "points": 0})
            cs["total"] += 1
            cs["with_points"] += int(npts > 0)
            cs["level_1"] += int(level == 1)
            cs["points"] += npts
        if surround_rng is not None:
            images = render_surround(seg, f, prims, pose, rig, surround_rng)
            if camera is not None:       # the draw the FRONT camera makes: later frames' LiDAR stay the same
                rng.normal(0.0, 0.02, (camera.height * camera.width, 3))
        else:
            images = {FRONT: render_camera(prims, pose, camera, rng, seg.sun, seg.layout)} if camera is not None else {}
        for cam_name, img in images.items():
            ok, jpg = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]),
                                   [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)])
            if not ok:
                raise RuntimeError(f"segment {name}: JPEG encoding of frame {ts} failed")
            ego_v = (seg.ego_poses[min(f + 1, num_frames - 1)][:3, 3] - seg.ego_poses[max(f - 1, 0)][:3, 3])
            ego_v = ego_v / max(frame_dt * (min(f + 1, num_frames - 1) - max(f - 1, 0)), 1e-9)
            r = rows["camera_image"]
            vals = {"key.segment_context_name": name, "key.frame_timestamp_micros": ts, "key.camera_name": cam_name,
                    f"{_CIM}.image": jpg.tobytes(), f"{_CIM}.pose.transform": _flat(pose),
                    f"{_CIM}.pose_timestamp": ts * 1e-6, f"{_CIM}.rolling_shutter_params.shutter": 0.0,
                    f"{_CIM}.rolling_shutter_params.camera_trigger_time": ts * 1e-6,
                    f"{_CIM}.rolling_shutter_params.camera_readout_done_time": ts * 1e-6}
            for i, a in enumerate("xyz"):
                vals[f"{_CIM}.velocity.linear_velocity.{a}"] = float(ego_v[i])
                vals[f"{_CIM}.velocity.angular_velocity.{a}"] = 0.0
            for k, v in vals.items():
                r[k].append(v)
    stats["frames"] += num_frames
    stats["segments"] += 1
    return rows


def _params(num_train, num_val, seed, frames_per_segment, frame_interval_s, lidar_width, camera, label_range,
            jpeg_quality, rolling_shutter, surround_cameras=False) -> dict:
    out = dict(version=GENERATOR_VERSION, num_train=int(num_train), num_val=int(num_val), seed=int(seed),
               frames_per_segment=int(frames_per_segment), frame_interval_s=float(frame_interval_s),
               lidar_width=int(lidar_width), camera=bool(camera), label_range=float(label_range),
               jpeg_quality=int(jpeg_quality), rolling_shutter=bool(rolling_shutter))
    if surround_cameras:                    # only then: the manifests of the other datasets stay as they were
        out["surround_cameras"] = True
    return out


def _read_manifest(root: Path) -> Optional[dict]:
    try:
        return json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def _complete(root: Path, manifest: Optional[dict], params: dict) -> bool:
    return (manifest is not None and manifest.get("params") == params
            and all((root / f).is_file() for f in manifest.get("files", [])))


def _segment_name(seed: int, split: str, idx: int) -> str:
    return f"synth{seed:05d}_{split}_{idx:03d}"


def _foreign_files(root: Path) -> List[Path]:
    """Parquet files under ``root``'s split/component folders that this generator did not write."""
    out: List[Path] = []
    for split_dir in SPLITS.values():
        for comp in V2_SCHEMAS:
            folder = root / split_dir / comp
            if folder.is_dir():
                out += [p for p in folder.glob("*.parquet") if not p.name.startswith("synth")]
    return out


def _clean(root: Path) -> None:
    """Remove what an earlier (partial or different) run of this generator left in ``root``."""
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    for split_dir in SPLITS.values():
        for comp in V2_SCHEMAS:
            folder = root / split_dir / comp
            if folder.is_dir():
                for p in list(folder.glob("synth*_*.parquet")) + list(folder.glob(".*.tmp")):
                    p.unlink(missing_ok=True)


@contextlib.contextmanager
def _lock(root: Path):
    """An exclusive lock on ``root`` so that two processes do not generate into it at once."""
    import fcntl
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".waymo_mini.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_segment(job: tuple) -> tuple:
    """Simulate and write one segment (a job of ``generate_waymo_mini``) → (split, name, files, its stats)."""
    (root, seed, split_id, split, split_dir, idx, nf, frame_interval_s, lidar_width, camera, label_range,
     jpeg_quality, rolling_shutter, surround) = job
    name = _segment_name(seed, split, idx)
    rng = np.random.default_rng([seed, split_id, idx])
    surround_rng = np.random.default_rng([seed, split_id, idx, 1]) if surround else None   # the cameras' own
    t0_us = 1_600_000_000_000_000 + (split_id * 1000 + idx) * 60_000_000
    cam_spec = CameraSpec() if camera else None
    stats = {"frames": 0, "segments": 0, "points": 0, "boxes": {}}
    rows = _segment_rows(name, rng, nf, frame_interval_s, t0_us, LidarSpec(width=lidar_width), cam_spec,
                         label_range, jpeg_quality, stats, rolling_shutter, surround_rng)
    files = []
    for comp, schema in V2_SCHEMAS.items():
        if comp.startswith("camera") and cam_spec is None and not surround:
            continue
        rel = f"{split_dir}/{comp}/{name}.parquet"
        write_parquet_atomic(Path(root) / rel, rows[comp], schema)
        files.append(rel)
    return split, name, files, stats


def _run_segments(jobs: list, workers: int):
    """Yield ``_write_segment`` of every job in order (see :func:`_run_jobs`)."""
    return _run_jobs(_write_segment, jobs, workers)


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _add_stats(total: dict, part: dict) -> None:
    for key in ("frames", "segments", "points"):
        total[key] += part[key]
    for cls, counts in part["boxes"].items():
        into = total["boxes"].setdefault(cls, {k: 0 for k in counts})
        for k, v in counts.items():
            into[k] += v


def _children_cpu() -> float:
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def generate_waymo_mini(root: PathLike, num_train: int = 160, num_val: int = 40, seed: int = 0,
                        frames_per_segment: int = 1, frame_interval_s: float = 0.5, lidar_width: int = 1024,
                        camera: bool = True, label_range: float = 32.0, jpeg_quality: int = 90,
                        rolling_shutter: bool = True, verbose: bool = False, workers: Optional[int] = None,
                        surround_cameras: bool = False) -> dict:
    """Write the mini dataset (see the module docstring) and return its summary.

    Args:
        root: dataset root; ``<root>/training/...`` and ``<root>/validation/...`` are written.
        num_train, num_val: frames per split (grouped into segments of ``frames_per_segment``; the last segment
            of a split may be shorter).
        seed: everything is a deterministic function of the seed and the other arguments.
        frame_interval_s: time between the frames of a segment.
        lidar_width: range-image columns of the 64-beam TOP lidar.
        camera: also render the FRONT camera.
        label_range: label objects whose box centre has |x|, |y| ≤ this (vehicle frame, metres).
        rolling_shutter: the ego keeps moving during the 0.1 s sweep (16 pose steps, written per pixel into
            ``lidar_pose``); False: every pixel at the frame's pose.
        surround_cameras: write the surround rig of :mod:`.cameras` (FRONT, FRONT_LEFT, FRONT_RIGHT) as the
            camera components instead of the single FRONT camera; the LiDAR components stay byte-identical.
        workers: processes that simulate segments in parallel (default: one per CPU core). Segments draw from
            their own seeded generators, so the files are byte-identical for any number of workers.
    Returns:
        summary dict: ``splits`` → {``train``, ``val``} → ``frames``, ``segments``, ``points`` (TOP return-1 points),
        ``boxes`` per class (``total``, ``with_points``, ``level_1``, ``points``); ``seconds`` (wall clock),
        ``cpu_seconds``, ``skipped`` (True when a complete dataset with these parameters was already there).
    """
    if num_train < 0 or num_val < 0 or frames_per_segment < 1 or lidar_width < 8:
        raise ValueError(f"num_train={num_train}, num_val={num_val} must be >= 0, frames_per_segment="
                         f"{frames_per_segment} >= 1 and lidar_width={lidar_width} >= 8")
    root = Path(root)
    params = _params(num_train, num_val, seed, frames_per_segment, frame_interval_s, lidar_width, camera,
                     label_range, jpeg_quality, rolling_shutter, surround_cameras)
    with _lock(root):
        manifest = _read_manifest(root)
        if _complete(root, manifest, params):
            return dict(manifest["summary"], skipped=True)
        foreign = _foreign_files(root)
        if foreign:
            raise FileExistsError(f"{root}: holds Waymo v2 files this generator did not write (e.g. {foreign[0]}); "
                                  f"refusing to mix the synthetic mini dataset into it: choose another root")
        _clean(root)
        start, cpu_start = time.time(), time.process_time() + _children_cpu()
        jobs = []                                             # one per segment, in split and segment order
        for split_id, (split, split_dir) in enumerate(SPLITS.items()):
            n = num_train if split == "train" else num_val
            for idx in range((n + frames_per_segment - 1) // frames_per_segment):
                nf = min(frames_per_segment, n - idx * frames_per_segment)
                jobs.append((str(root), seed, split_id, split, split_dir, idx, nf, frame_interval_s, lidar_width,
                             camera, label_range, jpeg_quality, rolling_shutter, bool(surround_cameras)))
        workers = max(1, min(int(workers if workers is not None else (os.cpu_count() or 1)), len(jobs)))
        files: List[str] = []
        summary: dict = {"splits": {s: {"frames": 0, "segments": 0, "points": 0, "boxes": {}} for s in SPLITS}}
        for (split, name, seg_files, seg_stats) in _run_segments(jobs, workers):
            files += seg_files
            _add_stats(summary["splits"][split], seg_stats)
            if verbose:
                print(f"[waymo_mini] {split}/{name}: {seg_stats['frames']} frames, {time.time() - start:.1f} s",
                      flush=True)
        summary["seconds"] = round(time.time() - start, 2)                 # wall clock
        summary["cpu_seconds"] = round(time.process_time() + _children_cpu() - cpu_start, 2)  # incl. workers
        summary["root"] = str(root)
        atomic_write_text(root / MANIFEST_NAME, json.dumps(dict(params=params, summary=summary, files=sorted(files),
                           generator=_GENERATOR_NAME), indent=1, sort_keys=True))
        return dict(summary, skipped=False)


def ensure_waymo_mini(root: PathLike = "data/waymo_mini", **kwargs) -> Path:
    """Make sure the mini dataset exists at ``root`` (generate it when missing or incomplete); returns ``root``.

    Without ``kwargs`` any complete dataset of this generator version already at ``root`` is accepted (e.g. one
    made with another ``--seed``); with ``kwargs`` (passed to :func:`generate_waymo_mini`) it must have been
    made with exactly those parameters, else it is regenerated.

    Data derived from the dataset elsewhere (e.g. converted points) are not tracked here: compare the manifest
    (``waymo_mini_manifest.json``) to know when to convert again.
    """
    root = Path(root)
    if not kwargs and waymo_mini_is_current(root):
        return root
    generate_waymo_mini(root, **kwargs)
    return root


def waymo_mini_is_current(root: PathLike) -> bool:
    """Whether ``root`` holds a complete dataset of this generator version (with any parameters)."""
    root = Path(root)
    manifest = _read_manifest(root)
    params = (manifest or {}).get("params") or {}
    return params.get("version") == GENERATOR_VERSION and _complete(root, manifest, params)


def _run_jobs(fn, jobs: list, workers: int):
    """Yield ``fn(job)`` of every job in order; with ``workers`` > 1 in that many spawned processes (one thread
    each, so they do not fight over the cores). ``fn`` must be a module-level function (spawned workers): the
    segment writer and the labels of ``datasets/synthetic/labels.py``."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})          # inherited by the spawned workers
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield from pool.map(fn, jobs, chunksize=4)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
