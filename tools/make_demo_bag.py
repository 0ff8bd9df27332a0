"""Write a demo bag of LiDAR scans from the built-in mini dataset (val split) for offline inference.

    python tools/make_demo_bag.py --out demo.mcap [--format ros1|ros2-mcap|ros2-sqlite3] [--scans 10]
                                  [--root data/waymo_mini] [--topic /points] [--frame-id base_link] [--overwrite]

The dataset is generated at ``--root`` on first use.  See :func:`perception3d.apis.bag_inference.make_demo_bag`.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Write a demo PointCloud2 bag from the built-in mini dataset")
    p.add_argument("--out", required=True, help="output bag: .bag (ROS1), .mcap, .db3 or a rosbag2 directory")
    p.add_argument("--format", choices=["ros1", "ros2-mcap", "ros2-sqlite3"])
    p.add_argument("--scans", type=int, default=10)
    p.add_argument("--root", default="data/waymo_mini")
    p.add_argument("--topic", default="/points")
    p.add_argument("--frame-id", default="base_link")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    from perception3d.apis.bag_inference import make_demo_bag
    info = make_demo_bag(args.out, args.format, scans=args.scans, root=args.root, topic=args.topic,
                         frame_id=args.frame_id, overwrite=args.overwrite)
    print(f"wrote {info['out']} ({info['format']}): {info['scans']} scans, {info['points']} points on {args.topic}")
    return info


if __name__ == "__main__":
    from perception3d.cli import run_cli
    run_cli(main)
