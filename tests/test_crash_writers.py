"""Kill -9 during every writer: a child process rewrites one file over and over (version 1, 2, …, each several
MB so that a kill often lands inside a write) and reports each version it completed; it is SIGKILLed at a random
moment.  The file on disk must then be a complete version — the last reported or the one being written when the
rename had already happened — never a torn one; the temporary file the killed writer left is removed by the next
write of the same file (``perception3d.fileio.remove_stale_temps``), and nothing else is left behind.

The default run kills the text writer 3 times, ``-m slow`` each writer 3 times; ``pytest -m fuzz tests/test_crash_writers.py -s`` kills each 20 times
and prints the table of the closing note.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# each writer: (file name, child code writing version k to path, reader code returning k from path)
PRELUDE = "import sys\nsys.path.insert(0, %r)\n" % str(ROOT)
TORCH = "import numpy as np, torch\n"
WRITERS = {
    "checkpoint (mmengine backend 'atomic_local')": (
        "iter_1.pth",
        TORCH + "from perception3d.engine.checkpoint import AtomicLocalBackend\nimport io\n"
        "def write(path, k):\n    b = io.BytesIO(); torch.save({'meta': {'iter': k}, 'w': torch.full((600_000,), float(k))}, b)\n"
        "    AtomicLocalBackend().put(b.getvalue(), path)\n",
        "def read(path):\n    c = torch.load(path, weights_only=True)\n"
        "    assert bool((c['w'] == c['meta']['iter']).all()); return c['meta']['iter']\n"),
    "info .pkl (save_infos)": (
        "infos.pkl",
        TORCH + "from perception3d.datasets.mmdet3d_info import save_infos\n"
        "def write(path, k):\n    save_infos(path, [dict(sample_idx=i, a=np.full(2000, k)) for i in range(300)], dict(v=k))\n",
        "from perception3d.datasets.mmdet3d_info import load_info_file\n"
        "def read(path):\n    m, d = load_info_file(path); assert len(d) == 300 and all((e['a'] == m['v']).all() for e in d)\n"
        "    return m['v']\n"),
    "3DGS trainer checkpoint (atomic_torch_save)": (
        "ckpt_latest.pt",
        TORCH + "from perception3d.fileio import atomic_torch_save\n"
        "def write(path, k):\n    atomic_torch_save(path, {'step': k, 'p': torch.full((700_000,), float(k))})\n",
        "def read(path):\n    c = torch.load(path, weights_only=True); assert bool((c['p'] == c['step']).all())\n"
        "    return c['step']\n"),
    "3DGS PLY (save_ply)": (
        "point_cloud.ply",
        TORCH + "from perception3d.rendering.gaussians import GaussianModel\n"
        "def write(path, k):\n    GaussianModel.from_points(torch.rand(20_000 + k, 3), sh_degree=1).save_ply(path)\n",
        "from perception3d.io.ply import load_ply\n"
        "def read(path):\n    params, _ = load_ply(path); return int(next(iter(params.values())).shape[0]) - 20_000\n"),
    "text / JSON (atomic_write_text)": (
        "metrics.json",
        "from perception3d.fileio import atomic_write_text\nimport json\n"
        "def write(path, k):\n    atomic_write_text(path, json.dumps({'v': k, 'pad': [k] * 400_000}))\n",
        "import json\ndef read(path):\n    d = json.loads(open(path).read()); assert set(d['pad']) == {d['v']}; return d['v']\n"),
}

CHILD = PRELUDE + "{writer}\npath = sys.argv[1]\nk = int(sys.argv[2])\nwhile True:\n    k += 1\n    write(path, k)\n" \
    "    print(k, flush=True)\n"


def _leftovers(folder: Path, keep: str) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def kill_writer(name: str, tmp: Path, kills: int, seed: int, spec: tuple | None = None) -> dict:
    """Kill the writer ``name`` of WRITERS (or ``spec``: a tuple of the same form) ``kills`` times."""
    fname, writer, reader = spec or WRITERS[name]
    folder = tmp / "out"
    folder.mkdir()
    path = folder / fname
    ns: dict = {}
    exec(PRELUDE + TORCH + reader, ns)      # noqa: S102 — the reader snippet above
    rng = random.Random(seed)
    res = dict(kills=0, intact=0, torn=0, temps_after_kill=0, temps_after_next_write=0, other_files=0)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    last = 0
    for _ in range(kills):
        p = subprocess.Popen([sys.executable, "-c", CHILD.format(writer=writer), str(path), str(last)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        # wait until the child has finished one write, then kill it at a random moment of a later one
        first = p.stdout.readline()
        assert first.strip(), p.stderr.read()[-2000:]
        time.sleep(rng.uniform(0.0, 0.5))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        done = [int(x) for x in (first + out).split()]
        res["kills"] += 1
        try:
            got = ns["read"](path)
            ok = got in (done[-1], done[-1] + 1)
        except Exception:  # noqa: BLE001 — a torn file
            ok = False
        res["intact" if ok else "torn"] += 1
        res["temps_after_kill"] += len(_leftovers(folder, fname))
        last = max(done[-1] + 1, got if ok else 0)
    # the next write of the file cleans what the killed writers left
    ns2: dict = {}
    exec(PRELUDE + writer, ns2)     # noqa: S102
    ns2["write"](str(path), last + 1)
    res["temps_after_next_write"] = len(_leftovers(folder, fname))
    assert ns["read"](path) == last + 1
    return res


def _table(rows: dict) -> str:
    out = ["| writer | kills | file intact (previous or new version) | torn | temp files left by the kills | "
           "temp files after the next write |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        out.append(f"| {name} | {r['kills']} | {r['intact']} | {r['torn']} | {r['temps_after_kill']} | "
                   f"{r['temps_after_next_write']} |")
    return "\n".join(out)


ROWS: dict = {}


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if "torch" not in WRITERS[n][1] else [pytest.mark.slow])
                                  for n in WRITERS])   # the torch-importing children take ~10 s each to start
def test_kill_during_writer(name, tmp_path):
    r = kill_writer(name, tmp_path, kills=3, seed=0)
    ROWS[name] = r
    assert r["torn"] == 0 and r["temps_after_next_write"] == 0, r


@pytest.mark.fuzz
@pytest.mark.parametrize("name", list(WRITERS))
def test_kill_during_writer_20(name, tmp_path):
    r = kill_writer(name, tmp_path, kills=int(os.environ.get("P3D_KILLS", "20")), seed=1)
    ROWS[name + " "] = r
    assert r["torn"] == 0 and r["temps_after_next_write"] == 0, r


def teardown_module(module):
    if ROWS:
        print("\n" + _table(ROWS))
