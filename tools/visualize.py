"""Bird's-eye-view PNGs of a detector's output: points, ground-truth boxes and predictions with scores; for a
segmentor (``PointSegmentor`` config): the points coloured by predicted class beside the ground truth.

Predictions are what the model itself outputs (its head's decoding, score threshold and NMS from the config's
``test_cfg``); those with score ≥ ``--score-thr`` are drawn, one box per object: where boxes overlap in BEV
(IoU > ``--display-nms``, any class; the model's own NMS keeps IoU ≤ 0.7 per class, which is right for AP but
leaves several guesses per object in a picture) only the best-scored one is drawn. Ground truth is filled green; each
predicted class has its own colour (dashed, with a heading tick); a legend gives the counts.

    python tools/visualize.py CONFIG CKPT [--split val|train] [--frames 0 1 2] [--score-thr 0.3]
                              [--out-dir work_dirs/vis] [--cfg-options k=v ...]
    python tools/visualize.py CONFIG CKPT --points frame.bin [--out-dir ...]   # a raw cloud, no ground truth
    python tools/visualize.py CONFIG [--frames ...]                           # no checkpoint: ground truth only

For a dataset with cameras (``configs/sparsefusion_*.py``) each frame also gets ``<split>_<i>_cams.png``: every
camera image with the ground-truth (green) and predicted (class colours, dashed) 3D boxes projected into it with
the frame's ``cam2img`` / ``lidar2cam`` after the test pipeline; the front bottom edge of a box is drawn thicker.
E.g. the real nuScenes sample's six views: ``python tools/visualize.py configs/sparsefusion_nus.py --cfg-options
val_dataloader.dataset.data_root=../shared/data/nuscenes_demo val_dataloader.dataset.ann_file=<its .pkl>``.

Segmentors: ``--frames`` of the config's dataset (ground truth from its labels; points the ground truth ignores
are grey), or ``--points`` ``.bin`` files of float32 × the model's input columns (prediction only).
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
from mmengine.registry import DefaultScope  # noqa: E402

from perception3d.apis import inference_detector, init_model  # noqa: E402
from perception3d.cli import add_config_args, check_checkpoint, load_config, run_cli  # noqa: E402

# one colour per predicted class (ground truth is always green, solid and filled)
COLORS = ["red", "magenta", "darkorange", "blue", "brown"]
GT_COLOR = "tab:green"


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """[K, 7] LiDAR boxes → [K, 5, 2] closed BEV outlines (x, y), counter-clockwise from the front-left corner."""
    from perception3d.structures.boxes import bev_corners as corners

    c = corners(torch.as_tensor(np.asarray(boxes, np.float64).reshape(-1, 7))).numpy()
    return np.concatenate([c, c[:, :1]], 1)


def _view_range(points: np.ndarray, boxes: list, xy_range) -> tuple:
    """The square around the sensor that holds 99 % of the points and every box, inside ``xy_range``."""
    r = float(np.quantile(np.abs(points[:, :2]), 0.99)) if len(points) else 20.0
    for b in boxes:
        if len(b):
            r = max(r, float(np.abs(b[:, :2]).max()) + 3.0)
    r = max(10.0, np.ceil(r / 5.0) * 5.0)
    if xy_range is None:
        return (-r, -r, r, r)
    return (max(xy_range[0], -r), max(xy_range[1], -r), min(xy_range[2], r), min(xy_range[3], r))


def one_box_per_object(boxes: np.ndarray, scores: np.ndarray, iou_thr: float = 0.05) -> np.ndarray:
    """Indices of the boxes to draw: class-agnostic rotated BEV NMS at a low IoU (objects do not overlap in
    BEV, so two overlapping boxes are two guesses at one object: the higher score is kept). Sorted by score."""
    if len(boxes) == 0 or iou_thr is None:
        return np.argsort(-scores, kind="stable")
    from perception3d.ops.nms import nms_rotated

    keep = nms_rotated(torch.as_tensor(boxes[:, :7], dtype=torch.float64), torch.as_tensor(scores, dtype=torch.float64),
                       iou_thr)
    return keep.numpy()


def draw_bev(path: str, points: np.ndarray, pred: dict, gt_boxes=None, class_names=(), score_thr: float = 0.3,
             xy_range=None, title: str = "", gt_labels=None, display_nms: float | None = 0.05) -> None:
    """Write one BEV PNG (atomically).

    points [N, >=3] in grey, darker = higher; ground truth [M, 7] as filled green boxes (``gt_labels`` [M] name their
    class in the legend counts); predictions (the model's own decoding and NMS) with score ≥ ``score_thr`` as
    dashed class-coloured outlines with a heading tick and the score, one per object (``display_nms``: see
    :func:`one_box_per_object`; None draws every box); a legend says which is which.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Polygon

    boxes = pred["bboxes_3d"].numpy() if isinstance(pred["bboxes_3d"], torch.Tensor) else np.asarray(pred["bboxes_3d"])
    boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.size else 7)
    scores = np.asarray(pred["scores_3d"]).reshape(-1)
    labels = np.asarray(pred["labels_3d"]).reshape(-1).astype(int)
    sel = np.nonzero(scores >= score_thr)[0]
    sel = sel[one_box_per_object(boxes[sel], scores[sel], display_nms)]
    boxes, scores, labels = boxes[sel], scores[sel], labels[sel]
    gt = np.zeros((0, 7)) if gt_boxes is None else np.asarray(gt_boxes, np.float64).reshape(-1, 7)
    view = _view_range(points, [gt, boxes], xy_range)

    fig, ax = plt.subplots(figsize=(10, 10), dpi=130)
    ax.set_facecolor("white")
    keep = (points[:, 0] >= view[0]) & (points[:, 0] <= view[2]) & (points[:, 1] >= view[1]) & (points[:, 1] <= view[3])
    p = points[keep]
    order = np.argsort(p[:, 2])  # high points drawn last, so objects stand out from the ground
    sc = ax.scatter(p[order, 0], p[order, 1], s=1.2, c=p[order, 2], cmap="Greys", vmin=-1.5, vmax=2.5,
                    linewidths=0, alpha=0.9, rasterized=True)
    for poly in bev_corners(gt):
        ax.add_patch(Polygon(poly[:4], closed=True, facecolor=GT_COLOR, edgecolor=GT_COLOR, alpha=0.25, lw=0))
        ax.plot(poly[:, 0], poly[:, 1], color=GT_COLOR, lw=2.0)
    for poly, box, s_, lb in zip(bev_corners(boxes[:, :7]), boxes, scores, labels):
        col = COLORS[lb % len(COLORS)]
        ax.plot(poly[:, 0], poly[:, 1], color=col, lw=1.4, ls=(0, (4, 2)))
        front = (poly[0] + poly[3]) / 2  # middle of the front edge: the heading tick
        ax.plot([box[0], front[0]], [box[1], front[1]], color=col, lw=1.4)
        ax.text(poly[:4, 0].max() + 0.3, poly[:4, 1].max(), f"{s_:.2f}", fontsize=6, color=col)
    ax.plot([0], [0], marker="^", color="black", ms=8)  # the sensor
    ax.set_xlim(view[0], view[2])
    ax.set_ylim(view[1], view[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, forward)")
    ax.set_ylabel("y (m, left)")
    ax.grid(alpha=0.2)
    handles = [Patch(facecolor=GT_COLOR, edgecolor=GT_COLOR, alpha=0.5, label=f"ground truth ({len(gt)})")]
    for c in range(max(len(class_names), int(labels.max()) + 1 if len(labels) else 0)):
        n = int((labels == c).sum())
        name = class_names[c] if c < len(class_names) else str(c)
        handles.append(Line2D([], [], color=COLORS[c % len(COLORS)], ls=(0, (4, 2)), lw=1.6,
                              label=f"{name} prediction ({n})"))
    handles.append(Line2D([], [], marker="^", color="black", ls="", label="sensor"))
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    cb = fig.colorbar(sc, ax=ax, fraction=0.035, pad=0.01)
    cb.set_label("point height z (m)")
    merged = "" if display_nms is None else f", overlaps (BEV IoU > {display_nms:g}) drawn once"
    ax.set_title(f"{title}: the model's predictions with score ≥ {score_thr:g}{merged}", fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + ".tmp.png")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


# the 12 edges of a box in the corner order of Boxes3D.corners (bottom 0-3 counter-clockwise, top 4-7); 0-3 is
# the front bottom edge (bev_corners' heading tick sits on it)


def draw_camera_views(path: str, images, lidar2img, pred: dict | None = None, gt_boxes=None, class_names=(),
                      score_thr: float = 0.3, cam_names=(), title: str = "", gt_labels=None) -> None:
    """One PNG (atomically) of every camera image [H, W, 3] (float in [0, 1] or uint8) with the 3D boxes projected
    by ``lidar2img`` [V, 4, 4]: ground truth [M, 7] green, predictions with score ≥ ``score_thr`` dashed in their
    class colour. A box is drawn in a camera when all its corners are in front of it (depth > 0.1 m) and one of
    them falls inside the image."""
    from matplotlib.lines import Line2D

    from perception3d.ops.box_tensor import BOX_EDGES
    from perception3d.structures.calibration import project_box_corners

    def boxes_of(kind):
        if kind == "gt":
            b = np.zeros((0, 7)) if gt_boxes is None else np.asarray(gt_boxes, np.float64).reshape(-1, 7)
            lab = np.full(len(b), -1) if gt_labels is None else np.asarray(gt_labels).reshape(-1)
            return b, lab
        if pred is None:
            return np.zeros((0, 7)), np.zeros(0, int)
        b = pred["bboxes_3d"].numpy() if isinstance(pred["bboxes_3d"], torch.Tensor) else np.asarray(pred["bboxes_3d"])
        b = b.reshape(-1, b.shape[-1] if b.size else 7)[:, :7].astype(np.float64)
        keep = np.asarray(pred["scores_3d"]).reshape(-1) >= score_thr
        return b[keep], np.asarray(pred["labels_3d"]).reshape(-1).astype(int)[keep]

    n = len(images)
    ncol = min(n, 3)
    nrow = (n + ncol - 1) // ncol
    h, w = np.asarray(images[0]).shape[:2]
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.5 * ncol, (5.5 * h / w + 0.4) * nrow + 0.6), dpi=130, squeeze=False)
    counts = {"gt": 0, "pred": 0}
    for v in range(nrow * ncol):
        ax = axes[v // ncol, v % ncol]
        ax.axis("off")
        if v >= n:
            continue
        img = np.asarray(images[v])
        img = img if img.dtype == np.uint8 else np.clip(img, 0, 1)
        ih, iw = img.shape[:2]
        ax.imshow(img)
        for kind in ("gt", "pred"):
            boxes, labels = boxes_of(kind)
            uv, depth = project_box_corners(boxes, lidar2img[v]) if len(boxes) else (np.zeros((0, 8, 2)),
                                                                                      np.zeros((0, 8)))
            for j in range(len(boxes)):
                inside = (uv[j, :, 0] >= 0) & (uv[j, :, 0] < iw) & (uv[j, :, 1] >= 0) & (uv[j, :, 1] < ih)
                if (depth[j] <= 0.1).any() or not inside.any():
                    continue
                counts[kind] += 1
                col = GT_COLOR if kind == "gt" else COLORS[labels[j] % len(COLORS)]
                for a, b in BOX_EDGES:
                    ax.plot(uv[j, [a, b], 0], uv[j, [a, b], 1], color=col, lw=2.2 if (a, b) == (3, 0) else 0.9,
                            ls="-" if kind == "gt" else (0, (3, 1.5)))
        ax.set_xlim(0, iw)
        ax.set_ylim(ih, 0)
        ax.set_title(cam_names[v] if v < len(cam_names) else f"camera {v}", fontsize=9)
    handles = [Line2D([], [], color=GT_COLOR, lw=1.6, label=f"ground truth ({counts['gt']} box views)")]
    if pred is not None:
        legend = ", ".join(f"{c}: {COLORS[i % len(COLORS)]}" for i, c in enumerate(class_names))
        handles.append(Line2D([], [], color=COLORS[0], ls=(0, (3, 1.5)), lw=1.6,
                              label=f"predictions ≥ {score_thr:g} ({counts['pred']} box views; {legend})"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97), h_pad=1.5)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _lidar2img(sample: dict) -> np.ndarray | None:
    """[V, 4, 4] from a packed data sample's ``lidar2img`` or ``cam2img`` + ``lidar2cam``; None without cameras."""
    if sample.get("lidar2img") is not None:
        return np.asarray(sample["lidar2img"], np.float64)
    if sample.get("cam2img") is None or sample.get("lidar2cam") is None:
        return None
    k = np.asarray(sample["cam2img"], np.float64)
    k4 = np.tile(np.eye(4), (len(k), 1, 1))
    k4[:, :3, :3] = k[:, :3, :3]
    return k4 @ np.asarray(sample["lidar2cam"], np.float64)


def class_colors(n: int) -> np.ndarray:
    """[n, 3] distinct RGB colours (tab20, then hsv) for class indices 0 … n − 1."""
    cmap = plt.get_cmap("tab20")
    cols = [cmap(i % 20)[:3] for i in range(min(n, 20))]
    cols += [plt.get_cmap("hsv")(i / max(n - 20, 1))[:3] for i in range(max(n - 20, 0))]
    return np.asarray(cols, np.float64).reshape(-1, 3)


def draw_seg_bev(path: str, points: np.ndarray, pred: np.ndarray, gt=None, class_names=(), xy_range=None,
                 title: str = "") -> str:
    """BEV scatter of ``points`` [N, ≥2] coloured by ``pred`` [N] (−1 = no prediction, grey), with ``gt`` [N]
    (−1 = ignored, grey) in a panel beside it; a legend names the classes shown. Written atomically."""
    from perception3d.fileio import atomic_path
    names = list(class_names) or [str(i) for i in range(int(max(pred.max(initial=0), 0)) + 1)]
    cols = class_colors(len(names))
    panels = [("prediction", pred)] + ([("ground truth", gt)] if gt is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 7.4), dpi=110, squeeze=False)
    x0, y0, x1, y1 = _view_range(points, [], xy_range)
    shown = set()
    for ax, (name, lab) in zip(axes[0], panels):
        lab = np.asarray(lab).astype(np.int64)
        c = np.where((lab >= 0)[:, None], cols[np.clip(lab, 0, len(cols) - 1)], 0.75)
        ax.scatter(points[:, 0], points[:, 1], s=1.0, c=c, linewidths=0)
        shown |= set(lab[lab >= 0].tolist())
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_title(name + (f" — {title}" if title else ""), fontsize=10)
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
    if gt is not None:
        ok = np.asarray(gt) >= 0
        acc = float((np.asarray(pred)[ok] == np.asarray(gt)[ok]).mean()) if ok.any() else float("nan")
        axes[0][0].set_title(f"prediction — {title}  (point accuracy {100 * acc:.1f} %)", fontsize=10)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker="o", ls="", color=cols[i], label=names[i]) for i in sorted(shown)]
    fig.legend(handles=handles, loc="lower center", ncol=min(5 * len(panels), max(len(handles), 1)), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _dataset_from_cfg(cfg, split: str):
    """The config's val / train dataset (unwrapped from ``SeededDataset``), after its ``prepare_data``."""
    import perception3d.datasets  # noqa: F401
    from perception3d.registry import DATASETS
    if cfg.get("prepare_data"):
        from mmengine.registry import FUNCTIONS
        kw = dict(cfg.prepare_data)
        FUNCTIONS.get(kw.pop("type"))(**kw)
    dcfg = cfg.val_dataloader.dataset if split == "val" else cfg.train_dataloader.dataset
    if dcfg.get("type") == "SeededDataset":
        dcfg = dcfg.dataset
    return dcfg


def _check_frames(args, n: int) -> None:
    bad = [i for i in args.frames if not 0 <= i < n]
    if bad:
        raise ValueError(f"--frames {bad}: the {args.split} split of {args.config} has {n} frames (0 … {n - 1})")


def _main_segmentor(args, cfg, model) -> list[str]:
    from perception3d.apis import inference_segmentor, load_points
    names = list(cfg.get("class_names", []))
    bb = model.backbone
    pr = getattr(bb, "point_range", None) or getattr(getattr(bb, "svc", None), "point_range", None)
    xy = (pr[0], pr[1], pr[3], pr[4]) if pr is not None else None
    written = []
    if args.points:
        c = model.in_channels
        for path in args.points:
            pts = load_points(path, c, c).numpy()
            out = os.path.join(args.out_dir, os.path.splitext(os.path.basename(path))[0] + "_seg_bev.png")
            written.append(draw_seg_bev(out, pts, inference_segmentor(model, pts)["labels"].numpy(), None, names,
                                        xy, os.path.basename(path)))
        return written
    from perception3d.registry import DATASETS
    dcfg = dict(_dataset_from_cfg(cfg, args.split), augment=None, mix_prob=0.0)
    with DefaultScope.overwrite_default_scope("perception3d"):
        ds = DATASETS.build(dcfg)
    _check_frames(args, len(ds))
    for i in args.frames:
        item = ds[i]
        pts = item["inputs"]["points"]
        pred = inference_segmentor(model, pts)["labels"].numpy()
        out = os.path.join(args.out_dir, f"{args.split}_{i:04d}_seg_bev.png")
        written.append(draw_seg_bev(out, pts.numpy(), pred, item["data_samples"]["gt_segment"].numpy(), names, xy,
                                    f"{args.split} frame {i}"))
    return written


def main(argv=None) -> list[str]:
    ap = argparse.ArgumentParser(description="BEV visualisation of detections")
    ap.add_argument("config")
    ap.add_argument("checkpoint", nargs="?", help="the model's checkpoint; without one only the ground truth is drawn")
    ap.add_argument("--split", choices=["val", "train"], default="val")
    ap.add_argument("--frames", type=int, nargs="+", default=[0])
    ap.add_argument("--points", nargs="+", help="raw .bin clouds instead of dataset frames")
    ap.add_argument("--score-thr", type=float, default=0.3, help="draw predictions with at least this score")
    ap.add_argument("--display-nms", type=float, default=0.05,
                    help="draw one box per object: of predictions overlapping by more than this BEV IoU, only the "
                         "best (any class); a negative value draws every box the model output")
    ap.add_argument("--out-dir", default="work_dirs/vis")
    add_config_args(ap, "camera datasets: draw a frame whose cameras cannot be read from its LiDAR alone")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.skip_missing_cameras)
    model = init_model(cfg, str(check_checkpoint(args.checkpoint))) if args.checkpoint else None
    from perception3d.apis import is_segmentor
    if model is not None and is_segmentor(model):
        written = _main_segmentor(args, cfg, model)
        for w in written:
            print(w)
        return written
    if model is None and args.points:
        raise ValueError("--points needs a checkpoint (there is no ground truth to draw for a raw cloud)")
    names = list(getattr(model, "class_names", None) or cfg.get("class_names", []))
    head = cfg.model.get("bbox_head") or cfg.model.get("head") or {}
    pcr = head.get("point_cloud_range", head.get("pc_range"))
    xy = (pcr[0], pcr[1], pcr[3], pcr[4]) if pcr is not None else None
    dnms = None if args.display_nms < 0 else args.display_nms
    written = []
    if args.points:
        for path in args.points:
            det = inference_detector(model, path)
            from perception3d.apis import load_points
            pts = load_points(path).numpy()
            out = os.path.join(args.out_dir, os.path.splitext(os.path.basename(path))[0] + "_bev.png")
            draw_bev(out, pts, det, None, names, args.score_thr, xy, os.path.basename(path), display_nms=dnms)
            written.append(out)
    else:
        from perception3d.registry import DATASETS
        dcfg = dict(_dataset_from_cfg(cfg, args.split), pipeline=cfg.val_dataloader.dataset.pipeline, test_mode=True)
        with DefaultScope.overwrite_default_scope("perception3d"):
            ds = DATASETS.build(dcfg)
        _check_frames(args, len(ds))
        empty = dict(bboxes_3d=np.zeros((0, 7)), scores_3d=np.zeros(0), labels_3d=np.zeros(0, int))
        for i in args.frames:
            item = ds[i]
            pts = item["inputs"]["points"]
            sample = item["data_samples"]
            l2i = _lidar2img(sample)
            if model is None:
                det = empty
            elif l2i is not None and sample.get("images") is not None:       # a camera model: the packed frame
                from perception3d.datasets.loading import det3d_collate
                with torch.no_grad():
                    det = model.test_step(det3d_collate([item]))[0]["pred_instances_3d"]
            else:
                det = inference_detector(model, pts)
            gt = sample.get("gt_bboxes_3d")
            gt = None if gt is None else np.asarray(gt)[:, :7]
            what = "ground truth" if model is None else f"{args.split} frame {i}"
            out = os.path.join(args.out_dir, f"{args.split}_{i:04d}_bev.png")
            draw_bev(out, pts.numpy(), det, gt, names, args.score_thr, xy, f"{args.split} frame {i}",
                     display_nms=dnms)
            written.append(out)
            if l2i is not None and sample.get("images") is not None:
                out = os.path.join(args.out_dir, f"{args.split}_{i:04d}_cams.png")
                cams = sample.get("cam_names") or [f"camera {v}" for v in range(len(sample["images"]))]
                draw_camera_views(out, sample["images"], l2i, None if model is None else det, gt, names,
                                  args.score_thr, cams, f"{args.config}: {what}, boxes projected into each camera")
                written.append(out)
    for w in written:
        print(w)
    return written


if __name__ == "__main__":
    run_cli(main)
