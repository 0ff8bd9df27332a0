"""Train a model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--seed N] [--amp | --no-amp]
                          [--cfg-options k=v ...] [--skip-missing-cameras] [--launcher none|pytorch]

``--resume`` without a path continues from the newest complete checkpoint in the work dir (exactly: same
losses and weights as an uninterrupted run on CPU). Multi-process: tools/dist_train.sh CONFIG N.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from perception3d.cli import add_config_args, check_checkpoint, load_config, run_cli  # noqa: E402
from perception3d.engine import build_runner, prepare_cfg  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a perception3d model")
    p.add_argument("config")
    p.add_argument("--work-dir")
    p.add_argument("--resume", nargs="?", const=True, default=None,
                   help="resume from CKPT, or from the newest checkpoint in the work dir when no path is given")
    p.add_argument("--seed", type=int)
    amp = p.add_mutually_exclusive_group()
    amp.add_argument("--amp", dest="amp", action="store_true", default=None, help="force AMP (default: on GPU)")
    amp.add_argument("--no-amp", dest="amp", action="store_false")
    add_config_args(p)
    p.add_argument("--launcher", choices=["none", "pytorch"], default="none")
    p.add_argument("--local-rank", "--local_rank", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.skip_missing_cameras)
    if isinstance(args.resume, str):
        check_checkpoint(args.resume)
    cfg = prepare_cfg(cfg, work_dir=args.work_dir, resume=args.resume, seed=args.seed,
                      launcher=args.launcher, amp=args.amp)
    build_runner(cfg).train()


if __name__ == "__main__":
    run_cli(main)
