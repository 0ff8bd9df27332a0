"""Kill -9 during the writers ``tests/test_crash_writers.py`` does not cover: ROS bags (``BagWriter``), SpaRe
submission zips (``write_submission``) and rendered images (``tools/render.py``'s ``write_image``), with the same
harness: a child rewrites one file over and over, is SIGKILLed at a random moment, and the file on disk must be a
complete version with no temporary file left after the next write.

``-m slow`` kills each 3 times; ``pytest -m fuzz tests/test_crash_writers_more.py -s`` 20 times with the table.
"""
from __future__ import annotations

import os

import pytest

from test_crash_writers import PRELUDE, ROOT, _table, kill_writer

WRITERS = {
    "ROS bag (BagWriter, rosbag2 mcap)": (
        "drive.mcap",
        "import numpy as np\nfrom perception3d.io.bags import BagWriter\n"
        "from perception3d.io.pointcloud2 import points_to_pointcloud2\n"
        "def write(path, k):\n    pts = np.full((60_000, 4), k, np.float32)\n"
        "    with BagWriter(path, overwrite=True) as w:\n"
        "        for i in range(3):\n"
        "            w.write('/points', 10**9 * (i + 1), points_to_pointcloud2(w.typestore, pts, ['x', 'y', 'z', "
        "'intensity'], k, 'lidar', seq=i))\n",
        "from perception3d.io.bags import BagReader\n"
        "def read(path):\n    with BagReader(path) as r:\n        msgs = list(r.messages(['/points']))\n"
        "    assert len(msgs) == 3\n"
        "    stamps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, _, m in msgs}\n"
        "    assert len(stamps) == 1; return stamps.pop()\n"),
    "SpaRe submission zip (write_submission)": (
        "submission.zip",
        "import numpy as np\nfrom perception3d.evaluation.spare import write_submission\n"
        "SPLIT = {'scan24': dict(input_views=[0], test_views=[1, 2], dataset='dtu')}\n"
        "def write(path, k):\n    img = np.zeros((600, 800, 3), np.uint8)\n"
        "    img[..., 0] = k % 256; img[..., 1] = k // 256\n"
        "    img[::7, ::5, 2] = 255\n"
        "    write_submission({'scan24': {1: img, 2: img}}, SPLIT, path, size=(800, 600), check=False)\n",
        "import zipfile\nfrom perception3d.evaluation.spare import check_submission, read_png\n"
        "SPLIT = {'scan24': dict(input_views=[0], test_views=[1, 2], dataset='dtu')}\n"
        "def read(path):\n    assert check_submission(path, SPLIT, size=(800, 600)) == []\n"
        "    img = (read_png(zipfile.ZipFile(path).read('scan24/rect_002_3_r5000.png')) * 255).round()\n"
        "    return int(img[0, 0, 0]) + 256 * int(img[0, 0, 1])\n"),
    "rendered image (tools/render.py write_image)": (
        "0000.png",
        "import importlib.util, numpy as np\n"
        f"spec = importlib.util.spec_from_file_location('render_tool', {str(ROOT / 'tools' / 'render.py')!r})\n"
        "render = importlib.util.module_from_spec(spec); spec.loader.exec_module(render)\n"
        "def write(path, k):\n    img = np.random.default_rng(k).integers(0, 255, (900, 1200, 3), dtype=np.uint8)\n"
        "    img[0, 0] = (k % 256, k // 256, 0)\n    render.write_image(path, img)\n",
        "import imageio.v3 as iio\n"
        "def read(path):\n    img = iio.imread(path); assert img.shape == (900, 1200, 3)\n"
        "    return int(img[0, 0, 0]) + 256 * int(img[0, 0, 1])\n"),
}

ROWS: dict = {}


@pytest.mark.slow   # each child imports torch (~10 s to start on a shared machine)
@pytest.mark.parametrize("name", list(WRITERS))
def test_kill_during_writer(name, tmp_path):
    r = kill_writer(name, tmp_path, kills=3, seed=0, spec=WRITERS[name])
    ROWS[name] = r
    assert r["torn"] == 0 and r["temps_after_next_write"] == 0, r


@pytest.mark.fuzz
@pytest.mark.parametrize("name", list(WRITERS))
def test_kill_during_writer_20(name, tmp_path):
    r = kill_writer(name, tmp_path, kills=int(os.environ.get("P3D_KILLS", "20")), seed=1, spec=WRITERS[name])
    ROWS[name + " "] = r
    assert r["torn"] == 0 and r["temps_after_next_write"] == 0, r


def teardown_module(module):
    if ROWS:
        print("\n" + _table(ROWS))
