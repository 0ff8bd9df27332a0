"""Offline inference on a recorded bag (ROS1 .bag, rosbag2 mcap / sqlite3) without a ROS install.

    python tools/infer_bag.py CONFIG CKPT --in drive.mcap                    # lists the PointCloud2 topics
    python tools/infer_bag.py CONFIG CKPT --in drive.mcap --topic /points [--out drive_det.mcap]
        [--format ros1|ros2-mcap|ros2-sqlite3] [--score-thr 0.3] [--batch-size 2] [--device cpu]
        [--keep-input | --no-keep-input] [--target-frame base_link --extrinsic 16 numbers | extrinsic.yaml]
        [--source-frame lidar] [--range x0 y0 z0 x1 y1 z1] [--markers line_list|cube] [--jsonl PATH]
        [--det-topic /perception3d/detections] [--marker-topic /perception3d/markers]
        [--overwrite] [--max-scans N] [--seed 0]

CKPT ``none`` runs the config's model with random weights (for trying the pipeline; boxes are meaningless).
Writes the output bag (detections ``/perception3d/detections``, markers ``/perception3d/markers``, the input
clouds unless ``--no-keep-input``) and ``<out>.jsonl``; prints a summary.  A segmentation config
(``PointSegmentor``) writes the labelled clouds instead (``--label-topic``, default ``/perception3d/labels``:
PointCloud2 fields x, y, z, intensity, label).  The work is
:func:`perception3d.apis.bag_inference.infer_bag`.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Run a 3D detector on the PointCloud2 scans of a bag")
    p.add_argument("config")
    p.add_argument("checkpoint", help="checkpoint .pth, or 'none' for random weights")
    p.add_argument("--in", dest="inp", required=True, help="input bag (.bag, .mcap, .db3 or rosbag2 directory)")
    p.add_argument("--topic", help="PointCloud2 topic; without it the PointCloud2 topics are listed")
    p.add_argument("--out", help="output bag (default <input>_detections.<suffix> next to the input)")
    p.add_argument("--format", choices=["ros1", "ros2-mcap", "ros2-sqlite3"])
    p.add_argument("--score-thr", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--keep-input", action=argparse.BooleanOptionalAction, default=True,
                   help="copy the input clouds into the output bag (default yes)")
    p.add_argument("--target-frame", help="frame of the model; clouds are moved into it with --extrinsic")
    p.add_argument("--source-frame", help="frame the extrinsic maps from (default: the first scan's frame)")
    p.add_argument("--extrinsic", nargs="+", help="4×4 target←source: 16 numbers (row-major) or a YAML file")
    p.add_argument("--range", nargs=6, type=float, metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"),
                   help="crop the points to this box (after the transform)")
    p.add_argument("--markers", choices=["line_list", "cube"], default="line_list")
    p.add_argument("--det-topic", default="/perception3d/detections")
    p.add_argument("--marker-topic", default="/perception3d/markers")
    p.add_argument("--label-topic", default="/perception3d/labels",
                   help="segmentors: the labelled PointCloud2 (fields x, y, z, intensity, label)")
    p.add_argument("--jsonl", help="detections as JSON lines (default <out>.jsonl)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (never the input)")
    p.add_argument("--max-scans", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg-options", nargs="+", default=None, help="key=value config overrides")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.topic:                       # list only: no torch / model import needed
        from perception3d.io.bags import list_pointcloud_topics
        topics = list_pointcloud_topics(args.inp)
        print(f"PointCloud2 topics in {args.inp}:" if topics else f"no PointCloud2 topic in {args.inp}")
        for t, n in topics.items():
            print(f"  {t}  ({n} messages)")
        print("pass one with --topic")
        return topics
    from perception3d.cli import check_checkpoint, load_config
    from perception3d.io.bags import BagReader
    from perception3d.io.ros_msgs import POINTCLOUD2
    cfg = load_config(args.config)           # bad config / checkpoint / bag / topic: fail before any model work
    ckpt = None if args.checkpoint.lower() in ("none", "random") else str(check_checkpoint(args.checkpoint))
    with BagReader(args.inp) as bag:
        bag.check_topic(args.topic, POINTCLOUD2)
    extrinsic = None
    if args.extrinsic:
        extrinsic = args.extrinsic[0] if len(args.extrinsic) == 1 else [float(v) for v in args.extrinsic]
    import torch
    from mmengine.config import DictAction

    from perception3d.apis import init_model
    from perception3d.apis.bag_inference import infer_bag
    torch.manual_seed(args.seed)
    opts = None
    if args.cfg_options:
        ns = argparse.Namespace()
        DictAction(option_strings=[], dest="o")(None, ns, args.cfg_options)
        opts = ns.o
    if ckpt is None:
        warnings.warn("CKPT is 'none': the model has random weights; its boxes are meaningless")
    model = init_model(cfg, ckpt, device=args.device, cfg_options=opts)
    result = infer_bag(model, args.inp, args.topic, out=args.out, fmt=args.format, score_thr=args.score_thr,
                       batch_size=args.batch_size, keep_input=args.keep_input, target_frame=args.target_frame,
                       extrinsic=extrinsic, source_frame=args.source_frame, point_range=args.range,
                       jsonl=args.jsonl or True, marker_style=args.markers, det_topic=args.det_topic,
                       marker_topic=args.marker_topic, overwrite=args.overwrite, label_topic=args.label_topic,
                       progress=True, max_scans=args.max_scans)
    print(result.summary())
    return result


if __name__ == "__main__":
    from perception3d.cli import run_cli
    run_cli(main)
