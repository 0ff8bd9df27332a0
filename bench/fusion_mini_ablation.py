"""Waymo LEVEL_1 / LEVEL_2 mAP of trained models on a config's test split, for all objects and for objects with
fewer than ``--few`` LiDAR points (the ones a camera helps with): the SparseFusion vs LiDAR-only table.

    python bench/fusion_mini_ablation.py \\
        sparsefusion=configs/sparsefusion_waymo_mini.py:work_dirs/sparsefusion_waymo_mini/iter_240.pth \\
        transfusion_l=configs/transfusion_l_waymo_mini.py:work_dirs/transfusion_l_waymo_mini/iter_240.pth \\
        [--few 20] [--fov] [--near 20] [--bootstrap 200] [--extra-val 200] [--grey-images NAME]
        [--out work_dirs/fusion_ablation.json]

"Few points" is scored with the official metric's own mechanism for boxes it does not count
(``zero_point_gt="ignore"``): the boxes with ``>= few`` points are marked ignored (a prediction matched to one is
neither TP nor FP, and it is never a miss), so AP is that of the boxes with 1 … few-1 points; LEVEL_1 of that is
the boxes with 6 … few-1 points (Waymo's LEVEL_2 rule: <= 5 points).

``--fov``: also score inside the mini dataset's camera rig (``surround_camera_specs``: FRONT, FRONT_LEFT,
FRONT_RIGHT, 140° ahead): ground truths whose box centre no camera sees are ignored the same way and predictions
whose centre no camera sees are dropped, so the LiDAR-only and the fusion model are compared where a camera can
help (the labels cover 360°, the cameras 140°).

For a model that marks its camera candidates (SparseFusion's ``from_camera``) the table also counts them among the
detections and scores the detections without them (what the camera candidates themselves add).

``--near R``: also score objects nearer than R metres (BEV range of the box centre) and the farther ones apart
(predictions of the other part dropped, its truths ignored).

``--bootstrap N``: N paired bootstrap resamples of the frames (the same frames for every model, seed 0): each
model's Overall L1 mAP minus the first model's, and every other pair's difference, mean and 95 % interval, all
boxes and few-point ones.

``--extra-val N``: score on N validation frames the models never saw, drawn with another generator seed
(``--extra-val-seed``, default 1; the configs' dataset is seed 0) with the same surround rig, written once to
``data/waymo_mini_surround_seed<S>_val<N>`` and converted: 40 frames leave a 0.005 mAP difference inside the noise.

``--extra-val-lidar-width W``: the new frames' LiDAR has W range-image columns (256 for the ``*_sparse_lidar*``
configs, whose data is generated with ``lidar_width=256``).

``--grey-images NAME``: score the named run with every camera image replaced by a constant grey (0.5): what
the image contents add (the same model, the same LiDAR input); repeat the flag for several runs. The same
CONFIG:CHECKPOINT may be listed twice under two names, once with and once without.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def extra_validation_split(n: int, seed: int, root: str = "data", lidar_width: Optional[int] = None) -> str:
    """The converted folder of ``n`` validation frames of the surround-camera mini dataset drawn with generator
    ``seed`` (written on first use; see ``--extra-val``); ``lidar_width``: range-image columns other than the
    generator's default, the sparse-LiDAR variant (``*_sparse_lidar*`` configs, folder
    ``waymo_mini_surround_w<W>_seed…``)."""
    from perception3d.datasets.prepare import prepare_waymo_mini

    generator = dict(num_train=0, num_val=n, seed=seed)
    if lidar_width is not None:
        generator["lidar_width"] = lidar_width
    width = "" if lidar_width is None else f"_w{lidar_width}"
    return str(prepare_waymo_mini(os.path.join(root, f"waymo_mini_surround{width}_seed{seed}_val{n}"),
                                  gt_database=False, surround_cameras=True, generator=generator))


def predict_split(config: str, checkpoint: str, data_root: str = None,
                  grey_images: bool = False) -> tuple[list, list]:
    """(predictions, ground truths) over the config's test split (or the ``waymo_infos_val.pkl`` of another
    converted ``data_root``), in ``waymo_evaluate``'s per-frame layout; ``grey_images``: every camera image a
    constant 0.5."""
    from mmengine.registry import FUNCTIONS, DefaultScope

    import perception3d.datasets  # noqa: F401
    from perception3d.apis import init_model
    from perception3d.cli import load_config
    from perception3d.datasets.loading import det3d_collate
    from perception3d.registry import DATASETS

    cfg = load_config(config)
    if data_root is None and cfg.get("prepare_data"):
        kw = dict(cfg.prepare_data)
        FUNCTIONS.get(kw.pop("type"))(**kw)
    model = init_model(cfg, checkpoint)
    with DefaultScope.overwrite_default_scope("perception3d"):
        spec = dict(cfg.test_dataloader.dataset, test_mode=True)
        if data_root is not None:
            spec.update(data_root=data_root, ann_file="waymo_infos_val.pkl")
        ds = DATASETS.build(spec)
    preds, gts = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            if grey_images and item["data_samples"].get("images") is not None:
                item["data_samples"]["images"] = [np.full_like(np.asarray(im), 0.5)
                                                  for im in item["data_samples"]["images"]]
            out = model.test_step(det3d_collate([item]))[0]
            p = out["pred_instances_3d"] if isinstance(out, dict) else out.pred_instances_3d
            get = p.get if isinstance(p, dict) else lambda k: getattr(p, k)
            preds.append(dict(boxes_3d=np.asarray(get("bboxes_3d"))[:, :7], scores_3d=np.asarray(get("scores_3d")),
                              labels_3d=np.asarray(get("labels_3d"))))
            try:
                cam = get("from_camera")
            except (AttributeError, KeyError):
                cam = None
            if cam is not None:  # SparseFusion: which detections are camera candidates (not a metric input)
                preds[-1]["from_camera"] = np.asarray(cam, bool)
            s = item["data_samples"]
            gts.append(dict(boxes_3d=np.asarray(s["gt_bboxes_3d"])[:, :7], labels_3d=np.asarray(s["gt_labels_3d"]),
                            num_points=np.asarray(s["num_lidar_pts"]), difficulty=np.asarray(s["difficulty"])))
    return preds, gts


def camera_candidate_counts(preds: list) -> dict:
    """How many of the detections (each frame's top ``max_det``) come from camera candidates, and how they score;
    ``{}`` for a model that does not say (``from_camera``)."""
    if not preds or "from_camera" not in preds[0]:
        return {}
    cam = np.concatenate([p["from_camera"] for p in preds])
    score = np.concatenate([p["scores_3d"] for p in preds])
    return dict(detections=int(len(cam)), camera=int(cam.sum()), camera_above_0_1=int((cam & (score > 0.1)).sum()),
                lidar_above_0_1=int((~cam & (score > 0.1)).sum()),
                camera_best=round(float(score[cam].max()), 4) if cam.any() else 0.0)


def _maps(metrics: dict) -> dict:
    """The mAP entries of a ``waymo_evaluate`` result, rounded for the table."""
    return {k: round(v, 4) for k, v in metrics.items() if "mAP " in k or k.endswith("mAP")}


def few_point_truths(gts: list, few: int) -> list:
    """Ground truths whose boxes with ``>= few`` points are ignored (num_points set to 0, see the docstring)."""
    out = []
    for g in gts:
        n = np.asarray(g["num_points"]).copy()
        n[n >= few] = 0
        out.append(dict(g, num_points=n))
    return out


def in_camera_view(boxes: np.ndarray) -> np.ndarray:
    """[N] bool: the box centre (LiDAR = vehicle frame, z at the bottom) projects into a camera of the mini rig."""
    from perception3d.datasets.synthetic.cameras import surround_camera_specs
    b = np.asarray(boxes, np.float64).reshape(-1, 7)
    centre = b[:, :3] + np.stack([np.zeros(len(b)), np.zeros(len(b)), b[:, 5] / 2], 1)
    seen = np.zeros(len(b), bool)
    for spec in surround_camera_specs().values():
        uv, d = spec.project(centre)
        seen |= (d > 0.5) & (uv[:, 0] >= 0) & (uv[:, 0] <= spec.width - 1) & (uv[:, 1] >= 0) & \
            (uv[:, 1] <= spec.height - 1)
    return seen


def restrict(preds: list, gts: list, keep) -> tuple[list, list]:
    """Predictions and ground truths where ``keep(boxes [N, 7]) -> [N] bool`` holds: other predictions are dropped,
    other truths ignored (num_points 0, the metric's mechanism for boxes it does not count)."""
    p2, g2 = [], []
    for p, g in zip(preds, gts):
        k = keep(np.asarray(p["boxes_3d"], np.float64).reshape(-1, 7))
        p2.append({key: np.asarray(v)[k] for key, v in p.items()})
        n = np.asarray(g["num_points"]).copy()
        n[~keep(np.asarray(g["boxes_3d"], np.float64).reshape(-1, 7))] = 0
        g2.append(dict(g, num_points=n))
    return p2, g2


def fov_only(preds: list, gts: list) -> tuple[list, list]:
    """Predictions and ground truths restricted to the rig's view (see ``--fov``)."""
    return restrict(preds, gts, in_camera_view)


def in_range(preds: list, gts: list, lo: float, hi: float) -> tuple[list, list]:
    """Predictions and ground truths whose box centre's BEV range (√(x² + y²), metres) is in [lo, hi) (see
    ``--near``), the Waymo range breakdown."""
    def keep(b: np.ndarray) -> np.ndarray:
        r = np.hypot(b[:, 0], b[:, 1])
        return (r >= lo) & (r < hi)
    return restrict(preds, gts, keep)


def paired_bootstrap(preds: dict, gts: list, few_gts: list, ref: str, n: int, seed: int = 0) -> dict:
    """Paired bootstrap over frames (the same resampled frames for every model): per model other than ``ref``,
    the distribution of its Overall L1 mAP minus ``ref``'s, on all boxes and on the few-point truths —
    ``{name: {"all" | "few": {mean, p2.5, p97.5, frac_above_0}}}`` —, and under ``"a - b"`` the same for every
    other pair of models (listing order). How far a difference on 40 frames is noise."""
    from perception3d.evaluation.waymo import waymo_evaluate
    rng = np.random.default_rng(seed)
    names = list(preds)
    others = [k for k in names if k != ref]
    pairs = {k: (k, ref) for k in others}
    pairs.update({f"{a} - {b}": (a, b) for i, a in enumerate(others) for b in others[i + 1:]})
    diffs = {k: {"all": [], "few": []} for k in pairs}
    for _ in range(n):
        idx = rng.integers(0, len(gts), len(gts))
        for part, g in (("all", gts), ("few", few_gts)):
            gg = [g[i] for i in idx]
            m = {k: waymo_evaluate([preds[k][i] for i in idx], gg)["Overall/L1 mAP"] for k in names}
            for key, (a, b) in pairs.items():
                diffs[key][part].append(m[a] - m[b])
    return {k: {part: dict(mean=round(float(np.mean(d)), 4), **{"p2.5": round(float(np.percentile(d, 2.5)), 4),
                                                                  "p97.5": round(float(np.percentile(d, 97.5)), 4)},
                           frac_above_0=round(float(np.mean(np.asarray(d) > 0)), 3))
                for part, d in v.items()} for k, v in diffs.items()}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="name=CONFIG:CHECKPOINT")
    ap.add_argument("--few", type=int, default=20)
    ap.add_argument("--fov", action="store_true", help="also score inside the mini camera rig's view")
    ap.add_argument("--near", type=float, default=None,
                    help="also score near (BEV range < NEAR m) and far (>= NEAR m) objects apart")
    ap.add_argument("--bootstrap", type=int, default=0, metavar="N",
                    help="N paired bootstrap resamples of the frames: each model's L1 mAP minus the first model's")
    ap.add_argument("--extra-val", type=int, default=0, metavar="N",
                    help="score on N new validation frames drawn with --extra-val-seed instead of the config's split")
    ap.add_argument("--extra-val-seed", type=int, default=1)
    ap.add_argument("--extra-val-lidar-width", type=int, default=None, metavar="W",
                    help="range-image columns of the new frames' LiDAR (default: the generator's; 256: the "
                         "*_sparse_lidar* configs' data)")
    # one name per flag (repeat it): a flag taking any number of names would swallow the runs listed after it
    ap.add_argument("--grey-images", action="append", default=[], metavar="NAME",
                    help="a run scored with every camera image a constant grey (repeat for several)")
    ap.add_argument("--out")
    return ap


def main(argv=None) -> dict:
    ap = build_parser()
    args = ap.parse_intermixed_args(argv)
    unknown = set(args.grey_images) - {r.split("=", 1)[0] for r in args.runs}
    if unknown:
        ap.error(f"--grey-images names no run: {sorted(unknown)}")
    data_root = (extra_validation_split(args.extra_val, args.extra_val_seed, lidar_width=args.extra_val_lidar_width)
                 if args.extra_val else None)
    from perception3d.evaluation.waymo import waymo_evaluate

    table, kept = {}, {}
    for run in args.runs:
        name, spec = run.split("=", 1)
        config, ckpt = spec.rsplit(":", 1)
        t, c = time.time(), time.process_time()
        preds, gts = predict_split(config, ckpt, data_root, grey_images=name in args.grey_images)
        few_gts = few_point_truths(gts, args.few)
        sources = camera_candidate_counts(preds)
        lidar_only = [{k: np.asarray(v)[~p["from_camera"]] for k, v in p.items() if k != "from_camera"}
                      for p in preds] if sources else None
        preds = [{k: v for k, v in p.items() if k != "from_camera"} for p in preds]
        kept[name] = preds
        allm = waymo_evaluate(preds, gts)
        fewm = waymo_evaluate(preds, few_gts)
        n_few = sum(int(((np.asarray(g["num_points"]) > 0) & (np.asarray(g["num_points"]) < args.few)).sum())
                    for g in gts)
        n_all = sum(int((np.asarray(g["num_points"]) > 0).sum()) for g in gts)
        table[name] = dict(config=config, checkpoint=ckpt, data_root=data_root, grey_images=name in args.grey_images,
                           frames=len(gts), boxes=n_all, few_boxes=n_few,
                           all=_maps(allm),
                           few=_maps(fewm),
                           eval_wall_s=round(time.time() - t, 1), eval_cpu_s=round(time.process_time() - c, 1))
        if sources:
            # the same detections without the camera candidates: what the camera candidates themselves add
            sources["lidar_candidates_only_L1_mAP"] = round(waymo_evaluate(lidar_only, gts)["Overall/L1 mAP"], 4)
            sources["lidar_candidates_only_few_L1_mAP"] = round(
                waymo_evaluate(lidar_only, few_gts)["Overall/L1 mAP"], 4)
            table[name]["sources"] = sources
            print(f"{name}: {sources['camera']} of {sources['detections']} detections are camera candidates "
                  f"({sources['camera_above_0_1']} of them score > 0.1, the best {sources['camera_best']:.3f}; "
                  f"LiDAR candidates > 0.1: {sources['lidar_above_0_1']}); without the camera candidates: L1 mAP "
                  f"{sources['lidar_candidates_only_L1_mAP']:.4f}, < {args.few} points "
                  f"{sources['lidar_candidates_only_few_L1_mAP']:.4f}", flush=True)
        print(f"{name}: all L1 mAP {allm['Overall/L1 mAP']:.4f} L2 {allm['Overall/L2 mAP']:.4f} | "
              f"< {args.few} points ({n_few} of {n_all} boxes): L1 {fewm['Overall/L1 mAP']:.4f} "
              f"L2 {fewm['Overall/L2 mAP']:.4f}", flush=True)
        if args.fov:
            fp, fg = fov_only(preds, gts)
            fovm = waymo_evaluate(fp, fg)
            fovfew = waymo_evaluate(fp, few_point_truths(fg, args.few))
            table[name]["fov"] = _maps(fovm)
            table[name]["fov_few"] = _maps(fovfew)
            table[name]["fov_boxes"] = sum(int((np.asarray(g["num_points"]) > 0).sum()) for g in fg)
            table[name]["fov_few_boxes"] = sum(int(((np.asarray(g["num_points"]) > 0)
                                                    & (np.asarray(g["num_points"]) < args.few)).sum()) for g in fg)
            print(f"  in camera view ({table[name]['fov_boxes']} boxes): L1 {fovm['Overall/L1 mAP']:.4f} "
                  f"L2 {fovm['Overall/L2 mAP']:.4f} | < {args.few} points ({table[name]['fov_few_boxes']} boxes): "
                  f"L1 {fovfew['Overall/L1 mAP']:.4f} L2 {fovfew['Overall/L2 mAP']:.4f}", flush=True)
        if args.near is not None:
            for part, lo, hi in (("near", 0.0, args.near), ("far", args.near, np.inf)):
                m = waymo_evaluate(*in_range(preds, gts, lo, hi))
                table[name][part] = _maps(m)
            print(f"  near (< {args.near:g} m) L1 {table[name]['near']['Overall/L1 mAP']:.4f} | far L1 "
                  f"{table[name]['far']['Overall/L1 mAP']:.4f}", flush=True)
    keys = ["Overall/L1 mAP", "Vehicle/L1 mAP", "Pedestrian/L1 mAP", "Cyclist/L1 mAP", "Overall/L2 mAP"]
    print("\n| model | " + " | ".join(keys) + f" | < {args.few} pts: " + " | ".join(keys[:1] + keys[-1:]) + " |")
    print("|---" * (len(keys) + 3) + "|")
    for name, r in table.items():
        print(f"| {name} | " + " | ".join(f"{r['all'][k]:.3f}" for k in keys) + " | "
              + " | ".join(f"{r['few'][k]:.3f}" for k in (keys[0], keys[-1])) + " |")
    if args.bootstrap and len(kept) > 1:
        ref = next(iter(kept))
        for name, r in paired_bootstrap(kept, gts, few_gts, ref, args.bootstrap).items():
            if name in table:
                table[name]["bootstrap_vs_" + ref] = r
                name = f"{name} - {ref}"
            else:
                table.setdefault("bootstrap_pairs", {})[name] = r
            print(f"{name}, {args.bootstrap} paired resamples of the {len(gts)} frames: L1 mAP all "
                  f"{r['all']['mean']:+.4f} [{r['all']['p2.5']:+.4f}, {r['all']['p97.5']:+.4f}] (> 0 in "
                  f"{r['all']['frac_above_0']:.0%}); < {args.few} points {r['few']['mean']:+.4f} "
                  f"[{r['few']['p2.5']:+.4f}, {r['few']['p97.5']:+.4f}] (> 0 in {r['few']['frac_above_0']:.0%})",
                  flush=True)
    if args.out:
        from perception3d.fileio import atomic_write_text
        atomic_write_text(args.out, json.dumps(table, indent=1))
    return table


if __name__ == "__main__":
    main()
