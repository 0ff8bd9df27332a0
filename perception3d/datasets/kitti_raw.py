"""KITTI object-detection files: ``velodyne/*.bin``, ``label_2/*.txt``, ``calib/*.txt``; camera → LiDAR boxes.

Label lines (15 fields, a 16th is a detection score): type, truncated, occluded, alpha, 2D box (x1 y1 x2 y2),
dimensions h w l, location x y z (bottom centre, rectified camera frame), rotation_y [, score].

Camera → LiDAR at the reader (DESIGN §4) with :func:`perception3d.structures.boxes.kitti_camera_to_lidar`
(mmdet3d's ``Box3DMode.convert`` CAM → LIDAR: ``T = inv(R0_rect @ Tr_velo_to_cam)`` moves the bottom centre;
sizes ``(dx, dy, dz) = (l, w, h)``; ``yaw = -rotation_y - pi/2`` wrapped to [-pi, pi)).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from perception3d.datasets.mmdet3d_info import save_infos
from perception3d.deprecation import moved_names
from perception3d.fileio import DataFormatError, read_text as _read_text
from perception3d.ops.points_in_boxes import points_in_boxes_count as _points_in_boxes_count
from perception3d.structures.boxes import camera_to_lidar_boxes

__all__ = [
    "KITTI_CLASSES", "read_velodyne", "read_label", "read_calib", "camera_to_lidar_boxes", "kitti_difficulty",
    "KittiLabel", "read_kitti_frame", "create_kitti_infos",
]

__getattr__ = moved_names(__name__, {"points_in_boxes_count": "perception3d.ops.points_in_boxes"})  # the old path

PathLike = Union[str, Path]
KITTI_CLASSES = ("Car", "Pedestrian", "Cyclist")


def read_velodyne(path: PathLike, num_features: int = 4) -> np.ndarray:
    """A velodyne .bin → [N, num_features] float32; ``ValueError`` naming the file if its size does not fit."""
    path = Path(path)
    size = path.stat().st_size
    if size % (4 * num_features):
        raise DataFormatError(path, None, f"{size} bytes is not a whole number of points of {num_features} "
                              f"float32 ({4 * num_features} bytes each): truncated or wrong num_features")
    return np.fromfile(path, dtype=np.float32).reshape(-1, num_features)


@dataclass
class KittiLabel:
    """The objects of one label file (arrays of length M)."""
    names: List[str]
    truncated: np.ndarray       # [M] float
    occluded: np.ndarray        # [M] int
    alpha: np.ndarray           # [M]
    bbox: np.ndarray            # [M, 4] 2D box x1 y1 x2 y2
    dimensions_hwl: np.ndarray  # [M, 3] h, w, l (file order)
    location: np.ndarray        # [M, 3] bottom centre, camera frame
    rotation_y: np.ndarray      # [M]
    score: Optional[np.ndarray] = None  # [M] when the file has a 16th field


def read_label(path: PathLike) -> KittiLabel:
    """Parse a ``label_2`` file (15 fields per line, or 16 with a score); ``ValueError`` naming file and line."""
    path = Path(path)
    rows, scores = [], []
    for n, line in enumerate(_read_text(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (15, 16):
            raise DataFormatError(f"{path}:{n}", None, f"{len(parts)} fields, expected 15 (or 16 with a score)")
        try:
            vals = [float(v) for v in parts[1:]]
        except ValueError as exc:
            raise DataFormatError(f"{path}:{n}", None, f"non-numeric field: {exc}") from exc
        rows.append((parts[0], vals[:14]))
        scores.append(vals[14] if len(vals) == 15 else None)
    arr = np.array([r[1] for r in rows], dtype=np.float64).reshape(-1, 14)
    has_score = bool(scores) and all(s is not None for s in scores)
    return KittiLabel(names=[r[0] for r in rows], truncated=arr[:, 0], occluded=arr[:, 1].astype(np.int64),
                      alpha=arr[:, 2], bbox=arr[:, 3:7], dimensions_hwl=arr[:, 7:10], location=arr[:, 10:13],
                      rotation_y=arr[:, 13], score=np.array(scores, np.float64) if has_score else None)


def _to4x4(m: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[: m.shape[0], : m.shape[1]] = m
    return out


def read_calib(path: PathLike) -> Dict[str, np.ndarray]:
    """Parse a ``calib`` file → P0..P3 [4, 4], R0_rect [4, 4], Tr_velo_to_cam [4, 4] (and Tr_imu_to_velo).

    Matrices are padded to 4 × 4 homogeneous form, as mmdet3d stores them.  ``ValueError`` naming the file
    and key when a required key is missing or has the wrong number of values.
    """
    path = Path(path)
    raw: Dict[str, List[float]] = {}
    for line in _read_text(path).splitlines():
        if ":" not in line:
            continue
        key, vals = line.split(":", 1)
        try:
            raw[key.strip()] = [float(v) for v in vals.split()]
        except ValueError as exc:
            raise DataFormatError(path, f"key '{key.strip()}'", f"non-numeric value: {exc}") from exc
    if "R_rect" in raw and "R0_rect" not in raw:          # some KITTI tools write R_rect
        raw["R0_rect"] = raw["R_rect"]
    if "Tr_velo_cam" in raw and "Tr_velo_to_cam" not in raw:
        raw["Tr_velo_to_cam"] = raw["Tr_velo_cam"]
    shapes = {"P0": (3, 4), "P1": (3, 4), "P2": (3, 4), "P3": (3, 4), "R0_rect": (3, 3), "Tr_velo_to_cam": (3, 4),
              "Tr_imu_to_velo": (3, 4)}
    out = {}
    for key, shape in shapes.items():
        if key not in raw:
            if key == "Tr_imu_to_velo":
                continue
            raise DataFormatError(path, None, f"missing key '{key}'")
        if len(raw[key]) != shape[0] * shape[1]:
            raise DataFormatError(path, f"key '{key}'", f"{len(raw[key])} values, expected {shape[0] * shape[1]}")
        out[key] = _to4x4(np.array(raw[key], dtype=np.float64).reshape(shape))
    return out




def kitti_difficulty(bbox: np.ndarray, occluded: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """KITTI difficulty per object: 0 easy, 1 moderate, 2 hard, -1 none (2D height ≥ 40/25/25 px,
    occlusion ≤ 0/1/2, truncation ≤ 0.15/0.3/0.5)."""
    height = np.asarray(bbox)[:, 3] - np.asarray(bbox)[:, 1]
    out = np.full(len(height), -1, dtype=np.int64)
    for level, (min_h, max_occ, max_trunc) in reversed(list(enumerate(((40, 0, 0.15), (25, 1, 0.3),
                                                                         (25, 2, 0.5))))):
        ok = (height >= min_h) & (np.asarray(occluded) <= max_occ) & (np.asarray(truncated) <= max_trunc)
        out[ok] = level
    return out


def _png_size(path: Path) -> Optional[tuple]:
    """(H, W) from a PNG header, or None when the file is absent or not a PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


