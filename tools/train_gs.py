#!/usr/bin/env python
"""Train a rendering method from a config: ``python tools/train_gs.py CONFIG [--work-dir D] [--seed S]
[--resume] [--cfg-options key=value ...]``.  The config's ``method`` (default ``"3dgs"``, see
``perception3d.registry.RENDER_METHODS``) names the trainer; perception3d/rendering/trainer.py says what 3DGS
writes.  ``tools/train_human.py`` is the same tool under the name human-field users look for."""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config")
    ap.add_argument("--work-dir", default=None, help="default: work_dirs/<config name>")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from WORK_DIR/ckpt_latest.pt")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--cfg-options", nargs="+", default=[], help="override config keys, e.g. train.max_steps=100")
    args = ap.parse_args(argv)

    from perception3d.cli import check_checkpoint, load_config
    from perception3d.registry import RENDER_METHODS

    cfg = load_config(args.config)
    if args.cfg_options:
        opts = {}
        for kv in args.cfg_options:
            k, _, v = kv.partition("=")
            try:
                opts[k] = json.loads(v)
            except json.JSONDecodeError:
                opts[k] = None if v in ("None", "none") else v   # mmengine's spelling of null
        cfg.merge_from_dict(opts)
    work_dir = args.work_dir or os.path.join("work_dirs", Path(args.config).stem)
    if args.resume and os.path.exists(os.path.join(work_dir, "ckpt_latest.pt")):
        check_checkpoint(os.path.join(work_dir, "ckpt_latest.pt"))
    method = cfg.get("method", "3dgs")
    trainer_cls = RENDER_METHODS.get(method)
    if trainer_cls is None:
        raise ValueError(f"{args.config}: method={method!r} is not a registered rendering method "
                         f"(known: {sorted(RENDER_METHODS.module_dict)})")
    trainer = trainer_cls(cfg, work_dir, seed=args.seed, resume=args.resume, progress=not args.no_progress)
    res = trainer.train()
    summary = {k: v for k, v in res.items() if isinstance(v, (int, float, str, bool))}
    print(json.dumps({**summary, "priors": getattr(trainer, "priors", {})}, default=str))
    return res


if __name__ == "__main__":
    from perception3d.cli import run_cli
    run_cli(main)
