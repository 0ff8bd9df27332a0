"""``sensor_msgs/PointCloud2`` ↔ numpy, for any field layout (no ROS install needed).

Decoding (:func:`pointcloud2_to_array`, :func:`pointcloud2_to_points`) builds a numpy structured dtype from the
``PointField`` list (``offset``, ``datatype`` code, ``count``) with ``itemsize = point_step``, so padding between
and after fields costs nothing; ``row_step`` padding at the end of each row is cut away; ``is_bigendian`` picks
the byte order; organised clouds (``height > 1``) are flattened row by row; points with a non-finite x/y/z
(``is_dense = false`` clouds mark invalid returns with NaN) are dropped and counted.

Feature columns are picked by name (:data:`COLUMN_ALIASES`): ``intensity`` ← ``intensity`` / ``i`` /
``reflectivity``; ``ring`` ← ``ring`` / ``channel``; ``time`` ← ``time`` / ``t`` / ``timestamp`` / ``offset_time``;
``elongation`` ← ``elongation``.  **Intensity normalisation**: an integer intensity is divided by its type's
maximum (uint8 / 255, uint16 / 65535, …) so that it lies in [0, 1] like the float intensities most drivers
publish; a float intensity is passed through unchanged.  Columns a cloud lacks are filled with 0 and reported.

Encoding (:func:`points_to_pointcloud2`) writes the inverse, with any field types, offsets, point padding,
row padding, byte order and height, for tests and the demo-bag script.

PointField datatype codes (sensor_msgs/PointField): INT8 1, UINT8 2, INT16 3, UINT16 4, INT32 5, UINT32 6,
FLOAT32 7, FLOAT64 8.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from perception3d.io.ros_msgs import POINTCLOUD2, make_header, make_msg

__all__ = ["PointCloud2Error", "DATATYPES", "COLUMN_ALIASES", "DecodedCloud", "pointcloud2_dtype",
           "pointcloud2_to_array", "pointcloud2_to_points", "points_to_pointcloud2"]

#: PointField datatype code → numpy type
DATATYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32, 7: np.float32,
             8: np.float64}
_CODES = {np.dtype(v): k for k, v in DATATYPES.items()}
#: canonical column → field names that provide it, first match wins
COLUMN_ALIASES = {"x": ("x",), "y": ("y",), "z": ("z",), "intensity": ("intensity", "i", "reflectivity"),
                  "ring": ("ring", "channel"), "time": ("time", "t", "timestamp", "offset_time"),
                  "elongation": ("elongation",)}


class PointCloud2Error(ValueError):
    """A PointCloud2 message that cannot be decoded (the message says which field / size is wrong)."""


def pointcloud2_dtype(fields, point_step: int, big_endian: bool = False) -> np.dtype:
    """Structured dtype of one point: one entry per PointField at its offset, ``itemsize = point_step``."""
    names, formats, offsets = [], [], []
    order = ">" if big_endian else "<"
    for f in fields:
        if int(f.datatype) not in DATATYPES:
            raise PointCloud2Error(f"PointField {f.name!r}: unknown datatype code {f.datatype} (expected 1–8)")
        base = np.dtype(DATATYPES[int(f.datatype)]).newbyteorder(order)
        count = max(int(f.count), 1)
        dt = base if count == 1 else np.dtype((base, (count,)))
        if int(f.offset) + dt.itemsize > point_step:
            raise PointCloud2Error(f"PointField {f.name!r}: offset {f.offset} + {dt.itemsize} bytes exceeds "
                                   f"point_step {point_step}")
        if f.name in names:
            raise PointCloud2Error(f"PointField {f.name!r} appears twice")
        names.append(f.name)
        formats.append(dt)
        offsets.append(int(f.offset))
    try:
        return np.dtype(dict(names=names, formats=formats, offsets=offsets, itemsize=int(point_step)))
    except ValueError as exc:   # overlapping fields
        raise PointCloud2Error(f"PointField layout is invalid: {exc}") from exc


def pointcloud2_to_array(msg) -> np.ndarray:
    """All points of ``msg`` as a structured array [height * width] (rows concatenated, padding removed)."""
    h, w, ps, rs = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    if h * w == 0:     # an empty cloud: no layout checks beyond the field names and types
        names = [f.name for f in msg.fields]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PointCloud2Error(f"PointField {dup[0]!r} appears twice")
        return np.zeros(0, [(f.name, DATATYPES.get(int(f.datatype), np.float32)) for f in msg.fields])
    if ps <= 0:
        raise PointCloud2Error(f"point_step is {ps}")
    if rs < w * ps:
        raise PointCloud2Error(f"row_step {rs} is smaller than width × point_step = {w} × {ps}")
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1) if not isinstance(msg.data, (bytes, bytearray)) \
        else np.frombuffer(msg.data, np.uint8)
    need = rs * h
    if data.size < need:
        raise PointCloud2Error(f"data holds {data.size} bytes, row_step × height = {rs} × {h} = {need}")
    dtype = pointcloud2_dtype(msg.fields, ps, bool(msg.is_bigendian))
    if rs == w * ps:
        rows = data[:need]
    else:
        rows = np.ascontiguousarray(data[:need].reshape(h, rs)[:, :w * ps]).reshape(-1)
    return rows.view(dtype).reshape(-1)


@dataclass
class DecodedCloud:
    """A decoded cloud: ``points`` float32 [N, 3 + len(extra)] (x, y, z, then ``columns[3:]``)."""
    points: np.ndarray
    columns: list
    missing: list = field(default_factory=list)       # requested columns the cloud lacks (filled with 0)
    num_invalid: int = 0                               # points dropped for a non-finite x / y / z
    source_fields: dict = field(default_factory=dict)  # column → the PointField name it was read from


def _find(names: Sequence[str], column: str) -> Optional[str]:
    lower = {n.lower(): n for n in names}
    for alias in COLUMN_ALIASES.get(column, (column,)):
        if alias in lower:
            return lower[alias]
    return None


def pointcloud2_to_points(msg, extra: Sequence[str] = ("intensity",), normalize_intensity: bool = True,
                          drop_invalid: bool = True) -> DecodedCloud:
    """Decode ``msg`` to float32 points [N, 3 + len(extra)]: x, y, z then the ``extra`` columns by name.

    Args:
        extra: canonical column names (see :data:`COLUMN_ALIASES`, or any field name); missing ones → 0.
        normalize_intensity: divide an integer ``intensity`` by its type's maximum (uint8 → / 255 …).
        drop_invalid: drop points whose x, y or z is NaN / inf.
    Raises:
        PointCloud2Error: no x / y / z field, a bad layout, ``data`` shorter than ``row_step × height``.
    """
    names = [f.name for f in msg.fields]
    cols = {}
    for c in ("x", "y", "z"):
        src = _find(names, c)
        if src is None:
            raise PointCloud2Error(f"PointCloud2 has no {c!r} field (fields: {names})")
        cols[c] = src
    arr = pointcloud2_to_array(msg)
    n = arr.shape[0]
    out = np.zeros((n, 3 + len(extra)), np.float32)
    missing, sources = [], dict(cols)
    for j, c in enumerate(["x", "y", "z"] + list(extra)):
        src = cols[c] if j < 3 else _find(names, c)
        if src is None:
            missing.append(c)
            continue
        sources[c] = src
        v = arr[src]
        if v.ndim > 1:
            v = v[:, 0]
        if j >= 3 and c == "intensity" and normalize_intensity and np.issubdtype(v.dtype, np.integer):
            out[:, j] = v.astype(np.float64) / float(np.iinfo(v.dtype).max)
        else:
            out[:, j] = v
    num_invalid = 0
    if drop_invalid and n:
        ok = np.isfinite(out[:, :3]).all(1)
        num_invalid = int(n - ok.sum())
        if num_invalid:
            out = out[ok]
    return DecodedCloud(out, ["x", "y", "z"] + list(extra), missing, num_invalid, sources)


def points_to_pointcloud2(ts, points: np.ndarray, names: Sequence[str], stamp_ns: int, frame_id: str,
                          dtypes: Optional[Sequence[Union[str, np.dtype]]] = None,
                          offsets: Optional[Sequence[int]] = None, point_step: Optional[int] = None,
                          row_padding: int = 0, height: int = 1, big_endian: bool = False, seq: int = 0):
    """Encode ``points`` [N, F] (column j → field ``names[j]``) as a ``sensor_msgs/PointCloud2`` of typestore
    ``ts``.

    Args:
        dtypes: numpy type per field (default float32); values are cast (round them yourself for ints).
        offsets: byte offset per field (default packed in order); ``point_step`` default = packed size.
        row_padding: extra bytes at the end of every row (``row_step = width × point_step + row_padding``).
        height: rows of an organised cloud (N must be divisible by it).
    ``is_dense`` is set to whether every x/y/z is finite.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != len(names):
        raise ValueError(f"points: expected [N, {len(names)}] for fields {list(names)}, got {points.shape}")
    dts = [np.dtype(d) for d in (dtypes or [np.float32] * len(names))]
    if offsets is None:
        offsets, o = [], 0
        for d in dts:
            offsets.append(o)
            o += d.itemsize
    step = int(point_step if point_step is not None else max(o + d.itemsize for o, d in zip(offsets, dts)))
    n = points.shape[0]
    if height < 1 or n % height:
        raise ValueError(f"{n} points cannot form {height} rows")
    width = n // height
    order = ">" if big_endian else "<"
    dtype = np.dtype(dict(names=list(names), formats=[d.newbyteorder(order) for d in dts],
                          offsets=list(offsets), itemsize=step))
    rec = np.zeros(n, dtype)
    for j, name in enumerate(names):
        rec[name] = points[:, j].astype(dts[j])
    raw = rec.view(np.uint8).reshape(height, width * step)
    if row_padding:
        raw = np.concatenate([raw, np.full((height, row_padding), 0xAB, np.uint8)], 1)
    fields = [make_msg(ts, "sensor_msgs/msg/PointField", name=str(nm), offset=int(of), datatype=_CODES[d],
                       count=1) for nm, of, d in zip(names, offsets, dts)]
    xyz = [j for j, nm in enumerate(names) if nm in ("x", "y", "z")]
    dense = bool(np.isfinite(points[:, xyz].astype(np.float64)).all()) if xyz else True
    return make_msg(ts, POINTCLOUD2, header=make_header(ts, stamp_ns, frame_id, seq), height=int(height),
                    width=int(width), fields=fields, is_bigendian=bool(big_endian), point_step=step,
                    row_step=int(width * step + row_padding), data=np.ascontiguousarray(raw).reshape(-1),
                    is_dense=dense)