def read_kitti_frame(root: PathLike, frame_id: str, split_dir: str = "training",
                     classes: Sequence[str] = KITTI_CLASSES, all_objects: bool = False) -> dict:
    """One KITTI frame: points [N, 4], calibration, and LiDAR boxes of ``classes``.

    Args:
        all_objects: also return the other objects of the label file (Van, DontCare, …) with label -1, as
            KITTI's evaluation needs them; their ``num_lidar_pts`` is counted too (-1 for DontCare).
    Returns:
        dict(points, calib, lidar_path, image_shape (H, W) | None, gt_bboxes_3d [M, 7] float32,
        gt_labels_3d [M] int64, gt_names [M], difficulty [M], num_lidar_pts [M] (points inside each box),
        bbox [M, 4], truncated [M], occluded [M], alpha [M]).
    """
    base = Path(root) / split_dir
    lidar_path = base / "velodyne" / f"{frame_id}.bin"
    points = read_velodyne(lidar_path)
    calib = read_calib(base / "calib" / f"{frame_id}.txt")
    out = dict(points=points, calib=calib, lidar_path=lidar_path, gt_bboxes_3d=np.zeros((0, 7), np.float32),
               gt_labels_3d=np.zeros(0, np.int64), gt_names=[], difficulty=np.zeros(0, np.int64),
               num_lidar_pts=np.zeros(0, np.int64), bbox=np.zeros((0, 4), np.float32),
               truncated=np.zeros(0, np.float32), occluded=np.zeros(0, np.int64), alpha=np.zeros(0, np.float32),
               image_shape=_png_size(base / "image_2" / f"{frame_id}.png"))
    label_path = base / "label_2" / f"{frame_id}.txt"
    if not label_path.is_file():
        return out
    lab = read_label(label_path)
    keep = np.array([all_objects or n in classes for n in lab.names], dtype=bool)
    if not keep.any():
        return out
    boxes_cam = np.concatenate([lab.location, lab.dimensions_hwl[:, [2, 0, 1]], lab.rotation_y[:, None]], 1)[keep]
    boxes = camera_to_lidar_boxes(boxes_cam, calib["R0_rect"] @ calib["Tr_velo_to_cam"])
    names = [n for n, k in zip(lab.names, keep) if k]
    counted = (np.array(names) != "DontCare") & (boxes[:, 3:6] > 0).all(1)
    counts = np.full(len(names), -1, np.int64)
    counts[counted] = _points_in_boxes_count(np.asarray(points)[:, :3], boxes[counted]).numpy()
    out.update(gt_bboxes_3d=boxes.astype(np.float32),
               gt_labels_3d=np.array([list(classes).index(n) if n in classes else -1 for n in names], np.int64),
               gt_names=names, difficulty=kitti_difficulty(lab.bbox, lab.occluded, lab.truncated)[keep],
               num_lidar_pts=counts,
               bbox=lab.bbox[keep].astype(np.float32), truncated=lab.truncated[keep].astype(np.float32),
               occluded=lab.occluded[keep], alpha=lab.alpha[keep].astype(np.float32))
    return out


