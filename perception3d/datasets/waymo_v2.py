"""Waymo Open Dataset v2 (parquet) reader: frames → points [N, 6] and boxes in our LiDAR convention.

Layout: ``<root>/<split>/<component>/<segment>.parquet`` with the components ``lidar``, ``lidar_calibration``,
``lidar_pose`` (TOP only), ``lidar_box``, ``vehicle_pose`` and, when present, ``camera_image``,
``camera_calibration``.  Rows are keyed by ``key.segment_context_name`` and ``key.frame_timestamp_micros``
(and ``key.laser_name`` / ``key.camera_name``).  Only the needed columns are read.

Points: all five lidars, both returns (return 1 of lidars 1..5, then return 2 of lidars 1..5, as mmdet3d's
converter orders them), converted from range images by :mod:`perception3d.datasets.range_image`; features
``(x, y, z, intensity, elongation, timestamp)`` in the vehicle frame, float32.  ``timestamp`` is the frame's
``frame_timestamp_micros`` cast to float32, exactly what mmdet3d's Waymo converter writes (so the files are
interchangeable; float32 keeps only ~8 significant digits of it: use ``use_dim=5`` for models).

Boxes: ``lidar_box`` center/size/heading (vehicle frame, centre z at the box centre) → ``(x, y, z_bottom, dx,
dy, dz, yaw)`` with ``z_bottom = center.z - size.z / 2``; types 1 vehicle → 0, 2 pedestrian → 1, 4 cyclist → 2;
signs (3) and unknown (0) are dropped.  ``difficulty`` is ``difficulty_level.detection`` as stored
(0 unknown, 1 LEVEL_1, 2 LEVEL_2).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from perception3d.datasets.mmdet3d_info import save_infos
from perception3d.datasets.range_image import range_image_to_points, row_inclinations
from perception3d.fileio import atomic_write_bytes
from perception3d.io.waymo_parquet import (check_columns, column_values, fixed_list_column, list_cell, open_parquet,
                                          read_columns)

__all__ = [
    "LASER_NAMES", "CAMERA_NAMES", "WAYMO_CLASSES", "WAYMO_TYPE_TO_LABEL", "SPLIT_DIRS",
    "LidarCalibration", "read_lidar_calibrations", "read_vehicle_poses", "read_lidar_boxes",
    "read_camera_calibrations", "WaymoV2Segment", "list_segments", "find_split_dir",
]

PathLike = Union[str, Path]
LASER_NAMES = {1: "TOP", 2: "FRONT", 3: "SIDE_LEFT", 4: "SIDE_RIGHT", 5: "REAR"}
CAMERA_NAMES = {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT", 5: "SIDE_RIGHT"}
WAYMO_CLASSES = ("Car", "Pedestrian", "Cyclist")
WAYMO_TYPE_TO_LABEL = {1: 0, 2: 1, 4: 2}       # TYPE_VEHICLE, TYPE_PEDESTRIAN, TYPE_CYCLIST; TYPE_SIGN dropped
# our split name → the folder names it may have on disk (official first)
SPLIT_DIRS = {"train": ("training", "train"), "val": ("validation", "val"), "test": ("testing", "test")}

SEG, TS = "key.segment_context_name", "key.frame_timestamp_micros"
LASER, CAMERA = "key.laser_name", "key.camera_name"
_LIDAR = "[LiDARComponent]"
_LCAL = "[LiDARCalibrationComponent]"
_LPOSE = "[LiDARPoseComponent]"
_BOX = "[LiDARBoxComponent]"
_VPOSE = "[VehiclePoseComponent].world_from_vehicle.transform"
_CCAL = "[CameraCalibrationComponent]"
_CIMG = "[CameraImageComponent]"


# ----------------------------------------------------------------------------------------------------------------
# small components, read whole
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class LidarCalibration:
    """One lidar's calibration: extrinsic [4, 4] (sensor → vehicle) and beam inclinations."""
    laser_name: int
    extrinsic: np.ndarray
    inclination_min: Optional[float]
    inclination_max: Optional[float]
    inclination_values: Optional[np.ndarray]

    def row_inclinations(self, height: int) -> np.ndarray:
        """[height] inclination per image row (row 0 = highest beam)."""
        return row_inclinations(height, self.inclination_min, self.inclination_max, self.inclination_values)


def _optional_float(table: pa.Table, column: str, row: int) -> Optional[float]:
    if column not in table.column_names:
        return None
    value = table.column(column)[row].as_py()
    return None if value is None else float(value)


