"""Fuzzing the formats ``tests/test_fuzz_readers.py`` does not cover: nerfstudio / instant-ngp and Blender
``transforms.json``, SpaRe submission zips, nuScenes info pickles and json tables, Waymo v2 parquet schema changes
(columns dropped, renamed, of another type, all null; zero-row tables and empty row groups; duplicated rows), and
mmengine configs (unknown keys, values of the wrong type).

Same rule as there: a reader may succeed or raise a ``ValueError`` (the package's ``DataFormatError`` or a
reader's own subclass) / ``FileNotFoundError`` / ``KeyError`` (configs) whose message names the file — for
configs the key; anything else, or a message that names neither, is a crash; more than ``HANG_S`` s is a hang.
``pytest -m fuzz tests/test_fuzz_formats.py -s`` runs the long version and prints the table.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from test_fuzz_readers import _mutations, damage

HANG_S = 20
ROOT = Path(__file__).resolve().parents[1]
STATS: dict = defaultdict(lambda: dict(inputs=0, ok=0, errors=0, crashes=0, hangs=0, messages=set(), examples=[]))


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang()


def classify(name: str, run: Callable[[], object], names: tuple, ops, tmp: str = "",
             accept: tuple = (ValueError, FileNotFoundError)) -> None:
    """Run ``run()`` and count its outcome under ``name``: fine, a clear error (one of ``accept`` whose message
    contains one of ``names``), a crash or a hang."""
    s = STATS[name]
    s["inputs"] += 1
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        run()
        s["ok"] += 1
    except _Hang:
        s["hangs"] += 1
        s["examples"].append(("hang", ops))
    except accept as exc:
        msg = str(exc)
        if any(n and n in msg for n in names):
            s["errors"] += 1
            s["messages"].add(re.sub(r"[-+.\d]+", "#", msg.replace(tmp, "<dir>") if tmp else msg)[:160])
        else:
            s["crashes"] += 1
            s["examples"].append((f"{type(exc).__name__} without the file / key: {msg[:300]}", ops))
    except Exception as exc:  # noqa: BLE001 — anything else is a crash
        s["crashes"] += 1
        s["examples"].append((f"{type(exc).__name__}: {str(exc)[:300]}", ops))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _check(name: str) -> None:
    s = STATS[name]
    assert s["crashes"] == 0 and s["hangs"] == 0, f"{name}: {s['examples'][:3]}"


def _png(path: Path, w: int = 8, h: int = 6) -> None:
    import cv2
    img = (np.arange(w * h * 3).reshape(h, w, 3) % 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


# ------------------------------------------------------------------------------------------ byte-damaged files
def _nerfstudio(d: Path) -> Path:
    for i in range(2):
        _png(d / "images" / f"{i:04d}.png")
    frames = [dict(file_path=f"images/{i:04d}.png",
                   transform_matrix=[[1, 0, 0, 0.1 * i], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]]) for i in range(2)]
    (d / "transforms.json").write_text(json.dumps(dict(
        camera_model="OPENCV", fl_x=9.0, fl_y=9.5, cx=4.0, cy=3.0, w=8, h=6, k1=0.01, k2=-0.002, p1=0.001,
        p2=0.0, aabb_scale=4, frames=frames), indent=1))
    return d / "transforms.json"


def _read_nerfstudio(p: Path):
    from perception3d.rendering.readers.nerfstudio import read_nerfstudio
    scene = read_nerfstudio(p.parent)
    return scene.image(0)


def _blender(d: Path) -> Path:
    for i in range(2):
        _png(d / "train" / f"r_{i}.png")
    frames = [dict(file_path=f"./train/r_{i}", rotation=0.0,
                   transform_matrix=[[1, 0, 0, 0.1 * i], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]]) for i in range(2)]
    (d / "transforms_train.json").write_text(json.dumps(dict(camera_angle_x=0.69, frames=frames), indent=1))
    return d / "transforms_train.json"


def _read_blender(p: Path):
    from perception3d.rendering.readers.blender import read_blender
    scene = read_blender(p.parent, splits=("train",))
    return scene.image(0)


SPARE_SPLIT = {"scan24": dict(input_views=[0, 1], test_views=[2, 3], dataset="dtu")}
SPARE_SIZE = (16, 12)


def _spare_zip(d: Path) -> Path:
    from perception3d.evaluation.spare import write_submission
    rng = np.random.default_rng(0)
    renders = {"scan24": {i: rng.random((12, 16, 3)).astype(np.float32) for i in (2, 3)}}
    write_submission(renders, SPARE_SPLIT, d / "submission.zip", size=SPARE_SIZE)
    return d / "submission.zip"


def _read_spare_zip(p: Path):
    """``check_submission`` (what ``tools/spare_submit.py`` / ``spare_eval.py`` run first) returns the problems
    it finds, one string each; it must not raise."""
    from perception3d.evaluation.spare import check_submission
    problems = check_submission(p, SPARE_SPLIT, size=SPARE_SIZE)
    assert isinstance(problems, list) and all(isinstance(m, str) for m in problems), problems
    if problems:                # counted as a clear error in the table, with its distinct messages
        raise ValueError(f"{p}: {problems[0]}")
    return problems


def _nuscenes_info(d: Path) -> Path:
    p = d / "nuscenes_infos_val.pkl"
    entry = dict(sample_idx=0, token="t0", timestamp=1.5, ego2global=np.eye(4).tolist(),
                 lidar_points=dict(lidar_path="n__LIDAR_TOP__1.pcd.bin", num_pts_feats=5),
                 images=dict(CAM_FRONT=dict(img_path="c.jpg", cam2img=np.eye(3).tolist(),
                                            lidar2cam=np.eye(4).tolist())),
                 lidar_sweeps=[], instances=[dict(bbox_3d=[1.0, 2, 0, 4, 2, 1.5, 0.1], bbox_label_3d=0,
                                                  velocity=[0.5, 0.0], num_lidar_pts=5)])
    with open(p, "wb") as f:
        pickle.dump(dict(metainfo=dict(dataset="nuscenes", categories={"car": 0}), data_list=[entry]), f, protocol=2)
    return p


def _read_nuscenes_info(p: Path):
    from perception3d.datasets.nuscenes import load_nuscenes_infos, nuscenes_instances
    meta, data = load_nuscenes_infos(p)
    return [nuscenes_instances(e) for e in data]


NUSCENES_TABLES = ("sample", "sample_data", "calibrated_sensor", "sensor", "ego_pose", "sample_annotation",
                   "instance", "category", "attribute", "scene")


def _nuscenes_tables(which: str):
    def make(d: Path) -> Path:
        from test_nuscenes import write_tiny_nuscenes
        write_tiny_nuscenes(d)
        p = d / "v1.0-mini" / f"{which}.json"
        p.write_text(json.dumps(json.loads(p.read_text()), indent=1))   # one value a line: line-level damage
        return p
    return make


def _read_nuscenes_tables(p: Path):
    from perception3d.datasets.nuscenes import create_nuscenes_infos
    out = p.parent.parent / "out"
    out.mkdir(exist_ok=True)
    return create_nuscenes_infos(p.parent.parent, out)


READERS = {
    "nerfstudio / instant-ngp transforms.json": (_nerfstudio, _read_nerfstudio, True),
    "Blender transforms_*.json": (_blender, _read_blender, True),
    "SpaRe submission zip": (_spare_zip, _read_spare_zip, False),
    "nuScenes info .pkl": (_nuscenes_info, _read_nuscenes_info, False),
    **{f"nuScenes table {t}.json": (_nuscenes_tables(t), _read_nuscenes_tables, True)
       for t in ("sample", "sample_data", "calibrated_sensor", "ego_pose", "sample_annotation", "instance")},
}


def try_reader(name: str, ops) -> None:
    make, read, _ = READERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = make(Path(tmp))
        path.write_bytes(damage(path.read_bytes(), ops))
        classify(name, lambda: read(path), (path.name, str(path.parent)), ops, tmp)


@pytest.mark.parametrize("name", list(READERS))
def test_valid_sample_reads(name, tmp_path):
    make, read, _ = READERS[name]
    read(make(tmp_path))


def run_examples(name: str, strategy, attempt: Callable, examples: int) -> None:
    """``attempt(x)`` on ``examples`` seeded draws of ``strategy``; then no crash and no hang under ``name``."""
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(x=strategy)
    def run(x):
        attempt(x)
    run()
    _check(name)


def _fuzz(name: str, examples: int) -> None:
    run_examples(name, _mutations(READERS[name][2]), lambda ops: try_reader(name, ops), examples)


@pytest.mark.parametrize("name", list(READERS))
def test_fuzz_quick(name):
    _fuzz(name, 10)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", list(READERS))
def test_fuzz_long(name):
    _fuzz(name, int(os.environ.get("P3D_FUZZ_EXAMPLES", "300")))


# ------------------------------------------------------------------------------------ Waymo v2 schema changes
_SEGMENT: dict = {}


def _waymo_segment() -> Path:
    """A one-segment, two-frame Waymo v2 split (generated once per session, copied per example)."""
    if "dir" not in _SEGMENT:
        from perception3d.datasets import generate_waymo_mini
        d = Path(tempfile.mkdtemp(prefix="p3dfuzz_waymo_"))
        generate_waymo_mini(d, num_train=1, num_val=0, frames_per_segment=2, lidar_width=64, camera=False)
        _SEGMENT["dir"] = d / "training"
    return _SEGMENT["dir"]


WAYMO_COMPONENTS = ("lidar", "lidar_calibration", "lidar_pose", "lidar_box", "vehicle_pose")


@st.composite
def schema_changes(draw):
    """(component, change, column index, argument): what to do to one component file of the segment."""
    comp = draw(st.sampled_from(WAYMO_COMPONENTS))
    change = draw(st.sampled_from(["drop", "rename", "cast", "nulls", "zero_rows", "empty_row_groups", "dup_rows",
                                   "half_rows", "shuffle"]))
    return comp, change, draw(st.integers(0, 1000)), draw(st.sampled_from(["string", "int64", "float32", "float64",
                                                                           "list<float>", "bool", "null"]))


def _cast(col, to: str):
    import pyarrow as pa
    import pyarrow.compute as pc
    n = len(col)
    if to == "null":
        return pa.nulls(n)
    if to == "list<float>":
        return pa.array([[1.0, 2.0]] * n, pa.list_(pa.float32()))
    target = {"string": pa.string(), "int64": pa.int64(), "float32": pa.float32(), "float64": pa.float64(),
              "bool": pa.bool_()}[to]
    try:
        return pc.cast(col, target, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None] * n, target)   # no cast exists: a column of that type, all null


def apply_schema_change(path: Path, change: tuple) -> str:
    """Rewrite the parquet file at ``path`` with ``change``; returns a description."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    _, kind, i, to = change
    t = pq.read_table(path)
    col = t.column_names[i % t.num_columns]
    if kind == "drop":
        t = t.drop_columns([col])
    elif kind == "rename":
        t = t.rename_columns([c + "_v3" if c == col else c for c in t.column_names])
    elif kind == "cast":
        t = t.set_column(t.column_names.index(col), col, _cast(t.column(col), to))
    elif kind == "nulls":
        t = t.set_column(t.column_names.index(col), col, pa.nulls(t.num_rows, t.schema.field(col).type))
    elif kind == "zero_rows":
        t = t.slice(0, 0)
    elif kind == "dup_rows":
        t = pa.concat_tables([t, t])
    elif kind == "half_rows":
        t = t.slice(0, t.num_rows // 2)
    elif kind == "shuffle":
        t = t.take(np.random.default_rng(i).permutation(t.num_rows))
    if kind == "empty_row_groups":
        with pq.ParquetWriter(path, t.schema) as w:
            w.write_table(t.slice(0, 0))
            for r in range(t.num_rows):
                w.write_table(t.slice(r, 1))
                w.write_table(t.slice(0, 0))
    else:
        pq.write_table(t, path, row_group_size=1)
    return f"{kind} {col}" + (f" -> {to}" if kind == "cast" else "")


def read_waymo_segment(split_dir: Path, segment: str) -> int:
    """Everything a conversion reads of a segment: each frame's points (streamed and by timestamp) and boxes."""
    from perception3d.datasets.waymo_v2 import WaymoV2Segment
    seg = WaymoV2Segment(split_dir, segment)
    n = 0
    for ts, res in seg.iter_points():
        if isinstance(res, Exception):
            raise res
        n += len(res[0])
        seg.boxes(ts)
    for ts in seg.timestamps[:1]:
        seg.points(ts)
    return n


def try_schema_change(change: tuple) -> None:
    name = "Waymo v2 parquet schema changes"
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "training"
        shutil.copytree(_waymo_segment(), split)
        (segment,) = [p.stem for p in (split / "lidar").glob("*.parquet")]
        what = apply_schema_change(split / change[0] / f"{segment}.parquet", change)
        classify(name, lambda: read_waymo_segment(split, segment), (segment,), (change[0], what), tmp)


def test_waymo_valid_segment_reads():
    from perception3d.datasets.waymo_v2 import list_segments
    split = _waymo_segment()
    assert read_waymo_segment(split, list_segments(split)[0]) > 0


def _fuzz_schema(examples: int) -> None:
    run_examples("Waymo v2 parquet schema changes", schema_changes(), try_schema_change, examples)


def test_fuzz_waymo_schema_quick():
    _fuzz_schema(25)


@pytest.mark.fuzz
def test_fuzz_waymo_schema_long():
    _fuzz_schema(int(os.environ.get("P3D_FUZZ_EXAMPLES", "300")))


# ---------------------------------------------------------------------------------------------- mmengine configs
CONFIG = ROOT / "configs" / "centerpoint_voxel_waymo_mini.py"
# values of another type than the config holds (None is left out: it is how a config switches a part off, and
# each part says for itself whether it can be off)
WRONG_VALUES = ["x", {}, 1.5, [1, "a"], True, {"type": "NoSuchThing"}, [[1.0]], 7]


@st.composite
def config_changes(draw):
    """("unknown", dotted parent, key) or ("wrong", dotted leaf, value): one change to the config's model or
    training-loop / dataloader settings, as ``--cfg-options`` or an edited config would make it."""
    from mmengine.config import Config
    if "leaves" not in _CFG:
        cfg = Config.fromfile(str(CONFIG))
        leaves, parents = [], []

        def walk(d, prefix):
            for k, v in d.items():
                key = f"{prefix}.{k}" if prefix else k
                if isinstance(v, dict):
                    parents.append(key)
                    walk(v, key)
                elif k != "type":
                    leaves.append(key)
        walk({k: cfg[k] for k in ("model", "train_cfg", "optim_wrapper")}, "")
        _CFG.update(leaves=sorted(leaves), parents=sorted(parents), cfg=cfg)
    if draw(st.booleans()):
        return ("unknown", draw(st.sampled_from(_CFG["parents"])), draw(st.sampled_from(["foo", "lrr", "max_epoch",
                                                                                        "num_filter", "voxel_sizes"])))
    key, value = draw(st.sampled_from(_CFG["leaves"])), draw(st.sampled_from(WRONG_VALUES))
    old = _CFG["cfg"]
    for part in key.split("."):
        old = old[part]
    kinds = {type(old), type(value)}
    assume(len(kinds) > 1 and kinds != {int, float})     # a value of another type, not another value
    return ("wrong", key, value)


_CFG: dict = {}


def build_with_change(change: tuple) -> None:
    """Apply ``change`` through the tools' config loader and build what it configures (the model, the
    optimizer wrapper and the training loop's settings), running one forward pass of the model on a tiny cloud."""
    import torch
    from mmengine.registry import DefaultScope
    from perception3d.cli import load_config
    from perception3d.apis.inference import inference_detector
    from perception3d.registry import MODELS
    kind, key, value = change
    opts = {f"{key}.{value}": 1} if kind == "unknown" else {key: value}
    cfg = load_config(str(CONFIG), opts)
    import perception3d.models  # noqa: F401
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
        model.cfg = cfg
        from mmengine.optim import build_optim_wrapper
        build_optim_wrapper(model, cfg.optim_wrapper)
    from perception3d.engine.loops import ExactEpochBasedTrainLoop  # noqa: F401
    tc = cfg.train_cfg
    for k in ("max_epochs", "val_interval"):
        if not isinstance(tc.get(k), int) or isinstance(tc.get(k), bool) or tc.get(k) < 1:
            raise ValueError(f"train_cfg.{k} must be a positive integer, got {tc.get(k)!r}")
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.rand(500, 3, generator=g) * 40 - 20, torch.rand(500, 3, generator=g)], 1)
    pts[:, 2] = pts[:, 2] / 20
    inference_detector(model, pts)


