"""nuScenes: the real v1.0 layout and mmdet3d's nuScenes info ``.pkl`` → LiDAR sweeps, 6 cameras, LiDAR boxes.

Two sources, one entry format (mmdet3d ≥ 1.1's ``data_list`` entry, so info files interoperate both ways)::

    {"sample_idx", "token", "timestamp" (s), "ego2global" 4x4,
     "lidar_points": {"lidar_path", "num_pts_feats": 5, "lidar2ego" 4x4},
     "lidar_sweeps": [{"lidar_points": {"lidar_path", "lidar2sensor" 4x4, "sensor2lidar" 4x4}, "timestamp", ...}],
     "images": {"CAM_FRONT": {"img_path", "cam2img" 3x3, "cam2ego" 4x4, "lidar2cam" 4x4, "timestamp",
                              "height", "width", "sample_data_token"}, ...},
     "instances": [{"bbox_3d": [x, y, z_centre, l, w, h, yaw], "velocity": [vx, vy], "bbox_label_3d",
                    "attr_label", "num_lidar_pts", "num_radar_pts", "bbox_3d_isvalid"}, ...]}

* :class:`NuScenesTables` reads ``<root>/v1.0-*/`` (``sample``, ``sample_data``, ``calibrated_sensor``,
  ``sensor``, ``ego_pose``, ``sample_annotation``, ``instance``, ``category``, ``attribute``, ``scene``);
  :func:`nuscenes_info_entry` turns one sample into an entry exactly as mmdet3d's converter
  (``nuscenes_converter.py`` + ``update_infos_to_v2``) does; :func:`create_nuscenes_infos` writes the info files.
* :func:`load_nuscenes_infos` reads an info pkl (v1.1 ``data_list``, or the older ``{"infos", "metadata"}``
  layout of mmdet3d 1.0, whose boxes already are ``(x, y, z_centre, l, w, h, yaw)``).
* :func:`load_nuscenes_frame` turns an entry into a results dict: multi-sweep points, images, calibrations and
  boxes in the house convention (LiDAR frame, ``(x, y, z_bottom, dx, dy, dz, yaw, vx, vy)``; the info's
  ``bbox_3d`` holds the gravity centre, as mmdet3d's ``NuScenesDataset`` reads it with ``origin=(0.5, 0.5, 0.5)``).

Boxes: a ``sample_annotation`` (global frame, ``size`` = (w, l, h), quaternion ``rotation`` w, x, y, z) goes to
the key frame's LiDAR frame through ``inv(ego2global) → inv(lidar2ego)``; ``yaw`` is the angle of the box's
rotated x axis (the devkit's ``quaternion_yaw``); velocity is the devkit's ``box_velocity`` (centred difference
of the previous and next annotations, NaN when the gap is over 1.5 s, 3 s centred), rotated into the LiDAR frame.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset

from perception3d.datasets.mmdet3d_info import load_data_pickle, save_infos
from perception3d.fileio import read_json
from perception3d.registry import DATASETS
from perception3d.structures.calibration import as_matrix4, check_invertible, compose_lidar2img
from perception3d.structures.rotation import quat_to_rotmat

__all__ = ["NUSCENES_CLASSES", "NUSCENES_ATTRIBUTES", "CATEGORY_TO_CLASS", "CAMERA_NAMES", "MINI_SPLITS",
           "quaternion_to_matrix", "NuScenesTables", "nuscenes_info_entry", "create_nuscenes_infos",
           "load_nuscenes_infos", "nuscenes_instances", "load_points", "load_multisweep_points",
           "load_camera_images", "load_nuscenes_frame", "NuScenesDataError", "resolve_path", "NuScenesDataset"]

PathLike = Union[str, Path]

#: mmdet3d's ``NuScenesDataset.METAINFO["classes"]`` (label = index).
NUSCENES_CLASSES = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                    "pedestrian", "traffic_cone", "barrier")
#: mmdet3d's attribute order (``attr_label`` = index; 8 = no attribute).
NUSCENES_ATTRIBUTES = ("cycle.with_rider", "cycle.without_rider", "pedestrian.moving", "pedestrian.standing",
                       "pedestrian.sitting_lying_down", "vehicle.moving", "vehicle.parked", "vehicle.stopped", "None")
#: the devkit's ``category_to_detection_name`` (= mmdet3d's ``NameMapping`` for the 10 classes).
CATEGORY_TO_CLASS = {
    "movable_object.barrier": "barrier", "vehicle.bicycle": "bicycle", "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus", "vehicle.car": "car", "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle", "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian", "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian", "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer", "vehicle.truck": "truck"}
CAMERA_NAMES = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
#: scene names of the devkit's ``mini_train`` / ``mini_val`` splits (v1.0-mini).
MINI_SPLITS = {"train": ("scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796", "scene-1077",
                         "scene-1094", "scene-1100"),
               "val": ("scene-0103", "scene-0916")}
_TABLES = ("sample", "sample_data", "calibrated_sensor", "sensor", "ego_pose", "sample_annotation", "instance",
           "category", "attribute", "scene")


class NuScenesDataError(ValueError):
    """A nuScenes file or info entry that cannot be used (names the file / sample and the field)."""


def quaternion_to_matrix(q: Sequence[float]) -> np.ndarray:
    """[3, 3] rotation of a unit quaternion ``(w, x, y, z)`` (nuScenes / pyquaternion order)."""
    return quat_to_rotmat(torch.as_tensor(np.asarray(q, np.float64))).numpy()


def _pose(rec: Mapping) -> np.ndarray:
    """4x4 of a record with ``translation`` and ``rotation`` (quaternion w, x, y, z)."""
    m = np.eye(4)
    m[:3, :3] = quaternion_to_matrix(rec["rotation"])
    m[:3, 3] = np.asarray(rec["translation"], np.float64)
    return m


# ---------------------------------------------------------------------------------------------------------------
# the v1.0 json tables
# ---------------------------------------------------------------------------------------------------------------
class NuScenesTables:
    """The json tables of ``<root>/<version>/`` indexed by token.

    Args:
        root: the dataset root (holding ``samples/``, ``sweeps/`` and ``v1.0-*/``).
        version: e.g. ``"v1.0-mini"``; default: the only ``v1.0-*`` folder under ``root``.
    """

    def __init__(self, root: PathLike, version: Optional[str] = None):
        self.root = Path(root)
        if version is None:
            found = sorted(p.name for p in self.root.glob("v1.0-*") if p.is_dir())
            if len(found) != 1:
                raise NuScenesDataError(f"{self.root}: expected one v1.0-* table folder, found {found or 'none'} "
                                        f"(pass version=...)")
            version = found[0]
        self.version = version
        self.table_dir = self.root / version
        self.tables: Dict[str, List[dict]] = {}
        self._by_token: Dict[str, Dict[str, dict]] = {}
        for name in _TABLES:
            path = self.table_dir / f"{name}.json"
            if not path.is_file():
                raise NuScenesDataError(f"{path}: missing nuScenes table {name!r}")
            rows = read_json(path, NuScenesDataError)
            if not isinstance(rows, list) or not all(isinstance(r, dict) and "token" in r for r in rows):
                raise NuScenesDataError(f"{path}: expected a list of records with a 'token'")
            self.tables[name] = rows
            self._by_token[name] = {r["token"]: r for r in rows}
        # key-frame sample_data by (sample token, channel); annotations by sample
        self._key_sd: Dict[Tuple[str, str], dict] = {}
        for sd in self.tables["sample_data"]:
            if sd.get("is_key_frame", False):
                self._key_sd[(sd["sample_token"], self.channel(sd))] = sd
        self._anns: Dict[str, List[dict]] = {}
        for ann in self.tables["sample_annotation"]:
            self._anns.setdefault(ann["sample_token"], []).append(ann)

    def get(self, table: str, token: str) -> dict:
        """The record ``token`` of ``table`` (``NuScenesDataError`` naming both when absent)."""
        try:
            return self._by_token[table][token]
        except KeyError:
            raise NuScenesDataError(f"{self.table_dir / (table + '.json')}: no record with token {token!r}") from None

    def channel(self, sd: Mapping) -> str:
        """The sensor channel (``LIDAR_TOP``, ``CAM_FRONT``, …) of a ``sample_data`` record."""
        cs = self.get("calibrated_sensor", sd["calibrated_sensor_token"])
        return self.get("sensor", cs["sensor_token"])["channel"]

    def key_frame(self, sample_token: str, channel: str) -> Optional[dict]:
        """The key-frame ``sample_data`` of ``channel`` in a sample, or None."""
        return self._key_sd.get((sample_token, channel))

    def annotations(self, sample_token: str) -> List[dict]:
        return self._anns.get(sample_token, [])

    def scene_name(self, sample: Mapping) -> str:
        return self.get("scene", sample["scene_token"])["name"]

    def box_velocity(self, ann: Mapping, max_time_diff: float = 1.5) -> np.ndarray:
        """Global [3] velocity of an annotation (the devkit's ``NuScenes.box_velocity``), NaN when unknown."""
        has_prev, has_next = ann.get("prev", "") != "", ann.get("next", "") != ""
        if not has_prev and not has_next:
            return np.full(3, np.nan)
        first = self.get("sample_annotation", ann["prev"]) if has_prev else ann
        last = self.get("sample_annotation", ann["next"]) if has_next else ann
        dt = 1e-6 * (self.get("sample", last["sample_token"])["timestamp"]
                     - self.get("sample", first["sample_token"])["timestamp"])
        if has_prev and has_next:
            max_time_diff *= 2
        if dt > max_time_diff or dt <= 0:
            return np.full(3, np.nan)
        return (np.asarray(last["translation"], np.float64) - np.asarray(first["translation"], np.float64)) / dt


def _sensor_pose(tables: NuScenesTables, sd: Mapping) -> Tuple[np.ndarray, np.ndarray, dict]:
    """(sensor2ego, ego2global, calibrated_sensor record) of a sample_data record."""
    cs = tables.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return _pose(cs), _pose(tables.get("ego_pose", sd["ego_pose_token"])), cs


def nuscenes_info_entry(tables: NuScenesTables, sample: Mapping, sample_idx: int = 0,
                        max_sweeps: int = 10) -> dict:
    """One sample as an mmdet3d v1.1 info entry (see the module docstring)."""
    tok = sample["token"]
    lidar_sd = tables.key_frame(tok, "LIDAR_TOP")
    if lidar_sd is None:
        raise NuScenesDataError(f"sample {tok}: no key-frame LIDAR_TOP sample_data in {tables.table_dir}")
    l2e, e2g, _ = _sensor_pose(tables, lidar_sd)
    global2lidar = np.linalg.inv(e2g @ l2e)
    entry: Dict[str, Any] = dict(
        sample_idx=sample_idx, token=tok, timestamp=sample["timestamp"] / 1e6, ego2global=e2g.tolist(),
        scene_name=tables.scene_name(sample),
        lidar_points=dict(lidar_path=Path(lidar_sd["filename"]).name, num_pts_feats=5, lidar2ego=l2e.tolist()),
        images={}, lidar_sweeps=[], instances=[])
    # sweeps: the previous LIDAR_TOP sample_data records, newest first (mmdet3d's converter)
    sd = lidar_sd
    while len(entry["lidar_sweeps"]) < max_sweeps and sd.get("prev", ""):
        sd = tables.get("sample_data", sd["prev"])
        s2e, se2g, _ = _sensor_pose(tables, sd)
        sensor2lidar = global2lidar @ se2g @ s2e
        entry["lidar_sweeps"].append(dict(
            lidar_points=dict(lidar_path=sd["filename"], lidar2ego=s2e.tolist(),
                              lidar2sensor=np.linalg.inv(sensor2lidar).tolist(), sensor2lidar=sensor2lidar.tolist()),
            ego2global=se2g.tolist(), timestamp=sd["timestamp"] / 1e6, sample_data_token=sd["token"]))
    # cameras: lidar2cam through the global frame (camera and LiDAR are exposed at different times)
    for cam in CAMERA_NAMES:
        csd = tables.key_frame(tok, cam)
        if csd is None:
            continue
        c2e, ce2g, cs = _sensor_pose(tables, csd)
        cam2lidar = global2lidar @ ce2g @ c2e
        entry["images"][cam] = dict(
            img_path=Path(csd["filename"]).name, cam2img=np.asarray(cs["camera_intrinsic"], np.float64).tolist(),
            cam2ego=c2e.tolist(), lidar2cam=np.linalg.inv(cam2lidar).tolist(), sample_data_token=csd["token"],
            timestamp=csd["timestamp"] / 1e6, height=int(csd.get("height", 0)), width=int(csd.get("width", 0)))
    # boxes: global -> LiDAR; size (w, l, h) -> (l, w, h); centre kept (gravity centre, mmdet3d's info layout)
    r_g2l = global2lidar[:3, :3]
    for ann in tables.annotations(tok):
        cat = tables.get("category", tables.get("instance", ann["instance_token"])["category_token"])["name"]
        name = CATEGORY_TO_CLASS.get(cat)
        centre = global2lidar @ np.append(np.asarray(ann["translation"], np.float64), 1.0)
        rot = r_g2l @ quaternion_to_matrix(ann["rotation"])
        yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
        w, l, h = (float(v) for v in ann["size"])
        velo = r_g2l @ tables.box_velocity(ann)
        attrs = [tables.get("attribute", a)["name"] for a in ann.get("attribute_tokens", [])]
        attr = attrs[0] if attrs else "None"
        n_lidar, n_radar = int(ann.get("num_lidar_pts", 0)), int(ann.get("num_radar_pts", 0))
        label = NUSCENES_CLASSES.index(name) if name in NUSCENES_CLASSES else -1
        entry["instances"].append(dict(
            bbox_3d=[*centre[:3].tolist(), l, w, h, yaw], bbox_label=label, bbox_label_3d=label,
            velocity=velo[:2].tolist(), attr_label=NUSCENES_ATTRIBUTES.index(attr) if attr in NUSCENES_ATTRIBUTES
            else len(NUSCENES_ATTRIBUTES) - 1, num_lidar_pts=n_lidar, num_radar_pts=n_radar,
            bbox_3d_isvalid=bool(n_lidar + n_radar > 0), category_name=cat, instance_token=ann["instance_token"]))
    return entry


def _scene_splits(tables: NuScenesTables, splits: Optional[Mapping[str, Sequence[str]]]) -> Dict[str, set]:
    if splits is not None:
        return {k: set(v) for k, v in splits.items()}
    if tables.version.endswith("-mini"):
        return {k: set(v) for k, v in MINI_SPLITS.items()}
    if tables.version.endswith("-test"):
        return {"test": {s["name"] for s in tables.tables["scene"]}}
    try:  # the official 700 / 150 scene lists live in the devkit
        from nuscenes.utils.splits import create_splits_scenes  # type: ignore
    except ImportError:
        raise NuScenesDataError(f"{tables.table_dir}: the train/val scene lists of {tables.version} come from the "
                                f"nuscenes-devkit (not installed): pip install nuscenes-devkit, or pass splits=") from None
    s = create_splits_scenes()
    return {"train": set(s["train"]), "val": set(s["val"])}


def create_nuscenes_infos(root: PathLike, out: Optional[PathLike] = None, version: Optional[str] = None,
                          max_sweeps: int = 10, splits: Optional[Mapping[str, Sequence[str]]] = None,
                          prefix: str = "nuscenes") -> Dict[str, Any]:
    """Write ``<out>/<prefix>_infos_<split>.pkl`` (mmdet3d v1.1 layout) for each split, atomically.

    Args:
        root: nuScenes root; out: output folder (default ``root``); version: ``v1.0-*`` folder (default: the
        only one); max_sweeps: previous LiDAR sweeps listed per sample; splits: ``{split: [scene names]}``
        (default: the devkit's splits; built in for v1.0-mini; all scenes → ``test`` for v1.0-test).
    Returns:
        ``{split: number of samples, "files": [paths], "version": ...}``.
    Raises:
        NuScenesDataError naming the table folder and the field for damaged tables (a record without a field
        the conversion needs, a value of the wrong shape or type).
    """
    try:
        return _create_nuscenes_infos(root, out, version, max_sweeps, splits, prefix)
    except NuScenesDataError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        what = (f"a record lacks the field {exc}" if isinstance(exc, KeyError)
                else f"a malformed record ({type(exc).__name__}: {exc})")
        tdir = Path(root) / version if version else min(Path(root).glob("v1.0-*"), default=Path(root))
        raise NuScenesDataError(f"{tdir}: damaged nuScenes tables: {what}") from exc


def _create_nuscenes_infos(root: PathLike, out: Optional[PathLike], version: Optional[str], max_sweeps: int,
                           splits: Optional[Mapping[str, Sequence[str]]], prefix: str) -> Dict[str, Any]:
    tables = NuScenesTables(root, version)
    out_dir = Path(out) if out is not None else Path(root)
    scene_of_split = _scene_splits(tables, splits)
    result: Dict[str, Any] = {"version": tables.version, "files": []}
    metainfo = dict(categories={c: i for i, c in enumerate(NUSCENES_CLASSES)}, dataset="nuscenes",
                    version=tables.version, info_version="1.1")
    samples = sorted(tables.tables["sample"], key=lambda s: (tables.scene_name(s), s["timestamp"]))
    for split, scenes in scene_of_split.items():
        data_list = [nuscenes_info_entry(tables, s, i, max_sweeps)
                     for i, s in enumerate(x for x in samples if tables.scene_name(x) in scenes)]
        for i, e in enumerate(data_list):
            e["sample_idx"] = i
        path = out_dir / f"{prefix}_infos_{split}.pkl"
        save_infos(path, data_list, metainfo)
        result[split] = len(data_list)
        result["files"].append(str(path))
    return result


# ---------------------------------------------------------------------------------------------------------------
# info files
# ---------------------------------------------------------------------------------------------------------------
def _legacy_entry(info: Mapping, i: int) -> dict:
    """mmdet3d 1.0's ``infos`` entry (``lidar_path``, ``sweeps``, ``cams``, ``gt_boxes`` …) → a v1.1 entry."""
    def rt(rot, trans):
        m = np.eye(4)
        r = np.asarray(rot, np.float64)
        m[:3, :3] = quaternion_to_matrix(r) if r.shape == (4,) else r
        m[:3, 3] = np.asarray(trans, np.float64)
        return m
    l2e = rt(info["lidar2ego_rotation"], info["lidar2ego_translation"])
    e2g = rt(info["ego2global_rotation"], info["ego2global_translation"])
    entry: Dict[str, Any] = dict(sample_idx=i, token=info.get("token"), timestamp=info["timestamp"] / 1e6,
                                 ego2global=e2g.tolist(), images={}, lidar_sweeps=[], instances=[],
                                 lidar_points=dict(lidar_path=info["lidar_path"], num_pts_feats=5,
                                                   lidar2ego=l2e.tolist()))
    for sw in info.get("sweeps", []):
        s2l = rt(sw["sensor2lidar_rotation"], sw["sensor2lidar_translation"])
        entry["lidar_sweeps"].append(dict(lidar_points=dict(lidar_path=sw["data_path"], sensor2lidar=s2l.tolist(),
                                                            lidar2sensor=np.linalg.inv(s2l).tolist()),
                                          timestamp=sw["timestamp"] / 1e6))
    for cam, c in (info.get("cams") or {}).items():
        c2l = rt(c["sensor2lidar_rotation"], c["sensor2lidar_translation"])
        entry["images"][cam] = dict(img_path=c["data_path"], cam2img=np.asarray(c["cam_intrinsic"]).tolist(),
                                    lidar2cam=np.linalg.inv(c2l).tolist(), timestamp=c["timestamp"] / 1e6,
                                    cam2ego=rt(c["sensor2ego_rotation"], c["sensor2ego_translation"]).tolist())
    boxes = np.asarray(info.get("gt_boxes", np.zeros((0, 7))), np.float64).reshape(-1, 7)
    names = list(info.get("gt_names", []))
    velo = np.asarray(info.get("gt_velocity", np.zeros((len(boxes), 2))), np.float64).reshape(-1, 2)
    n_l = np.asarray(info.get("num_lidar_pts", np.full(len(boxes), -1))).reshape(-1)
    n_r = np.asarray(info.get("num_radar_pts", np.zeros(len(boxes)))).reshape(-1)
    for k in range(len(boxes)):
        label = NUSCENES_CLASSES.index(names[k]) if names[k] in NUSCENES_CLASSES else -1
        entry["instances"].append(dict(bbox_3d=boxes[k].tolist(), bbox_label_3d=label, velocity=velo[k].tolist(),
                                       num_lidar_pts=int(n_l[k]), num_radar_pts=int(n_r[k]),
                                       bbox_3d_isvalid=bool(n_l[k] + n_r[k] > 0)))
    return entry


def load_nuscenes_infos(path: PathLike) -> Tuple[dict, List[dict]]:
    """Read a nuScenes info pkl → ``(metainfo, data_list)`` in the v1.1 layout.

    Accepts mmdet3d ≥ 1.1 (``{metainfo, data_list}``) and mmdet3d 1.0 (``{infos, metadata}``, boxes
    ``(x, y, z_centre, l, w, h, yaw)``). An info file of another dataset is a ``NuScenesDataError``.
    """

    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = load_data_pickle(f)     # data only: a pickle naming other classes is refused
    except FileNotFoundError:
        raise
    except Exception as exc:  # a damaged pickle fails in many ways
        raise NuScenesDataError(f"{path}: not a readable info pickle: {exc}") from exc
    if isinstance(obj, dict) and "data_list" in obj:
        meta = dict(obj.get("metainfo") or {})
        ds = str(meta.get("dataset", "nuscenes")).lower()
        if ds != "nuscenes":
            raise NuScenesDataError(f"{path}: an info file of dataset {ds!r}, not nuScenes (metainfo.dataset)")
        data = list(obj["data_list"])
        for i, e in enumerate(data):
            if "lidar_points" not in e or "images" not in e:
                raise NuScenesDataError(f"{path}: entry {i} has no 'lidar_points' / 'images': not a nuScenes info")
        return meta, data
    if isinstance(obj, dict) and "infos" in obj:
        data = []
        for i, info in enumerate(obj["infos"]):
            try:
                data.append(_legacy_entry(info, i))
            except KeyError as exc:
                raise NuScenesDataError(f"{path}: legacy entry {i} lacks {exc}: not a nuScenes info") from None
        meta = dict(obj.get("metadata") or {}, dataset="nuscenes", info_version="1.0",
                    categories={c: i for i, c in enumerate(NUSCENES_CLASSES)})
        return meta, data
    raise NuScenesDataError(f"{path}: expected {{'metainfo', 'data_list'}} (mmdet3d >= 1.1) or {{'infos', "
                            f"'metadata'}} (mmdet3d 1.0), got {type(obj).__name__}"
                            + (f" with keys {sorted(obj)[:6]}" if isinstance(obj, dict) else ""))


def nuscenes_instances(entry: Mapping, classes: Sequence[str] = NUSCENES_CLASSES, file_classes: Sequence[str] =
                       NUSCENES_CLASSES, min_points: int = 1) -> Dict[str, np.ndarray]:
    """The entry's boxes in the house convention.

    Args:
        classes: labels are indices into these; instances of other classes are dropped.
        file_classes: the classes ``bbox_label_3d`` indexes (the info's ``metainfo["categories"]``).
        min_points: drop boxes with fewer LiDAR points (mmdet3d's default ``num_lidar_pts > 0``; 0 keeps all).
    Returns:
        ``gt_bboxes_3d`` float32 [M, 9] (x, y, z_bottom, dx, dy, dz, yaw, vx, vy; NaN velocity → 0 as mmdet3d),
        ``gt_labels_3d`` int64 [M], ``attr_labels`` int64 [M], ``num_lidar_pts`` / ``num_radar_pts`` int64 [M],
        ``velocity_valid`` bool [M], ``instance_index`` int64 [M] (the position in ``entry["instances"]``).
    """
    boxes, labels, attrs, n_l, n_r, vvalid, idx = [], [], [], [], [], [], []
    for k, inst in enumerate(entry.get("instances", []) or []):
        src = int(inst.get("bbox_label_3d", inst.get("bbox_label", -1)))
        name = file_classes[src] if 0 <= src < len(file_classes) else None
        n = int(inst.get("num_lidar_pts", -1))
        if name not in classes or (0 <= n < min_points):
            continue
        b = np.asarray(inst["bbox_3d"], np.float64).reshape(-1)
        if b.shape[0] < 7 or not np.isfinite(b[:7]).all():
            raise NuScenesDataError(f"sample {entry.get('token', entry.get('sample_idx'))}: instance {k} has a bad "
                                    f"bbox_3d {b.tolist()}")
        v = np.asarray(inst.get("velocity", [np.nan, np.nan]), np.float64).reshape(-1)[:2]
        vvalid.append(bool(np.isfinite(v).all()))
        v = np.where(np.isfinite(v), v, 0.0)
        boxes.append([b[0], b[1], b[2] - b[5] / 2, b[3], b[4], b[5], b[6], v[0], v[1]])
        labels.append(list(classes).index(name))
        attrs.append(int(inst.get("attr_label", len(NUSCENES_ATTRIBUTES) - 1)))
        n_l.append(n)
        n_r.append(int(inst.get("num_radar_pts", 0)))
        idx.append(k)
    return dict(gt_bboxes_3d=np.asarray(boxes, np.float32).reshape(-1, 9), gt_labels_3d=np.asarray(labels, np.int64),
                attr_labels=np.asarray(attrs, np.int64), num_lidar_pts=np.asarray(n_l, np.int64),
                num_radar_pts=np.asarray(n_r, np.int64), velocity_valid=np.asarray(vvalid, bool),
                instance_index=np.asarray(idx, np.int64))


# ---------------------------------------------------------------------------------------------------------------
# points and images
# ---------------------------------------------------------------------------------------------------------------
_CHANNEL_RE = re.compile(r"__(LIDAR_TOP|CAM_[A-Z_]+?)__")


def resolve_path(path: str, data_root: PathLike, kind: str = "samples") -> Path:
    """A file named by an info entry: ``data_root / path`` when it exists, else ``data_root/{samples,sweeps}/
    <CHANNEL>/<name>`` (mmdet3d v1.1 stores bare file names), else ``data_root/<name>``; the first candidate
    is returned when none exists (so the error names it)."""
    p = Path(path)
    if p.is_absolute():
        return p
    root = Path(data_root)
    cands = [root / p]
    m = _CHANNEL_RE.search(p.name)
    if m:
        other = "sweeps" if kind == "samples" else "samples"
        cands += [root / kind / m.group(1) / p.name, root / other / m.group(1) / p.name]
    cands.append(root / p.name)
    for c in cands:
        if c.is_file():
            return c
    return cands[0]


def load_points(path: PathLike, load_dim: int = 5) -> np.ndarray:
    """A ``.pcd.bin`` / ``.bin`` of float32 × ``load_dim`` → [N, load_dim] (clear error when truncated)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: LiDAR file not found")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % load_dim:
        raise NuScenesDataError(f"{path}: {raw.size} float32 values is not a whole number of {load_dim}-value "
                                f"points (truncated file or wrong load_dim)")
    return raw.reshape(-1, load_dim)


def load_multisweep_points(entry: Mapping, data_root: PathLike, sweeps_num: int = 10, load_dim: int = 5,
                           remove_close: bool = False, close_radius: float = 1.0, test_mode: bool = True,
                           rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Key frame + up to ``sweeps_num`` previous sweeps in the key frame's LiDAR frame: [N, 5]
    (x, y, z, intensity, time lag in s), as mmdet3d's ``LoadPointsFromMultiSweeps`` (column 4, the ring index,
    becomes the time lag: 0 for the key frame). ``test_mode`` takes the newest sweeps, else a random choice when
    more are listed. ``remove_close`` drops sweep points with |x| < r and |y| < r (the ego car's roof).
    Sweeps are moved with their exact ``sensor2lidar`` (``inv(lidar2sensor)``; mmdet3d 1.x applies the
    transposed rotation and the inverse's translation, equal only for a small rotation)."""
    key = load_points(resolve_path(entry["lidar_points"]["lidar_path"], data_root), load_dim)[:, :5].copy()
    key[:, 4] = 0.0
    sweeps = list(entry.get("lidar_sweeps", []) or [])
    if len(sweeps) <= sweeps_num:
        choice = range(len(sweeps))
    elif test_mode:
        choice = range(sweeps_num)
    else:
        choice = (rng if rng is not None else np.random).choice(len(sweeps), sweeps_num, replace=False)
    ts = float(entry["timestamp"])
    out = [key]
    for j in choice:
        sw = sweeps[j]
        lp = sw["lidar_points"]
        pts = load_points(resolve_path(lp["lidar_path"], data_root, kind="sweeps"), load_dim)[:, :5].copy()
        if remove_close:
            pts = pts[~((np.abs(pts[:, 0]) < close_radius) & (np.abs(pts[:, 1]) < close_radius))]
        s2l = (as_matrix4(lp["sensor2lidar"], "sensor2lidar") if "sensor2lidar" in lp
               else np.linalg.inv(as_matrix4(lp["lidar2sensor"], "lidar2sensor")))
        pts[:, :3] = (pts[:, :3].astype(np.float64) @ s2l[:3, :3].T + s2l[:3, 3]).astype(np.float32)
        pts[:, 4] = ts - float(sw["timestamp"])
        out.append(pts)
    return np.concatenate(out, axis=0).astype(np.float32)


def _read_image(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise NuScenesDataError(f"{path}: not a readable image")
    return img[:, :, ::-1].astype(np.float32) / 255.0


def load_camera_images(entry: Mapping, data_root: PathLike, cameras: Sequence[str] = CAMERA_NAMES,
                       load: bool = True) -> Dict[str, Any]:
    """Images and calibrations of the entry's cameras.

    Returns ``dict(cam_names [C], images list of [H, W, 3] float32 in [0, 1] (when ``load``), img_paths [C],
    cam2img [C, 3, 3], lidar2cam [C, 4, 4], lidar2img [C, 4, 4], cam2ego [C, 4, 4], img_shapes [C] (H, W))``.
    Raises ``NuScenesDataError`` naming the sample and the camera/field for a missing camera, calibration or
    image file, a non-invertible ``lidar2img``, or an image whose size differs from the one the info records.
    """
    sample = entry.get("token", entry.get("sample_idx"))
    images = entry.get("images") or {}
    if not isinstance(images, Mapping):
        raise NuScenesDataError(f"sample {sample}: 'images' must map camera names to entries, got "
                                f"{type(images).__name__}")
    out: Dict[str, Any] = dict(cam_names=[], images=[], img_paths=[], cam2img=[], lidar2cam=[], lidar2img=[],
                               cam2ego=[], img_shapes=[])
    for cam in cameras:
        if cam not in images:
            raise NuScenesDataError(f"sample {sample}: no camera {cam} in the info's 'images'")
        c = images[cam]
        if not isinstance(c, Mapping):
            raise NuScenesDataError(f"sample {sample}: images.{cam} must be a dict (img_path, cam2img, lidar2cam, "
                                    f"...), got {type(c).__name__}")
        for field in ("img_path", "cam2img", "lidar2cam"):
            if field not in c:
                raise NuScenesDataError(f"sample {sample}: images.{cam}.{field} is missing")
        k = as_matrix4(c["cam2img"], f"sample {sample}: images.{cam}.cam2img")
        l2c = as_matrix4(c["lidar2cam"], f"sample {sample}: images.{cam}.lidar2cam")
        try:
            l2i = check_invertible(compose_lidar2img(k, l2c), f"sample {sample}: images.{cam}: lidar2img")
        except ValueError as exc:
            raise NuScenesDataError(str(exc)) from None
        if not isinstance(c["img_path"], (str, Path)):
            raise NuScenesDataError(f"sample {sample}: images.{cam}.img_path must be a path, got "
                                    f"{type(c['img_path']).__name__}")
        path = resolve_path(c["img_path"], data_root)
        size = {}
        for field in ("height", "width"):
            v = c.get(field, 0)
            if (isinstance(v, bool) or not isinstance(v, (int, np.integer, float, np.floating))
                    or not (np.isfinite(v) and v >= 0 and float(v).is_integer())):
                raise NuScenesDataError(f"sample {sample}: images.{cam}.{field} must be a non-negative integer, "
                                        f"got {v!r}")
            size[field] = int(v)
        if load:
            if not path.is_file():
                raise NuScenesDataError(f"sample {sample}: images.{cam}.img_path {path} not found")
            img = _read_image(path)
            want = (size["height"], size["width"])
            if all(want) and img.shape[:2] != want:
                raise NuScenesDataError(f"sample {sample}: images.{cam}: {path} is {img.shape[1]}x{img.shape[0]}, "
                                        f"the calibration says {want[1]}x{want[0]}")
            out["images"].append(img)
            out["img_shapes"].append(img.shape[:2])
        else:
            h, w = (size[f] if f in c else d for f, d in (("height", 900), ("width", 1600)))
            out["img_shapes"].append((h, w))
        out["cam_names"].append(cam)
        out["img_paths"].append(str(path))
        out["cam2img"].append(k[:3, :3])
        out["lidar2cam"].append(l2c)
        out["lidar2img"].append(l2i)
        out["cam2ego"].append(as_matrix4(c.get("cam2ego", np.eye(4)), f"sample {sample}: images.{cam}.cam2ego"))
    for key in ("cam2img", "lidar2cam", "lidar2img", "cam2ego"):
        out[key] = np.asarray(out[key], np.float64).reshape((-1, 3, 3) if key == "cam2img" else (-1, 4, 4))
    return out


def load_nuscenes_frame(entry: Mapping, data_root: PathLike, sweeps_num: int = 10,
                        cameras: Optional[Sequence[str]] = CAMERA_NAMES, classes: Sequence[str] = NUSCENES_CLASSES,
                        file_classes: Sequence[str] = NUSCENES_CLASSES, min_points: int = 1,
                        skip_missing_cameras: bool = False, test_mode: bool = True,
                        stats: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """A results dict of one entry: ``points`` [N, 5] (multi-sweep), the keys of :func:`nuscenes_instances`,
    the keys of :func:`load_camera_images` (``cameras=None``: LiDAR only), ``sample_idx``, ``token``,
    ``timestamp``, ``lidar2ego``, ``ego2global``.

    ``skip_missing_cameras``: a sample whose cameras cannot be read is returned LiDAR-only (no ``images`` key,
    ``cameras_skipped=True``) with a warning, counted in ``stats["missing_cameras"]``; otherwise the error.
    """
    res: Dict[str, Any] = dict(sample_idx=entry.get("sample_idx"), token=entry.get("token"),
                               timestamp=entry.get("timestamp"),
                               lidar2ego=as_matrix4(entry["lidar_points"].get("lidar2ego", np.eye(4)), "lidar2ego"),
                               ego2global=as_matrix4(entry.get("ego2global", np.eye(4)), "ego2global"))
    res["points"] = load_multisweep_points(entry, data_root, sweeps_num=sweeps_num, test_mode=test_mode)
    res.update(nuscenes_instances(entry, classes, file_classes, min_points))
    if cameras:
        try:
            res.update(load_camera_images(entry, data_root, cameras))
        except NuScenesDataError as exc:
            if not skip_missing_cameras:
                raise
            if stats is not None:
                stats["missing_cameras"] = stats.get("missing_cameras", 0) + 1
            warnings.warn(f"{exc}; this sample is used LiDAR-only (skip_missing_cameras)")
            res["cameras_skipped"] = True
    return res


# ---------------------------------------------------------------------------------------------------------------
# the dataset a config names
# ---------------------------------------------------------------------------------------------------------------
@DATASETS.register_module()
class NuScenesDataset(BaseDataset):
    """nuScenes frames (LiDAR sweeps + cameras) from an info pkl, through a transform pipeline.

    Each item is :func:`load_nuscenes_frame`'s results dict (then the pipeline).

    Args:
        data_root: the nuScenes root (files named by the infos are searched under ``samples/``, ``sweeps/``
            and the root itself); ann_file: the info pkl (relative to ``data_root`` or absolute).
        metainfo: ``dict(classes=(...))`` (default mmdet3d's 10 classes, in its order).
        sweeps_num: LiDAR sweeps accumulated per frame (10 as mmdet3d's configs).
        cameras: camera names to load (default all 6; ``None`` or ``()``: LiDAR only).
        min_points: drop boxes with fewer LiDAR points (1 = mmdet3d's ``num_lidar_pts > 0``).
        skip_missing_cameras: use a sample whose cameras cannot be read LiDAR-only, with a counted warning
            (``num_missing_cameras``), instead of raising.
        load_interval: use every n-th sample.
    """

    METAINFO = dict(classes=NUSCENES_CLASSES)

    def __init__(self, data_root: str = "", ann_file: str = "", pipeline: Sequence = (),
                 metainfo: Optional[Mapping] = None, sweeps_num: int = 10,
                 cameras: Optional[Sequence[str]] = CAMERA_NAMES, min_points: int = 1,
                 skip_missing_cameras: bool = False, load_interval: int = 1, test_mode: bool = False,
                 **kwargs: Any):
        if int(load_interval) < 1:
            raise ValueError(f"load_interval={load_interval} must be >= 1")
        self.sweeps_num, self.min_points = int(sweeps_num), int(min_points)
        self.cameras = tuple(cameras) if cameras else None
        self.skip_missing_cameras = bool(skip_missing_cameras)
        self.load_interval = int(load_interval)
        self.stats: Dict[str, int] = {}
        import perception3d.datasets.transforms  # noqa: F401  (register the transforms)
        import perception3d.datasets.transforms_multimodal  # noqa: F401
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope("perception3d"):
            super().__init__(ann_file=ann_file, metainfo=metainfo, data_root=data_root, pipeline=list(pipeline),
                             test_mode=test_mode, **kwargs)

    @property
    def num_missing_cameras(self) -> int:
        return self.stats.get("missing_cameras", 0)

    def load_data_list(self) -> List[dict]:
        meta, data = load_nuscenes_infos(self.ann_file)
        cats = meta.get("categories")
        self._file_classes = (tuple(sorted(cats, key=cats.get)) if isinstance(cats, dict) and cats
                              else NUSCENES_CLASSES)
        return [dict(entry=e) for e in data[:: self.load_interval]]

    def prepare_data(self, idx: int) -> Any:
        entry = self.get_data_info(idx)["entry"]
        res = load_nuscenes_frame(entry, self.data_root, sweeps_num=self.sweeps_num, cameras=self.cameras,
                                  classes=self.metainfo["classes"], file_classes=self._file_classes,
                                  min_points=self.min_points, skip_missing_cameras=self.skip_missing_cameras,
                                  test_mode=self.test_mode, stats=self.stats)
        res["sample_idx"] = idx
        return self.pipeline(res)
