"""Kill -9 and resume of the real detector pipeline: ``tools/train.py`` on a short CenterPoint mini config with a
data-loader worker process, and ``tools/create_data.py waymo`` (the data conversion) killed midway.

The trainer is killed at named points of its run (not after random delays: a delay mostly lands in interpreter
start-up, and a rare window such as a checkpoint write is hit only by chance).  A wrapper (``KILL_AT_WRAPPER``)
patches the trainer inside the child process, then runs the tool; ``P3D_KILL_AT=EVENT:N`` kills the whole process
group (the trainer and its data-loader worker) at the N-th EVENT of that process:

    step      inside a training step: loss computed and back-propagated, parameters not yet updated
    iter      a training iteration finished (hooks run, parameters updated)
    save      a checkpoint written (renamed into place)
    savemid   inside a checkpoint write: the temporary file written, not renamed
    val       a validation iteration done (the metric not yet computed)
    fetch     inside the data-loader worker, a sample loaded (counted per worker process, i.e. per epoch)

Each run is resumed with ``--resume`` until it finishes; the final weights, every iteration's losses and the
validation metrics must equal those of an uninterrupted run with the same seed (bit for bit, CPU), and no
temporary file may be left.  The conversion (``frame``: a points file written, ``framemid``: inside that write,
``info``: inside an info-file write) resumes to byte-identical points and equal infos.

``-m slow``: one run killed at two points, one conversion killed once.  ``pytest -m fuzz
tests/test_crash_detector.py -s``: ``P3D_KILLS`` (default 20) seeded kill points drawn from every event of the run,
and every conversion point, with the tables of docs/reliability.md.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("P3D_KILLS", "20"))
ITERS = 12            # 6 frames × 2 epochs at batch 1; checkpoints every 2 iterations; validation on 2 frames

DET_CFG = """
_base_ = [{base!r}]
train_dataloader = dict(num_workers=1, persistent_workers=False, dataset=dict(dataset=dict(indices=6)))
val_dataloader = dict(num_workers=1, persistent_workers=False, dataset=dict(indices=2))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=2), logger=dict(interval=1))
custom_hooks = [dict(type="RNGStateHook"), dict(type="ProgressHook", interval=1),
                dict(type="DisableAugHook", transforms=["GlobalRotScaleTrans"], num_last_epochs=1)]
log_level = "WARNING"
"""

KILL_AT_WRAPPER = r"""
import functools, os, runpy, signal, sys
root = os.environ["P3D_ROOT"]
sys.path.insert(0, root)
kind, _, n = os.environ.get("P3D_KILL_AT", "").partition(":")
n = int(n or 1)
seen = {}
def hit(event):
    seen[event] = seen.get(event, 0) + 1
    return kind == event and seen[event] == n
def die():
    os.killpg(os.getpgrp(), signal.SIGKILL)     # the trainer and its data-loader workers
def patch(owner, name, event, before=False):
    orig = getattr(owner, name)
    @functools.wraps(orig)
    def wrapped(*a, **kw):
        if before and hit(event):
            die()
        out = orig(*a, **kw)
        if not before and hit(event):
            die()
        return out
    setattr(owner, name, wrapped)
tool = sys.argv[1]
sys.argv = [os.path.join(root, "tools", tool)] + sys.argv[2:]
from perception3d import fileio
if tool == "train.py":
    import torch.utils.data
    from mmengine.optim import OptimWrapper
    from mmengine.runner.loops import ValLoop
    from perception3d.datasets.loading import SeededDataset
    from perception3d.engine import AtomicLocalBackend, ExactEpochBasedTrainLoop
    patch(OptimWrapper, "step", "step", before=True)
    patch(ExactEpochBasedTrainLoop, "run_iter", "iter")
    patch(ValLoop, "run_iter", "val")
    patch(AtomicLocalBackend, "put", "save")
    orig_put = AtomicLocalBackend.put
    def put(self, obj, filepath):
        if hit("savemid"):
            with fileio.atomic_path(filepath) as tmp:
                tmp.write_bytes(obj)
                die()
        return orig_put(self, obj, filepath)
    AtomicLocalBackend.put = put
    orig_get = SeededDataset.__getitem__
    def getitem(self, i):
        out = orig_get(self, i)
        if torch.utils.data.get_worker_info() is not None and hit("fetch"):
            die()
        return out
    SeededDataset.__getitem__ = getitem
