"""Fuzzing every file reader with hypothesis: a valid file of each format is damaged (truncated, bytes
overwritten / inserted / deleted, lines dropped or duplicated, numbers replaced by words) and read back.  A reader
may succeed or raise a ``ValueError`` (the package's :class:`~perception3d.fileio.DataFormatError` or a reader's own
subclass such as ``PointCloud2Error``) whose message names the file; anything else (IndexError, KeyError,
struct.error, UnicodeDecodeError without the file, …) is a crash, and more than ``HANG_S`` seconds is a hang.

Adding a reader is one entry in ``READERS``: a name, a function writing a valid sample into a folder and returning
the path to damage, and a function reading it.  The default run tries a few inputs per reader;
``pytest -m fuzz tests/test_fuzz_readers.py -s`` tries many and prints the table (inputs, crashes, hangs,
distinct error messages) of the closing note.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import signal
import struct
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perception3d.fileio import DataFormatError

HANG_S = 20


# ----------------------------------------------------------------------------------------- valid samples
def _kitti_bin(d: Path) -> Path:
    p = d / "000000.bin"
    np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32).tofile(p)
    return p


def _kitti_label(d: Path) -> Path:
    p = d / "000000.txt"
    p.write_text("Car 0.00 0 -1.57 600 170 700 250 1.5 1.6 3.9 2.0 1.7 15.0 -1.57\n"
                 "Pedestrian 0.10 1 0.3 100.5 120 130 220 1.7 0.6 0.8 -3.0 1.6 9.0 0.2\n"
                 "DontCare -1 -1 -10 5 5 40 40 -1 -1 -1 -1000 -1000 -1000 -10\n")
    return p


def _kitti_calib(d: Path) -> Path:
    p = d / "calib.txt"
    p.write_text("".join(f"P{i}: 700 0 600 {45 * i} 0 700 180 0 0 0 1 0\n" for i in range(4))
                 + "R0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.08 1 0 0 -0.27\n"
                 + "Tr_imu_to_velo: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    return p


def _info_pkl(d: Path) -> Path:
    from perception3d.datasets.mmdet3d_info import save_infos
    p = d / "infos.pkl"
    save_infos(p, [dict(sample_idx=0, lidar_points=dict(lidar_path="0.bin", num_pts_feats=4),
                        instances=[dict(bbox_3d=[1.0, 2, 0, 4, 2, 1.5, 0.1], bbox_label_3d=0)],
                        calib=np.eye(4, dtype=np.float32))],
               metainfo=dict(dataset="kitti", classes=("Car",), box_mode="lidar"))
    return p


def _read_info(p: Path):
    from perception3d.datasets.mmdet3d_info import load_info_file
    return load_info_file(p)


def _colmap_txt(d: Path) -> Path:
    (d / "cameras.txt").write_text("# cams\n1 PINHOLE 64 48 50.0 50.0 32.0 24.0\n2 SIMPLE_RADIAL 64 48 55 32 24 0.01\n")
    (d / "images.txt").write_text("# images\n1 1 0 0 0 0.1 0.2 3.0 1 a.png\n10 20 -1\n"
                                  "2 0.9 0.1 0 0 0 0 3 2 b c.png\n\n")
    (d / "points3D.txt").write_text("1 0.1 0.2 0.3 255 0 0 0.5 1 0\n")
    return d / "images.txt"


def _colmap_bin(d: Path) -> Path:
    from perception3d.rendering.readers.colmap import write_colmap_model
    cams = {1: dict(model="PINHOLE", width=64, height=48, params=[50.0, 50.0, 32.0, 24.0])}
    imgs = {1: dict(qvec=np.array([1.0, 0, 0, 0]), tvec=np.array([0.1, 0.2, 3.0]), camera_id=1, name="a.png"),
            2: dict(qvec=np.array([0.9, 0.1, 0, 0]), tvec=np.zeros(3), camera_id=1, name="b.png")}
    write_colmap_model(d, cams, imgs, {1: dict(xyz=np.array([0.1, 0.2, 0.3]), rgb=np.array([255, 0, 0]))},
                       binary=True)
    return d / "images.bin"


def _read_colmap(p: Path):
    from perception3d.rendering.readers.colmap import read_colmap_model
    return read_colmap_model(p.parent)


def _cam_txt(d: Path) -> Path:
    p = d / "00000000_cam.txt"
    p.write_text("extrinsic\n1 0 0 0.1\n0 1 0 0.2\n0 0 1 0.3\n0 0 0 1\n\nintrinsic\n500 0 256\n0 500 144\n0 0 1\n\n"
                 "425 2.5\n")
    return p


def _pos_txt(d: Path) -> Path:
    p = d / "pos_001.txt"
    p.write_text("2607.4 -3.2 -1.2 -500.1\n-1.0 2620.2 3.0 -200.2\n0.01 0.02 1.0 10.0\n")
    return p


def _split_json(d: Path) -> Path:
    p = d / "split.json"
    p.write_text(json.dumps({"scan24": dict(input_views=[22, 25, 28], test_views=[1, 2], dataset="dtu"),
                             "barn": dict(input_views=[0, 5], test_views=[3], dataset="tnt")}))
    return p


def _read_split(p: Path):
    from perception3d.evaluation.spare import load_split
    return load_split(p)


def _waymo_box_parquet(d: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    p = d / "lidar_box.parquet"
    c = "[LiDARBoxComponent]."
    t = pa.table({"key.segment_context_name": ["s"] * 3, "key.frame_timestamp_micros": [1, 1, 2],
                  "key.laser_object_id": ["a", "b", "a"],
                  **{f"{c}box.{k}": [1.0, 2.0, 3.0] for k in ("center.x", "center.y", "center.z", "size.x",
                                                              "size.y", "size.z", "heading")},
                  f"{c}type": [1, 2, 1], f"{c}num_lidar_points_in_box": [10, 3, 0],
                  f"{c}difficulty_level.detection": [1, 2, 1]})
    pq.write_table(t, p, row_group_size=2)
    return p


def _read_parquet(p: Path):
    from perception3d.io.waymo_parquet import column_values, read_columns
    c = "[LiDARBoxComponent]."
    cols = {"key.segment_context_name": "string", "key.frame_timestamp_micros": "int", f"{c}type": "int",
            **{f"{c}box.{k}": "float" for k in ("center.x", "size.x", "heading")}}
    t = read_columns(p, cols)
    return [column_values(p, t, k) for k in cols]


def _ply(d: Path) -> Path:
    from perception3d.rendering.gaussians import GaussianModel
    import torch
    p = d / "point_cloud.ply"
    GaussianModel.from_points(torch.rand(5, 3), torch.rand(5, 3), sh_degree=1).save_ply(p)
    return p


def _read_ply(p: Path):
    from perception3d.io.ply import load_ply
    return load_ply(p)


def _ckpt(d: Path) -> Path:
    import torch
    p = d / "epoch_1.pth"
    torch.save({"meta": {"iter": 3}, "state_dict": {"w": torch.arange(64.0)}}, p)
    return p


def _read_ckpt(p: Path):
    from perception3d.engine.checkpoint import load_checkpoint_file
    return load_checkpoint_file(str(p))


def _velodyne(p):
    from perception3d.datasets.kitti_raw import read_velodyne
    return read_velodyne(p)


def _label(p):
    from perception3d.datasets.kitti_raw import read_label
    return read_label(p)


def _calib(p):
    from perception3d.datasets.kitti_raw import read_calib
    return read_calib(p)


def _camtxt(p):
    from perception3d.rendering.readers.lmgaussian import read_cam_txt
    return read_cam_txt(p)


def _projection(p):
    from perception3d.rendering.readers.dtu import read_projection_matrix
    return read_projection_matrix(p)


@dataclass
class Reader:
    make: Callable[[Path], Path]        # writes a valid sample into a folder, returns the file to damage
    read: Callable[[Path], object]
    text: bool = False                  # also apply line-level damage


READERS = {
    "KITTI velodyne .bin": Reader(_kitti_bin, _velodyne),
    "KITTI label_2 .txt": Reader(_kitti_label, _label, text=True),
    "KITTI calib .txt": Reader(_kitti_calib, _calib, text=True),
    "info .pkl (mmdet3d / ours)": Reader(_info_pkl, _read_info),
    "COLMAP text model": Reader(_colmap_txt, _read_colmap, text=True),
    "COLMAP binary model": Reader(_colmap_bin, _read_colmap),
    "LM-Gaussian / MVSNet *_cam.txt": Reader(_cam_txt, _camtxt, text=True),
    "DTU pos_XXX.txt": Reader(_pos_txt, _projection, text=True),
    "SpaRe split JSON": Reader(_split_json, _read_split, text=True),
    "Waymo v2 parquet component": Reader(_waymo_box_parquet, _read_parquet),
    "3DGS PLY (binary)": Reader(_ply, _read_ply),
    "checkpoint .pth": Reader(_ckpt, _read_ckpt),
}


# ----------------------------------------------------------------------------------------- damage
def _mutations(text: bool):
    byte_ops = st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
    )
    ops = [byte_ops]
    if text:
        ops.append(st.one_of(
            st.tuples(st.just("drop_line"), st.floats(0, 1)),
            st.tuples(st.just("dup_line"), st.floats(0, 1)),
            st.tuples(st.just("word"), st.floats(0, 1), st.sampled_from(["nan", "inf", "-", "x", "1e999", "",
                                                                         "9" * 30, "-1", "0", "é"])),
        ))
    return st.lists(st.one_of(*ops), min_size=1, max_size=4)


def damage(data: bytes, ops) -> bytes:
    for op in ops:
        at = int(op[1] * len(data))
        if op[0] == "truncate":
            data = data[:at]
        elif op[0] == "overwrite":
            data = data[:at] + op[2] + data[at + len(op[2]):]
        elif op[0] == "insert":
            data = data[:at] + op[2] + data[at:]
        elif op[0] == "delete":
            data = data[:at] + data[at + op[2]:]
        else:
            lines = data.split(b"\n")
            i = min(int(op[1] * len(lines)), len(lines) - 1)
            if op[0] == "drop_line":
                del lines[i]
            elif op[0] == "dup_line":
                lines.insert(i, lines[i])
            else:
                words = lines[i].split(b" ")
                words[len(words) // 2] = op[2].encode()
                lines[i] = b" ".join(words)
            data = b"\n".join(lines)
    return data


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang()


STATS: dict = defaultdict(lambda: dict(inputs=0, ok=0, errors=0, crashes=0, hangs=0, messages=set(), examples=[]))


def try_reader(name: str, ops) -> None:
    """Damage a fresh valid sample with ``ops``, read it, classify the outcome into STATS; returns nothing."""
    r = READERS[name]
    s = STATS[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = r.make(Path(tmp))
        path.write_bytes(damage(path.read_bytes(), ops))
        s["inputs"] += 1
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(HANG_S)
        try:
            r.read(path)
            s["ok"] += 1
        except _Hang:
            s["hangs"] += 1
            s["examples"].append(("hang", ops))
        except (ValueError, FileNotFoundError) as exc:
            msg = str(exc)
            if path.name in msg or str(path.parent) in msg:
                s["errors"] += 1
                # the distinct message: without the temp folder and with numbers collapsed
                s["messages"].add(re.sub(r"[-+.\d]+", "#", msg.replace(tmp, "<dir>"))[:160])
            else:
                s["crashes"] += 1
                s["examples"].append((f"{type(exc).__name__} without the file name: {msg[:200]}", ops))
        except Exception as exc:  # noqa: BLE001 — the point: anything else is a crash
            s["crashes"] += 1
            s["examples"].append((f"{type(exc).__name__}: {str(exc)[:200]}", ops))
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


def fuzz_table() -> str:
    rows = ["| reader | inputs | read fine | clear errors | crashes | hangs | distinct error messages |",
            "|---|---|---|---|---|---|---|"]
    for name in list(READERS) + READERS_EXTRA:
        s = STATS.get(name)
        if s and s["inputs"]:
            rows.append(f"| {name} | {s['inputs']} | {s['ok']} | {s['errors']} | {s['crashes']} | {s['hangs']} | "
                        f"{len(s['messages'])} |")
    return "\n".join(rows)


def _check(name: str) -> None:
    s = STATS[name]
    assert s["crashes"] == 0 and s["hangs"] == 0, f"{name}: {s['examples'][:3]}"


@pytest.mark.parametrize("name", list(READERS))
def test_valid_sample_reads(name, tmp_path):
    r = READERS[name]
    r.read(r.make(tmp_path))


def _fuzz(name: str, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(ops=_mutations(READERS[name].text))
    def run(ops):
        try_reader(name, ops)
    run()
    _check(name)


@pytest.mark.parametrize("name", list(READERS))
def test_fuzz_quick(name):
    _fuzz(name, 12)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", list(READERS))
def test_fuzz_long(name):
    _fuzz(name, int(os.environ.get("P3D_FUZZ_EXAMPLES", "300")))


def teardown_module(module):
    if any(s["inputs"] for s in STATS.values()):
        print("\n" + fuzz_table())


# ------------------------------------------------------------------------ PointCloud2 decoding (messages)
@st.composite
def pointcloud2_msgs(draw):
    """Messages whose layout may lie: any datatype code (0–9, 1–8 valid), counts, offsets, point_step /
    row_step off by a few bytes, either endianness, data shorter or longer than row_step × height."""
    from types import SimpleNamespace as NS
    names = draw(st.lists(st.sampled_from(["x", "y", "z", "intensity", "ring", "t", "X"]), min_size=0, max_size=6))
    fields = [NS(name=n, offset=draw(st.integers(0, 40)), datatype=draw(st.integers(0, 9)),
                 count=draw(st.integers(0, 3))) for n in names]
    ps = draw(st.integers(-2, 48))
    w, h = draw(st.integers(0, 20)), draw(st.integers(0, 3))
    rs = max(w * ps, 0) + draw(st.integers(-8, 8))
    size = max(rs * h, 0) + draw(st.integers(-20, 20))
    data = draw(st.binary(min_size=max(size, 0), max_size=max(size, 0)))
    return NS(fields=fields, point_step=ps, row_step=rs, width=w, height=h, is_bigendian=draw(st.booleans()),
              data=data)


def try_pointcloud2(msg) -> None:
    from perception3d.io.pointcloud2 import PointCloud2Error, pointcloud2_to_points
    s = STATS["PointCloud2 decoding"]
    s["inputs"] += 1
    try:
        dec = pointcloud2_to_points(msg, extra=("intensity", "ring"))
        assert dec.points.shape[1] == 5 and dec.points.shape[0] <= max(msg.width * msg.height, 0)
        s["ok"] += 1
    except PointCloud2Error as exc:
        s["errors"] += 1
        s["messages"].add(re.sub(r"[-+.\d]+", "#", str(exc))[:160])
    except Exception as exc:  # noqa: BLE001
        s["crashes"] += 1
        s["examples"].append((f"{type(exc).__name__}: {str(exc)[:200]}", vars(msg) | {"data": len(msg.data)}))


READERS_EXTRA = ["PointCloud2 decoding"]


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(msg=pointcloud2_msgs())
def test_fuzz_pointcloud2_quick(msg):
    try_pointcloud2(msg)
    _check("PointCloud2 decoding")


@pytest.mark.fuzz
def test_fuzz_pointcloud2_long():
    n = int(os.environ.get("P3D_FUZZ_EXAMPLES", "300")) * 3

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(msg=pointcloud2_msgs())
    def run(msg):
        try_pointcloud2(msg)
    run()
    _check("PointCloud2 decoding")
