"""Prepare detection data: points cache + mmdet3d-layout info pkls (the logic lives in perception3d.datasets).

    python tools/create_data.py waymo --root data/waymo [--out data/waymo/processed] [--workers N]
    python tools/create_data.py kitti --root data/kitti [--out data/kitti]
    python tools/create_data.py nuscenes --root data/nuscenes [--out data/nuscenes] [--version v1.0-mini]

waymo: a Waymo Open Dataset v2 root (``training/``, ``validation/`` with the parquet components; the real
dataset or the built-in mini one) → ``<out>/points/<segment>_<timestamp>.bin`` (float32 × 6: x, y, z,
intensity, elongation, timestamp) + ``<out>/waymo_infos_{train,val}.pkl``.  Resumable: run it again after an
interruption and frames whose .bin is complete are not converted again.
kitti: a raw KITTI root (``training/{velodyne,label_2,calib}``, optional ``ImageSets/``) →
``<out>/kitti_infos_<split>.pkl`` with LiDAR boxes (points stay where they are).
nuscenes: a nuScenes root (``v1.0-*/`` json tables, ``samples/``, ``sweeps/``) →
``<out>/nuscenes_infos_{train,val}.pkl`` (mmdet3d v1.1 layout: sweeps, 6 cameras' calibrations, boxes).
With ``--gt-database`` the ground-truth database is built too (perception3d.datasets.gt_database, when present).

    python tools/create_data.py human [--root data/zju_synthetic] [--subjects 6] [--cameras 24] [--size 128]

human: generate the built-in multi-view human dataset (ZJU-MoCap layout, one sequence per subject; see
perception3d.rendering.human.synthetic); the human configs also generate it on first use.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import List, Optional


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="dataset", required=True)
    w = sub.add_parser("waymo", help="Waymo Open Dataset v2 parquet root")
    w.add_argument("--root", required=True, help="root holding training/ and validation/")
    w.add_argument("--out", default=None, help="output folder (default: <root>/processed)")
    w.add_argument("--workers", type=int, default=0, help="worker processes (0: convert in this process)")
    w.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to convert")
    w.add_argument("--filter-no-label-zone", action="store_true",
                   help="drop points in no-label zones (as mmdet3d's converter does)")
    w.add_argument("--lasers", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                   help="lidars to include: 1 TOP, 2 FRONT, 3 SIDE_LEFT, 4 SIDE_RIGHT, 5 REAR (default all)")
    w.add_argument("--returns", type=int, nargs="+", default=[1, 2], help="returns to include (default 1 2)")
    w.add_argument("--gt-database", action="store_true", help="also build the GT database of the train split")
    w.add_argument("--cameras", action="store_true",
                   help="also extract the camera images (<out>/images/CAM_<NAME>/) and put the calibrations into "
                        "the infos (for camera configs, e.g. configs/sparsefusion_waymo_mini.py)")
    k = sub.add_parser("kitti", help="raw KITTI object-detection root")
    k.add_argument("--root", required=True, help="root holding training/{velodyne,label_2,calib}")
    k.add_argument("--out", default=None, help="output folder for the info pkls (default: <root>)")
    k.add_argument("--gt-database", action="store_true", help="also build the GT database of the train split")
    n = sub.add_parser("nuscenes", help="nuScenes v1.0 root")
    n.add_argument("--root", required=True, help="root holding v1.0-*/, samples/ and sweeps/")
    n.add_argument("--out", default=None, help="output folder for the info pkls (default: <root>)")
    n.add_argument("--version", default=None, help="table folder, e.g. v1.0-mini (default: the only v1.0-*)")
    n.add_argument("--max-sweeps", type=int, default=10, help="previous LiDAR sweeps listed per sample")
    h = sub.add_parser("human", help="generate the built-in multi-view human dataset (ZJU-MoCap layout)")
    h.add_argument("--root", default="data/zju_synthetic", help="output folder (must not exist, or hold the same)")
    h.add_argument("--subjects", type=int, default=6)
    h.add_argument("--motions", nargs="+", default=["walk", "wave", "squat_turn"])
    h.add_argument("--frames-per-motion", type=int, default=4)
    h.add_argument("--cameras", type=int, default=24)
    h.add_argument("--size", type=int, default=128, help="image width = height in pixels (<= 256)")
    h.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _gt_database(out: Path, info_name: str, data_root: Path, prefix: str, load_dim: int, use_dim: int) -> None:
    if importlib.util.find_spec("perception3d.datasets.gt_database") is None:
        print("perception3d.datasets.gt_database is not available: GT database skipped", file=sys.stderr)
        return
    from perception3d.datasets.det3d_dataset import create_gt_database_from_infos
    # absolute paths: the dataset joins a relative ann_file onto data_root
    res = create_gt_database_from_infos((out / info_name).resolve(), data_root.resolve(), out.resolve(), prefix,
                                        load_dim=load_dim, use_dim=use_dim)
    counts = {k: len(v) for k, v in res["dbinfos"].items()}
    print(f"GT database {out / (prefix + '_gt_database')}: {counts}; {res['num_skipped']} bad frames skipped")


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    if args.dataset == "human":
        from perception3d.rendering.human.synthetic import ensure_synthetic_humans
        root = ensure_synthetic_humans(args.root, n_subjects=args.subjects, motions=args.motions,
                                       frames_per_motion=args.frames_per_motion, n_cameras=args.cameras,
                                       image_size=args.size, seed=args.seed)
        print(json.dumps({"root": str(root), **json.loads((root / "synthetic.json").read_text())}))
        return {"root": root}
    root = Path(args.root)
    if not root.is_dir():
        raise FileNotFoundError(f"--root {root}: no such folder")
    if args.dataset == "waymo":
        from perception3d.datasets.waymo_v2 import convert_waymo_v2
        out = Path(args.out) if args.out else root / "processed"
        result = convert_waymo_v2(root, out, splits=args.splits, workers=args.workers,
                                  filter_no_label_zone=args.filter_no_label_zone, lasers=args.lasers,
                                  returns=args.returns, cameras=args.cameras)
        if args.gt_database and "train" in result:
            _gt_database(out, "waymo_infos_train.pkl", out, "waymo", load_dim=6, use_dim=5)
    elif args.dataset == "nuscenes":
        from perception3d.datasets.nuscenes import create_nuscenes_infos
        result = create_nuscenes_infos(root, args.out, version=args.version, max_sweeps=args.max_sweeps)
    else:
        from perception3d.datasets.kitti_raw import create_kitti_infos
        out = Path(args.out) if args.out else root
        result = create_kitti_infos(root, out)
        if args.gt_database and "train" in result:
            _gt_database(out, "kitti_infos_train.pkl", root, "kitti", load_dim=4, use_dim=4)
    print(json.dumps({k: v for k, v in result.items() if k != "bad"} | {"bad": len(result.get("bad", []))}))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from perception3d.cli import run_cli
    run_cli(main)
