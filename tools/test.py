"""Evaluate a checkpoint on a config's test split; prints the metric table.

    python tools/test.py CONFIG CKPT [--out results.pkl] [--work-dir DIR] [--cfg-options k=v ...]
                         [--skip-missing-cameras] [--launcher none|pytorch]

``--out`` saves the predictions in mmdet3d's result layout (a pickle list, one dict per frame with
``bboxes_3d``, ``scores_3d``, ``labels_3d``, ``sample_idx``), written atomically. With a Waymo metric the
per-class precision-recall curves are drawn into ``<work dir>/pr_curves.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from perception3d.cli import add_config_args, check_checkpoint, load_config, run_cli  # noqa: E402
from perception3d.engine import build_runner, prepare_cfg  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Test (evaluate) a perception3d model")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--out", help="save predictions (mmdet3d result layout) to this .pkl")
    p.add_argument("--work-dir")
    add_config_args(p)
    p.add_argument("--launcher", choices=["none", "pytorch"], default="none")
    p.add_argument("--local-rank", "--local_rank", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.skip_missing_cameras)
    check_checkpoint(args.checkpoint)
    cfg = prepare_cfg(cfg, work_dir=args.work_dir, launcher=args.launcher, amp=False)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    ev = cfg.test_evaluator
    ev = ev[0] if isinstance(ev, list) else ev
    if args.out:
        ev["result_file"] = args.out
    if ev.get("type") in ("WaymoMetric", "perception3d.WaymoMetric"):
        ev.setdefault("pr_curve_file", os.path.join(cfg.work_dir, "pr_curves.png"))
    metrics = build_runner(cfg).test()
    print(json.dumps({k: round(float(v), 4) for k, v in metrics.items()}, indent=1))
    return metrics


if __name__ == "__main__":
    run_cli(main)
