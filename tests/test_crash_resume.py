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


def kill_and_resume(cmd, kills: int, window: tuple[float, float], seed: int, timeout=900, progress=None) -> dict:
    """Start ``cmd`` (which must resume from its work dir by itself), SIGKILL it (and its process group: the
    data-loader workers) after a random delay drawn from ``window`` seconds, restart it, …; after ``kills`` kills
    that landed, or when a restarted run finishes first, let it finish.  Returns counts, and with
    ``progress`` (a callable) its value after each kill in ``at`` (where the kills landed)."""
    rng = random.Random(seed)
    landed, starts, t_start, at = 0, 0, time.time(), []
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
                if progress is not None:
                    at.append(progress())
                continue
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, out[-3000:]
        return dict(kills=landed, starts=starts, seconds=time.time() - t_start, at=at)


def kill_trials(make_cmd, same, tmp_path: Path, kills: int, window: tuple[float, float], seed: int,
                progress=None) -> dict:
    """Fresh runs in new work dirs, each killed at random moments and resumed until it finishes, until ``kills``
    kills have landed in total; every finished run must equal the reference (``same(work_dir)``: a bool or the
    list of what differed).  ``progress(work_dir)`` (optional) is recorded after each kill."""
    total = dict(kills=0, starts=0, seconds=0.0, runs=0, identical=0, at=[])  # + "differences", per run
    while total["kills"] < kills:
        wd = tmp_path / f"run{total['runs']}"
        res = kill_and_resume(make_cmd(wd), kills - total["kills"], window, seed + total["runs"],
                              progress=None if progress is None else (lambda wd=wd: progress(wd)))
        for k in ("kills", "starts", "seconds", "at"):
            total[k] += res[k]
        total["runs"] += 1
        diff = same(wd)
        diff = ([] if diff else ["differs"]) if isinstance(diff, bool) else diff
        diff += [f"temp files left: {t}" for t in _no_temp_files(wd) if not any(t in d for d in diff)]
        total["identical"] += int(diff == [])
        if diff:
            total.setdefault("differences", []).append(f"{wd.name}: {'; '.join(diff)}")
    return total


def _report(name: str, res: dict) -> None:
    print(f"\n| trainer | kills landed | runs (each resumed to the end) | runs identical to the uninterrupted run | "
          f"wall s |\n|---|---|---|---|---|\n"
          f"| {name} | {res['kills']} | {res['runs']} | {res['identical']} / {res['runs']} | {res['seconds']:.0f} |")
    if res.get("at"):
        print(f"  where the kills landed (checkpoint step on disk right after each kill; None: before the first "
              f"checkpoint): {res['at']}")
    for d in res.get("differences", []):
        print(f"  not identical: {d}")


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


def _gs_differences(a: Path, b: Path) -> list[str]:
    """What differs between two finished 3DGS work dirs (``a`` the reference): step, each parameter tensor (max
    abs difference), the evaluation history (steps and PSNR), leftover ``.tmp`` files in ``b``; [] if identical."""
    ca = torch.load(a / "ckpt_latest.pt", map_location="cpu", weights_only=False)
    cb = torch.load(b / "ckpt_latest.pt", map_location="cpu", weights_only=False)
    diff = []
    if ca["step"] != cb["step"]:
        diff.append(f"step {ca['step']} vs {cb['step']}")
    if ca["params"].keys() != cb["params"].keys():
        diff.append(f"param names {sorted(ca['params'])} vs {sorted(cb['params'])}")
    for k in sorted(set(ca["params"]) & set(cb["params"])):
        x, y = ca["params"][k], cb["params"][k]
        if x.shape != y.shape:
            diff.append(f"params.{k} shape {tuple(x.shape)} vs {tuple(y.shape)}")
        elif not torch.equal(x, y):
            diff.append(f"params.{k} max |diff| {(x - y).abs().max().item():.3g}")
    ea = [(h.get("step"), h.get("psnr")) for h in ca.get("history", []) if "psnr" in h]
    eb = [(h.get("step"), h.get("psnr")) for h in cb.get("history", []) if "psnr" in h]
    if [s for s, _ in ea] != [s for s, _ in eb]:
        diff.append(f"evaluation steps {[s for s, _ in ea]} vs {[s for s, _ in eb]}")
    elif ea != eb:
        diff.append(f"evaluation PSNR {[p for _, p in ea]} vs {[p for _, p in eb]}")
    tmp = _no_temp_files(b)
    if tmp:
        diff.append(f"temp files left: {tmp}")
    return diff


