"""Evaluate SpaRe renders (a submission ZIP or a folder in the same layout) against ground truth.

    python tools/spare_eval.py PRED --gt GT_ROOT --split SPLIT.json [--masks MASK_ROOT]
                               [--lpips-lin alex.pth --lpips-alexnet alexnet-owt-7be5be79.pth]
                               [--per-image] [--json results.json]

Ground truth: ``GT_ROOT/<scene>/<image>.png`` with the benchmark's names; object masks (for PSNR-M, SSIM-M,
LPIPS-M) under ``GT_ROOT/<scene>/mask/`` or ``--masks`` (see perception3d.evaluation.spare.find_mask).
Prints PSNR, PSNR-M, SSIM, SSIM-M, LPIPS, LPIPS-M per scene and per dataset; LPIPS only with local weights
(otherwise "n/c", not computed). Exit 1 if renders are missing.
"""
from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perception3d.cli import run_cli  # noqa: E402
from perception3d.evaluation.image_metrics import load_lpips  # noqa: E402
from perception3d.evaluation.spare import evaluate_submission, format_table, load_split  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pred", help="submission ZIP or folder of <scene>/<image>.png renders")
    p.add_argument("--gt", required=True, help="ground-truth root (<scene>/<image>.png)")
    p.add_argument("--split", required=True, help="split JSON")
    p.add_argument("--masks", default=None, help="root of object masks (default: look under --gt)")
    p.add_argument("--lpips-lin", default=None, help="LPIPS linear-layer weights (lpips' alex.pth)")
    p.add_argument("--lpips-alexnet", default=None, help="AlexNet weights (torchvision alexnet-owt-*.pth)")
    p.add_argument("--per-image", action="store_true", help="also print one row per image")
    p.add_argument("--json", default=None, help="write all numbers to this JSON file")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if (args.lpips_lin is None) != (args.lpips_alexnet is None):
        raise ValueError("LPIPS needs both --lpips-lin and --lpips-alexnet")
    if Path(args.pred).is_file() and not zipfile.is_zipfile(args.pred):
        raise ValueError(f"{args.pred}: not a readable ZIP file (truncated or not a submission)")
    if not Path(args.pred).exists():
        raise FileNotFoundError(f"{args.pred}: no such submission ZIP or folder")
    net = load_lpips(args.lpips_lin, args.lpips_alexnet)
    res = evaluate_submission(args.pred, args.gt, load_split(args.split), lpips_net=net, mask_root=args.masks)
    print(format_table(res, per_image=args.per_image))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    run_cli(main)
