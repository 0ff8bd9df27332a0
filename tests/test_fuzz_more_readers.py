"""Fuzzing the readers added after ``tests/test_fuzz_formats.py``: the ZJU-MoCap layout of the built-in human
dataset (``read_zju_mocap``: ``annots.npy``, ``new_params``, images, masks), SemanticKITTI ``.label`` / ``.bin``,
Waymo v2 ``lidar_segmentation``, ``camera_image`` and ``camera_calibration`` (schema changes and damaged JPEG
cells), and the multi-view camera entries of an info file (``load_camera_images``, which
``MultiViewDet3DDataset`` and the nuScenes loader call).

Two kinds of damage: bytes (truncation, overwrites, insertions, deletions of the file, as in
``tests/test_fuzz_readers.py``) and structure (a key of a pickled / info dict dropped, or its value replaced by
one of another type or shape, a list cut short) — a byte-damaged pickle mostly fails to unpickle, so the
structure is where a reader's own checks are tried.  Same rule as there: success, or a ``ValueError`` (the
package's error types derive from it) / ``FileNotFoundError`` whose message names the file (or the info's sample
and field); anything else is a crash, more than ``HANG_S`` s a hang.
``pytest -m fuzz tests/test_fuzz_more_readers.py -s`` runs the long version and prints the table.
"""
from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from test_fuzz_formats import STATS, apply_schema_change, classify, run_examples
from test_fuzz_readers import _mutations, damage

# ------------------------------------------------------------------------------------------- structure damage
WRONG = [None, "x", 1.5, -1, 10 ** 12, float("nan"), [], {}, [[1.0]], [1, "a"], (0.0,) * 7, True]


def _paths(obj, prefix=()):
    """Every (path) into nested dicts / lists / tuples / arrays of ``obj`` (arrays are leaves)."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj[:3]):        # the first few items stand for the rest
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def structure_ops():
    """(path index, op, value index, array shape): ``op`` drop | wrong | cut | reshape."""
    return st.tuples(st.integers(0, 10 ** 6), st.sampled_from(["drop", "wrong", "wrong", "cut", "reshape"]),
                     st.integers(0, len(WRONG) - 1), st.sampled_from([(0,), (2,), (3, 3), (2, 4), (1, 72), (5, 1)]))


def mutate(obj, op):
    """A copy of ``obj`` with one change ``op`` (see :func:`structure_ops`); returns (obj, description)."""
    import copy
    obj = copy.deepcopy(obj)
    paths = _paths(obj)
    if not paths:
        return obj, "nothing to change"
    path = paths[op[0] % len(paths)]
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    key, kind = path[-1], op[1]
    if isinstance(parent, tuple):             # tuples are leaves' containers too: make them editable
        return obj, f"{path}: tuple left alone"
    if kind == "drop":
        del parent[key]
    elif kind == "wrong":
        parent[key] = WRONG[op[2]]
    elif kind == "cut":
        v = parent[key]
        parent[key] = v[:len(v) // 2] if isinstance(v, (list, str, bytes, np.ndarray)) else WRONG[op[2]]
    else:
        parent[key] = np.zeros(op[3])
    return obj, f"{kind} {path}"


# ------------------------------------------------------------------------------------- ZJU-MoCap (human data)
def _zju(d: Path) -> Path:
    """A tiny sequence in the layout the built-in human dataset writes (2 cameras, 2 frames, 16 × 12 images)."""
    import imageio.v3 as iio
    W, H = 16, 12
    cams = {"K": [np.array([[20.0, 0, 7.5], [0, 20, 5.5], [0, 0, 1]])] * 2, "D": [np.zeros((5, 1))] * 2,
            "R": [np.eye(3)] * 2, "T": [np.array([[0.0], [0.0], [3000.0]]), np.array([[100.0], [0.0], [3000.0]])]}
    ims = []
    for f in range(2):
        names = [f"Camera_B{c + 1}/{f:06d}.jpg" for c in range(2)]
        for c, n in enumerate(names):
            (d / n).parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(d / n, np.full((H, W, 3), 40 * (c + 1) + f, np.uint8), quality=100)
            m = np.zeros((H, W), np.uint8)
            m[2:8, 3:7] = 1
            (d / "mask" / n).parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(d / "mask" / (n[:-4] + ".png"), m)
        ims.append({"ims": names})
    np.save(d / "annots.npy", {"cams": cams, "ims": ims})
    (d / "new_vertices").mkdir()
    (d / "new_params").mkdir()
    for f in range(2):
        np.save(d / "new_vertices" / f"{f}.npy", np.zeros((6890, 3), np.float32))
        np.save(d / "new_params" / f"{f}.npy", {"poses": np.zeros((1, 72)), "Rh": np.zeros((1, 3)),
                                                "Th": np.zeros((1, 3)), "shapes": np.zeros((1, 10))})
    return d / "annots.npy"


def _read_zju(d: Path):
    """What a human trainer reads of a sequence: the cameras, then every frame's images, masks, body."""
    from perception3d.rendering.human.zju_mocap import read_zju_mocap
    seq = read_zju_mocap(d)
    for f in range(len(seq)):
        for c in range(seq.num_cameras):
            seq.image(f, c)
            seq.mask(f, c)
        seq.vertices(f)
        seq.params(f)
    return seq


