#!/usr/bin/env python
"""Generate the built-in mini dataset (procedural streets in the Waymo Open Dataset v2 parquet layout).

    python data/scripts/make_waymo_mini.py --root data/waymo_mini --seed 0

Skips when a complete dataset with the same parameters is already at ``--root``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # run from a checkout without installing

from perception3d.datasets.synthetic.writer import generate_waymo_mini  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="data/waymo_mini")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-train", type=int, default=160, help="training frames")
    ap.add_argument("--num-val", type=int, default=40, help="validation frames")
    ap.add_argument("--frames-per-segment", type=int, default=1)
    ap.add_argument("--frame-interval", type=float, default=0.5, help="seconds between frames of a segment")
    ap.add_argument("--lidar-width", type=int, default=1024, help="range-image columns of the TOP lidar")
    ap.add_argument("--label-range", type=float, default=32.0, help="label boxes with |x|, |y| <= this (m)")
    ap.add_argument("--no-camera", action="store_true", help="skip the FRONT camera")
    ap.add_argument("--surround-cameras", action="store_true",
                    help="write the surround rig (FRONT, FRONT_LEFT, FRONT_RIGHT) instead of the FRONT camera; "
                         "the LiDAR data are unchanged")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    summary = generate_waymo_mini(args.root, num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                                  frames_per_segment=args.frames_per_segment,
                                  frame_interval_s=args.frame_interval, lidar_width=args.lidar_width,
                                  camera=not args.no_camera, label_range=args.label_range,
                                  surround_cameras=args.surround_cameras,
                                  verbose=not args.quiet)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
