"""Checks of SparseFusion's camera branch on the mini data's surround cameras: is the geometry right, and does it
learn?

Geometry (no checkpoint needed), on ``--frames`` frames of the config's test split and, with the training
augmentation, of its train split:

* **calibration vs the renderer**: each ground-truth box centre projected with the info's ``cam2img`` /
  ``lidar2cam`` (:func:`camera_targets`, what the image targets use) against the same centre projected by the
  simulator's own camera model (``surround_camera_specs().project``, the camera that rendered the pixels) —
  independent code; on augmented frames the augmentation is undone first (``lidar_aug_matrix``);
* **the inverse path**: the target pixel / depth of each box sent back through the camera branch's geometric
  transform (:func:`camera_candidates_to_lidar`) must give the box again (centre, size, yaw);
* ``--png``: the frames' images with each projected box (8 corners, centre) drawn, to look at.

With ``--checkpoint`` (a SparseFusion model): what the camera branch learned, over the test split —

* **image heat map**: the heat at each visible box's centre cell (max over 3 × 3, its class) against the
  heat map's 99th percentile elsewhere; how many visible boxes have an image query within 1.5 cells of their
  centre (query recall);
* **monocular depth / view transform**: for each visible box, the nearest image query of its camera (in pixels):
  relative depth error and the BEV centre error of the view-transformed box;
* **fused detections**: how many of the top-``max_det`` fused detections are camera candidates, and their best
  score; how many boxes the fusion loss's Hungarian assignment (:func:`hungarian_match` on the fused predictions,
  as in training) gives to camera candidates, and the median BEV distance from a visible box to the nearest fused
  LiDAR and camera candidate.

    python bench/fusion_camera_check.py configs/sparsefusion_waymo_mini.py [--frames 4] [--png out.png]
        [--checkpoint CKPT] [--out check.json]
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

def _datasets(config: str):
    from mmengine.registry import FUNCTIONS, DefaultScope

    import perception3d.datasets  # noqa: F401
    from perception3d.cli import load_config
    from perception3d.registry import DATASETS

    cfg = load_config(config)
    if cfg.get("prepare_data"):
        kw = dict(cfg.prepare_data)
        FUNCTIONS.get(kw.pop("type"))(**kw)
    with DefaultScope.overwrite_default_scope("perception3d"):
        test = DATASETS.build(dict(cfg.test_dataloader.dataset, test_mode=True))
        train = DATASETS.build(cfg.train_dataloader.dataset)
    return cfg, test, train


def _sample(item: dict) -> dict:
    s = item["data_samples"]
    get = s.get if isinstance(s, dict) else lambda k, d=None: getattr(s, k, d)
    boxes = torch.as_tensor(np.asarray(get("gt_bboxes_3d"), np.float32)).reshape(-1, 7)
    return dict(boxes=torch.cat([boxes, boxes.new_zeros(len(boxes), 2)], 1),
                labels=torch.as_tensor(np.asarray(get("gt_labels_3d"))).long().reshape(-1),
                cam2img=torch.as_tensor(np.asarray(get("cam2img"), np.float32)),
                lidar2cam=torch.as_tensor(np.asarray(get("lidar2cam"), np.float32)),
                images=[np.asarray(im) for im in get("images")], aug=_aug_matrix(get),
                cam_names=list(get("cam_names", [])))


def _aug_matrix(get) -> np.ndarray:
    """The training augmentation's 4×4 LiDAR transform of a packed sample (identity in test mode)."""
    from perception3d.structures.calibration import lidar_aug_matrix
    if get("pcd_rotation_angle") is None:
        return np.eye(4)
    return lidar_aug_matrix(rotation=float(get("pcd_rotation_angle")), scale=float(get("pcd_scale_factor", 1.0)),
                            translation=np.asarray(get("pcd_trans", np.zeros(3)), np.float64))


