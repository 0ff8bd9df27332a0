"""Shared by the slow AP-bar tests: train a mini config with tools/train.py and read its final Waymo metrics."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_mini(config: str, work_dir: Path, seed: int = 0) -> tuple[dict, float]:
    """Run ``tools/train.py configs/<config> --seed <seed>`` (which prepares the mini dataset on first use);
    returns ({"Vehicle/L1 mAP": …, …} from the last validation, wall-clock seconds)."""
    t0 = time.time()
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), str(ROOT / "configs" / config),
                          "--work-dir", str(work_dir), "--seed", str(seed)], capture_output=True, text=True,
                         timeout=3600)
    wall = time.time() - t0
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    log = out.stdout + out.stderr
    metrics = {k: float(v) for k, v in re.findall(r"Waymo metric/(\w+/L[12] mAPH?): ([0-9.]+)", log)}
    assert metrics, "no Waymo metric in the log"
    return metrics, wall
