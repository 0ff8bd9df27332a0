"""mmdet3d info .pkl files: read (v1.1+ ``{metainfo, data_list}`` and the legacy list-of-dicts), write atomically.

An entry of the v1.1+ layout::

    {"sample_idx": 0, "lidar_points": {"lidar_path": "000000.bin", "num_pts_feats": 4, ...},
     "images": {"R0_rect": 4x4, "CAM2": {"lidar2cam": 4x4, ...}, ...},
     "instances": [{"bbox_3d": [7], "bbox_label_3d": 2, "num_lidar_pts": 377, "difficulty": 0, ...}]}

Box frames differ by dataset, and are converted here, at the reader (DESIGN §4):

* mmdet3d **KITTI** infos keep camera boxes ``(x, y, z, l, h, w, ry)`` (bottom centre, rectified camera frame);
  they become LiDAR boxes with ``inv(CAM2.lidar2cam)`` (= ``inv(R0_rect @ Tr_velo_to_cam)``), as mmdet3d's
  ``KittiDataset.parse_ann_info`` does.
* mmdet3d **Waymo** (KITTI-format) infos and our own infos (``metainfo["box_mode"] == "lidar"``) hold LiDAR
  boxes ``(x, y, z_bottom, dx, dy, dz, yaw)`` already.

Labels are mapped by class *name* from the file's classes (``metainfo["classes"]`` or ``["categories"]``, else
mmdet3d's defaults for the dataset) to the caller's classes; instances of other classes (and KITTI's DontCare,
label -1) are dropped.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from perception3d.fileio import DataFormatError, atomic_write_bytes
from perception3d.structures.boxes import camera_to_lidar_boxes

__all__ = [
    "MMDET3D_KITTI_CLASSES", "MMDET3D_WAYMO_CLASSES", "save_infos", "load_info_file",
    "info_box_mode", "info_classes", "resolve_lidar_path", "parse_instances", "kitti_calib", "load_mmdet3d_infos",
    "KITTI_2D_KEYS", "load_data_pickle",
]

PathLike = Union[str, Path]
MMDET3D_KITTI_CLASSES = ("Pedestrian", "Cyclist", "Car", "Van", "Truck", "Person_sitting", "Tram", "Misc")
MMDET3D_WAYMO_CLASSES = ("Car", "Pedestrian", "Cyclist")
_DEFAULT_PTS_PREFIXES = ("", "training/velodyne", "velodyne", "training/velodyne_reduced", "testing/velodyne")


def save_infos(path: PathLike, data_list: List[dict], metainfo: dict) -> None:
    """Write ``{"metainfo": ..., "data_list": ...}`` as a pickle, atomically."""
    atomic_write_bytes(path, pickle.dumps(dict(metainfo=metainfo, data_list=data_list),
                                          protocol=pickle.HIGHEST_PROTOCOL))


def _legacy_to_v2(entries: list, path: Path) -> Tuple[dict, list]:
    """Pre-1.1 mmdet3d KITTI-style infos (``point_cloud``, ``calib``, ``annos``) → the v1.1 layout."""
    data_list = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "point_cloud" not in e:
            raise ValueError(f"{path}: entry {i} is not an mmdet3d info (no 'point_cloud' key in the legacy "
                             f"layout, no 'data_list' in the v1.1 layout)")
        pc = e["point_cloud"]
        calib = e.get("calib", {})
        new = dict(sample_idx=e.get("image", {}).get("image_idx", pc.get("lidar_idx", i)),
                   lidar_points=dict(lidar_path=pc["velodyne_path"], num_pts_feats=int(pc.get("num_features", 4))),
                   images={}, instances=[])
        if "Tr_velo_to_cam" in calib:
            new["lidar_points"]["Tr_velo_to_cam"] = np.asarray(calib["Tr_velo_to_cam"]).tolist()
        if "R0_rect" in calib:
            new["images"]["R0_rect"] = np.asarray(calib["R0_rect"]).tolist()
        annos = e.get("annos")
        if annos is not None:
            names = list(annos["name"])
            n_pts = annos.get("num_points_in_gt", np.full(len(names), -1))
            diff = annos.get("difficulty", np.zeros(len(names), np.int64))
            for k, name in enumerate(names):
                if name == "DontCare":
                    continue
                box = np.concatenate([annos["location"][k], annos["dimensions"][k], [annos["rotation_y"][k]]])
                new["instances"].append(dict(
                    bbox_3d=box.tolist(), num_lidar_pts=int(n_pts[k]), difficulty=int(diff[k]),
                    bbox_label_3d=MMDET3D_KITTI_CLASSES.index(name) if name in MMDET3D_KITTI_CLASSES else -1))
        data_list.append(new)
    return dict(dataset="kitti", info_version="legacy", classes=MMDET3D_KITTI_CLASSES), data_list


#: the only globals an info pickle may name: numpy arrays / scalars and plain containers (mmdet3d's and ours)
_INFO_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "ndarray"),
    ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"), ("collections", "defaultdict"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"), ("builtins", "complex"),
    ("builtins", "bytearray"), ("builtins", "slice"), ("builtins", "range"),
    ("_codecs", "encode"),                      # how protocol-2 pickles (mmdet3d's) store bytes
}


class _InfoUnpickler(pickle.Unpickler):
    """Unpickles data only: any global outside :data:`_INFO_PICKLE_GLOBALS` (a class or function that could run
    code) is refused, so an info file from elsewhere cannot execute anything when it is loaded."""

    def find_class(self, module: str, name: str):
        if (module, name) in _INFO_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refuses the global {module}.{name} (info files hold data only)")


def load_data_pickle(f) -> object:
    """Unpickle an open binary file holding data only (numpy arrays and plain containers; any other class or
    function is refused with ``pickle.UnpicklingError``): how every info pickle is read."""
    return _InfoUnpickler(f).load()


def load_info_file(path: PathLike) -> Tuple[dict, list]:
    """Read an info pkl → (metainfo, data_list) in the v1.1 layout (legacy lists are converted).

    Unpickled with a restricted unpickler (numpy arrays and plain containers only).  A damaged or foreign file
    raises :class:`~perception3d.fileio.DataFormatError` naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _InfoUnpickler(f).load()
    except FileNotFoundError:
        raise
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean "not a readable info file"
        raise DataFormatError(path, None, f"not a readable info pickle: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, dict) and "data_list" in obj:
        return dict(obj.get("metainfo", {}) or {}), list(obj["data_list"])
    if isinstance(obj, list):
        return _legacy_to_v2(obj, path)
    raise DataFormatError(path, None, f"expected a dict with 'data_list' (mmdet3d >= 1.1) or a list (legacy), "
                                      f"got {type(obj).__name__}")


def _dataset_name(metainfo: dict) -> str:
    return str(metainfo.get("dataset", metainfo.get("DATASET", ""))).lower()


def info_box_mode(metainfo: dict) -> str:
    """'lidar' or 'camera': the frame of ``bbox_3d`` in these infos."""
    if "box_mode" in metainfo:
        return str(metainfo["box_mode"])
    return "camera" if _dataset_name(metainfo) == "kitti" else "lidar"


def info_classes(metainfo: dict) -> Tuple[str, ...]:
    """The class names of the file, indexed by ``bbox_label_3d``."""
    if "classes" in metainfo:
        return tuple(metainfo["classes"])
    cats = metainfo.get("categories")
    if isinstance(cats, dict) and cats:
        by_id = {int(v): k for k, v in cats.items() if int(v) >= 0}
        return tuple(by_id.get(i, f"__unknown_{i}") for i in range(max(by_id) + 1))
    name = _dataset_name(metainfo)
    if name == "kitti":
        return MMDET3D_KITTI_CLASSES
    if name == "waymo":
        return MMDET3D_WAYMO_CLASSES
    return MMDET3D_WAYMO_CLASSES


def resolve_lidar_path(lidar_path: str, data_root: Optional[PathLike], pts_prefix: Optional[str] = None) -> Path:
    """The points file of an entry: absolute paths as they are; else ``data_root / pts_prefix / lidar_path``.

    Without ``pts_prefix`` the usual places are tried in turn (``''``, ``training/velodyne``, ``velodyne``,
    ``training/velodyne_reduced``, ``testing/velodyne``) and the first existing file wins (the first candidate
    is returned when none exists, so the caller's error names it).
    """
    p = Path(lidar_path)
    if p.is_absolute():
        return p
    root = Path(data_root) if data_root is not None else Path(".")
    if pts_prefix is not None:
        return root / pts_prefix / p
    candidates = [root / pre / p for pre in _DEFAULT_PTS_PREFIXES]
    for c in candidates:
        if c.is_file():
            return c
    return candidates[0]


def _lidar2cam(entry: dict) -> np.ndarray:
    images = entry.get("images", {}) or {}
    if "CAM2" in images and "lidar2cam" in images["CAM2"]:
        return np.asarray(images["CAM2"]["lidar2cam"], dtype=np.float64)
    tr = entry.get("lidar_points", {}).get("Tr_velo_to_cam")
    r0 = images.get("R0_rect")
    if tr is None or r0 is None:
        raise ValueError(f"sample {entry.get('sample_idx')}: camera-frame boxes but no CAM2.lidar2cam nor "
                         f"R0_rect + Tr_velo_to_cam to convert them")
    tr4, r04 = np.eye(4), np.eye(4)
    tr4[:3, :] = np.asarray(tr, dtype=np.float64)[:3, :]
    r04[:3, :3] = np.asarray(r0, dtype=np.float64)[:3, :3]
    return r04 @ tr4


KITTI_2D_KEYS = ("bbox", "truncated", "occluded", "alpha")


def parse_instances(entry: dict, src_classes: Sequence[str], dst_classes: Sequence[str], box_mode: str,
                    keep_all: bool = False) -> dict:
    """The instances of one entry as arrays, LiDAR frame, labels mapped by name to ``dst_classes``.

    Args:
        keep_all: also keep the instances of other classes (label -1; KITTI's DontCare, Van, … which its
            evaluation needs), named by the instance's ``name`` or the file's class (``DontCare`` for label -1).
    Returns:
        dict(gt_bboxes_3d [M, 7] float32, gt_labels_3d [M] int64, num_lidar_pts [M] int64, difficulty [M] int64,
        gt_names list[str]); plus bbox [M, 4], truncated [M], occluded [M], alpha [M] when every instance has
        them (KITTI's 2D annotations).
    """
    boxes, labels, npts, diff, names, kept = [], [], [], [], [], []
    dst = list(dst_classes)
    for inst in entry.get("instances", []) or []:
        src = int(inst.get("bbox_label_3d", inst.get("bbox_label", -1)))
        src_name = src_classes[src] if 0 <= src < len(src_classes) else "DontCare"
        name = str(inst.get("name", src_name))
        if name not in dst and not keep_all:
            continue
        box = np.asarray(inst["bbox_3d"], dtype=np.float64).reshape(-1)
        if box.shape[0] < 7:
            raise ValueError(f"sample {entry.get('sample_idx')}: bbox_3d has {box.shape[0]} values, expected 7")
        boxes.append(box[:7])
        labels.append(dst.index(name) if name in dst else -1)
        npts.append(int(inst.get("num_lidar_pts", -1)))
        diff.append(int(inst.get("difficulty", 0)))
        names.append(name)
        kept.append(inst)
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if box_mode == "camera" and len(arr):
        arr = camera_to_lidar_boxes(arr, _lidar2cam(entry))
    elif box_mode not in ("camera", "lidar"):
        raise ValueError(f"unknown box_mode {box_mode!r} (expected 'lidar' or 'camera')")
    out = dict(gt_bboxes_3d=arr.astype(np.float32), gt_labels_3d=np.asarray(labels, np.int64),
               num_lidar_pts=np.asarray(npts, np.int64), difficulty=np.asarray(diff, np.int64), gt_names=names)
    if kept and all(all(k in inst for k in KITTI_2D_KEYS) for inst in kept):
        out["bbox"] = np.asarray([inst["bbox"] for inst in kept], np.float32).reshape(-1, 4)
        for k in ("truncated", "occluded", "alpha"):
            out[k] = np.asarray([inst[k] for inst in kept], np.float32 if k != "occluded" else np.int64)
    return out


def kitti_calib(entry: dict) -> Optional[dict]:
    """``dict(P2, R0_rect, Tr_velo_to_cam [4, 4], image_shape (H, W) | None)`` of an mmdet3d KITTI entry, or
    None when the entry lacks them (what KITTI evaluation needs to project boxes into the image)."""
    images = entry.get("images", {}) or {}
    cam2 = images.get("CAM2", {}) or {}
    tr = (entry.get("lidar_points", {}) or {}).get("Tr_velo_to_cam")
    if "cam2img" not in cam2 or "R0_rect" not in images or tr is None:
        return None

    def m4(m):
        a, out = np.asarray(m, np.float64), np.eye(4)
        out[: a.shape[0], : a.shape[1]] = a
        return out
    shape = (int(cam2["height"]), int(cam2["width"])) if "height" in cam2 and "width" in cam2 else None
    return dict(P2=m4(cam2["cam2img"]), R0_rect=m4(images["R0_rect"]), Tr_velo_to_cam=m4(tr), image_shape=shape)


def load_mmdet3d_infos(path: PathLike, data_root: Optional[PathLike] = None,
                       classes: Optional[Sequence[str]] = None, pts_prefix: Optional[str] = None,
                       box_mode: Optional[str] = None) -> Tuple[dict, List[dict]]:
    """Read an info pkl into normalized entries (LiDAR boxes, resolved point paths).

    Args:
        path: the .pkl.
        data_root: the folder point paths are relative to (default: the pkl's folder).
        classes: the class names to keep, in label order (default: the file's).
        pts_prefix: folder under ``data_root`` holding the points (default: searched, see
            :func:`resolve_lidar_path`).
        box_mode: override the frame of ``bbox_3d`` ('lidar' | 'camera'; default from the metainfo).
    Returns:
        (metainfo, entries); each entry: ``sample_idx``, ``lidar_path`` (Path), ``num_pts_feats``, the keys of
        :func:`parse_instances`, and ``info`` (the raw entry).
    """
    path = Path(path)
    metainfo, data_list = load_info_file(path)
    src_classes = info_classes(metainfo)
    dst_classes = tuple(classes) if classes is not None else src_classes
    mode = box_mode or info_box_mode(metainfo)
    root = Path(data_root) if data_root is not None else path.parent
    out = []
    for i, e in enumerate(data_list):
        lp = e.get("lidar_points")
        if not lp or "lidar_path" not in lp:
            raise ValueError(f"{path}: entry {i} has no lidar_points.lidar_path")
        item = dict(sample_idx=e.get("sample_idx", e.get("sample_id", i)),
                    lidar_path=resolve_lidar_path(lp["lidar_path"], root, pts_prefix),
                    num_pts_feats=int(lp.get("num_pts_feats", 4)), info=e)
        try:
            item.update(parse_instances(e, src_classes, dst_classes, mode))
        except ValueError as exc:
            raise ValueError(f"{path}: entry {i}: {exc}") from exc
        out.append(item)
    return metainfo, out
