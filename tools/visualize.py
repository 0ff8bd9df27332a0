"""Bird's-eye-view PNGs of a detector's output: points, ground-truth boxes and predictions with scores.

    python tools/visualize.py CONFIG CKPT [--split val|train] [--frames 0 1 2] [--score-thr 0.3]
                              [--out-dir work_dirs/vis] [--cfg-options k=v ...]
    python tools/visualize.py CONFIG CKPT --points frame.bin [--out-dir ...]   # a raw cloud, no ground truth
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from perception3d.apis import inference_detector, init_model  # noqa: E402
from perception3d.engine import merge_cfg_options  # noqa: E402

COLORS = ["tab:red", "tab:blue", "tab:orange", "tab:purple", "tab:brown"]


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """[K, 7] LiDAR boxes → [K, 5, 2] closed BEV outlines (x, y)."""
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    hx, hy = boxes[:, 3] / 2, boxes[:, 4] / 2
    local = np.stack([np.stack([hx, hy], 1), np.stack([-hx, hy], 1), np.stack([-hx, -hy], 1),
                      np.stack([hx, -hy], 1), np.stack([hx, hy], 1)], 1)
    rot = np.stack([np.stack([c, -s], 1), np.stack([s, c], 1)], 1)  # [K, 2, 2]
    return np.einsum("kij,kpj->kpi", rot, local) + boxes[:, None, :2]


def draw_bev(path: str, points: np.ndarray, pred: dict, gt_boxes=None, class_names=(), score_thr: float = 0.3,
             xy_range=None, title: str = "") -> None:
    """Write one BEV PNG: points (grey, by height), GT (green), predictions (class colour, score text)."""
    fig, ax = plt.subplots(figsize=(9, 9), dpi=100)
    if xy_range is None:
        xy_range = (points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max())
    keep = (points[:, 0] >= xy_range[0]) & (points[:, 0] <= xy_range[2]) & \
           (points[:, 1] >= xy_range[1]) & (points[:, 1] <= xy_range[3])
    p = points[keep]
    ax.scatter(p[:, 0], p[:, 1], s=0.2, c=p[:, 2], cmap="Greys", vmin=-2, vmax=4, linewidths=0)
    if gt_boxes is not None and len(gt_boxes):
        for poly in bev_corners(np.asarray(gt_boxes, np.float64)[:, :7]):
            ax.plot(poly[:, 0], poly[:, 1], color="limegreen", lw=1.2)
    boxes = pred["bboxes_3d"].numpy() if isinstance(pred["bboxes_3d"], torch.Tensor) else np.asarray(pred["bboxes_3d"])
    scores = np.asarray(pred["scores_3d"])
    labels = np.asarray(pred["labels_3d"])
    sel = scores >= score_thr
    for poly, box, sc, lb in zip(bev_corners(boxes[sel].astype(np.float64)), boxes[sel], scores[sel], labels[sel]):
        col = COLORS[int(lb) % len(COLORS)]
        ax.plot(poly[:, 0], poly[:, 1], color=col, lw=1.0, ls="--")
        ax.plot([box[0], (poly[0, 0] + poly[3, 0]) / 2], [box[1], (poly[0, 1] + poly[3, 1]) / 2], color=col, lw=0.8)
        name = class_names[int(lb)] if int(lb) < len(class_names) else str(int(lb))
        ax.text(box[0], box[1], f"{name[:3]} {sc:.2f}", fontsize=5, color=col)
    ax.set_xlim(xy_range[0], xy_range[2])
    ax.set_ylim(xy_range[1], xy_range[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title + f"  (green: ground truth, dashed: predictions ≥ {score_thr})", fontsize=9)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> list[str]:
    ap = argparse.ArgumentParser(description="BEV visualisation of detections")
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("--split", choices=["val", "train"], default="val")
    ap.add_argument("--frames", type=int, nargs="+", default=[0])
    ap.add_argument("--points", nargs="+", help="raw .bin clouds instead of dataset frames")
    ap.add_argument("--score-thr", type=float, default=0.3)
    ap.add_argument("--out-dir", default="work_dirs/vis")
    ap.add_argument("--cfg-options", nargs="+", action=DictAction)
    args = ap.parse_args(argv)
    cfg = merge_cfg_options(Config.fromfile(args.config), args.cfg_options)
    model = init_model(cfg, args.checkpoint)
    names = list(model.class_names)
    pcr = cfg.model.bbox_head.point_cloud_range
    xy = (pcr[0], pcr[1], pcr[3], pcr[4])
    written = []
    if args.points:
        for path in args.points:
            det = inference_detector(model, path)
            from perception3d.apis import load_points
            pts = load_points(path).numpy()
            out = os.path.join(args.out_dir, os.path.splitext(os.path.basename(path))[0] + "_bev.png")
            draw_bev(out, pts, det, None, names, args.score_thr, xy, os.path.basename(path))
            written.append(out)
    else:
        import perception3d.datasets  # noqa: F401
        from perception3d.registry import DATASETS
        if cfg.get("prepare_data"):
            from perception3d.engine.prepare import prepare_waymo_mini  # noqa: F401
            from mmengine.registry import FUNCTIONS
            kw = dict(cfg.prepare_data)
            FUNCTIONS.get(kw.pop("type"))(**kw)
        dcfg = cfg.val_dataloader.dataset if args.split == "val" else cfg.train_dataloader.dataset
        if dcfg.get("type") == "SeededDataset":
            dcfg = dcfg.dataset
        dcfg = dict(dcfg, pipeline=cfg.val_dataloader.dataset.pipeline, test_mode=True)
        with DefaultScope.overwrite_default_scope("perception3d"):
            ds = DATASETS.build(dcfg)
        for i in args.frames:
            item = ds[i]
            pts = item["inputs"]["points"]
            det = inference_detector(model, pts)
            gt = item["data_samples"].get("gt_bboxes_3d")
            out = os.path.join(args.out_dir, f"{args.split}_{i:04d}_bev.png")
            draw_bev(out, pts.numpy(), det, None if gt is None else gt.numpy(), names, args.score_thr, xy,
                     f"{args.split} frame {i}")
            written.append(out)
    for w in written:
        print(w)
    return written


if __name__ == "__main__":
    main()
