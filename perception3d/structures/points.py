"""Point clouds: float32 ``[N, F]``, x, y, z in metres first (DESIGN §4). ``use_dim`` in configs names the columns a
model reads, as mmdet3d's ``LoadPointsFromFile``: an int (the first ``use_dim`` columns) or a list of indices."""
from __future__ import annotations

from typing import Optional, Sequence, Union

__all__ = ["point_columns"]


def point_columns(use_dim: Union[int, Sequence[int]], load_dim: Optional[int] = None) -> list[int]:
    """The column indices that ``use_dim`` selects; with ``load_dim`` (the columns stored per point) a selection
    that is empty or outside ``[0, load_dim)`` raises ``ValueError`` naming both."""
    cols = list(range(use_dim)) if isinstance(use_dim, int) else [int(d) for d in use_dim]
    if load_dim is not None and (not cols or max(cols) >= int(load_dim) or min(cols) < 0):
        raise ValueError(f"use_dim={use_dim} must select columns of the load_dim={load_dim} loaded ones")
    return cols