def _zju_files(d: Path) -> list:
    return ["annots.npy", "new_params/0.npy", "new_vertices/1.npy", "Camera_B1/000000.jpg",
            "mask/Camera_B2/000001.png"]


def try_zju(case) -> None:
    """``case`` = ("bytes", file index, ops) or ("struct", pickle index, op)."""
    name = "ZJU-MoCap / built-in human dataset"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "seq"
        d.mkdir()
        _zju(d)
        if case[0] == "bytes":
            f = d / _zju_files(d)[case[1] % 5]
            f.write_bytes(damage(f.read_bytes(), case[2]))
            what = (f.name, case[2])
        else:
            f = d / ("annots.npy", "new_params/1.npy")[case[1] % 2]
            obj, what = mutate(np.load(f, allow_pickle=True).item(), case[2])
            np.save(f, obj, allow_pickle=True)
            what = (f.name, what)
        classify(name, lambda: _read_zju(d), (str(d),), what, tmp)


def zju_cases():
    return st.one_of(st.tuples(st.just("bytes"), st.integers(0, 4), _mutations(False)),
                     st.tuples(st.just("struct"), st.integers(0, 1), structure_ops()))


# -------------------------------------------------------------------------------------------- SemanticKITTI
def _semantickitti(d: Path) -> tuple:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 4)).astype(np.float32)
    (d / "000000.bin").write_bytes(pts.tobytes())
    raw = rng.choice([0, 1, 10, 40, 48, 50, 70, 252], 50).astype(np.uint32) | (rng.integers(0, 5, 50,
                                                                                              dtype=np.uint32) << 16)
    (d / "000000.label").write_bytes(raw.tobytes())
    return d / "000000.bin", d / "000000.label"


def _read_semantickitti(scan: Path, label: Path):
    from perception3d.datasets.semantickitti import read_label, read_scan
    pts = read_scan(scan)
    return read_label(label, num_points=pts.shape[0])


def try_semantickitti(case) -> None:
    which, ops = case
    with tempfile.TemporaryDirectory() as tmp:
        scan, label = _semantickitti(Path(tmp))
        f = (scan, label)[which]
        f.write_bytes(damage(f.read_bytes(), ops))
        classify("SemanticKITTI .label / .bin", lambda: _read_semantickitti(scan, label), (scan.name, label.name),
                 (f.name, ops), tmp)


# ------------------------------------------------------------------ Waymo v2 segmentation and camera components
_SEGMENT: dict = {}
WAYMO_NEW = ("lidar_segmentation", "camera_image", "camera_calibration")


def _waymo_segment() -> Path:
    """One training segment of two frames with the FRONT camera and LiDAR segmentation labels (made once)."""
    if "dir" not in _SEGMENT:
        from perception3d.datasets import generate_waymo_mini
        from perception3d.datasets.synthetic.labels import generate_waymo_mini_labels
        d = Path(tempfile.mkdtemp(prefix="p3dfuzz_waymo_cam_"))
        generate_waymo_mini(d, num_train=2, num_val=0, frames_per_segment=2, lidar_width=64, camera=True,
                            workers=1)
        generate_waymo_mini_labels(d, workers=1)
        _SEGMENT["dir"] = d / "training"
    return _SEGMENT["dir"]


