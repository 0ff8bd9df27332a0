"""Per-point semantic labels of the built-in mini dataset, in the Waymo v2 ``lidar_segmentation`` layout.

The labels are a separate component, written after the detection data by :func:`generate_waymo_mini_labels`
(``ensure_waymo_mini_labels`` does it when they are missing or stale), so that generating the detection data costs
nothing more and its files stay byte-identical.  For each segment the street is sampled again from the segment's
own seed (``sample_street_segment`` is a deterministic function of it), the TOP lidar's rays are cast again from
the poses *written* in ``lidar_pose`` / ``vehicle_pose``, and every pixel with a return gets the class of the
surface its ray hit first.  The re-cast distances must equal the written ranges up to the range noise, which
checks that the labels belong to the written points.

Layout (official ``LiDARSegmentationLabelComponent``): ``<root>/<split>/lidar_segmentation/<segment>.parquet``,
one row per frame of the TOP lidar, ``range_image_return{1,2}.values`` int32 ``[H, W, 2]`` = (instance id,
semantic class) with the classes of Waymo's ``Segmentation.Type`` (:data:`WAYMO_SEG_TYPES`; 0 = undefined, also
for pixels without a return).  Return 2 holds no returns in the mini data (all zeros).

Classes of the simulated street (Waymo type): vehicles → car (1; vans too) or truck (2); cyclists → bicyclist (6)
for the rider, bicycle (12) for the frame; pedestrians (7); poles (10); buildings and the fences / walls in front
of them (14); tree crowns and hedges (15); tree trunks (16); the kerb faces of the sidewalk slabs (17); road (18);
lane and zebra markings (19); grass off the road (21, walkable); sidewalk tops (22).  Street clutter (bins, boxes,
hydrants) is undefined (0), as Waymo leaves objects of no listed class.  Instance ids: agent index + 1 on the
agents, 0 elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from perception3d.datasets.synthetic.layout import sample_street_segment
from perception3d.datasets.synthetic.materials import _MAT, _ground_material
from perception3d.datasets.synthetic.objects import frame_scene
from perception3d.datasets.synthetic.raycast import Primitives, ray_cast
from perception3d.datasets.synthetic.scene import StreetSegment
from perception3d.datasets.synthetic.sensors import LidarSpec
from perception3d.datasets.synthetic.writer import (MANIFEST_NAME, SPLITS, _lock, _read_manifest, _run_jobs,
                                                    ensure_waymo_mini, write_parquet_atomic)
from perception3d.fileio import atomic_write_text

__all__ = ["WAYMO_SEG_TYPES", "SEG_COMPONENT", "SEG_SCHEMA", "SEG_MANIFEST_NAME", "static_primitive_types",
           "frame_labels", "generate_waymo_mini_labels", "ensure_waymo_mini_labels", "waymo_mini_labels_current"]

PathLike = Union[str, Path]

#: Waymo ``Segmentation.Type`` names, index = type id (segmentation.proto); 0 is undefined (ignored)
WAYMO_SEG_TYPES: Tuple[str, ...] = (
    "undefined", "car", "truck", "bus", "other_vehicle", "motorcyclist", "bicyclist", "pedestrian", "sign",
    "traffic_light", "pole", "construction_cone", "bicycle", "motorcycle", "building", "vegetation", "tree_trunk",
    "curb", "road", "lane_marker", "other_ground", "walkable", "sidewalk")
T = {name: i for i, name in enumerate(WAYMO_SEG_TYPES)}

SEG_COMPONENT = "lidar_segmentation"
SEG_MANIFEST_NAME = "waymo_mini_seg_manifest.json"
_SEG = "[LiDARSegmentationLabelComponent]"
_RI = [(f"{_SEG}.range_image_return{r}.{k}", pa.list_(pa.int32()) if k == "values" else pa.list_(pa.int32(), 3))
       for r in (1, 2) for k in ("values", "shape")]
#: official column names and types (waymo-open-dataset v2 ``LiDARSegmentationLabelComponent``)
SEG_SCHEMA = pa.schema([("key.segment_context_name", pa.string()), ("key.frame_timestamp_micros", pa.int64()),
                        ("key.laser_name", pa.int8())] + _RI)
LABELS_VERSION = 1             # bump when the labelling rules change (the labels are then written again)
_RANGE_TOL = 0.25              # |written range - re-cast distance| allowed (range noise sigma is 0.02 m)


# ----------------------------------------------------------------------------------------------------------------
# which class each primitive is
# ----------------------------------------------------------------------------------------------------------------
def _is(rgb: np.ndarray, mat: str) -> np.ndarray:
    return np.all(np.abs(rgb - np.asarray(_MAT[mat][1])) < 1e-12, axis=-1)


def static_primitive_types(prims: Primitives) -> Dict[str, np.ndarray]:
    """Waymo type of every *static* primitive (``obj == -1``; agents' entries are left at -1), per kind.

    The street layout draws each kind of static content with its own material (``materials._MAT``), so the class
    is read off the material: sidewalk slabs (exact sidewalk albedo), fences (→ building) and hedges
    (→ vegetation) by their albedo, buildings (tinted albedo, ≥ 5 m tall boxes) and clutter (≤ 1.5 m boxes →
    undefined); cylinders are poles or tree trunks (albedo), spheres are tree crowns.

    Raises:
        ValueError: a static primitive matches no rule (the layout gained content this labeller does not know).
    """
    out = {k: np.full(prims.obj[k].shape[0], -1, np.int64) for k in ("box", "cyl", "sph")}
    st = prims.obj["box"] < 0
    rgb, hz = prims.rgb["box"], prims.box_size[:, 2]
    rules = [(_is(rgb, "sidewalk"), T["sidewalk"]), (_is(rgb, "fence"), T["building"]),
             (_is(rgb, "hedge"), T["vegetation"]), (hz >= 5.0, T["building"]), (hz <= 1.5, T["undefined"])]
    for sel, t in rules:
        pick = st & sel & (out["box"] < 0)
        out["box"][pick] = t
    st = prims.obj["cyl"] < 0
    out["cyl"][st & _is(prims.rgb["cyl"], "pole")] = T["pole"]
    out["cyl"][st & _is(prims.rgb["cyl"], "trunk")] = T["tree_trunk"]
    out["sph"][prims.obj["sph"] < 0] = T["vegetation"]
    for k, types in out.items():
        bad = (prims.obj[k] < 0) & (types < 0)
        if bad.any():
            raise ValueError(f"mini-data labels: {int(bad.sum())} static {k} primitive(s) of no known material "
                             f"(e.g. #{int(np.nonzero(bad)[0][0])}): teach datasets/synthetic/labels.py the new "
                             f"content")
    return out


def _agent_types(seg: StreetSegment, kind: str, obj: np.ndarray) -> np.ndarray:
    """Waymo type of agent primitives of one kind ("box", "cyl", "sph") given their agent indices."""
    table = np.array([T["truck"] if a.subtype == "truck" else T["car"] if a.cls == "vehicle" else
                      T["pedestrian"] if a.cls == "pedestrian" else T["bicyclist"] for a in seg.agents] or [0],
                     np.int64)
    t = table[obj]
    if kind == "box":                       # a cyclist's boxes are the bicycle (frame, handlebar)
        t = np.where(t == T["bicyclist"], T["bicycle"], t)
    return t


def frame_labels(seg: StreetSegment, f: int, range_image: np.ndarray, pose_image: np.ndarray,
                 vehicle_pose: np.ndarray, lidar: LidarSpec, where: str = "") -> np.ndarray:
    """Labels ``[H, W, 2]`` int32 (instance id, Waymo type) of one written TOP range image.

    Args:
        seg: the segment, sampled again from its seed; f: frame index.
        range_image: the written return-1 range image [H, W, >=1]; pixels with range > 0 are labelled.
        pose_image: the written ``lidar_pose`` [H, W, 6] (roll, pitch, yaw, x, y, z per pixel).
        vehicle_pose: the written ``vehicle_pose`` [4, 4] (its rotation is every column's rotation).
    Raises:
        ValueError: a re-cast distance differs from the written range by more than the noise allows.
    """
    h, w = range_image.shape[:2]
    prims, _, _ = frame_scene(seg, f)
    static = static_primitive_types(prims)
    valid = range_image[..., 0] > 0
    dirs_s = lidar.sensor_dirs()
    kinds = np.zeros((h, w), np.int64)
    index = np.full((h, w), -1, np.int64)
    obj = np.full((h, w), -1, np.int64)
    tt = np.full((h, w), np.inf)
    normal_z = np.zeros((h, w))
    pz = np.zeros((h, w, 3))
    # columns fired from one pose form a group (the written rolling-shutter steps)
    col_xyz = pose_image[0, :, 3:6].astype(np.float64)
    starts = np.r_[0, np.nonzero(np.any(np.diff(col_xyz, axis=0) != 0, axis=1))[0] + 1, w]
    for a, b in zip(starts[:-1], starts[1:]):
        pose = np.array(vehicle_pose, np.float64)
        pose[:3, 3] = col_xyz[a]
        wfs = pose @ lidar.extrinsic
        o = wfs[:3, 3]
        d = dirs_s[:, a:b].reshape(-1, 3) @ wfs[:3, :3].T
        hits = ray_cast(o, d, prims, max_t=lidar.max_range + 1.0)
        sl = (slice(None), slice(a, b))
        kinds[sl], index[sl], obj[sl] = (x.reshape(h, b - a) for x in (hits.kind, hits.index, hits.obj))
        tt[sl] = hits.t.reshape(h, b - a)
        normal_z[sl] = hits.normal[:, 2].reshape(h, b - a)
        pz[sl] = (o[None] + d * np.where(np.isfinite(hits.t), hits.t, 0.0)[:, None]).reshape(h, b - a, 3)
    err = np.abs(range_image[..., 0].astype(np.float64) - tt)
    bad = valid & ~(err <= _RANGE_TOL)
    if bad.any():
        raise ValueError(f"mini-data labels{where}: {int(bad.sum())} of {int(valid.sum())} returns do not match the "
                         f"re-cast scene (largest difference {float(np.nanmax(np.where(bad, err, 0))):.2f} m): the "
                         f"data were written by another generator version; regenerate the dataset")
    sem = np.zeros((h, w), np.int64)
    g = kinds == 1                                   # ground plane: road / markings / grass
    if g.any():
        refl, _ = _ground_material(pz[g], seg.layout)
        sem[g] = np.where(refl == _MAT["marking"][0], T["lane_marker"],
                          np.where(refl == _MAT["road"][0], T["road"], T["walkable"]))
    for k, name in ((2, "box"), (3, "cyl"), (4, "sph")):
        s = kinds == k
        if not s.any():
            continue
        i, o_ = index[s], obj[s]
        t = np.where(o_ >= 0, _agent_types(seg, name, np.maximum(o_, 0)), static[name][i])
        if name == "box":                            # the vertical faces of a sidewalk slab are the kerb
            t = np.where((t == T["sidewalk"]) & (np.abs(normal_z[s]) < 0.5), T["curb"], t)
        sem[s] = t
    inst = np.where(obj >= 0, obj + 1, 0)
    out = np.stack([np.where(valid, inst, 0), np.where(valid, sem, 0)], -1).astype(np.int32)
    return out


# ----------------------------------------------------------------------------------------------------------------
# the component on disk
# ----------------------------------------------------------------------------------------------------------------
def _read_top_frames(split_dir: Path, name: str) -> List[Tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(timestamp, range image [H, W, 4], lidar_pose [H, W, 6], vehicle_pose [4, 4]) of a written segment."""
    def table(comp, cols):
        return pq.read_table(split_dir / comp / f"{name}.parquet", columns=cols).to_pydict()
    li = table("lidar", ["key.frame_timestamp_micros", "key.laser_name", "[LiDARComponent].range_image_return1.values",
                         "[LiDARComponent].range_image_return1.shape"])
    lp = table("lidar_pose", ["key.frame_timestamp_micros", "[LiDARPoseComponent].range_image_return1.values",
                              "[LiDARPoseComponent].range_image_return1.shape"])
    vp = table("vehicle_pose", ["key.frame_timestamp_micros", "[VehiclePoseComponent].world_from_vehicle.transform"])
    poses = {t: np.asarray(v, np.float32).reshape(-1, 6) for t, v in zip(
        lp["key.frame_timestamp_micros"], lp["[LiDARPoseComponent].range_image_return1.values"])}
    veh = {t: np.asarray(v, np.float64).reshape(4, 4) for t, v in zip(
        vp["key.frame_timestamp_micros"], vp["[VehiclePoseComponent].world_from_vehicle.transform"])}
    out = []
    for t, laser, vals, shape in zip(li["key.frame_timestamp_micros"], li["key.laser_name"],
                                     li["[LiDARComponent].range_image_return1.values"],
                                     li["[LiDARComponent].range_image_return1.shape"]):
        if laser != 1:
            continue
        ri = np.asarray(vals, np.float32).reshape(shape)
        out.append((int(t), ri, poses[t].reshape(shape[0], shape[1], 6), veh[t]))
    return sorted(out, key=lambda x: x[0])


def _label_segment(job: tuple) -> Tuple[str, Dict[str, int]]:
    """Label one written segment (a job of :func:`generate_waymo_mini_labels`) → (file, pixel counts per type)."""
    root, seed, split_id, split_dir, idx, name, frame_interval_s, lidar_width = job
    split_path = Path(root) / split_dir
    frames = _read_top_frames(split_path, name)
    rng = np.random.default_rng([seed, split_id, idx])
    seg = sample_street_segment(rng, len(frames), frame_interval_s, name_prefix="")
    lidar = LidarSpec(width=lidar_width)
    rows: Dict[str, list] = {n: [] for n in SEG_SCHEMA.names}
    counts = np.zeros(len(WAYMO_SEG_TYPES), np.int64)
    for f, (ts, ri, pose_img, veh) in enumerate(frames):
        lab = frame_labels(seg, f, ri, pose_img, veh, lidar, where=f" ({split_dir}/{name}, frame {ts})")
        counts += np.bincount(lab[..., 1][ri[..., 0] > 0], minlength=len(WAYMO_SEG_TYPES))
        h, w = ri.shape[:2]
        for k, v in (("key.segment_context_name", name), ("key.frame_timestamp_micros", ts), ("key.laser_name", 1),
                     (f"{_SEG}.range_image_return1.values", lab.reshape(-1)),
                     (f"{_SEG}.range_image_return1.shape", [h, w, 2]),
                     (f"{_SEG}.range_image_return2.values", np.zeros(h * w * 2, np.int32)),
                     (f"{_SEG}.range_image_return2.shape", [h, w, 2])):
            rows[k].append(v)
    rel = f"{split_dir}/{SEG_COMPONENT}/{name}.parquet"
    write_parquet_atomic(Path(root) / rel, rows, SEG_SCHEMA)
    return rel, {WAYMO_SEG_TYPES[i]: int(c) for i, c in enumerate(counts) if c}


def _source_fingerprint(root: Path) -> str:
    p = root / MANIFEST_NAME
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "none"


def waymo_mini_labels_current(root: PathLike) -> bool:
    """Whether ``root`` holds labels written for exactly the detection data there now."""
    root = Path(root)
    try:
        m = json.loads((root / SEG_MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return False
    return (m.get("source") == _source_fingerprint(root) and m.get("version") == LABELS_VERSION
            and all((root / f).is_file() for f in m.get("files", [])))


def generate_waymo_mini_labels(root: PathLike, workers: Optional[int] = None) -> dict:
    """Write the ``lidar_segmentation`` component of the mini dataset at ``root`` (which must exist), one segment
    per job (``workers`` processes; default one per core), and ``waymo_mini_seg_manifest.json`` last.

    Returns:
        summary: ``points`` per Waymo type name and split, ``seconds``, ``cpu_seconds``.
    """
    import os
    root = Path(root)
    manifest = _read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"{root / MANIFEST_NAME}: no mini dataset here; generate it first "
                                f"(generate_waymo_mini / tools/create_data.py)")
    params = manifest["params"]
    jobs = []
    for split_id, (split, split_dir) in enumerate(SPLITS.items()):
        names = sorted({Path(f).stem for f in manifest["files"] if f.startswith(f"{split_dir}/lidar/")})
        for name in names:
            idx = int(name.rsplit("_", 1)[1])
            jobs.append((str(root), params["seed"], split_id, split_dir, idx, name, params["frame_interval_s"],
                         params["lidar_width"]))
    start, cpu0 = time.time(), time.process_time()
    for split_dir in SPLITS.values():
        folder = root / split_dir / SEG_COMPONENT
        if folder.is_dir():
            for p in folder.glob("synth*_*.parquet"):
                p.unlink()
    files: List[str] = []
    summary: dict = {"points": {s: {} for s in SPLITS}}
    dir_to_split = {v: k for k, v in SPLITS.items()}
    workers = max(1, min(int(workers if workers is not None else (os.cpu_count() or 1)), max(len(jobs), 1)))
    for job, (rel, counts) in zip(jobs, _run_jobs(_label_segment, jobs, workers)):
        files.append(rel)
        into = summary["points"][dir_to_split[job[3]]]
        for k, v in counts.items():
            into[k] = into.get(k, 0) + v
    summary["seconds"] = round(time.time() - start, 2)
    summary["cpu_seconds"] = round(time.process_time() - cpu0, 2)
    atomic_write_text(root / SEG_MANIFEST_NAME, json.dumps(dict(
        version=LABELS_VERSION, source=_source_fingerprint(root), files=sorted(files), summary=summary),
        indent=1, sort_keys=True))
    return summary


def ensure_waymo_mini_labels(root: PathLike = "data/waymo_mini", workers: Optional[int] = None, **kwargs) -> Path:
    """Make sure the mini dataset (``ensure_waymo_mini(root, **kwargs)``) and its labels exist; returns ``root``."""
    root = Path(root)
    ensure_waymo_mini(root, **kwargs)
    with _lock(root):
        if not waymo_mini_labels_current(root):
            generate_waymo_mini_labels(root, workers=workers)
    return root
