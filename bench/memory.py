"""Peak memory (resident set size) of the largest built-in workloads, each in a fresh process, against stated
bounds.

    python bench/memory.py [--only NAME ...] [--threads 1] [--scans 1000] [--parquet-gb 10] [--iters 6]
                           [--json bench/results/memory.json]

Workloads (NAME):
  train-dsvt         ``configs/dsvt_waymo_mini.py``: ``--iters`` training iterations (batch 2) on the first frames
                     of the built-in mini dataset, then validation on 4 frames (the Waymo metric) and the checkpoint
  train-centerpoint  ``configs/centerpoint_voxel_waymo_mini.py``: the same (batch 1)
  gs-lego            ``configs/gs_lego.py`` (60k initial Gaussians, 9 views at 200 × 200): 20 steps and the
                     evaluation (needs ../shared/data)
  infer-bag          bag inference (``infer_bag``, CenterPoint mini, random weights) over a ``--scans``-scan mcap
                     bag written by ``make_demo_bag`` (the mini val split's TOP lidar, ~56k points a scan); RSS is
                     sampled every 0.2 s and averaged by quarter of the run, so that growth with the bag's length
                     shows
  parquet-folder     streaming every frame's points and boxes out of a Waymo v2 folder of ``--parquet-gb`` GB:
                     the mini training split's parquet files hard-linked under many segment names (disk use stays
                     that of the mini split), read file by file with ``WaymoV2Segment.iter_points``; peak RSS after
                     the first tenth of the segments and after all of them

Each workload runs in its own process (``--child``); its peak is ``getrusage(RUSAGE_SELF).ru_maxrss`` (the
process's high-water mark of resident memory, Linux) and its baseline the RSS after the imports.  The bounds
(:data:`BOUNDS_MB`) are what the tests (``tests/test_memory_bounds.py``) assert; growth bounds
(:data:`GROWTH_MB`) say how much memory may rise with the length of a bag / folder (a reader that held the data
would grow by hundreds of MB).  The mini dataset is generated and converted on first use.
Results are printed as a table and, with ``--json``, written to a file.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: peak-RSS bound of each workload (MB; 1 MB = 2**20 bytes), asserted by tests/test_memory_bounds.py
BOUNDS_MB = {
    "train-dsvt": 2000,
    "train-centerpoint": 2000,
    "gs-lego": 2500,
    "infer-bag": 1500,
    "parquet-folder": 1000,
}
#: how much memory may grow with the input's length (MB): bag inference, the mean RSS of the run's last quarter
#: minus that of its second quarter (RSS saw-tooths by ~150 MB from scan to scan with the allocator, so peaks
#: are a noisy measure; a run that held its 1.1 MB scans would grow by ~400 MB there); the parquet folder, the
#: peak after all segments minus the peak after the first tenth
GROWTH_MB = {"infer-bag": 64, "parquet-folder": 64}
WORKLOADS = list(BOUNDS_MB)
MINI_ROOT = ROOT / "data" / "waymo_mini"


def rss_mb() -> float:
    """Current resident set size of this process (MB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    """High-water mark of this process's resident set size (MB; ``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------- the workloads
def _train(config: str, iters: int, batch: int, work: Path) -> dict:
    from perception3d.cli import load_config
    from perception3d.engine import build_runner, prepare_cfg
    opts = {"train_dataloader.dataset.dataset.indices": iters * batch, "train_cfg.max_epochs": 1,
            "train_cfg.val_interval": 1, "val_dataloader.dataset.indices": 4,
            "default_hooks.logger.interval": 1}
    cfg = load_config(str(ROOT / "configs" / config), opts)
    cfg = prepare_cfg(cfg, work_dir=str(work), seed=0, launcher="none", amp=False)
    base = rss_mb()
    runner = build_runner(cfg)
    runner.train()
    assert runner.iter == iters and any(work.glob("*.pth")), (runner.iter, sorted(os.listdir(work)))
    return dict(baseline_mb=base, units=f"{iters} iterations + 4 val frames")


def _gs_lego(steps: int, work: Path) -> dict:
    from perception3d.cli import load_config
    from perception3d.rendering.trainer import GSTrainer
    lego = ROOT.parent / "shared" / "data" / "nerf_synthetic_lego"
    if not lego.is_dir():
        raise FileNotFoundError(f"{lego} is absent: gs-lego needs the shared lego views")
    cfg = load_config(str(ROOT / "configs" / "gs_lego.py"))
    cfg.merge_from_dict({"data.root": str(lego / "nerf_synthetic" / "lego"), "train.max_steps": steps,
                         "train.eval_every": steps, "train.save_every": steps})
    base = rss_mb()
    res = GSTrainer(cfg, str(work), seed=0, progress=False).train()
    return dict(baseline_mb=base, units=f"{steps} steps, {res['num_gaussians']} Gaussians at the end")


def make_bag(path: Path, scans: int) -> dict:
    """The demo bag of ``scans`` scans (written once per path)."""
    from perception3d.apis.bag_inference import make_demo_bag
    from perception3d.datasets.prepare import prepare_waymo_mini
    prepare_waymo_mini(str(MINI_ROOT))
    return make_demo_bag(path, "ros2-mcap", scans=scans, root=MINI_ROOT, overwrite=True)


class RssSampler:
    """Samples this process's RSS every ``period`` s in a thread; ``quarters()`` gives the mean of each quarter of
    the run (a reader that holds what it read grows steadily; the allocator's saw-tooth averages out)."""

    def __init__(self, period: float = 0.2):
        import threading
        self.samples: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            self.samples.append(rss_mb())

    def quarters(self) -> list:
        self._stop.set()
        self._thread.join()
        n = len(self.samples)
        return [sum(q) / len(q) for q in (self.samples[k * n // 4:(k + 1) * n // 4] for k in range(4)) if q]


def _infer_bag(bag: Path, scans: int, work: Path) -> dict:
    import torch
    from perception3d.apis import init_model
    from perception3d.apis.bag_inference import infer_bag
    torch.manual_seed(0)
    model = init_model(str(ROOT / "configs" / "centerpoint_voxel_waymo_mini.py"))
    base = rss_mb()
    sampler = RssSampler()
    res = infer_bag(model, bag, "/points", out=work / "out.mcap", max_scans=scans, score_thr=0.3)
    q = sampler.quarters()
    assert res.processed == scans, res.summary()
    return dict(baseline_mb=base, units=f"{res.processed} scans, {res.scans_per_s:.2f} scans/s",
                bag_mb=bag.stat().st_size / 2**20, rss_quarters_mb=q)


def make_parquet_folder(src_split: Path, dest: Path, gigabytes: float) -> dict:
    """``dest/training``: the mini split's files hard-linked under as many segment names as make ``gigabytes``
    GB (10**9 bytes) in all.  Returns {"segments", "files", "bytes"}."""
    from perception3d.datasets.waymo_v2 import list_segments
    segs = list_segments(src_split)
    comps = [c.name for c in src_split.iterdir() if c.is_dir()]
    per_copy = sum(f.stat().st_size for c in comps for f in (src_split / c).glob("*.parquet"))
    copies = max(1, int(round(gigabytes * 1e9 / per_copy)))
    out = dest / "training"
    n_files = 0
    for c in comps:
        (out / c).mkdir(parents=True, exist_ok=True)
        for k in range(copies):
            for s in segs:
                f = src_split / c / f"{s}.parquet"
                if f.is_file():
                    link = out / c / f"c{k:04d}_{s}.parquet"
                    if not link.exists():
                        os.link(f, link)
                    n_files += 1
    return dict(segments=copies * len(segs), files=n_files, bytes=copies * per_copy)


def _read_parquet_folder(split_dir: Path) -> dict:
    from perception3d.datasets.waymo_v2 import WaymoV2Segment, list_segments
    segs = list_segments(split_dir)
    base = rss_mb()
    frames = points = 0
    tenth = max(1, len(segs) // 10)
    peak_tenth = None
    t0 = time.time()
    for i, s in enumerate(segs):
        seg = WaymoV2Segment(split_dir, s)
        for ts, res in seg.iter_points():
            if isinstance(res, Exception):
                raise res
            seg.boxes(ts)
            frames += 1
            points += len(res[0])
        if i + 1 == tenth:
            peak_tenth = peak_mb()
    return dict(baseline_mb=base, peak_tenth_mb=peak_tenth, units=f"{len(segs)} segments, {frames} frames, "
                f"{points / 1e6:.0f} M points in {time.time() - t0:.0f} s")


def child(name: str, args: argparse.Namespace) -> dict:
    import torch
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix=f"p3dmem_{name}_"))
    if name == "train-dsvt":
        out = _train("dsvt_waymo_mini.py", args.iters, 2, work)
    elif name == "train-centerpoint":
        out = _train("centerpoint_voxel_waymo_mini.py", args.iters, 1, work)
    elif name == "gs-lego":
        out = _gs_lego(args.steps, work)
    elif name == "infer-bag":
        out = _infer_bag(Path(args.bag), args.scans, work)
    elif name == "parquet-folder":
        out = _read_parquet_folder(Path(args.folder))
    else:
        raise SystemExit(f"unknown workload {name!r}; one of {WORKLOADS}")
    shutil.rmtree(work, ignore_errors=True)
    return dict(name=name, peak_mb=peak_mb(), **out)


# ------------------------------------------------------------------------------------------- the parent
def run_child(name: str, *extra: str, threads: int = 1, timeout: float = 3600) -> dict:
    """Run one workload in a fresh process; returns its JSON result (peak_mb, baseline_mb, …)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--threads", str(threads), *extra]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(names, threads: int = 1, iters: int = 6, steps: int = 20, scans: int = 1000,
            parquet_gb: float = 10.0, work: Path | None = None) -> list:
    """Measure ``names``; infer-bag and parquet-folder also at a tenth of their size (rows ``…@tenth``)."""
    own = work is None
    work = Path(work or tempfile.mkdtemp(prefix="p3dmem_"))
    try:
        rows = _measure(names, threads, iters, steps, scans, parquet_gb, work)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        r["bound_mb"] = BOUNDS_MB[r["name"]]
        if r.get("rss_quarters_mb"):
            r["growth_mb"] = r["rss_quarters_mb"][-1] - r["rss_quarters_mb"][1]
        elif r.get("peak_tenth_mb") is not None:
            r["growth_mb"] = r["peak_mb"] - r["peak_tenth_mb"]
        if "growth_mb" in r:
            r["growth_bound_mb"] = GROWTH_MB[r["name"]]
    return rows


def _measure(names, threads: int, iters: int, steps: int, scans: int, parquet_gb: float, work: Path) -> list:
    rows = []
    for name in names:
        if name in ("train-dsvt", "train-centerpoint"):
            rows.append(run_child(name, "--iters", str(iters), threads=threads))
        elif name == "gs-lego":
            rows.append(run_child(name, "--steps", str(steps), threads=threads))
        elif name == "infer-bag":
            bag = work / f"demo_{scans}.mcap"
            if not bag.exists():
                make_bag(bag, scans)
            rows.append(run_child(name, "--bag", str(bag), "--scans", str(scans), threads=threads))
        elif name == "parquet-folder":
            from perception3d.datasets.prepare import prepare_waymo_mini
            from perception3d.datasets.waymo_v2 import find_split_dir
            prepare_waymo_mini(str(MINI_ROOT))
            info = make_parquet_folder(find_split_dir(MINI_ROOT, "train"), work / "parquet", parquet_gb)
            row = run_child(name, "--folder", str(work / "parquet" / "training"), threads=threads)
            row["units"] += f"; {info['files']} files, {info['bytes'] / 1e9:.1f} GB"
            rows.append(row)
        else:
            raise SystemExit(f"unknown workload {name!r}; one of {WORKLOADS}")
    return rows


def table(rows: list) -> str:
    out = ["| workload | what ran | RSS after imports MB | peak RSS MB | bound MB | peak at a tenth / mean RSS by "
           "quarter MB | growth MB (bound) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        tenth = (f"{r['peak_tenth_mb']:.0f}" if r.get("peak_tenth_mb") is not None
                 else " / ".join(f"{q:.0f}" for q in r["rss_quarters_mb"]) if r.get("rss_quarters_mb") else "–")
        growth = f"{r['growth_mb']:+.0f} ({r['growth_bound_mb']})" if "growth_mb" in r else "–"
        out.append(f"| {r['name']} | {r['units']} | {r['baseline_mb']:.0f} | {r['peak_mb']:.0f} | {r['bound_mb']} | "
                   f"{tenth} | {growth} |")
    return "\n".join(out)


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="+", choices=WORKLOADS, help="workloads to run (default all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--scans", type=int, default=1000)
    p.add_argument("--parquet-gb", type=float, default=10.0)
    p.add_argument("--json", help="write the rows to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--bag", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args)))
        return []
    rows = measure(args.only or WORKLOADS, threads=args.threads, iters=args.iters, steps=args.steps,
                   scans=args.scans, parquet_gb=args.parquet_gb)
    print(table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
