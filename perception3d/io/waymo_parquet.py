"""Checked column reads from Waymo Open Dataset v2 parquet files (pyarrow only).

Every v2 component is one parquet file per segment, ``<root>/<split>/<component>/<segment>.parquet``, with the
column names of the official dataclasses (``../shared/data/waymo_v2/v2_component_columns.txt``), e.g.
``key.frame_timestamp_micros`` or ``[LiDARComponent].range_image_return1.values``.

A reader names the columns it needs together with the *kind* of value it expects (``string``, ``int``,
``float``, ``float_list``, ``int_list``); :func:`read_columns` reads only those, and raises ``ValueError`` naming
the file and the column when the file is not parquet (truncated, not written to the end), a column is missing,
or a column holds the wrong kind of value.  The kinds are deliberately loose about width: the real
``vehicle_pose`` file stores its pose as float32 although the dataclass says float64.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["COLUMN_KINDS", "open_parquet", "check_columns", "read_columns", "column_values", "list_cell",
           "fixed_list_column"]

PathLike = Union[str, Path]
COLUMN_KINDS = ("string", "int", "float", "float_list", "int_list", "binary")


def open_parquet(path: PathLike) -> pq.ParquetFile:
    """Open a parquet file; ``ValueError`` naming the file when it is not a complete parquet file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such parquet file")
    try:
        pf = pq.ParquetFile(path)
        pf.schema_arrow            # decodes the schema (damaged metadata fails here, not later)
        return pf
    except (ValueError, pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable parquet file (truncated or not parquet): {exc}") from exc


def _kind_ok(dtype: pa.DataType, kind: str) -> bool:
    if kind == "string":
        return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
    if kind == "binary":
        return pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype)
    if kind == "int":
        return pa.types.is_integer(dtype)
    if kind == "float":
        return pa.types.is_floating(dtype) or pa.types.is_integer(dtype)
    if kind in ("float_list", "int_list"):
        if not (pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype)):
            return False
        return _kind_ok(dtype.value_type, kind[: -len("_list")])
    raise ValueError(f"unknown column kind {kind!r}; expected one of {COLUMN_KINDS}")


def check_columns(path: PathLike, schema: pa.Schema, columns: Mapping[str, str]) -> None:
    """``ValueError`` naming the file and column if a column is missing or of the wrong kind."""
    names = set(schema.names)
    for name, kind in columns.items():
        if name not in names:
            raise ValueError(f"{path}: missing column '{name}' (the file has: {sorted(names)})")
        dtype = schema.field(name).type
        if not _kind_ok(dtype, kind):
            raise ValueError(f"{path}: column '{name}' has type {dtype}, expected a {kind.replace('_', ' ')}")


def read_columns(path: PathLike, columns: Mapping[str, str], row_groups: Optional[Sequence[int]] = None,
                 pfile: Optional[pq.ParquetFile] = None) -> pa.Table:
    """Read only ``columns`` (name → kind) of a parquet file, optionally only some row groups.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a readable parquet file, a missing column, a column of the wrong kind, or a read
            error (the message names the file and the columns).
    """
    pf = pfile if pfile is not None else open_parquet(path)
    check_columns(path, pf.schema_arrow, columns)
    try:
        if row_groups is None:
            return pf.read(columns=list(columns))
        return pf.read_row_groups(list(row_groups), columns=list(columns))
    except (ValueError, pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: failed to read columns {list(columns)}: {exc}") from exc


def column_values(path: PathLike, table: pa.Table, column: str, as_list: bool = False):
    """A whole column as a numpy array (or a Python list); ``ValueError`` naming file and column when its data
    cannot be decoded (damaged pages, invalid UTF-8 …)."""
    try:
        col = table.column(column)
        if col.null_count and not as_list:
            raise ValueError(f"{col.null_count} null cells")
        return col.to_pylist() if as_list else col.to_numpy(zero_copy_only=False)
    except (ValueError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: column '{column}' cannot be decoded: {exc}") from exc


def list_cell(table: pa.Table, column: str, row: int, dtype=np.float64) -> Optional[np.ndarray]:
    """One list cell as a 1-D numpy array, or ``None`` when the cell is null."""
    cell = table.column(column)[row]
    if not cell.is_valid:
        return None
    return np.asarray(cell.values.to_numpy(zero_copy_only=False), dtype=dtype)


def fixed_list_column(path: PathLike, table: pa.Table, column: str, size: int, dtype=np.float64) -> np.ndarray:
    """A list column whose every cell has ``size`` values, as an [N, size] array (ValueError otherwise)."""
    try:
        arr = table.column(column).combine_chunks()
        nulls = arr.null_count
        flat = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=dtype)
    except (ValueError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: column '{column}' cannot be decoded: {exc}") from exc
    if nulls:
        raise ValueError(f"{path}: column '{column}' has {nulls} null cells")
    if flat.size != size * len(arr):
        raise ValueError(f"{path}: column '{column}' cells must hold {size} values each "
                         f"({flat.size} values in {len(arr)} rows)")
    return flat.reshape(len(arr), size)


def iter_files(folder: PathLike, suffix: str = ".parquet") -> Iterable[Path]:
    """The parquet files of a component folder, sorted."""
    return sorted(Path(folder).glob(f"*{suffix}"))