else:                          # the conversion: every file goes through fileio.atomic_path
    import contextlib
    orig_ap = fileio.atomic_path
    @contextlib.contextmanager
    def atomic_path(path, *a, **kw):
        what = "frame" if str(path).endswith(".bin") else "info" if str(path).endswith(".pkl") else "other"
        seen[what] = k = seen.get(what, 0) + 1
        with orig_ap(path, *a, **kw) as tmp:
            yield tmp
            if k == n and kind == ("framemid" if what == "frame" else what):
                die()                   # the temporary file written, not yet renamed
        if k == n and kind == what == "frame":
            die()
    fileio.atomic_path = atomic_path
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", P3D_ROOT=str(ROOT), **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def run_killed_at(args: list, wrapper: Path, point: str | None, timeout: float = 600) -> bool:
    """Run ``wrapper TOOL ARGS`` in a new session with a kill at ``point`` (None: none); True when it was
    killed, False when it finished first (a resumed process may not reach the N-th event)."""
    p = subprocess.Popen([sys.executable, str(wrapper), *args], env=_env(P3D_KILL_AT=point or ""),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out, _ = p.communicate(timeout=timeout)
    try:                                  # a worker that outlived its group leader (never expected)
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    assert p.returncode in (0, -signal.SIGKILL), f"{point}: exit {p.returncode}\n{out[-3000:]}"
    return p.returncode == -signal.SIGKILL


def temp_files(d: Path) -> list:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.name.endswith(".tmp"))


# -------------------------------------------------------------------------------------------------- the trainer
@pytest.fixture(scope="module")
def det_setup(tmp_path_factory):
    from perception3d.datasets.prepare import prepare_waymo_mini
    prepare_waymo_mini(str(ROOT / "data" / "waymo_mini"))        # once, outside the timed / killed runs
    d = tmp_path_factory.mktemp("det")
    cfg = d / "centerpoint_tiny.py"
    cfg.write_text(DET_CFG.format(base=str(ROOT / "configs" / "centerpoint_voxel_waymo_mini.py")))
    wrapper = d / "kill_at.py"
    wrapper.write_text(KILL_AT_WRAPPER)
    ref = d / "ref"
    t0 = time.time()
    assert not run_killed_at(_train_args(cfg, ref), wrapper, None)
    return cfg, wrapper, ref, time.time() - t0


def _train_args(cfg: Path, work_dir: Path) -> list:
    return ["train.py", str(cfg), "--work-dir", str(work_dir), "--seed", "5", "--resume"]


def _final(work_dir: Path) -> dict:
    """Final weights, the last loss entry per iteration, and the validation metrics of a finished run."""
    ck = torch.load(work_dir / f"iter_{ITERS}.pth", map_location="cpu", weights_only=False)
    losses = {}
    for line in (work_dir / "losses.jsonl").read_text().splitlines():
        d = json.loads(line)
        losses[d["iter"]] = d
    metrics = None
    for f in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in f.read_text().splitlines():
            d = json.loads(line)
            if any("AP" in k for k in d):
                metrics = d
    return dict(state=ck["state_dict"], iter=ck["meta"]["iter"], losses=losses, metrics=metrics)


def det_differences(ref: Path, run: Path) -> list:
    a, b = _final(ref), _final(run)
    diff = []
    if a["iter"] != b["iter"]:
        diff.append(f"iter {a['iter']} vs {b['iter']}")
    for k, v in a["state"].items():
        if not torch.equal(v, b["state"][k]):
            diff.append(f"{k} max |diff| {(v.float() - b['state'][k].float()).abs().max().item():.3g}")
    if sorted(a["losses"]) != sorted(b["losses"]):
        diff.append(f"iterations logged {sorted(a['losses'])} vs {sorted(b['losses'])}")
    else:
        bad = [i for i in a["losses"] if {k: v for k, v in a["losses"][i].items()}
               != {k: v for k, v in b["losses"][i].items()}]
        if bad:
            diff.append(f"losses differ at iterations {bad}")
    ma = {k: v for k, v in (a["metrics"] or {}).items() if "time" not in k}     # not the timings
    mb = {k: v for k, v in (b["metrics"] or {}).items() if "time" not in k}
    if a["metrics"] is None or ma != mb:
        diff.append(f"metrics {ma} vs {mb}")
    diff += [f"temp file left: {t}" for t in temp_files(run)]
    return diff