def read_lidar_calibrations(path: PathLike) -> Dict[int, LidarCalibration]:
    """``lidar_calibration/<segment>.parquet`` → {laser_name: LidarCalibration}."""
    pf = open_parquet(path)
    names = set(pf.schema_arrow.names)
    cols = {LASER: "int", f"{_LCAL}.extrinsic.transform": "float_list"}
    # min/max are always written by the official converter; values only for lidars with non-uniform beams.
    for opt, kind in ((f"{_LCAL}.beam_inclination.min", "float"), (f"{_LCAL}.beam_inclination.max", "float"),
                      (f"{_LCAL}.beam_inclination.values", "float_list")):
        if opt in names:
            cols[opt] = kind
    if f"{_LCAL}.beam_inclination.values" not in cols and f"{_LCAL}.beam_inclination.min" not in cols:
        raise ValueError(f"{path}: missing column '{_LCAL}.beam_inclination.min' (and no "
                         f"'{_LCAL}.beam_inclination.values')")
    table = read_columns(path, cols, pfile=pf)
    extr = fixed_list_column(path, table, f"{_LCAL}.extrinsic.transform", 16).reshape(-1, 4, 4)
    lasers = column_values(path, table, LASER)
    out: Dict[int, LidarCalibration] = {}
    for i, laser in enumerate(lasers):
        values = (list_cell(table, f"{_LCAL}.beam_inclination.values", i)
                  if f"{_LCAL}.beam_inclination.values" in cols else None)
        calib = LidarCalibration(int(laser), extr[i], _optional_float(table, f"{_LCAL}.beam_inclination.min", i),
                                 _optional_float(table, f"{_LCAL}.beam_inclination.max", i),
                                 values if values is not None and values.size else None)
        if calib.inclination_values is None and (calib.inclination_min is None or calib.inclination_max is None):
            raise ValueError(f"{path}: laser {int(laser)} has neither beam_inclination.values nor min/max")
        out[int(laser)] = calib
    return out


def read_vehicle_poses(path: PathLike) -> Dict[int, np.ndarray]:
    """``vehicle_pose/<segment>.parquet`` → {frame_timestamp_micros: world_from_vehicle [4, 4] float64}."""
    table = read_columns(path, {TS: "int", _VPOSE: "float_list"})
    poses = fixed_list_column(path, table, _VPOSE, 16).reshape(-1, 4, 4)
    stamps = column_values(path, table, TS)
    return {int(t): poses[i] for i, t in enumerate(stamps)}


_BOX_COLUMNS = {
    TS: "int", "key.laser_object_id": "string",
    f"{_BOX}.box.center.x": "float", f"{_BOX}.box.center.y": "float", f"{_BOX}.box.center.z": "float",
    f"{_BOX}.box.size.x": "float", f"{_BOX}.box.size.y": "float", f"{_BOX}.box.size.z": "float",
    f"{_BOX}.box.heading": "float", f"{_BOX}.type": "int",
    f"{_BOX}.num_lidar_points_in_box": "int", f"{_BOX}.difficulty_level.detection": "int",
}


def _empty_boxes() -> dict:
    return dict(gt_bboxes_3d=np.zeros((0, 7), np.float32), gt_labels_3d=np.zeros(0, np.int64),
                num_lidar_pts=np.zeros(0, np.int64), difficulty=np.zeros(0, np.int64), obj_ids=[])


def read_lidar_boxes(path: PathLike) -> Dict[int, dict]:
    """``lidar_box/<segment>.parquet`` → {timestamp: boxes dict} in our convention.

    Each boxes dict: ``gt_bboxes_3d`` [M, 7] float32 (x, y, z_bottom, dx, dy, dz, yaw), ``gt_labels_3d`` [M]
    int64 (0 Car, 1 Pedestrian, 2 Cyclist), ``num_lidar_pts`` [M] int64, ``difficulty`` [M] int64, ``obj_ids``.
    Signs and unknown types are dropped.
    """
    table = read_columns(path, _BOX_COLUMNS)
    col = {k: column_values(path, table, k) for k in _BOX_COLUMNS if k != "key.laser_object_id"}
    ids = column_values(path, table, "key.laser_object_id", as_list=True)
    cx, cy, cz = (col[f"{_BOX}.box.center.{a}"].astype(np.float64) for a in "xyz")
    sx, sy, sz = (col[f"{_BOX}.box.size.{a}"].astype(np.float64) for a in "xyz")
    boxes = np.stack([cx, cy, cz - sz / 2.0, sx, sy, sz, col[f"{_BOX}.box.heading"].astype(np.float64)], 1)
    types = col[f"{_BOX}.type"].astype(np.int64)
    labels = np.array([WAYMO_TYPE_TO_LABEL.get(int(t), -1) for t in types], dtype=np.int64)
    stamps = col[TS].astype(np.int64)
    out: Dict[int, dict] = {}
    for ts in np.unique(stamps):
        sel = np.nonzero((stamps == ts) & (labels >= 0))[0]
        out[int(ts)] = dict(
            gt_bboxes_3d=boxes[sel].astype(np.float32), gt_labels_3d=labels[sel],
            num_lidar_pts=col[f"{_BOX}.num_lidar_points_in_box"][sel].astype(np.int64),
            difficulty=col[f"{_BOX}.difficulty_level.detection"][sel].astype(np.int64),
            obj_ids=[ids[i] for i in sel])
    return out