def _gs_ckpt_step(wd: Path):
    """The step of ``wd/ckpt_latest.pt`` (None when there is none yet); "done" once metrics.json is written."""
    if (wd / "metrics.json").is_file():
        return "done"
    ck = wd / "ckpt_latest.pt"
    return int(torch.load(ck, map_location="cpu", weights_only=False)["step"]) if ck.is_file() else None


def _no_temp_files(d: Path) -> list:
    return [p.name for p in d.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow  # two trainer processes + the reference run: ~2 min on a shared 2-core machine
def test_gs_trainer_killed_once_resumes_identically(gs_setup, tmp_path):
    cfg, ref, wall = gs_setup
    res = kill_and_resume(_gs_cmd(cfg, tmp_path / "run"), kills=1, window=(0.5 * wall, 0.8 * wall), seed=0)
    assert res["kills"] == 1
    assert _gs_differences(ref, tmp_path / "run") == []


@pytest.mark.fuzz
def test_gs_trainer_20_random_kills(gs_setup, tmp_path):
    cfg, ref, wall = gs_setup
    res = kill_trials(lambda wd: _gs_cmd(cfg, wd), lambda wd: _gs_differences(ref, wd), tmp_path, KILLS,
                      (0.3 * wall, 0.9 * wall), seed=1, progress=_gs_ckpt_step)
    _report("3DGS (tools/train_gs.py, 24 steps, ckpt every 3)", res)
    assert res["kills"] >= KILLS and res["identical"] == res["runs"], res.get("differences")


# ------------------------------------------------------------------------------- kills at chosen points
# Random delays find a rare window only by chance; these runs kill the trainer process at a named point instead
# (the wrapper patches the trainer in the child process, then runs tools/train_gs.py): ``P3D_KILL_AT=EVENT:N``
# SIGKILLs right after the N-th EVENT of that process — step (a training step, before the step counter moves),
# save (a checkpoint written), savemid (inside the N-th checkpoint write: the temp file written, not yet renamed),
# eval (an evaluation logged), ply (the final point_cloud.ply written), metrics (metrics.json written).
KILL_AT_WRAPPER = r"""
import functools, os, runpy, signal, sys
root = os.environ["P3D_ROOT"]
sys.path.insert(0, root)
kind, _, n = os.environ.get("P3D_KILL_AT", "").partition(":")
n = int(n or 1)
import torch
import perception3d.rendering.trainer as T
from perception3d.fileio import atomic_path
from perception3d.rendering.gaussians import GaussianModel
seen = {}
def hit(event):
    seen[event] = seen.get(event, 0) + 1
    return kind == event and seen[event] == n
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def kill_after(owner, name, event):
    orig = getattr(owner, name)
    @functools.wraps(orig)
    def wrapped(*a, **kw):
        out = orig(*a, **kw)
        if hit(event):
            die()
        return out
    setattr(owner, name, wrapped)
kill_after(T.GSTrainer, "train_step", "step")
kill_after(T.GSTrainer, "save_checkpoint", "save")
kill_after(T.GSTrainer, "evaluate", "eval")
kill_after(GaussianModel, "save_ply", "ply")
kill_after(T, "atomic_write_text", "metrics")
orig_save = T.atomic_torch_save
def save_then_die(path, obj):
    if hit("savemid"):
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
            die()
    return orig_save(path, obj)
T.atomic_torch_save = save_then_die
sys.argv = [os.path.join(root, "tools", "train_gs.py")] + sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def start_killed_at(cfg, work_dir: Path, point: str, wrapper: Path) -> bool:
    """Start (or resume) the 3DGS trainer with a SIGKILL at ``point`` (``EVENT:N``, see above); True when it
    died by SIGKILL, False when it finished first (a resumed process may not reach the N-th event)."""
    cmd = [sys.executable, str(wrapper)] + _gs_cmd(cfg, work_dir)[2:]
    env = dict(_env(), P3D_ROOT=str(ROOT), P3D_KILL_AT=point)
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode in (0, -signal.SIGKILL), f"{point}: exit {p.returncode}\n{p.stdout[-2000:]}"
    return p.returncode == -signal.SIGKILL


def kill_at(cfg, work_dir: Path, point: str, wrapper: Path) -> None:
    """Kill the 3DGS trainer at ``point`` (it must land), then resume it to the end with the same command."""
    assert start_killed_at(cfg, work_dir, point, wrapper), f"{point}: the trainer finished before the kill"
    run_to_completion(_gs_cmd(cfg, work_dir))


# 24 steps, checkpoints at steps 3, 6, …, 24 and the final one (9 saves), evaluations at steps 10, 20, 24 (3)
KILL_POINTS = (["step:1", "step:4", "step:10", "step:11", "step:17", "step:23", "step:24"]
               + [f"save:{k}" for k in (1, 3, 4, 7, 8, 9)] + [f"savemid:{k}" for k in (1, 4, 8, 9)]
               + ["eval:1", "eval:2", "eval:3", "ply:1", "metrics:1"])


@pytest.mark.slow  # two trainer processes + the reference: ~1 min on a shared 2-core machine
@pytest.mark.parametrize("point", ["metrics:1"])
def test_gs_killed_after_final_checkpoint_resumes_identically(gs_setup, tmp_path, point):
    """The kill that broke exact resume (1 of 7 random kills): after the final checkpoint — which already holds
    the last evaluation — while writing point_cloud.ply / metrics.json.  The resumed run evaluated again, so its
    history held the step-24 evaluation twice."""
    cfg, ref, _ = gs_setup
    wrapper = tmp_path / "kill_at.py"
    wrapper.write_text(KILL_AT_WRAPPER)
    kill_at(cfg, tmp_path / "run", point, wrapper)
    assert _gs_differences(ref, tmp_path / "run") == []


@pytest.mark.fuzz
def test_gs_killed_at_every_kind_of_point(gs_setup, tmp_path):
    """Each point of KILL_POINTS once (a kill during a step, after / inside a checkpoint write, after an
    evaluation, while writing the PLY and metrics.json); prints a table, every resumed run must be identical."""
    cfg, ref, _ = gs_setup
    wrapper = tmp_path / "kill_at.py"
    wrapper.write_text(KILL_AT_WRAPPER)
    bad = {}
    print("\n| kill point | resumed run vs uninterrupted |\n|---|---|")
    for point in KILL_POINTS:
        wd = tmp_path / point.replace(":", "_")
        kill_at(cfg, wd, point, wrapper)
        diff = _gs_differences(ref, wd)
        print(f"| {point} | {'identical' if not diff else '; '.join(diff)} |", flush=True)
        if diff:
            bad[point] = diff
    assert bad == {}


def test_gs_resume_of_a_finished_run_does_not_evaluate_again(tmp_path):
    """Fast, in-process form of the kill above: a run whose final checkpoint was written (then killed before
    metrics.json) is resumed; the history must hold each evaluation once and the parameters stay as they were."""
    from mmengine.config import Config

    from perception3d.rendering.trainer import GSTrainer

    cfg = Config.fromstring(GS_CFG.format(root=str(tmp_path / "scene"), steps=6), ".py")
    cfg.merge_from_dict({"model.init_num": 300, "train.eval_every": 3, "train.save_every": 100})
    GSTrainer(cfg, tmp_path / "run", seed=1, progress=False).train()
    done = torch.load(tmp_path / "run" / "ckpt_latest.pt", map_location="cpu", weights_only=False)
    assert [h["step"] for h in done["history"]] == [3, 6]
    (tmp_path / "run" / "metrics.json").unlink()  # as if killed while writing it
    again = GSTrainer(cfg, tmp_path / "run", seed=1, resume=True, progress=False)
    assert again.step == 6
    last = again.train()
    assert last["step"] == 6 and last["psnr"] == done["history"][-1]["psnr"]
    assert [h["step"] for h in again.history] == [3, 6]
    resumed = torch.load(tmp_path / "run" / "ckpt_latest.pt", map_location="cpu", weights_only=False)
    assert [h["step"] for h in resumed["history"]] == [3, 6]
    assert all(torch.equal(done["params"][k], resumed["params"][k]) for k in done["params"])
    assert (tmp_path / "run" / "metrics.json").is_file()


# every event of one uninterrupted run of the 24-step config (the per-process counts a kill point refers to)
GS_EVENTS = ([f"step:{k}" for k in range(1, 25)] + [f"save:{k}" for k in range(1, 10)]
             + [f"savemid:{k}" for k in range(1, 10)] + [f"eval:{k}" for k in range(1, 4)] + ["ply:1", "metrics:1"])


@pytest.mark.fuzz
def test_gs_trainer_20_seeded_kill_points(gs_setup, tmp_path):
    """``P3D_KILLS`` (default 20) kills at points drawn from GS_EVENTS by a seeded generator (reproducible, unlike
    timed kills, and never wasted on interpreter start-up): each run is started with one drawn kill point,
    resumed with another, then resumed to the end; every finished run must equal the uninterrupted one."""
    cfg, ref, _ = gs_setup
    wrapper = tmp_path / "kill_at.py"
    wrapper.write_text(KILL_AT_WRAPPER)
    rng = random.Random(20)
    landed, runs, identical, lines, t0 = 0, 0, 0, [], time.time()
    while landed < KILLS:
        wd = tmp_path / f"run{runs}"
        points = [rng.choice(GS_EVENTS) for _ in range(min(2, KILLS - landed))]
        hits = [start_killed_at(cfg, wd, pt, wrapper) for pt in points]
        run_to_completion(_gs_cmd(cfg, wd))
        diff = _gs_differences(ref, wd)
        landed += sum(hits)
        runs += 1
        identical += int(diff == [])
        lines.append(f"| {runs} | {', '.join(p + ('' if h else ' (finished first)') for p, h in zip(points, hits))}"
                     f" | {'identical' if not diff else '; '.join(diff)} |")
    print(f"\n| run | kill points (per process) | resumed run vs uninterrupted |\n|---|---|---|\n" + "\n".join(lines))
    print(f"| 3DGS seeded kill points | {landed} kills | {runs} runs | {identical} / {runs} identical | "
          f"{time.time() - t0:.0f} s |")
    assert landed >= KILLS and identical == runs, lines


def test_compiled_cpu_rasterizer_backward_is_bit_deterministic_across_threads():
    """Exact resume needs "same seed, same numbers" on CPU: the compiled compositor's gradients (tiles dealt to
    threads in whatever order they finish) must be bit-identical run to run on 2 threads, and equal to 1 thread
    (each tile-Gaussian pair is written once, then summed per Gaussian by a serial ``index_add_``)."""
    from perception3d.rendering import rasterize_cpu
    from perception3d.rendering.rasterize import rasterize

    if not rasterize_cpu.available():
        pytest.skip("the compiled CPU rasterizer is unavailable here (no C++ compiler)")
    g = torch.Generator().manual_seed(0)
    n, w, h = 3000, 96, 64
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * torch.tensor([1.5, 1.0, 1.0])
    inputs = (means, torch.randn(n, 4, generator=g), torch.rand(n, 3, generator=g) * 0.08 + 0.01,
              torch.rand(n, generator=g) * 0.9 + 0.05, torch.rand(n, 3, generator=g))
    viewmat = torch.eye(4)[None].clone()
    viewmat[0, 2, 3] = 4.0
    K = torch.tensor([[[90.0, 0, w / 2], [0, 90.0, h / 2], [0, 0, 1]]])
    weight = torch.rand(1, h, w, 3, generator=g)

    def grads(threads: int) -> list:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            ps = [t.clone().requires_grad_(True) for t in inputs]
            out, alpha, meta = rasterize(*ps, viewmat, K, w, h, backend="cpu", tile_size=16)
            assert meta["backend"] == "cpu"
            ((out * weight).sum() + alpha.sum()).backward()
            return [out.detach()] + [p.grad for p in ps]
        finally:
            torch.set_num_threads(old)

    runs = [grads(2) for _ in range(3)] + [grads(1)]
    assert runs[0][1].abs().sum() > 0  # gradients reached the means
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))