def geometry_check(samples: list, img_size) -> dict:
    """Calibration vs the renderer's camera, and the round trip through the camera branch's geometric transform."""
    from perception3d.datasets.synthetic.cameras import surround_camera_specs
    from perception3d.models.fusion.camera_branch import camera_targets
    from perception3d.models.fusion.view_transform import camera_candidates_to_lidar

    specs = surround_camera_specs()
    names = {f"CAM_{n}": k for k, n in {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT"}.items()}
    px_err, rt_centre, rt_dims, rt_yaw, n_targets = [], [], [], [], 0
    for s in samples:
        t, c2d, vv, mm = camera_targets(s["boxes"], s["cam2img"], s["lidar2cam"], img_size)
        n_targets += len(vv)
        if not len(vv):
            continue
        # the renderer's projection of the same centres, in the un-augmented (vehicle) frame
        gb = s["boxes"][mm].double().numpy()
        centre = gb[:, :3] + np.stack([0 * gb[:, 0], 0 * gb[:, 0], gb[:, 5] / 2], 1)
        centre_veh = (np.linalg.inv(s["aug"]) @ np.c_[centre, np.ones(len(centre))].T).T[:, :3]
        for j, (a, m) in enumerate(zip(vv.tolist(), mm.tolist())):
            uv, _ = specs[names[s["cam_names"][a]]].project(centre_veh[j:j + 1])
            px_err.append(float(np.abs(uv[0] - t["center_2d"][a, m].numpy()).max()))
        back = camera_candidates_to_lidar(t["center_2d"][vv, mm], t["depth"][vv, mm], t["dims"][vv, mm],
                                          t["heading_cam"][vv, mm], t["velocity_cam"][vv, mm],
                                          s["cam2img"][vv], s["lidar2cam"][vv])["boxes"]
        g = s["boxes"][mm]
        rt_centre.append((back[:, :3] - g[:, :3]).abs().max(1)[0])
        rt_dims.append((back[:, 3:6] - g[:, 3:6]).abs().max(1)[0])
        d = (back[:, 6] - g[:, 6] + np.pi) % (2 * np.pi) - np.pi
        rt_yaw.append(d.abs())
    cat = lambda xs: torch.cat(xs).numpy() if xs else np.zeros(0)  # noqa: E731
    return dict(frames=len(samples), image_targets=n_targets,
                calib_vs_renderer_px_max=round(max(px_err, default=0.0), 4),
                round_trip_centre_m_max=round(float(cat(rt_centre).max(initial=0)), 5),
                round_trip_dims_m_max=round(float(cat(rt_dims).max(initial=0)), 5),
                round_trip_yaw_rad_max=round(float(cat(rt_yaw).max(initial=0)), 5))


def draw(samples: list, path: str, img_size) -> None:
    """Each frame's camera images side by side with the projected boxes (white edges, class-coloured centre)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from perception3d.ops.box_tensor import BOX_EDGES
    from perception3d.structures.calibration import project_box_corners, project_points
    colours = ["red", "lime", "cyan"]
    v = len(samples[0]["images"])
    fig, axes = plt.subplots(len(samples), v, figsize=(3.2 * v, 2.3 * len(samples)), squeeze=False)
    for r, s in enumerate(samples):
        k4 = np.zeros((v, 4, 4))
        k4[:, :3, :3], k4[:, 3, 3] = s["cam2img"].numpy(), 1
        l2i = k4 @ s["lidar2cam"].numpy()
        boxes = s["boxes"].double().numpy()
        centres = boxes[:, :3] + np.c_[np.zeros((len(boxes), 2)), boxes[:, 5] / 2]   # z is the box bottom
        for a in range(v):
            ax = axes[r, a]
            ax.imshow(np.clip(s["images"][a], 0, 1))
            uv_all, d_all = project_box_corners(boxes, l2i[a])
            c_all, _ = project_points(centres, l2i[a])
            for m, (uv, d) in enumerate(zip(uv_all, d_all)):
                if (d <= 0.5).any():
                    continue
                for i, j in BOX_EDGES:
                    ax.plot(uv[[i, j], 0], uv[[i, j], 1], color="white", lw=0.6)
                ax.plot(c_all[m, 0], c_all[m, 1], "o", ms=3, color=colours[int(s["labels"][m]) % 3])
            ax.set_xlim(0, img_size[1])
            ax.set_ylim(img_size[0], 0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(s["cam_names"][a] if s["cam_names"] else f"camera {a}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def learned_check(cfg, ds, checkpoint: str, max_frames: int) -> dict:
    """What the camera branch of a trained model does on the test split (see the module docstring)."""
    from perception3d.apis import init_model
    from perception3d.datasets.loading import det3d_collate
    from perception3d.models.fusion.camera_branch import camera_targets
    from perception3d.models.fusion.layers import decode_boxes, hungarian_match

    model = init_model(cfg, checkpoint)
    head = model.head
    heat_at, heat_bg, recall, depth_rel, bev_err = [], [], [], [], []
    n_vis, cam_in_top, cam_best, n_top = 0, 0, [], 0
    n_matched, n_matched_cam, n_vis_matched, n_vis_matched_cam, near_lidar, near_cam = 0, 0, 0, 0, [], []
    for i in range(min(len(ds), max_frames)):
        item = ds[i]
        batch = model.data_preprocessor(det3d_collate([item]), False)
        out = model(batch["inputs"], batch["data_samples"], mode="tensor")
        s = _sample(item)
        img_size = s["images"][0].shape[:2]
        cam = out["camera"]
        t, c2d, vv, mm = camera_targets(s["boxes"], s["cam2img"], s["lidar2cam"], img_size)
        n_vis += len(vv)
        hm = cam["dense_heatmaps"][0].sigmoid()                               # level 0 [V, n, h, w]
        h, w = hm.shape[-2:]
        mask = torch.ones_like(hm, dtype=torch.bool)
        for a, m in zip(vv.tolist(), mm.tolist()):
            x, y = int(c2d[a, m, 0] * w), int(c2d[a, m, 1] * h)
            cls = int(s["labels"][m])
            win = hm[a, cls, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
            heat_at.append(float(win.max()))
            mask[a, :, max(y - 2, 0):y + 3, max(x - 2, 0):x + 3] = False
            # nearest image query of that camera
            q_view = cam["view"][0]
            qpix = cam["uv"][0]                                                  # [K, 2] pixels (with offsets)
            same = (q_view == a).nonzero(as_tuple=True)[0]
            tgt = t["center_2d"][a, m]
            if len(same):
                d = (qpix[same] - tgt).norm(dim=-1)
                j = same[d.argmin()]
                cell_px = img_size[1] / w
                recall.append(float(d.min()) <= 1.5 * cell_px)
                depth = float(cam["pred"]["depth"][0, 0, j].clamp(max=6).exp())
                depth_rel.append(abs(depth - float(t["depth"][a, m])) / float(t["depth"][a, m]))
                vb = out["view"]["pred"]["center"][0, :, j]
                xy = vb * torch.tensor(head.cell) + torch.tensor(head.pc_range[:2])
                bev_err.append(float((xy - s["boxes"][m, :2]).norm()))
            else:
                recall.append(False)
        heat_bg.append(hm[mask].reshape(-1))
        # fused detections: which candidates the top max_det come from
        if "fused_feat" in out:
            scores = out["final"]["heatmap"].sigmoid()[0]                        # [n, P]
            n_lidar = out["lidar"]["feat"].shape[2]
            k = min(head.max_det, scores.numel())
            top, idx = scores.reshape(-1).topk(k)
            q = idx % scores.shape[1]
            cam_in_top += int((q >= n_lidar).sum())
            n_top += k
            cam_best.append(float(scores[:, n_lidar:].max()))
            # the fusion loss's Hungarian assignment (the one training uses) of this frame's boxes: how many go
            # to camera candidates, and how near the nearest fused candidate of each kind is to a visible box
            fin = out["final"]
            boxes = decode_boxes(fin, head.pc_range, head.cell)[0]
            r_idx, c_idx = hungarian_match(fin["heatmap"][0].T, boxes, s["boxes"], s["labels"], head.pc_range)
            seen = torch.zeros(len(s["boxes"]), dtype=torch.bool)
            seen[mm.unique()] = True
            n_matched += len(c_idx)
            n_matched_cam += int((r_idx >= n_lidar).sum())
            n_vis_matched += int(seen[c_idx].sum())
            n_vis_matched_cam += int(((r_idx >= n_lidar) & seen[c_idx]).sum())
            if seen.any():
                d = torch.cdist(s["boxes"][seen, :2], boxes[:, :2].float())
                near_lidar += d[:, :n_lidar].min(1).values.tolist()
                near_cam += d[:, n_lidar:].min(1).values.tolist()
    bg = torch.cat(heat_bg) if heat_bg else torch.zeros(1)
    r = lambda x: round(float(x), 4)  # noqa: E731
    return dict(frames=min(len(ds), max_frames), visible_boxes=n_vis,
                heat_at_centre_median=r(np.median(heat_at)) if heat_at else None,
                heat_at_centre_mean=r(np.mean(heat_at)) if heat_at else None,
                heat_background_p99=r(torch.quantile(bg[:100000], 0.99)),
                heat_background_mean=r(bg.mean()),
                query_recall_1p5_cells=r(np.mean(recall)) if recall else None,
                depth_rel_err_median=r(np.median(depth_rel)) if depth_rel else None,
                view_bev_centre_err_m_median=r(np.median(bev_err)) if bev_err else None,
                fused_top_from_camera=cam_in_top, fused_top_total=n_top,
                camera_candidate_best_score_max=r(max(cam_best)) if cam_best else None,
                fusion_assigned_boxes=n_matched, fusion_assigned_to_camera=n_matched_cam,
                fusion_assigned_visible_boxes=n_vis_matched, fusion_assigned_visible_to_camera=n_vis_matched_cam,
                visible_box_to_nearest_lidar_candidate_m_median=r(np.median(near_lidar)) if near_lidar else None,
                visible_box_to_nearest_camera_candidate_m_median=r(np.median(near_cam)) if near_cam else None)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--frames", type=int, default=4, help="frames for the geometry check and the PNG")
    ap.add_argument("--png")
    ap.add_argument("--checkpoint")
    ap.add_argument("--eval-frames", type=int, default=40, help="test frames for --checkpoint")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    t0, c0 = time.time(), time.process_time()
    cfg, test, train = _datasets(args.config)
    res = {}
    te = [_sample(test[i]) for i in range(min(args.frames, len(test)))]
    tr = [_sample(train[i]) for i in range(min(args.frames, len(train)))]
    size = te[0]["images"][0].shape[:2]
    res["geometry_test"] = geometry_check(te, size)
    res["geometry_train_augmented"] = geometry_check(tr, size)
    print(json.dumps(res, indent=1), flush=True)
    if args.png:
        draw(te[:3], args.png, size)
        print(f"wrote {args.png}")
    if args.checkpoint:
        res["learned"] = learned_check(cfg, test, args.checkpoint, args.eval_frames)
        print(json.dumps(res["learned"], indent=1), flush=True)
    res["wall_s"], res["cpu_s"] = round(time.time() - t0, 1), round(time.process_time() - c0, 1)
    if args.out:
        from perception3d.fileio import atomic_write_text
        atomic_write_text(args.out, json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