# Waymo camera frame: x forward, y left, z up.  OpenCV: x right, y down, z forward.  Columns = OpenCV axes
# expressed in Waymo camera axes.
_OPENCV_TO_WAYMO_CAM = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def read_camera_calibrations(path: PathLike) -> Dict[int, dict]:
    """``camera_calibration/<segment>.parquet`` → {camera_name: dict(K [3,3], viewmat [4,4], width, height, dist)}.

    ``viewmat`` is vehicle → camera in the OpenCV convention (x right, y down, z forward), our camera convention;
    ``dist`` = (k1, k2, p1, p2, k3).
    """
    intr = ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3")
    cols = {CAMERA: "int", f"{_CCAL}.extrinsic.transform": "float_list", f"{_CCAL}.width": "int",
            f"{_CCAL}.height": "int", **{f"{_CCAL}.intrinsic.{k}": "float" for k in intr}}
    table = read_columns(path, cols)
    extr = fixed_list_column(path, table, f"{_CCAL}.extrinsic.transform", 16).reshape(-1, 4, 4)
    # whole columns (ValueError naming the file and column on null cells), not cell by cell
    vals = {k: column_values(path, table, f"{_CCAL}.intrinsic.{k}").astype(np.float64) for k in intr}
    widths, heights = (column_values(path, table, f"{_CCAL}.{k}") for k in ("width", "height"))
    out = {}
    for i, cam in enumerate(column_values(path, table, CAMERA)):
        v = {k: float(vals[k][i]) for k in intr}
        cam_to_vehicle = extr[i] @ _OPENCV_TO_WAYMO_CAM
        try:
            viewmat = np.linalg.inv(cam_to_vehicle)
        except np.linalg.LinAlgError:
            raise ValueError(f"{path}: camera {int(cam)}: '{_CCAL}.extrinsic.transform' is not invertible") from None
        out[int(cam)] = dict(
            K=np.array([[v["f_u"], 0, v["c_u"]], [0, v["f_v"], v["c_v"]], [0, 0, 1]], dtype=np.float64),
            viewmat=viewmat, width=int(widths[i]), height=int(heights[i]),
            dist=np.array([v[k] for k in ("k1", "k2", "p1", "p2", "k3")]))
    return out


# ----------------------------------------------------------------------------------------------------------------
# big components (range images): index the keys, read row groups on demand
# ----------------------------------------------------------------------------------------------------------------
class _RowIndex:
    """(timestamp, laser) → (row group, row) for a per-laser component; reads one row group at a time."""

    def __init__(self, path: Path, columns: Dict[str, str]):
        self.path, self.columns = path, columns
        self.pf = open_parquet(path)
        check_columns(path, self.pf.schema_arrow, columns)
        keys = read_columns(path, {TS: "int", LASER: "int"}, pfile=self.pf)
        stamps = column_values(path, keys, TS)
        lasers = column_values(path, keys, LASER)
        rg_sizes = [self.pf.metadata.row_group(i).num_rows for i in range(self.pf.num_row_groups)]
        rg_of_row = np.repeat(np.arange(len(rg_sizes)), rg_sizes)
        row_in_rg = np.concatenate([np.arange(n) for n in rg_sizes]) if rg_sizes else np.zeros(0, int)
        if len(rg_of_row) != len(stamps):
            raise ValueError(f"{path}: row-group metadata ({len(rg_of_row)} rows) disagrees with the data "
                             f"({len(stamps)} rows): the file is damaged")
        self.index = {(int(t), int(l)): (int(rg_of_row[i]), int(row_in_rg[i]))
                      for i, (t, l) in enumerate(zip(stamps, lasers))}
        if len(self.index) != len(stamps):
            seen: set = set()
            dup = next((t, l) for t, l in zip(stamps.tolist(), lasers.tolist()) if (t, l) in seen or seen.add((t, l)))
            raise ValueError(f"{path}: {len(stamps) - len(self.index)} duplicate rows, e.g. "
                             f"'{TS}' = {dup[0]} with '{LASER}' = {dup[1]}")
        self.timestamps = sorted({int(t) for t in stamps})
        self._cache: Tuple[int, Optional[pa.Table]] = (-1, None)

    def stream(self, batch_size: int = 8) -> Iterator[Tuple[int, Dict[int, Tuple[pa.Table, int]]]]:
        """Frames in file order as (timestamp, {laser: (table, row)}), reading ``batch_size`` rows at a time so
        that memory stays bounded however large the row groups are (a frame is yielded once all its rows are
        seen)."""
        expected: Dict[int, int] = {}
        for ts, _ in self.index:
            expected[ts] = expected.get(ts, 0) + 1
        cols = list(dict.fromkeys([TS, LASER, *self.columns]))
        pending: Dict[int, Dict[int, Tuple[pa.Table, int]]] = {}
        try:
            batches = self.pf.iter_batches(batch_size=batch_size, columns=cols)
            for batch in batches:
                table = pa.Table.from_batches([batch])
                for i, (ts, laser) in enumerate(zip(column_values(self.path, table, TS).tolist(),
                                                    column_values(self.path, table, LASER).tolist())):
                    rows = pending.setdefault(int(ts), {})
                    rows[int(laser)] = (table, i)
                    if len(rows) == expected.get(int(ts), 0):
                        yield int(ts), pending.pop(int(ts))
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"{self.path}: failed to read columns {cols}: {exc}") from exc
        for ts, rows in pending.items():         # only if the key columns disagreed with a second read
            yield ts, rows

    def row(self, ts: int, laser: int) -> Optional[Tuple[pa.Table, int]]:
        hit = self.index.get((ts, laser))
        if hit is None:
            return None
        rg, row = hit
        if self._cache[0] != rg:
            self._cache = (rg, read_columns(self.path, self.columns, row_groups=[rg], pfile=self.pf))
        return self._cache[1], row


