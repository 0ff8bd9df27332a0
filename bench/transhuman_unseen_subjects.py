"""TransHuman on every unseen subject of the built-in human dataset against a per-scene NeRF fitted to the same 3
reference views for the same CPU time (issue 17's "unseen subjects" table).

    OMP_NUM_THREADS=1 python bench/transhuman_unseen_subjects.py [--ckpt CKPT | --config CFG --train-cpu-minutes M]
                                                                [--nerf-cpu-minutes M] [--frames F ...] [--out DIR]
                                                                [--target-views C ...] [--nerf-from DIR]

Without ``--ckpt`` it first trains TransHuman once on the config's training subjects (default
``configs/transhuman_human_mini.py``: subjects 0–2; unseen: 3–5) for ``--train-cpu-minutes`` of process CPU time
into ``DIR/train``. Then, for each unseen subject (and each ``--frames`` frame, default the config's first
evaluation frame), TransHuman renders the target views from the reference views in one forward pass and a
per-scene NeRF is fitted to those reference views for the checkpoint's training CPU time (``--nerf-cpu-minutes``
to override); both are scored with the authors' protocol (PSNR inside the projected body box, SSIM on its crop).
Prints the per-subject table and writes ``DIR/compare.md``, ``DIR/compare.json``, ``DIR/compare_grid.png`` (one
row per target view, subjects in turn: the 3 reference views | TransHuman | per-scene NeRF | ground truth) and
``DIR/bench.json`` (CPU and wall time of the whole run, thread count, load average before and after: the figures
say whether the machine was shared).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=None, help="a TransHuman checkpoint (default: train one first)")
    ap.add_argument("--config", default=str(ROOT / "configs" / "transhuman_human_mini.py"))
    ap.add_argument("--train-cpu-minutes", type=float, default=None,
                    help="TransHuman training budget in process CPU minutes (default: the config's)")
    ap.add_argument("--nerf-cpu-minutes", type=float, default=None,
                    help="per-scene NeRF budget per subject (default: the checkpoint's training CPU time)")
    ap.add_argument("--frames", type=int, nargs="+", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "transhuman_unseen"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-views", type=int, nargs="+", default=None,
                    help="cameras to score (default: the config's 6 target views); the table then also gives the "
                         "mean over the config's target views")
    ap.add_argument("--nerf-from", default=None,
                    help="a previous run's --out folder: reuse its per-scene NeRF fits (same reference views, "
                         "budget, seed; a mismatch raises) instead of fitting them again")
    args = ap.parse_args(argv)

    import torch

    from perception3d.cli import load_config
    from perception3d.fileio import atomic_write_text
    from perception3d.rendering.human.transhuman.compare import compare_with_nerf
    from perception3d.rendering.human.transhuman.trainer import TransHumanTrainer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = {"threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()}
    t0, p0 = time.perf_counter(), time.process_time()
    ckpt = args.ckpt
    if ckpt is None:
        opts = {} if args.train_cpu_minutes is None else {"train.max_cpu_minutes": args.train_cpu_minutes}
        cfg = load_config(args.config, opts)
        trainer = TransHumanTrainer(cfg, out / "train", seed=args.seed)
        trainer.train()
        ckpt = str(trainer.ckpt_path)
        run["train_wall_s"], run["train_cpu_s"] = time.perf_counter() - t0, time.process_time() - p0
    cpu = None if args.nerf_cpu_minutes is None else 60 * args.nerf_cpu_minutes
    res = compare_with_nerf(ckpt, out, cpu, args.frames, args.seed, target_views=args.target_views,
                            nerf_from=args.nerf_from)
    run.update(ckpt=ckpt, wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - p0,
               loadavg_end=os.getloadavg())
    atomic_write_text(out / "bench.json", json.dumps(run, indent=1))
    print(f"[bench] {run['cpu_s'] / 60:.1f} CPU-min, {run['wall_s'] / 60:.1f} min wall at {run['threads']} thread(s); "
          f"load average {run['loadavg_start'][0]:.1f} at the start, {run['loadavg_end'][0]:.1f} at the end; "
          f"table, grid and per-view figures in {out}")
    return {**res, "run": run}


if __name__ == "__main__":
    main()