def read_new_components(split_dir: Path, segment: str) -> int:
    """Labels (both returns) joined to the TOP points of each labelled frame, the calibrations, each frame's
    decoded images."""
    from perception3d.datasets.waymo_v2 import WaymoV2Segment, read_lidar_segmentation, top_points_with_labels
    labels = read_lidar_segmentation(split_dir / "lidar_segmentation" / f"{segment}.parquet", returns=(1, 2))
    seg = WaymoV2Segment(split_dir, segment, lasers=(1,), returns=(1,))
    n = 0
    for (ts, laser), lab in labels.items():
        if laser == 1:
            n += len(top_points_with_labels(seg, ts, lab[0])[1])
    seg.camera_calibrations()
    for ts in seg.timestamps:
        n += len(seg.camera_images(ts, decode=True))
    return n


@st.composite
def waymo_changes(draw):
    """A schema change of one of the new components (as in ``test_fuzz_formats``), or byte damage to one encoded
    JPEG of ``camera_image`` ("jpeg", row, ops)."""
    comp = draw(st.sampled_from(WAYMO_NEW))
    if comp == "camera_image" and draw(st.booleans()):
        return comp, "jpeg", draw(st.integers(0, 1000)), draw(_mutations(False))
    change = draw(st.sampled_from(["drop", "rename", "cast", "nulls", "zero_rows", "empty_row_groups", "dup_rows",
                                   "half_rows", "shuffle", "values"]))
    return comp, change, draw(st.integers(0, 1000)), draw(st.sampled_from(
        ["string", "int64", "float32", "float64", "list<float>", "bool", "null"]))


