"""TransHuman against a per-scene NeRF on the unseen test subjects: both see the same reference views of a frame;
the NeRF is fitted to them for a given CPU time (by default the TransHuman checkpoint's own training CPU time),
TransHuman renders in one forward pass. Both are scored at the target views with the authors' protocol.

    python -m perception3d.rendering.human.transhuman.compare CKPT [--out DIR] [--nerf-cpu-minutes M]

Writes ``DIR/compare.json``, ``DIR/compare.md`` (the table: one row per unseen subject and frame, then the mean)
and ``DIR/compare_grid.png`` (one row per target view, subjects in turn; columns: reference views | TransHuman |
per-scene NeRF | ground truth). CPU times are process CPU time (``time.process_time``), wall times include
whatever else the machine runs."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ....fileio import atomic_path, atomic_torch_save, atomic_write_text
from ...config import section
from ..body_model import load_body_model
from .config import THDataConfig
from .metrics import evaluate_view
from .nerf_baseline import LAST_INTERVAL, fit_nerf
from .trainer import build_subjects, load_transhuman, render_view
from .volume import body_box, camera_rays, render_rays

__all__ = ["compare_with_nerf", "main"]


def _nerf_renders(net, s, cams, box, n_samples) -> list[torch.Tensor]:
    out = []
    for c in cams:
        cam = s.cameras[c]
        o, d = camera_rays(cam.viewmats[0], cam.Ks[0], s.width, s.height)
        with torch.no_grad():
            nr = render_rays(net, o, d, box, n_samples, chunk=1 << 16, last_interval=LAST_INTERVAL)
        out.append(nr["rgb"].view(s.height, s.width, 3))
    return out


def compare_with_nerf(ckpt, out_dir, nerf_cpu_seconds: Optional[float] = None,
                      frames: Optional[Sequence[int]] = None, seed: int = 0, progress: bool = True,
                      target_views: Optional[Sequence[int]] = None, nerf_from=None, **nerf_kw) -> dict:
    """See the module docstring. ``target_views``: the cameras to score (default: the config's target views; the
    table then also gives the mean over the config's target views among them). Each per-scene NeRF's renders are
    written to ``out_dir/nerf_<subject>_<frame>.pt`` with what it was fitted to; ``nerf_from`` (a folder of such
    files) reuses a fit of the same reference views, budget, seed and sample count instead of fitting again (the
    NeRF does not depend on the TransHuman checkpoint); any mismatch raises."""
    import imageio.v3 as iio

    from ...trainer import image_grid

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, cfg = load_transhuman(ckpt)
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    train_cpu = float(ck.get("cpu_used", 0.0))
    budget = train_cpu if nerf_cpu_seconds is None else float(nerf_cpu_seconds)
    data = section(THDataConfig, cfg.get("data", {}), "data")
    n_samples = int(cfg.get("train", {}).get("n_samples", 64))
    skip_far = cfg.get("train", {}).get("skip_far", 0.1)
    body = load_body_model(data.body_model, allow_template=data.allow_template)
    targets = list(data.target_views if target_views is None else target_views)
    if set(targets) & set(data.input_views):
        raise ValueError(f"target views {targets} include reference views {list(data.input_views)}")
    rows, grid, scenes = [], [], []
    for s in build_subjects(data, "test", body):
        for f in (frames if frames is not None else (list(data.eval_frames or [0])[:1])):
            inp = s.inputs(f, data.input_views)
            box = body_box(inp.verts, data.box_pad)
            t0, w0 = time.process_time(), time.perf_counter()
            th = [render_view(model, s, f, data.input_views, s.cameras[c].viewmats[0], s.cameras[c].Ks[0], s.width,
                              s.height, data.box_pad, n_samples, skip_far) for c in targets]
            th_cpu, th_wall = time.process_time() - t0, time.perf_counter() - w0
            key = {"subject": s.name, "frame": f, "input_views": list(data.input_views), "budget_cpu_s": budget,
                   "seed": seed, "n_samples": n_samples, "nerf_kw": nerf_kw}
            name = f"nerf_{s.name}_{f}.pt"
            if nerf_from is not None:
                cached = torch.load(Path(nerf_from) / name, map_location="cpu", weights_only=False)
                if cached["key"] != key:
                    raise ValueError(f"{Path(nerf_from) / name}: fitted to {cached['key']}, this run needs {key}")
                missing = [c for c in targets if c not in cached["renders"]]
                if missing:
                    raise ValueError(f"{Path(nerf_from) / name}: no render of target views {missing}")
                info, renders = cached["info"], cached["renders"]
            else:
                w0 = time.perf_counter()
                net, info = fit_nerf(inp.images, inp.viewmats, inp.Ks, box, budget, n_samples=n_samples, seed=seed,
                                     **nerf_kw)
                info["wall_seconds"] = time.perf_counter() - w0
                renders = dict(zip(targets, _nerf_renders(net, s, targets, box, n_samples)))
            atomic_torch_save(out_dir / name, {"key": key, "info": info, "renders": renders})
            first = len(rows)
            for c, r in zip(targets, th):
                nerf_rgb = renders[c]
                gt = s.view(f, c)[0]
                a, b = evaluate_view(r["rgb"], gt, r["mask_at_box"]), evaluate_view(nerf_rgb, gt, r["mask_at_box"])
                rows.append({"subject": s.name, "frame": f, "view": c, "transhuman": a, "nerf": b})
                grid.append([s.view(f, v)[0] for v in data.input_views] + [r["rgb"], nerf_rgb, gt])
            rows[-1]["nerf_fit"] = info
            sub = rows[first:]
            if progress:
                m = {k: [float(np.mean([r[k][q] for r in sub])) for q in ("psnr", "ssim")]
                     for k in ("transhuman", "nerf")}
                print(f"[compare] {s.name} frame {f}: NeRF {info['steps']} steps in {info['cpu_seconds']:.0f} CPU s; "
                      f"TransHuman rendered {len(th)} views in {th_cpu:.1f} CPU s; PSNR / SSIM over {len(sub)} views: "
                      f"TransHuman {m['transhuman'][0]:.2f} / {m['transhuman'][1]:.4f}, "
                      f"NeRF {m['nerf'][0]:.2f} / {m['nerf'][1]:.4f}", flush=True)
            scenes.append({"subject": s.name, "frame": f, "views": len(sub), "nerf_fit": info,
                           "transhuman_render_cpu_s": th_cpu, "transhuman_render_wall_s": th_wall,
                           **{k: {m: float(np.mean([r[k][m] for r in sub])) for m in ("psnr", "ssim")}
                              for k in ("transhuman", "nerf")}})
            cfg_sub = [r for r in sub if r["view"] in set(data.target_views)]
            if cfg_sub and len(cfg_sub) < len(sub):
                scenes[-1]["config_target_views"] = {k: {m: float(np.mean([r[k][m] for r in cfg_sub]))
                                                         for m in ("psnr", "ssim")} for k in ("transhuman", "nerf")}
    mean = lambda k, m, rs=rows: float(np.mean([r[k][m] for r in rs]))  # noqa: E731
    authors = [r for r in rows if r["view"] in set(data.target_views)]
    res = {"transhuman": {"psnr": mean("transhuman", "psnr"), "ssim": mean("transhuman", "ssim"),
                          "train_cpu_s": train_cpu, "train_steps": int(ck.get("step", 0))},
           "nerf": {"psnr": mean("nerf", "psnr"), "ssim": mean("nerf", "ssim"), "fit_cpu_s_per_scene": budget},
           "input_views": list(data.input_views), "target_views": targets, "per_scene": scenes,
           "per_view": rows}
    table = [f"TransHuman: {int(ck.get('step', 0))} steps, {train_cpu / 60:.1f} CPU-min on the training subjects, "
             f"then one forward pass per view; per-scene NeRF: {budget / 60:.1f} CPU-min on the "
             f"{len(data.input_views)} reference views {tuple(data.input_views)} of each unseen subject; scored at "
             f"the target views {tuple(targets)} (PSNR inside the projected body box, SSIM on its crop).",
             "", "| unseen subject | frame | TransHuman PSNR | NeRF PSNR | TransHuman SSIM | NeRF SSIM | NeRF steps "
             "| NeRF CPU s | NeRF wall s | TransHuman render CPU s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in scenes:
        table.append(f"| {r['subject']} | {r['frame']} | {r['transhuman']['psnr']:.2f} | {r['nerf']['psnr']:.2f} | "
                     f"{r['transhuman']['ssim']:.4f} | {r['nerf']['ssim']:.4f} | {r['nerf_fit']['steps']} | "
                     f"{r['nerf_fit']['cpu_seconds']:.0f} | {r['nerf_fit']['wall_seconds']:.0f} | "
                     f"{r['transhuman_render_cpu_s']:.1f} |")
    table.append(f"| mean of {len(rows)} views | | {res['transhuman']['psnr']:.2f} | {res['nerf']['psnr']:.2f} "
                 f"| {res['transhuman']['ssim']:.4f} | {res['nerf']['ssim']:.4f} | | | | |")
    if authors and len(authors) < len(rows):   # the config's (the authors') target views among those scored
        res["config_target_views"] = {k: {m: mean(k, m, authors) for m in ("psnr", "ssim")}
                                      for k in ("transhuman", "nerf")}
        sub = res["config_target_views"]
        table.append(f"| mean of the config's target views {tuple(data.target_views)}, {len(authors)} views | | "
                     f"{sub['transhuman']['psnr']:.2f} | {sub['nerf']['psnr']:.2f} | {sub['transhuman']['ssim']:.4f} "
                     f"| {sub['nerf']['ssim']:.4f} | | | | |")
    atomic_write_text(out_dir / "compare.md", "\n".join(table) + "\n")
    atomic_write_text(out_dir / "compare.json", json.dumps(res, indent=1, default=str))
    with atomic_path(out_dir / "compare_grid.png") as tmp:
        iio.imwrite(tmp, image_grid(grid), extension=".png")
    if progress:
        print("\n".join(table))
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt")
    ap.add_argument("--out", default=None, help="default: <ckpt folder>/compare")
    ap.add_argument("--nerf-cpu-minutes", type=float, default=None,
                    help="CPU time of each per-scene NeRF fit (default: the checkpoint's training CPU time)")
    ap.add_argument("--frames", type=int, nargs="+", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-views", type=int, nargs="+", default=None,
                    help="cameras to score (default: the config's target views)")
    ap.add_argument("--nerf-from", default=None,
                    help="a previous run's output folder: reuse its per-scene NeRF renders (same views, budget, seed)")
    args = ap.parse_args(argv)
    out = args.out or str(Path(args.ckpt).parent / "compare")
    cpu = None if args.nerf_cpu_minutes is None else 60 * args.nerf_cpu_minutes
    return compare_with_nerf(args.ckpt, out, cpu, args.frames, args.seed, target_views=args.target_views,
                             nerf_from=args.nerf_from)


if __name__ == "__main__":
    main()