def _range_image(path: Path, table: pa.Table, row: int, prefix: str, channels: int) -> Optional[np.ndarray]:
    try:
        values = list_cell(table, f"{prefix}.values", row, dtype=np.float32)
        shape = list_cell(table, f"{prefix}.shape", row, dtype=np.int64)
    except (ValueError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: column '{prefix}.values' / '.shape' cannot be decoded: {exc}") from exc
    if values is None or shape is None or values.size == 0:
        return None
    if shape.size != 3 or int(np.prod(shape)) != values.size or shape[2] < channels:
        raise ValueError(f"{path}: column '{prefix}.values' holds {values.size} values, which does not fit "
                         f"'{prefix}.shape' = {shape.tolist()} (need [H, W, >= {channels}])")
    return values.reshape(shape.tolist())


def _decode_jpeg(data: bytes, path: Path, camera: int) -> np.ndarray:
    import cv2
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise ValueError(f"{path}: column '{_CIMG}.image' of camera {camera} is not a decodable image")
    return (img[..., ::-1].astype(np.float32) / 255.0).copy()


def find_split_dir(root: PathLike, split: str) -> Path:
    """``<root>/training`` (or ``<root>/train``) for ``split='train'``; a folder name is also accepted."""
    root = Path(root)
    for name in SPLIT_DIRS.get(split, (split,)):
        if (root / name / "lidar").is_dir():
            return root / name
    raise FileNotFoundError(f"{root}: no '{split}' split with a lidar/ folder (looked for "
                            f"{[str(root / n / 'lidar') for n in SPLIT_DIRS.get(split, (split,))]})")


def list_segments(split_dir: PathLike) -> List[str]:
    """Segment names of a split folder (the stems of ``lidar/*.parquet``)."""
    return sorted(p.stem for p in (Path(split_dir) / "lidar").glob("*.parquet"))


class WaymoV2Segment:
    """One segment of one split: frames, their points and boxes.

    Args:
        split_dir: ``<root>/<split>`` holding the component folders.
        segment: the segment (context) name, i.e. the parquet file stem.
        lasers: which lidars to read (default all five).
        returns: which returns (1, 2).
        filter_no_label_zone: drop points in no-label zones (range image channel 3 == 1), as mmdet3d's
            converter does by default.  Default False, as the DSVT authors and OpenPCDet: their converter keeps
            the flag and their Waymo config (``waymo_dataset.yaml``, ``DISABLE_NLZ_FLAG_ON_POINTS: True``) keeps
            the points; the official point-cloud conversion keeps them too.
    """

    def __init__(self, split_dir: PathLike, segment: str, lasers: Sequence[int] = (1, 2, 3, 4, 5),
                 returns: Sequence[int] = (1, 2), filter_no_label_zone: bool = False):
        self.split_dir, self.segment = Path(split_dir), segment
        self.lasers, self.returns = tuple(lasers), tuple(returns)
        self.filter_no_label_zone = filter_no_label_zone
        comp = lambda name: self.split_dir / name / f"{segment}.parquet"  # noqa: E731
        lidar_cols = {}
        for r in self.returns:
            lidar_cols[f"{_LIDAR}.range_image_return{r}.values"] = "float_list"
            lidar_cols[f"{_LIDAR}.range_image_return{r}.shape"] = "int_list"
        self._lidar = _RowIndex(comp("lidar"), lidar_cols)
        self.calibrations = read_lidar_calibrations(comp("lidar_calibration"))
        missing = [l for l in self.lasers if l not in self.calibrations and
                   any(k[1] == l for k in self._lidar.index)]
        if missing:
            raise ValueError(f"{comp('lidar_calibration')}: no calibration for laser(s) {missing}")
        self._pose: Optional[_RowIndex] = None
        if comp("lidar_pose").is_file():
            self._pose = _RowIndex(comp("lidar_pose"), {f"{_LPOSE}.range_image_return1.values": "float_list",
                                                        f"{_LPOSE}.range_image_return1.shape": "int_list"})
        self.vehicle_poses = read_vehicle_poses(comp("vehicle_pose")) if comp("vehicle_pose").is_file() else {}
        self._boxes = read_lidar_boxes(comp("lidar_box")) if comp("lidar_box").is_file() else None
        self._camera_calib_path = comp("camera_calibration")
        self._camera_image_path = comp("camera_image")
        self.timestamps: List[int] = self._lidar.timestamps
        self.num_missing_pixel_pose = 0   # TOP frames converted without the per-pixel pose (counted, warned)

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def has_labels(self) -> bool:
        return self._boxes is not None

    def points(self, ts: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points of a frame.

        Returns:
            points [N, 6] float32 (x, y, z, intensity, elongation, timestamp) in the vehicle frame,
            laser_ids [N] int8 (1 TOP … 5 REAR), return_ids [N] int8 (1 or 2).
        """
        ts = int(ts)
        return self._points(ts, lambda laser: self._lidar.row(ts, laser),
                            lambda: self._pose.row(ts, 1) if self._pose is not None else None)

    def iter_points(self, timestamps: Optional[Sequence[int]] = None
                    ) -> Iterator[Tuple[int, Union[Tuple[np.ndarray, np.ndarray, np.ndarray], ValueError]]]:
        """Stream the frames' points in file order with bounded memory (for converting whole segments).

        Args:
            timestamps: only these frames (default all).
        Yields:
            (timestamp, (points, laser_ids, return_ids)) as :meth:`points` returns them, or
            (timestamp, ValueError) for a frame whose data is bad (the stream goes on).
        """
        wanted = None if timestamps is None else {int(t) for t in timestamps}
        pose_stream = self._pose.stream() if self._pose is not None else None
        pose_buf: Dict[int, Dict[int, Tuple[pa.Table, int]]] = {}

        def pose_row(ts: int):
            nonlocal pose_stream
            while ts not in pose_buf and pose_stream is not None:
                try:
                    t2, rows = next(pose_stream)
                except StopIteration:
                    pose_stream = None
                    break
                if wanted is None or t2 in wanted:
                    pose_buf[t2] = rows
            return pose_buf.pop(ts, {}).get(1)

        for ts, rows in self._lidar.stream():
            if wanted is not None and ts not in wanted:
                continue
            try:
                yield ts, self._points(ts, rows.get, lambda: pose_row(ts))
            except ValueError as exc:
                yield ts, exc

    def _points(self, ts: int, lidar_row, pose_row) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points of frame ``ts`` given ``lidar_row(laser) -> (table, row) | None`` and ``pose_row()``."""
        chunks, laser_ids, return_ids = [], [], []
        pixel_pose = frame_pose = None
        for r in self.returns:
            prefix = f"{_LIDAR}.range_image_return{r}"
            for laser in self.lasers:
                hit = lidar_row(laser)
                if hit is None:
                    continue
                image = _range_image(self._lidar.path, hit[0], hit[1], prefix, 3)
                if image is None:
                    continue
                calib = self.calibrations[laser]
                try:
                    inclinations = calib.row_inclinations(image.shape[0])
                except ValueError as exc:     # a calibration that does not fit the range image
                    raise ValueError(f"{self.split_dir / 'lidar_calibration' / self.segment}.parquet: laser "
                                     f"{laser}: {exc}") from exc
                pp = fp = None
                if laser == 1:
                    if pixel_pose is None:
                        pixel_pose, frame_pose = self._top_pixel_pose(ts, image.shape[:2], pose_row())
                    pp, fp = pixel_pose, frame_pose
                    if pp is False:
                        pp = fp = None
                xyz, feats, mask = range_image_to_points(image, calib.extrinsic,
                                                         inclinations, pp, fp)
                if self.filter_no_label_zone and image.shape[2] > 3:
                    keep = image[..., 3][mask] != 1.0
                    xyz, feats = xyz[keep], feats[keep]
                n = xyz.shape[0]
                chunks.append(np.concatenate([xyz, feats[:, :2], np.full((n, 1), ts, np.float32)], 1))
                laser_ids.append(np.full(n, laser, np.int8))
                return_ids.append(np.full(n, r, np.int8))
        if not chunks:
            return np.zeros((0, 6), np.float32), np.zeros(0, np.int8), np.zeros(0, np.int8)
        return (np.concatenate(chunks).astype(np.float32), np.concatenate(laser_ids), np.concatenate(return_ids))

    def _top_pixel_pose(self, ts: int, hw: Tuple[int, int], hit: Optional[Tuple[pa.Table, int]]):
        """(lidar_pose range image [H, W, 6], frame_pose [4, 4]) of the TOP lidar from its ``lidar_pose`` row,
        or (False, False) when unavailable."""
        pose_image = (_range_image(self._pose.path, hit[0], hit[1], f"{_LPOSE}.range_image_return1", 6)
                      if hit is not None else None)
        if pose_image is None or ts not in self.vehicle_poses:
            self.num_missing_pixel_pose += 1
            warnings.warn(f"{self.split_dir}/…/{self.segment}: frame {ts} has no TOP lidar_pose range image or "
                          f"no vehicle_pose; TOP points use the extrinsic only (no rolling-shutter correction)")
            return False, False
        if tuple(pose_image.shape[:2]) != tuple(hw):
            raise ValueError(f"{self._pose.path}: lidar_pose range image of frame {ts} is "
                             f"{list(pose_image.shape[:2])}, the TOP range image is {list(hw)}")
        return pose_image, self.vehicle_poses[ts]

    def boxes(self, ts: int) -> dict:
        """Boxes of a frame (see :func:`read_lidar_boxes`); empty arrays when the frame has none."""
        if self._boxes is None:
            return _empty_boxes()
        return self._boxes.get(int(ts), _empty_boxes())

    def camera_calibrations(self) -> Dict[int, dict]:
        """See :func:`read_camera_calibrations`; {} when the component is absent."""
        if not self._camera_calib_path.is_file():
            return {}
        return read_camera_calibrations(self._camera_calib_path)

    def camera_images(self, ts: int, decode: bool = False) -> Dict[int, Union[bytes, np.ndarray]]:
        """{camera_name: image} of a frame; {} when the component is absent.

        Args:
            decode: False → the encoded (JPEG) bytes; True → float32 RGB [H, W, 3] in [0, 1].
        """
        if not self._camera_image_path.is_file():
            return {}
        cols = {TS: "int", CAMERA: "int", f"{_CIMG}.image": "binary"}
        pf = open_parquet(self._camera_image_path)
        check_columns(self._camera_image_path, pf.schema_arrow, cols)
        try:
            table = pq.read_table(self._camera_image_path, columns=list(cols), filters=[(TS, "=", int(ts))])
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{self._camera_image_path}: failed to read column '{_CIMG}.image': {exc}") from exc
        out: Dict[int, Union[bytes, np.ndarray]] = {}
        cams = column_values(self._camera_image_path, table, CAMERA)       # ValueError on null cells
        images = column_values(self._camera_image_path, table, f"{_CIMG}.image", as_list=True)
        for cam, data in zip(cams, images):
            out[int(cam)] = _decode_jpeg(data, self._camera_image_path, int(cam)) if decode else data
        return out

    def frame(self, ts: int) -> dict:
        """Everything of one frame: ``points``, ``laser_ids``, ``return_ids``, the boxes' keys, ``ego2global``."""
        points, laser_ids, return_ids = self.points(ts)
        out = dict(segment=self.segment, timestamp=int(ts), points=points, laser_ids=laser_ids,
                   return_ids=return_ids, ego2global=self.vehicle_poses.get(int(ts)))
        out.update(self.boxes(ts))
        return out

    def __iter__(self) -> Iterator[dict]:
        for ts in self.timestamps:
            yield self.frame(ts)


# ----------------------------------------------------------------------------------------------------------------
# conversion to a points cache + mmdet3d-layout info pkls (tools/create_data.py waymo)
# ----------------------------------------------------------------------------------------------------------------
_SPLIT_PREFIX = {"train": 0, "val": 1, "test": 2}
_POINT_BYTES = 6 * 4


def _complete_bin(path: Path) -> bool:
    """A points file is complete when it exists with a whole number of points (files are renamed into place)."""
    return path.is_file() and path.stat().st_size % _POINT_BYTES == 0


def _convert_segment(task: tuple) -> dict:
    """Convert one segment (in a worker): stream its frames, write the missing points .bin files, return infos.

    Returns:
        dict(infos=[...], bad=[reason, ...], converted=int, existed=int).
    """
    split_dir, segment, seg_index, split_prefix, out_dir, filter_nlz, lasers, returns = task[:8]
    cameras = task[8] if len(task) > 8 else False
    out_dir = Path(out_dir)
    rel = lambda ts: f"points/{segment}_{ts}.bin"  # noqa: E731
    res = dict(infos=[], bad=[], converted=0, existed=0)
    try:
        seg = WaymoV2Segment(split_dir, segment, lasers=lasers, returns=returns, filter_no_label_zone=filter_nlz)
    except ValueError as exc:
        res["bad"].append(f"{segment}: {exc}")
        return res
    missing = [ts for ts in seg.timestamps if not _complete_bin(out_dir / rel(ts))]
    failed: Dict[int, str] = {}
    if missing:
        try:
            for ts, got in seg.iter_points(missing):
                if isinstance(got, ValueError):
                    failed[ts] = str(got)
                    continue
                atomic_write_bytes(out_dir / rel(ts), got[0].astype(np.float32).tobytes())
                res["converted"] += 1
        except ValueError as exc:          # the stream itself broke (damaged pages): the rest of the segment
            for ts in missing:
                if not _complete_bin(out_dir / rel(ts)):
                    failed.setdefault(ts, str(exc))
    calibs = seg.camera_calibrations() if cameras else {}
    for fi, ts in enumerate(seg.timestamps):
        if ts in failed or not _complete_bin(out_dir / rel(ts)):
            res["bad"].append(f"{segment} frame {ts}: {failed.get(ts, 'no points were produced')}")
            continue
        try:
            images = _camera_infos(seg, ts, calibs, out_dir) if calibs else None
        except ValueError as exc:
            res["bad"].append(f"{segment} frame {ts}: {exc}")
            continue
        if ts not in missing:
            res["existed"] += 1
        boxes = seg.boxes(ts)
        pose = seg.vehicle_poses.get(int(ts))
        instances = [dict(bbox_3d=boxes["gt_bboxes_3d"][i].tolist(), bbox_label_3d=int(boxes["gt_labels_3d"][i]),
                          num_lidar_pts=int(boxes["num_lidar_pts"][i]), difficulty=int(boxes["difficulty"][i]),
                          obj_id=boxes["obj_ids"][i]) for i in range(len(boxes["gt_labels_3d"]))]
        res["infos"].append(dict(
            sample_idx=split_prefix * 1_000_000 + seg_index * 1000 + fi, context_name=segment, timestamp=int(ts),
            ego2global=None if pose is None else pose.tolist(),
            lidar_points=dict(lidar_path=rel(ts), num_pts_feats=6,
                              num_points=(out_dir / rel(ts)).stat().st_size // _POINT_BYTES),
            instances=instances))
        if images is not None:
            res["infos"][-1]["images"] = images
    return res


def _camera_infos(seg: "WaymoV2Segment", ts: int, calibs: Dict[int, dict], out_dir: Path) -> Dict[str, dict]:
    """Write frame ``ts``'s camera JPEGs (as stored, not re-encoded) to ``<out>/images/CAM_<NAME>/<segment>_<ts>
    .jpg`` and return the info's ``images`` dict in mmdet3d's layout (``CAM_FRONT``: ``img_path``, ``height``,
    ``width``, ``cam2img`` [3, 3], ``lidar2cam`` [4, 4] = vehicle → OpenCV camera, ``lidar2img``; the LiDAR frame
    of these infos is the vehicle frame). A camera without an image in this frame is left out."""
    out: Dict[str, dict] = {}
    for cam, data in sorted(seg.camera_images(ts).items()):
        if cam not in calibs:
            raise ValueError(f"{seg.split_dir / 'camera_calibration' / seg.segment}.parquet: no calibration for "
                             f"camera {cam}")
        name = f"CAM_{CAMERA_NAMES.get(cam, str(cam))}"
        rel = f"images/{name}/{seg.segment}_{ts}.jpg"
        if not (out_dir / rel).is_file():
            atomic_write_bytes(out_dir / rel, bytes(data))
        c = calibs[cam]
        k4 = np.eye(4)
        k4[:3, :3] = c["K"]
        out[name] = dict(img_path=rel, height=c["height"], width=c["width"], cam2img=c["K"].tolist(),
                         lidar2cam=c["viewmat"].tolist(), lidar2img=(k4 @ c["viewmat"]).tolist(), camera_name=cam)
    return out


def convert_waymo_v2(root: PathLike, out: PathLike, splits: Sequence[str] = ("train", "val"), workers: int = 0,
                     filter_no_label_zone: bool = False, progress: bool = True,
                     lasers: Sequence[int] = (1, 2, 3, 4, 5), returns: Sequence[int] = (1, 2),
                     cameras: bool = False) -> dict:
    """Waymo v2 root → ``<out>/points/<segment>_<timestamp>.bin`` (float32 × 6) + ``waymo_infos_<split>.pkl``.

    Segments are converted one per task (``workers`` processes), each streamed frame by frame so memory stays
    bounded.  Resumable: a frame whose .bin exists with a whole number of points is not converted again (every
    file is written to a temporary name and renamed, so an existing file is complete).  Infos follow mmdet3d's
    ``{metainfo, data_list}`` layout with LiDAR-frame boxes (z at the bottom); ``sample_idx`` is
    ``split_prefix * 1e6 + segment_index * 1000 + frame_index`` as in mmdet3d.

    Args:
        root: the Waymo v2 root holding ``training/``, ``validation/`` (or ``train/``, ``val/``).
        out: output folder.
        splits: which splits to convert; a split absent from ``root`` is skipped with a warning.
        workers: processes for the conversion (0 = in this process).
        filter_no_label_zone: drop no-label-zone points (see :class:`WaymoV2Segment`).
        progress: show a tqdm bar per split (advanced as segments finish).
        lasers, returns: which lidars (1 TOP … 5 REAR) and returns go into the points (default all).
            Changing them does not redo frames already converted: use a new ``out``.
        cameras: also extract the camera images (``<out>/images/CAM_<NAME>/``) and put each frame's camera
            calibrations into its info (``images``, mmdet3d's layout: ``img_path``, ``cam2img``, ``lidar2cam``,
            ``lidar2img``, ``height``, ``width``), as :class:`~perception3d.datasets.multiview.MultiViewDet3DDataset`
            reads them.
    Returns:
        dict with the frame count per split, ``converted``, ``skipped_existing`` and ``bad`` (a list of
        "segment frame ts: reason" for frames whose data could not be converted; they are warned about and
        left out of the infos).
    """
    import contextlib
    import multiprocessing as mp
    from tqdm import tqdm
    root, out = Path(root), Path(out)
    result: dict = {"converted": 0, "skipped_existing": 0, "bad": []}
    # temporary files of an interrupted earlier run (never complete; the .bin files themselves always are)
    for stale in (out / "points").glob("*.bin.*.tmp") if (out / "points").is_dir() else ():
        stale.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        pool = (stack.enter_context(mp.get_context("spawn").Pool(workers)) if workers and workers > 0 else None)
        for split in splits:
            try:
                split_dir = find_split_dir(root, split)
            except FileNotFoundError as exc:
                warnings.warn(f"skipping split '{split}': {exc}")
                continue
            segments = list_segments(split_dir)
            tasks = [(str(split_dir), name, si, _SPLIT_PREFIX.get(split, 9), str(out), filter_no_label_zone,
                      tuple(lasers), tuple(returns), bool(cameras)) for si, name in enumerate(segments)]
            n_frames = sum(len(_RowIndex(split_dir / "lidar" / f"{name}.parquet", {}).timestamps)
                           for name in segments)
            it = pool.imap(_convert_segment, tasks) if pool is not None else map(_convert_segment, tasks)
            infos, bad = [], []
            with tqdm(total=n_frames, desc=f"waymo {split}", unit="frame", disable=not progress) as bar:
                for r in it:
                    infos.extend(r["infos"])
                    bad.extend(r["bad"])
                    result["converted"] += r["converted"]
                    result["skipped_existing"] += r["existed"]
                    bar.update(len(r["infos"]) + len(r["bad"]))
            if bad:
                result["bad"].extend(bad)
                warnings.warn(f"waymo {split}: {len(bad)} frames could not be converted and are left out of the "
                              f"infos, e.g. {bad[0]}")
            save_infos(out / f"waymo_infos_{split}.pkl", infos,
                       metainfo=dict(dataset="waymo", classes=WAYMO_CLASSES, info_version="perception3d-1",
                                     box_mode="lidar", source=str(root)))
            result[split] = len(infos)
    return result


# ----------------------------------------------------------------------------------------------------------------
# 3D semantic segmentation labels (the ``lidar_segmentation`` component)
# ----------------------------------------------------------------------------------------------------------------
_SEGL = "[LiDARSegmentationLabelComponent]"
NUM_SEG_TYPES = 23             # Waymo Segmentation.Type 0 (undefined) .. 22 (sidewalk)


def read_lidar_segmentation(path: PathLike, returns: Sequence[int] = (1,)) -> Dict[Tuple[int, int], np.ndarray]:
    """``lidar_segmentation/<segment>.parquet`` → {(timestamp, laser): labels [R, H, W, 2] int32} (R = returns;
    channels instance id, semantic type 0–22).  Only the TOP lidar is labelled in Waymo, and not every frame.

    Raises:
        ValueError: naming the file and column, on a shape that does not fit the values or a type outside 0–22.
    """
    path = Path(path)
    cols = {TS: "int", LASER: "int"}
    for r in returns:
        cols[f"{_SEGL}.range_image_return{r}.values"] = "int_list"
        cols[f"{_SEGL}.range_image_return{r}.shape"] = "int_list"
    table = read_columns(path, cols)
    stamps, lasers = column_values(path, table, TS), column_values(path, table, LASER)
    out: Dict[Tuple[int, int], np.ndarray] = {}
    for row, (ts, laser) in enumerate(zip(stamps.tolist(), lasers.tolist())):
        imgs = []
        for r in returns:
            prefix = f"{_SEGL}.range_image_return{r}"
            vals = list_cell(table, f"{prefix}.values", row, dtype=np.int32)
            shape = list_cell(table, f"{prefix}.shape", row, dtype=np.int64)
            if vals is None or shape is None or shape.size != 3 or shape[2] != 2 or int(np.prod(shape)) != vals.size:
                raise ValueError(f"{path}: frame {ts} laser {laser}: '{prefix}.values' holds "
                                 f"{0 if vals is None else vals.size} values, which does not fit '{prefix}.shape' = "
                                 f"{None if shape is None else shape.tolist()} (need [H, W, 2])")
            img = vals.reshape(shape.tolist())
            sem = img[..., 1]
            if sem.size and (sem.min() < 0 or sem.max() >= NUM_SEG_TYPES):
                raise ValueError(f"{path}: frame {ts} laser {laser}: semantic types must be 0–{NUM_SEG_TYPES - 1} "
                                 f"(Waymo Segmentation.Type), found {int(sem.min())}–{int(sem.max())}")
            imgs.append(img)
        out[(int(ts), int(laser))] = np.stack(imgs)
    return out


def top_points_with_labels(segment: "WaymoV2Segment", ts: int, labels: np.ndarray
                           ) -> Tuple[np.ndarray, np.ndarray]:
    """TOP return-1 points of frame ``ts`` and their semantic types (the range-image label of each point's pixel).

    Args:
        segment: opened with ``lasers=(1,)``, ``returns=(1,)``.
        labels: that frame's return-1 labels [H, W, 2] (from :func:`read_lidar_segmentation`).
    Returns:
        points [N, 6] float32 (as :meth:`WaymoV2Segment.points`), types [N] int64 (0 = undefined).
    Raises:
        ValueError: the label image's size differs from the range image's (naming the files).
    """
    if tuple(segment.lasers) != (1,) or tuple(segment.returns) != (1,):
        raise ValueError("top_points_with_labels: open the segment with lasers=(1,) and returns=(1,)")
    hit = segment._lidar.row(int(ts), 1)
    if hit is None:
        raise ValueError(f"{segment._lidar.path}: no TOP lidar row for frame {ts}")
    image = _range_image(segment._lidar.path, hit[0], hit[1], f"{_LIDAR}.range_image_return1", 3)
    if image is None or tuple(image.shape[:2]) != tuple(labels.shape[:2]):
        raise ValueError(f"{segment.split_dir / 'lidar_segmentation' / segment.segment}.parquet: frame {ts}: label "
                         f"image {list(labels.shape[:2])} does not fit the TOP range image "
                         f"{None if image is None else list(image.shape[:2])} of {segment._lidar.path}")
    points, _, _ = segment.points(ts)
    mask = (image[..., 0] > 0) & np.isfinite(image[..., 0])
    if segment.filter_no_label_zone and image.shape[2] > 3:
        mask &= image[..., 3] != 1.0
    types = labels[..., 1][mask].astype(np.int64)
    if types.shape[0] != points.shape[0]:
        raise ValueError(f"{segment.segment}: frame {ts}: {types.shape[0]} labels for {points.shape[0]} points")
    return points, types
