#!/usr/bin/env python
"""Train a human radiance field (TransHuman, MetaCap) from a config: ``python tools/train_human.py CONFIG
[--work-dir D] [--seed S] [--resume] [--cfg-options key=value ...]``.  The config's ``method`` names the trainer
in ``perception3d.registry.RENDER_METHODS``; the arguments and output are those of ``tools/train_gs.py``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))   # train_gs next to this file, also when imported
from train_gs import main  # noqa: E402

if __name__ == "__main__":
    from perception3d.cli import run_cli
    run_cli(main)