def try_config(change: tuple) -> None:
    kind, key, value = change
    names = (key.split(".")[-1], str(value) if kind == "unknown" else key.split(".")[-1])
    classify("mmengine config (unknown keys, wrong types)", lambda: build_with_change(change), names, change,
             accept=(ValueError, TypeError, KeyError))


def _fuzz_config(examples: int) -> None:
    run_examples("mmengine config (unknown keys, wrong types)", config_changes(), try_config, examples)


def test_fuzz_config_quick():
    _fuzz_config(6)


def test_cfg_options_of_another_type_name_the_key():
    """A ``--cfg-options`` value of another kind than the config holds is a ``TypeError`` naming the key, before
    anything is built (before, ``in_channels=x`` failed inside the model with "not all arguments converted during
    string formatting"); None, an int for a float and a whole float for an int stay allowed."""
    from perception3d.cli import load_config
    with pytest.raises(TypeError, match=r"model\.backbone_2d\.in_channels='x': the config holds an int there"):
        load_config(str(CONFIG), {"model.backbone_2d.in_channels": "x"})
    with pytest.raises(TypeError, match=r"layer_strides\[\]=1\.5: the config holds an int there"):
        load_config(str(CONFIG), {"model.backbone_2d.layer_strides": [1.5, 2]})
    cfg = load_config(str(CONFIG), {"optim_wrapper.optimizer.lr": 1, "model.backbone_2d.in_channels": 64.0,
                                    "param_scheduler": None, "model.backbone_2d.layer_strides": (1, 2)})
    assert cfg.optim_wrapper.optimizer.lr == 1 and cfg.param_scheduler is None


