"""Memory stays bounded when reading a folder of many parquet files: the Waymo v2 reader streams segment by
segment and frame by frame, so reading 4N segments peaks no higher than reading N (issue: readers stream instead
of loading a whole dataset).  Python/numpy allocations are measured with ``tracemalloc``, pyarrow's own buffers
with its memory pool, sampled after every frame.  A negative control (the same measure around a loop that keeps
every frame) shows the check does catch a reader that accumulates."""
from __future__ import annotations

import tracemalloc

import pyarrow as pa
import pytest

N = 2  # segments; the folder holds 4N


@pytest.fixture(scope="module")
def waymo_folder(tmp_path_factory):
    from perception3d.datasets.synthetic.writer import generate_waymo_mini
    from perception3d.datasets.waymo_v2 import find_split_dir, list_segments

    root = tmp_path_factory.mktemp("wm")
    generate_waymo_mini(root, num_train=8 * N, num_val=0, frames_per_segment=2, lidar_width=256, camera=False)
    split_dir = find_split_dir(root, "train")
    segments = list_segments(split_dir)
    assert len(segments) == 4 * N
    return split_dir, segments


def _peak_reading(split_dir, segments, keep: bool = False) -> tuple[int, int, int]:
    """(points read, tracemalloc peak bytes, peak pyarrow pool bytes) of streaming ``segments``' points;
    ``keep=True`` keeps every frame's points (an accumulating reader, the negative control)."""
    from perception3d.datasets.waymo_v2 import WaymoV2Segment

    pool, kept, n_pts, arrow_peak = pa.default_memory_pool(), [], 0, 0
    tracemalloc.start()
    try:
        for seg in segments:
            for _ts, res in WaymoV2Segment(split_dir, seg).iter_points():
                assert not isinstance(res, Exception), res
                n_pts += len(res[0])
                if keep:
                    kept.append(res[0].copy())
                arrow_peak = max(arrow_peak, pool.bytes_allocated())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return n_pts, peak, arrow_peak


def test_waymo_reader_memory_does_not_grow_with_the_number_of_files(waymo_folder):
    split_dir, segments = waymo_folder
    _peak_reading(split_dir, segments[:1])  # warm-up: imports and caches are not the reader's
    pts_n, peak_n, arrow_n = _peak_reading(split_dir, segments[:N])
    pts_4n, peak_4n, arrow_4n = _peak_reading(split_dir, segments)
    assert pts_4n > 3 * pts_n  # 4N segments were really read
    frame_bytes = pts_4n / (4 * N * 2) * 6 * 4  # one frame's float32 [P, 6] points
    bound = 1.25 * peak_n + 2 * frame_bytes
    assert peak_4n <= bound, f"reading {4 * N} files peaked at {peak_4n} B vs {peak_n} B for {N}"
    assert arrow_4n <= 1.25 * arrow_n + 2 * frame_bytes, (arrow_n, arrow_4n)
    # negative control: keeping every frame's points does exceed the same bound
    _, peak_keep, _ = _peak_reading(split_dir, segments, keep=True)
    assert peak_keep > bound, (peak_keep, bound)