def _change_cells(path: Path, change: tuple) -> str:
    """Cell-level damage: a damaged JPEG ("jpeg") or a numeric list column's values shifted / cut ("values")."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    _, kind, i, arg = change
    t = pq.read_table(path)
    if kind == "jpeg":
        col = [c for c in t.column_names if c.endswith(".image")][0]
        cells = t.column(col).to_pylist()
        r = i % len(cells)
        cells[r] = damage(cells[r], arg)
        t = t.set_column(t.column_names.index(col), col, pa.array(cells, t.schema.field(col).type))
        pq.write_table(t, path)
        return f"jpeg row {r} {arg}"
    lists = [c for c in t.column_names if pa.types.is_list(t.schema.field(c).type)
             or pa.types.is_fixed_size_list(t.schema.field(c).type)]
    numeric = [c for c in t.column_names if pa.types.is_integer(t.schema.field(c).type)
               or pa.types.is_floating(t.schema.field(c).type)]
    cols = lists + numeric
    col = cols[i % len(cols)]
    cells = t.column(col).to_pylist()
    r = (i // len(cols)) % len(cells)
    if col in lists:
        v = cells[r] or []
        cells[r] = [x + 1000 for x in v] if i % 2 else v[:len(v) // 2]
        typ = t.schema.field(col).type
        arr = pa.array(cells, pa.list_(typ.value_type)) if pa.types.is_fixed_size_list(typ) and i % 2 == 0 \
            else pa.array(cells, typ)
    else:
        cells[r] = -cells[r] - 1 if i % 2 else cells[r] * 1000
        try:
            arr = pa.array(cells, t.schema.field(col).type)
        except (pa.ArrowInvalid, OverflowError):       # past a narrow integer type's range: its lowest value
            cells[r] = -(2 ** (t.schema.field(col).type.bit_width - 1))
            arr = pa.array(cells, t.schema.field(col).type)
    t = t.set_column(t.column_names.index(col), col, arr)
    pq.write_table(t, path)
    return f"values {col} row {r}"


def try_waymo_change(change: tuple) -> None:
    name = f"Waymo v2 {change[0]}"
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "training"
        shutil.copytree(_waymo_segment(), split)
        segment = sorted(p.stem for p in (split / "lidar_segmentation").glob("*.parquet"))[0]
        path = split / change[0] / f"{segment}.parquet"
        what = (_change_cells(path, change) if change[1] in ("jpeg", "values")
                else apply_schema_change(path, change))
        classify(name, lambda: read_new_components(split, segment), (segment,), (change[0], what), tmp)


# ------------------------------------------------------------------------ multi-view camera entries of an info
def _multiview(d: Path) -> dict:
    import cv2
    entry = dict(sample_idx=7, token="tok7", images={})
    for c, cam in enumerate(("CAM_FRONT", "CAM_FRONT_LEFT")):
        img = (np.arange(12 * 16 * 3).reshape(12, 16, 3) % 251).astype(np.uint8)
        cv2.imwrite(str(d / f"{cam}.jpg"), img)
        entry["images"][cam] = dict(img_path=f"{cam}.jpg", height=12, width=16,
                                    cam2img=[[10.0, 0, 8], [0, 10, 6], [0, 0, 1]],
                                    lidar2cam=[[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0.5 * c], [0, 0, 0, 1]],
                                    cam2ego=np.eye(4).tolist())
    return entry


def try_multiview(case) -> None:
    from perception3d.datasets.nuscenes import load_camera_images
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        entry = _multiview(d)
        if case[0] == "bytes":
            f = d / ("CAM_FRONT.jpg", "CAM_FRONT_LEFT.jpg")[case[1] % 2]
            f.write_bytes(damage(f.read_bytes(), case[2]))
            what = (f.name, case[2])
        else:
            entry, what = mutate(entry, case[2])
        classify("multi-view camera entries (load_camera_images)",
                 lambda: load_camera_images(entry, d, ("CAM_FRONT", "CAM_FRONT_LEFT")),
                 ("sample tok7", "sample 7", "CAM_FRONT"), what, tmp)


# ------------------------------------------------------------------------------------------------- the runs
FUZZERS = {
    "ZJU-MoCap / built-in human dataset": (zju_cases, try_zju),
    "SemanticKITTI .label / .bin": (lambda: st.tuples(st.integers(0, 1), _mutations(False)), try_semantickitti),
    "Waymo v2 lidar_segmentation / camera_image / camera_calibration": (waymo_changes, try_waymo_change),
    "multi-view camera entries (load_camera_images)": (
        lambda: st.one_of(st.tuples(st.just("bytes"), st.integers(0, 1), _mutations(False)),
                          st.tuples(st.just("struct"), st.just(0), structure_ops())), try_multiview),
}


def _fuzz(name: str, examples: int) -> None:
    strategy, attempt = FUZZERS[name]
    run_examples(name, strategy(), attempt, examples)
    if name.startswith("Waymo"):
        for comp in WAYMO_NEW:
            s = STATS[f"Waymo v2 {comp}"]
            assert s["crashes"] == 0 and s["hangs"] == 0, f"{comp}: {s['examples'][:3]}"


def test_valid_inputs_read(tmp_path):
    """The undamaged inputs read fine (so every error in the fuzz runs comes from the damage)."""
    d = tmp_path / "seq"
    d.mkdir()
    _zju(d)
    seq = _read_zju(d)
    assert len(seq) == 2 and seq.num_cameras == 2
    sem, inst = _read_semantickitti(*_semantickitti(tmp_path))
    assert sem.shape == (50,) and sem.max() > 0 and inst.max() > 0
    from perception3d.datasets.nuscenes import load_camera_images
    out = load_camera_images(_multiview(tmp_path), tmp_path, ("CAM_FRONT", "CAM_FRONT_LEFT"))
    assert len(out["images"]) == 2 and out["lidar2img"].shape == (2, 4, 4)
    split = _waymo_segment()
    segment = sorted(p.stem for p in (split / "lidar_segmentation").glob("*.parquet"))[0]
    assert read_new_components(split, segment) > 0


@pytest.mark.parametrize("name", list(FUZZERS))
def test_fuzz_more_quick(name):
    _fuzz(name, 8)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", list(FUZZERS))
def test_fuzz_more_long(name):
    n = int(os.environ.get("P3D_FUZZ_EXAMPLES", "300"))
    _fuzz(name, 3 * n if name.startswith("Waymo") else n)     # Waymo: three components share the draws


def teardown_module(module):
    rows = ["| reader | inputs | read fine | clear errors | crashes | hangs | distinct error messages |",
            "|---|---|---|---|---|---|---|"]
    for name, s in STATS.items():
        if s["inputs"]:
            rows.append(f"| {name} | {s['inputs']} | {s['ok']} | {s['errors']} | {s['crashes']} | {s['hangs']} | "
                        f"{len(s['messages'])} |")
            for ex in s["examples"][:5]:
                rows.append(f"|   crash example: {str(ex)[:400]} |")
    print("\n" + "\n".join(rows))
    if "dir" in _SEGMENT:
        shutil.rmtree(_SEGMENT["dir"].parent, ignore_errors=True)
