"""Throughput of offline inference on a bag (tools/infer_bag.py's work) vs the bare model on the same scans.

    python bench/infer_bag.py [--scans 100] [--threads 1] [--batch-size 1] [--config ...] [--checkpoint PATH]

Writes a ``--scans``-scan mcap bag of the built-in mini dataset's val split (TOP lidar, ~56k points a scan),
then times
  * ``infer_bag``: read + decode PointCloud2 + model + Detection3DArray / MarkerArray / JSONL writing + input copy;
  * the peer: ``inference_detector`` alone on the same decoded clouds (the model's share).
The checkpoint is the newest ``work_dirs/**/*.pth`` whose config is the CenterPoint mini config, or
``--checkpoint``; without one the model has random weights (said in the table and the JSON).  Boxes are kept
at score ≥ 0.3 (``--score-thr``); the number written is reported (each box costs ~1 ms of message building).
Prints a table and adds its row to bench/results/infer_bag.json (a list, one row per setting).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perception3d.apis import inference_detector, init_model  # noqa: E402
from perception3d.apis.bag_inference import infer_bag, make_demo_bag, model_point_columns  # noqa: E402
from perception3d.io.bags import BagReader  # noqa: E402
from perception3d.io.pointcloud2 import pointcloud2_to_points  # noqa: E402


def _find_checkpoint(config: Path):
    """Newest ``epoch_*.pth`` (a finished training epoch, not a smoke run's ``iter_*``) next to a copy of the
    config in ``work_dirs``."""
    best = None
    for ckpt in sorted((ROOT / "work_dirs").glob("**/epoch_*.pth")):
        if "smoke" in str(ckpt.relative_to(ROOT)):
            continue
        if any(p.name == config.name for p in ckpt.parent.glob("*.py")):
            if best is None or ckpt.stat().st_mtime > best.stat().st_mtime:
                best = ckpt
    return best


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--scans", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--config", default=str(ROOT / "configs" / "centerpoint_voxel_waymo_mini.py"))
    p.add_argument("--checkpoint")
    p.add_argument("--score-thr", type=float, help="default 0.3")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = Path(args.config)
    ckpt = Path(args.checkpoint) if args.checkpoint else _find_checkpoint(config)
    model = init_model(config, str(ckpt) if ckpt else None)
    thr = args.score_thr if args.score_thr is not None else 0.3
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bench.mcap"
        info = make_demo_bag(bag, scans=args.scans, root=ROOT / "data" / "waymo_mini")
        cols = model_point_columns(model)
        with BagReader(bag) as r:
            clouds = [torch.from_numpy(pointcloud2_to_points(m, extra=cols[3:]).points)
                      for _, _, m in r.messages(["/points"])]
        inference_detector(model, clouds[:1])                      # warm-up
        t0 = time.perf_counter()
        inference_detector(model, clouds, batch_size=args.batch_size)
        bare_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = infer_bag(model, bag, "/points", out=Path(tmp) / "out.mcap", score_thr=thr,
                        batch_size=args.batch_size)
        full_s = time.perf_counter() - t0
        out_mb = (Path(tmp) / "out.mcap").stat().st_size / 2**20
    row = dict(model=config.stem, checkpoint=str(ckpt) if ckpt else "none (random weights)",
               scans=args.scans, points_per_scan=round(info["points"] / args.scans), threads=args.threads,
               batch_size=args.batch_size, score_thr=thr, boxes_written=res.detections,
               infer_bag_s=round(full_s, 2), infer_bag_scans_per_s=round(args.scans / full_s, 3),
               model_only_s=round(bare_s, 2), model_only_scans_per_s=round(args.scans / bare_s, 3),
               overhead_pct=round(100 * (full_s - bare_s) / bare_s, 1), output_mb=round(out_mb, 1),
               cpu=platform.processor() or platform.machine(), torch=torch.__version__)
    print("model | weights | scans | pts/scan | threads | batch | infer_bag scans/s | model-only scans/s | overhead")
    print(f"{row['model']} | {row['checkpoint']} | {row['scans']} | {row['points_per_scan']} | {row['threads']} | "
          f"{row['batch_size']} | {row['infer_bag_scans_per_s']} | {row['model_only_scans_per_s']} | "
          f"{row['overhead_pct']} %")
    out = ROOT / "bench" / "results" / "infer_bag.json"
    out.parent.mkdir(exist_ok=True)
    rows = []
    if out.is_file():
        try:
            old = json.loads(out.read_text())
            rows = [r for r in (old if isinstance(old, list) else [old])
                    if (r.get("threads"), r.get("batch_size"), r.get("checkpoint"), r.get("scans")) !=
                    (row["threads"], row["batch_size"], row["checkpoint"], row["scans"])]
        except (json.JSONDecodeError, AttributeError):
            rows = []
    out.write_text(json.dumps(rows + [row], indent=1) + "\n")   # one row per (threads, batch, weights, scans)
    return row


if __name__ == "__main__":
    main()