@pytest.mark.slow   # the reference training run (~1 min)
def test_reference_run_finished(det_setup):
    cfg, wrapper, ref, _ = det_setup
    f = _final(ref)
    assert f["iter"] == ITERS and sorted(f["losses"]) == list(range(1, ITERS + 1))
    assert f["metrics"] is not None and temp_files(ref) == []


# every event of one uninterrupted run (per-process counts); fetch counts per worker = per epoch (6 frames)
DET_EVENTS = ([f"step:{k}" for k in range(1, ITERS + 1)] + [f"iter:{k}" for k in range(1, ITERS + 1)]
              + [f"save:{k}" for k in range(1, ITERS // 2 + 1)] + [f"savemid:{k}" for k in range(1, ITERS // 2 + 1)]
              + ["val:1", "val:2"] + [f"fetch:{k}" for k in range(1, 7)])


def kill_run(det_setup, work_dir: Path, points: list) -> tuple[list, list]:
    """Start a fresh run killed at ``points[0]``, resume it killed at ``points[1]``, …, then resume it to the end;
    returns (which kills landed, differences from the reference)."""
    cfg, wrapper, ref, _ = det_setup
    hits = [run_killed_at(_train_args(cfg, work_dir), wrapper, pt) for pt in points]
    assert not run_killed_at(_train_args(cfg, work_dir), wrapper, None)
    return hits, det_differences(ref, work_dir)


@pytest.mark.slow   # three trainer processes + the reference: ~2 min on a shared 2-core machine
def test_detector_killed_in_a_step_and_a_checkpoint_write_resumes_identically(det_setup, tmp_path):
    hits, diff = kill_run(det_setup, tmp_path / "run", ["step:5", "savemid:2"])
    assert hits == [True, True] and diff == []


@pytest.mark.fuzz
def test_detector_20_seeded_kill_points(det_setup, tmp_path):
    rng = random.Random(20)
    landed, runs, identical, lines, t0 = 0, 0, 0, [], time.time()
    while landed < KILLS:
        points = [rng.choice(DET_EVENTS) for _ in range(min(2, KILLS - landed))]
        hits, diff = kill_run(det_setup, tmp_path / f"run{runs}", points)
        landed += sum(hits)
        runs += 1
        identical += int(diff == [])
        lines.append(f"| {runs} | {', '.join(p + ('' if h else ' (finished first)') for p, h in zip(points, hits))}"
                     f" | {'identical' if not diff else '; '.join(diff[:4])} |")
        print(lines[-1], flush=True)
    print("\n| run | kill points (per process) | resumed run vs uninterrupted |\n|---|---|---|\n" + "\n".join(lines))
    print(f"| detector (tools/train.py, CenterPoint mini, {ITERS} iterations, 1 worker) | {landed} kills | "
          f"{runs} runs | {identical} / {runs} identical | {time.time() - t0:.0f} s |")
    assert landed >= KILLS and identical == runs, lines


# -------------------------------------------------------------------------------------------- the conversion
@pytest.fixture(scope="module")
def conv_setup(tmp_path_factory):
    from perception3d.datasets import generate_waymo_mini
    d = tmp_path_factory.mktemp("conv")
    generate_waymo_mini(d / "src", num_train=4, num_val=2, frames_per_segment=2, lidar_width=256, camera=False)
    assert len(list((d / "src").rglob("lidar/*.parquet"))) == 3
    wrapper = d / "kill_at.py"
    wrapper.write_text(KILL_AT_WRAPPER)
    ref = d / "ref"
    assert not run_killed_at(_conv_args(d / "src", ref), wrapper, None)
    return d / "src", wrapper, ref


def _conv_args(src: Path, out: Path) -> list:
    return ["create_data.py", "waymo", "--root", str(src), "--out", str(out)]


def conv_differences(ref: Path, out: Path) -> list:
    from perception3d.datasets.mmdet3d_info import load_info_file
    diff = []
    a = sorted(p.name for p in (ref / "points").iterdir())
    b = sorted(p.name for p in (out / "points").iterdir())
    if a != b:
        diff.append(f"points files {len(a)} vs {len(b)}: {sorted(set(a) ^ set(b))[:4]}")
    diff += [f"points/{n} differs" for n in set(a) & set(b)
             if (ref / "points" / n).read_bytes() != (out / "points" / n).read_bytes()]
    for split in ("train", "val"):
        f = f"waymo_infos_{split}.pkl"
        try:
            ma, da = load_info_file(ref / f)
            mb, db = load_info_file(out / f)
        except Exception as exc:  # noqa: BLE001 — a missing or torn info file
            diff.append(f"{f}: {exc}")
            continue
        ma.pop("source", None)
        mb.pop("source", None)
        if ma != mb or len(da) != len(db) or any(not _same(x, y) for x, y in zip(da, db)):
            diff.append(f"{f} differs")
    return diff + [f"temp file left: {t}" for t in temp_files(out)]


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


# 3 segments × 2 frames = 6 points files (4 train, 2 val); 2 info files
CONV_POINTS = ["frame:1", "frame:3", "frame:6", "framemid:1", "framemid:4", "framemid:6", "info:1", "info:2"]


@pytest.mark.slow   # two conversion processes: ~30 s
def test_conversion_killed_midway_resumes(conv_setup, tmp_path):
    src, wrapper, ref = conv_setup
    out = tmp_path / "out"
    assert run_killed_at(_conv_args(src, out), wrapper, "framemid:4")
    assert not run_killed_at(_conv_args(src, out), wrapper, None)
    assert conv_differences(ref, out) == []


@pytest.mark.fuzz
def test_conversion_killed_at_every_point(conv_setup, tmp_path):
    src, wrapper, ref = conv_setup
    rows, bad = [], {}
    for point in CONV_POINTS:
        out = tmp_path / point.replace(":", "_")
        landed = run_killed_at(_conv_args(src, out), wrapper, point)
        left = temp_files(out) if out.exists() else []
        assert not run_killed_at(_conv_args(src, out), wrapper, None)
        diff = conv_differences(ref, out)
        rows.append(f"| {point} | {'yes' if landed else 'no'} | {len(left)} | "
                    f"{'identical' if not diff else '; '.join(diff[:3])} |")
        if diff or not landed:
            bad[point] = diff or ["the kill did not land"]
    print("\n| conversion kill point | killed | temp files after the kill | resumed conversion vs uninterrupted |"
          "\n|---|---|---|---|\n" + "\n".join(rows))
    assert bad == {}


def test_resumed_run_cuts_a_loss_line_torn_by_the_kill(tmp_path):
    """A kill while ``losses.jsonl`` is appended to leaves half a line; the resumed run's ProgressHook cuts it off
    before appending, so every line of the log parses (before, the torn line stayed in the middle of the file)."""
    from types import SimpleNamespace

    from perception3d.engine import ProgressHook
    log = tmp_path / "losses.jsonl"
    log.write_text('{"iter": 1, "loss": 0.5}\n{"iter": 2, "lo')
    runner = SimpleNamespace(iter=1, work_dir=str(tmp_path),
                             message_hub=SimpleNamespace(get_info=lambda k, d=None: d))
    ProgressHook(log_file="losses.jsonl").before_train(runner)
    assert log.read_text() == '{"iter": 1, "loss": 0.5}\n'
    ProgressHook(log_file="losses.jsonl").before_train(runner)     # a complete log is left as it is
    assert log.read_text() == '{"iter": 1, "loss": 0.5}\n'


def test_resume_from_a_checkpoint_at_the_end_of_an_epoch(tmp_path):
    """Found by the seeded kills: a run resumed from a checkpoint written at the last iteration of an epoch
    (iteration-interval checkpoints that fall on an epoch's end) died with ``StopIteration`` in the next epoch —
    the loop told the sampler to skip the whole finished epoch, nothing consumed that, and the next epoch was
    skipped instead.  Toy config, 8 iterations an epoch, checkpoints every 4: resume from ``iter_8.pth`` and
    finish with the uninterrupted run's weights."""
    import importlib.util
    import shutil
    sys.path.insert(0, str(ROOT / "tests"))
    spec = importlib.util.spec_from_file_location("train_tool", ROOT / "tools" / "train.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    opts = ["--cfg-options", "default_hooks.checkpoint.interval=4", "default_hooks.checkpoint.max_keep_ckpts=10"]
    cfg = str(ROOT / "tests" / "_engine_toy_cfg.py")
    a, b = tmp_path / "a", tmp_path / "b"
    tool.main([cfg, "--work-dir", str(a), "--seed", "3", *opts])
    b.mkdir()
    shutil.copy(a / "iter_8.pth", b / "iter_8.pth")
    tool.main([cfg, "--work-dir", str(b), "--seed", "3", "--resume", *opts])
    wa = torch.load(a / "iter_24.pth", map_location="cpu", weights_only=False)["state_dict"]
    wb = torch.load(b / "iter_24.pth", map_location="cpu", weights_only=False)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