def create_kitti_infos(root: PathLike, out: Optional[PathLike] = None, classes: Sequence[str] = KITTI_CLASSES,
                       progress: bool = True, skip_corrupt: bool = False) -> dict:
    """Raw KITTI root → ``kitti_infos_<split>.pkl`` (our mmdet3d-layout infos, LiDAR boxes).

    Splits come from ``<root>/ImageSets/{train,val,test}.txt`` when present, else every frame of
    ``training/velodyne`` is ``train``.  Points are not copied: ``lidar_path`` points at the original .bin,
    relative to ``root`` (``num_pts_feats`` 4).

    A frame listed in ``ImageSets`` whose files are absent is a counted skip (warned, listed under ``"bad"``).  A
    corrupt file (a ``.bin`` whose size is not a multiple of 16 bytes, a label line with the wrong number of fields,
    a calib file without its matrices) raises :class:`~perception3d.fileio.DataFormatError` naming the file, and no
    info file is written (all splits are read before any is written); ``skip_corrupt=True`` makes corrupt frames
    counted skips too.  Each info file is written atomically.

    Returns:
        {split: number of frames written, "bad": [(frame, reason)]}.
    """
    from tqdm import tqdm
    root = Path(root)
    out = Path(out) if out is not None else root
    image_sets = root / "ImageSets"
    splits: Dict[str, List[str]] = {}
    for split in ("train", "val", "test"):
        f = image_sets / f"{split}.txt"
        if f.is_file():
            splits[split] = [s.strip() for s in f.read_text().split() if s.strip()]
    if not splits:
        splits["train"] = sorted(p.stem for p in (root / "training" / "velodyne").glob("*.bin"))
    result: dict = {"bad": []}
    all_infos: Dict[str, list] = {}
    for split, ids in splits.items():
        split_dir = "testing" if split == "test" else "training"
        infos, bad = [], []
        for fid in tqdm(ids, desc=f"kitti {split}", disable=not progress):
            try:
                fr = read_kitti_frame(root, fid, split_dir, classes, all_objects=True)
            except FileNotFoundError as exc:
                bad.append((fid, str(exc)))
                continue
            except DataFormatError as exc:
                if not skip_corrupt:
                    raise
                bad.append((fid, str(exc)))
                continue
            infos.append(dict(
                sample_idx=int(fid) if fid.isdigit() else fid,
                lidar_points=dict(lidar_path=str(Path(split_dir) / "velodyne" / f"{fid}.bin"), num_pts_feats=4,
                                  Tr_velo_to_cam=fr["calib"]["Tr_velo_to_cam"].tolist()),
                images=dict(R0_rect=fr["calib"]["R0_rect"].tolist(),
                            CAM2=dict(cam2img=fr["calib"]["P2"].tolist(),
                                      **(dict(height=fr["image_shape"][0], width=fr["image_shape"][1])
                                         if fr["image_shape"] else {}))),
                instances=[dict(bbox_3d=fr["gt_bboxes_3d"][i].tolist(), bbox_label_3d=int(fr["gt_labels_3d"][i]),
                                name=fr["gt_names"][i], num_lidar_pts=int(fr["num_lidar_pts"][i]),
                                difficulty=int(fr["difficulty"][i]), bbox=fr["bbox"][i].tolist(),
                                truncated=float(fr["truncated"][i]), occluded=int(fr["occluded"][i]),
                                alpha=float(fr["alpha"][i]))
                           for i in range(len(fr["gt_labels_3d"]))]))
        if bad:
            import warnings
            warnings.warn(f"kitti {split}: {len(bad)} frames could not be read and are left out of the infos, "
                          f"e.g. {bad[0]}")
            result["bad"].extend(bad)
        all_infos[split] = infos
    for split, infos in all_infos.items():
        save_infos(out / f"kitti_infos_{split}.pkl", infos,
                   metainfo=dict(dataset="kitti", classes=tuple(classes), info_version="perception3d-1",
                                 box_mode="lidar", source=str(root)))
        result[split] = len(infos)
    return result