@pytest.mark.fuzz
def test_fuzz_config_long():
    _fuzz_config(int(os.environ.get("P3D_FUZZ_EXAMPLES", "300")) // 3)


def teardown_module(module):
    if any(s["inputs"] for s in STATS.values()):
        rows = ["| reader | inputs | read fine | clear errors | crashes | hangs | distinct error messages |",
                "|---|---|---|---|---|---|---|"]
        for name, s in STATS.items():
            rows.append(f"| {name} | {s['inputs']} | {s['ok']} | {s['errors']} | {s['crashes']} | {s['hangs']} | "
                        f"{len(s['messages'])} |")
        print("\n" + "\n".join(rows))
    if "dir" in _SEGMENT:
        shutil.rmtree(_SEGMENT["dir"].parent, ignore_errors=True)


def test_nuscenes_info_pickle_runs_no_code(tmp_path):
    """nuScenes info pickles are read like every info file: data only.  A pickle whose loading would call a
    function is refused with the reader's error naming the file, and the function does not run."""
    from perception3d.datasets.nuscenes import NuScenesDataError, load_nuscenes_infos
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))
    p = tmp_path / "nuscenes_infos_val.pkl"
    p.write_bytes(pickle.dumps(dict(metainfo=dict(dataset="nuscenes"), data_list=[Evil()])))
    with pytest.raises(NuScenesDataError, match=r"nuscenes_infos_val\.pkl.*refuses the global pathlib"):
        load_nuscenes_infos(p)
    assert not marker.exists()
