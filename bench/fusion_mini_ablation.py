"""Waymo LEVEL_1 / LEVEL_2 mAP of trained models on a config's test split, for all objects and for objects with
fewer than ``--few`` LiDAR points (the ones a camera helps with): the SparseFusion vs LiDAR-only table.

    python bench/fusion_mini_ablation.py \\
        sparsefusion=configs/sparsefusion_waymo_mini.py:work_dirs/sparsefusion_waymo_mini/epoch_4.pth \\
        transfusion_l=configs/transfusion_l_waymo_mini.py:work_dirs/transfusion_l_waymo_mini/epoch_4.pth \\
        [--few 20] [--out work_dirs/fusion_ablation.json]

"Few points" is scored with the official metric's own mechanism for boxes it does not count
(``zero_point_gt="ignore"``): the boxes with ``>= few`` points are marked ignored (a prediction matched to one is
neither TP nor FP, and it is never a miss), so AP is that of the boxes with 1 … few-1 points; LEVEL_1 of that is
the boxes with 6 … few-1 points (Waymo's LEVEL_2 rule: <= 5 points).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def predict_split(config: str, checkpoint: str) -> tuple[list, list]:
    """(predictions, ground truths) over the config's test split, in ``waymo_evaluate``'s per-frame layout."""
    from mmengine.registry import FUNCTIONS, DefaultScope

    import perception3d.datasets  # noqa: F401
    from perception3d.apis import init_model
    from perception3d.cli import load_config
    from perception3d.datasets.loading import det3d_collate
    from perception3d.registry import DATASETS

    cfg = load_config(config)
    if cfg.get("prepare_data"):
        kw = dict(cfg.prepare_data)
        FUNCTIONS.get(kw.pop("type"))(**kw)
    model = init_model(cfg, checkpoint)
    with DefaultScope.overwrite_default_scope("perception3d"):
        ds = DATASETS.build(dict(cfg.test_dataloader.dataset, test_mode=True))
    preds, gts = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            out = model.test_step(det3d_collate([item]))[0]
            p = out["pred_instances_3d"] if isinstance(out, dict) else out.pred_instances_3d
            get = p.get if isinstance(p, dict) else lambda k: getattr(p, k)
            preds.append(dict(boxes_3d=np.asarray(get("bboxes_3d"))[:, :7], scores_3d=np.asarray(get("scores_3d")),
                              labels_3d=np.asarray(get("labels_3d"))))
            s = item["data_samples"]
            gts.append(dict(boxes_3d=np.asarray(s["gt_bboxes_3d"])[:, :7], labels_3d=np.asarray(s["gt_labels_3d"]),
                            num_points=np.asarray(s["num_lidar_pts"]), difficulty=np.asarray(s["difficulty"])))
    return preds, gts


def few_point_truths(gts: list, few: int) -> list:
    """Ground truths whose boxes with ``>= few`` points are ignored (num_points set to 0, see the docstring)."""
    out = []
    for g in gts:
        n = np.asarray(g["num_points"]).copy()
        n[n >= few] = 0
        out.append(dict(g, num_points=n))
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="name=CONFIG:CHECKPOINT")
    ap.add_argument("--few", type=int, default=20)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    from perception3d.evaluation.waymo import waymo_evaluate

    table = {}
    for run in args.runs:
        name, spec = run.split("=", 1)
        config, ckpt = spec.rsplit(":", 1)
        t, c = time.time(), time.process_time()
        preds, gts = predict_split(config, ckpt)
        allm = waymo_evaluate(preds, gts)
        fewm = waymo_evaluate(preds, few_point_truths(gts, args.few))
        n_few = sum(int(((np.asarray(g["num_points"]) > 0) & (np.asarray(g["num_points"]) < args.few)).sum())
                    for g in gts)
        n_all = sum(int((np.asarray(g["num_points"]) > 0).sum()) for g in gts)
        table[name] = dict(config=config, checkpoint=ckpt, frames=len(gts), boxes=n_all, few_boxes=n_few,
                           all={k: round(v, 4) for k, v in allm.items() if "mAP " in k or k.endswith("mAP")},
                           few={k: round(v, 4) for k, v in fewm.items() if "mAP " in k or k.endswith("mAP")},
                           eval_wall_s=round(time.time() - t, 1), eval_cpu_s=round(time.process_time() - c, 1))
        print(f"{name}: all L1 mAP {allm['Overall/L1 mAP']:.4f} L2 {allm['Overall/L2 mAP']:.4f} | "
              f"< {args.few} points ({n_few} of {n_all} boxes): L1 {fewm['Overall/L1 mAP']:.4f} "
              f"L2 {fewm['Overall/L2 mAP']:.4f}", flush=True)
    keys = ["Overall/L1 mAP", "Vehicle/L1 mAP", "Pedestrian/L1 mAP", "Cyclist/L1 mAP", "Overall/L2 mAP"]
    print("\n| model | " + " | ".join(keys) + f" | < {args.few} pts: " + " | ".join(keys[:1] + keys[-1:]) + " |")
    print("|---" * (len(keys) + 3) + "|")
    for name, r in table.items():
        print(f"| {name} | " + " | ".join(f"{r['all'][k]:.3f}" for k in keys) + " | "
              + " | ".join(f"{r['few'][k]:.3f}" for k in (keys[0], keys[-1])) + " |")
    if args.out:
        from perception3d.fileio import atomic_write_text
        atomic_write_text(args.out, json.dumps(table, indent=1))
    return table


if __name__ == "__main__":
    main()
