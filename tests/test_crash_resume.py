"""Kill -9 and resume, across processes: the 3DGS trainer (tools/train_gs.py) is SIGKILLed at random moments
(start-up, a step, a checkpoint write, an evaluation) and restarted with ``--resume`` until it finishes; the final
weights must equal an uninterrupted run with the same seed bit for bit (CPU).  ``kill_and_resume`` kills the whole
process group, so a trainer with data-loader worker processes is covered by the same harness.

`pytest -m slow` kills each trainer once (the default run covers kill -9 and resume with the toy engine config in
tests/test_tools_train.py); ``pytest -m fuzz tests/test_crash_resume.py -s`` kills each 20 times
(``P3D_KILLS`` overrides) and prints the table of the closing note.
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
import torch

ROOT = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("P3D_KILLS", "20"))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_to_completion(cmd, timeout=600) -> tuple[float, str]:
    t0 = time.time()
    p = subprocess.run(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:]
    return time.time() - t0, p.stdout


def kill_and_resume(cmd, kills: int, window: tuple[float, float], seed: int, timeout=900) -> dict:
    """Start ``cmd`` (which must resume from its work dir by itself), SIGKILL it (and its process group: the
    data-loader workers) after a random delay drawn from ``window`` seconds, restart it, …; after ``kills`` kills
    that landed, or when a restarted run finishes first, let it finish.  Returns counts."""
    rng = random.Random(seed)
    landed, starts, t_start = 0, 0, time.time()
    while True:
        starts += 1
        p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        if landed < kills:
            try:
                p.wait(timeout=rng.uniform(*window))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                landed += 1
                continue
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, out[-3000:]
        return dict(kills=landed, starts=starts, seconds=time.time() - t_start)


def kill_trials(make_cmd, same, tmp_path: Path, kills: int, window: tuple[float, float], seed: int) -> dict:
    """Fresh runs in new work dirs, each killed at random moments and resumed until it finishes, until ``kills``
    kills have landed in total; every finished run must equal the reference (``same(work_dir)``)."""
    total = dict(kills=0, starts=0, seconds=0.0, runs=0, identical=0)
    while total["kills"] < kills:
        wd = tmp_path / f"run{total['runs']}"
        res = kill_and_resume(make_cmd(wd), kills - total["kills"], window, seed + total["runs"])
        for k in ("kills", "starts", "seconds"):
            total[k] += res[k]
        total["runs"] += 1
        total["identical"] += int(same(wd) and _no_temp_files(wd) == [])
    return total


def _report(name: str, res: dict) -> None:
    print(f"\n| trainer | kills landed | runs (each resumed to the end) | runs identical to the uninterrupted run | "
          f"wall s |\n|---|---|---|---|---|\n"
          f"| {name} | {res['kills']} | {res['runs']} | {res['identical']} / {res['runs']} | {res['seconds']:.0f} |")


# ---------------------------------------------------------------------------------------------------- 3DGS
GS_CFG = """
default_scope = "perception3d"
data = dict(type="default", root={root!r}, generate=dict(n_train=6, n_test=2, size=32))
model = dict(init="random", init_num=2000, init_center=(0, 0, 0), init_extent=1.0, carve_with_masks=True,
             sh_degree=1, init_opacity=0.1)
train = dict(max_steps={steps}, sh_degree_interval=10, eval_every=10, save_every=3, log_every=5, tile_size=8,
             lr=dict(sh0=1e-2))
strategy = dict(refine_start_iter=4, refine_every=6, refine_stop_iter=18, reset_every=10_000)
"""


@pytest.fixture(scope="module")
def gs_setup(tmp_path_factory):
    from perception3d.rendering.default_scene import make_default_scene
    root = tmp_path_factory.mktemp("gs")
    make_default_scene(root / "scene", n_train=6, n_test=2, size=32)
    cfg = root / "gs_tiny.py"
    cfg.write_text(GS_CFG.format(root=str(root / "scene"), steps=24))
    ref = root / "ref"
    wall, _ = run_to_completion(_gs_cmd(cfg, ref))
    return cfg, ref, wall


def _gs_cmd(cfg, work_dir):
    return [sys.executable, str(ROOT / "tools" / "train_gs.py"), str(cfg), "--work-dir", str(work_dir), "--seed",
            "1", "--resume", "--no-progress"]


def _same_gs(a: Path, b: Path) -> bool:
    ca = torch.load(a / "ckpt_latest.pt", map_location="cpu", weights_only=False)
    cb = torch.load(b / "ckpt_latest.pt", map_location="cpu", weights_only=False)
    same = ca["step"] == cb["step"] and ca["params"].keys() == cb["params"].keys()
    same = same and all(torch.equal(ca["params"][k], cb["params"][k]) for k in ca["params"])
    ea = [(h.get("step"), h.get("psnr")) for h in ca.get("history", []) if "psnr" in h]
    eb = [(h.get("step"), h.get("psnr")) for h in cb.get("history", []) if "psnr" in h]
    return same and ea == eb


def _no_temp_files(d: Path) -> list:
    return [p.name for p in d.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow  # two trainer processes + the reference run: ~2 min on a shared 2-core machine
def test_gs_trainer_killed_once_resumes_identically(gs_setup, tmp_path):
    cfg, ref, wall = gs_setup
    res = kill_and_resume(_gs_cmd(cfg, tmp_path / "run"), kills=1, window=(0.5 * wall, 0.8 * wall), seed=0)
    assert res["kills"] == 1
    assert _same_gs(ref, tmp_path / "run")
    assert _no_temp_files(tmp_path / "run") == []


@pytest.mark.fuzz
def test_gs_trainer_20_random_kills(gs_setup, tmp_path):
    cfg, ref, wall = gs_setup
    res = kill_trials(lambda wd: _gs_cmd(cfg, wd), lambda wd: _same_gs(ref, wd), tmp_path, KILLS,
                      (0.3 * wall, 0.9 * wall), seed=1)
    _report("3DGS (tools/train_gs.py, 24 steps, ckpt every 3)", res)
    assert res["kills"] >= KILLS and res["identical"] == res["runs"]
