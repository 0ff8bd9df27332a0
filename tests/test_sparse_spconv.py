"""Cross-check against spconv (single-threaded, where its CPU build is correct)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("spconv.pytorch")


def test_same_sites_and_values_as_spconv_single_threaded():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    script = Path(__file__).with_name("spconv_crosscheck.py")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report) == 16
    for name, r in report.items():
        assert r["same_sites"], f"{name}: output site set differs from spconv's"
        assert r["max_err"] <= 1e-4, f"{name}: max abs error {r['max_err']}"
        assert r["n"] > 0
