"""Does a TransHuman checkpoint take a person's colours from the reference views, or from what it memorised about
its training people? (Issue 17's diagnosis of the "tint": unseen people rendered in a training person's clothes.)

    OMP_NUM_THREADS=1 python bench/transhuman_colour_source.py CKPT [--config CFG] [--views C ...] [--out DIR]

For each unseen test subject (frame 0, the config's reference views) every target view is rendered twice: from
the reference images as they are, and from the same images with their colour channels rotated (R, G, B → G, B, R;
the geometry is untouched). A model that reads colour from the views renders the rotated person: its second render
matches the rotated ground truth about as well as the first matches the real one, and the real one badly. A model
that paints remembered clothing renders about the same colours both times. Reported per subject, PSNR inside the
projected body box (the authors' protocol): ``plain`` (plain inputs vs ground truth), ``rot_vs_rot`` (rotated
inputs vs rotated ground truth), ``rot_vs_plain`` (rotated inputs vs the real ground truth), and the share of the
colour change that reaches the render, ``follow`` = mean over body pixels of (render_rot − render_plain) ·
(gt_rot − gt) / |gt_rot − gt|² (1: the render changes exactly as the person's colours did; 0: not at all).
The subjects are read through ``--config``'s data section (default the mini config), so a checkpoint trained on
another copy of the built-in dataset is scored on the same people. Writes ``DIR/colour_source.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt")
    ap.add_argument("--config", default=str(ROOT / "configs" / "transhuman_human_mini.py"))
    ap.add_argument("--views", type=int, nargs="+", default=None, help="target cameras (default: the config's)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "transhuman_colour_source"))
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from perception3d.cli import load_config
    from perception3d.fileio import atomic_write_text
    from perception3d.rendering.config import section
    from perception3d.rendering.human.body_model import load_body_model
    from perception3d.rendering.human.transhuman.config import THDataConfig
    from perception3d.rendering.human.transhuman.metrics import evaluate_view
    from perception3d.rendering.human.transhuman.trainer import build_subjects, load_transhuman
    from perception3d.rendering.human.transhuman.volume import body_box, camera_rays

    model, ck_cfg = load_transhuman(args.ckpt)
    data = section(THDataConfig, dict(load_config(args.config).data), "data")
    n_samples = int(ck_cfg.get("train", {}).get("n_samples", 64))
    skip_far = ck_cfg.get("train", {}).get("skip_far", 0.1)
    body = load_body_model(data.body_model, allow_template=data.allow_template)
    views = list(data.target_views if args.views is None else args.views)
    rot = [1, 2, 0]                                                   # R, G, B → G, B, R
    t0 = time.process_time()
    res = {"ckpt": args.ckpt, "views": views, "subjects": []}
    for s in build_subjects(data, "test", body):
        plain_inp = s.inputs(0, data.input_views)
        rot_inp = dataclasses.replace(plain_inp, images=plain_inp.images[..., rot])
        box = body_box(plain_inp.verts, data.box_pad)
        with torch.no_grad():
            ctx = {k: model.encode(i) for k, i in (("plain", plain_inp), ("rot", rot_inp))}
        per = []
        for c in views:
            cam = s.cameras[c]
            o, d = camera_rays(cam.viewmats[0], cam.Ks[0], s.width, s.height)
            with torch.no_grad():
                out = {k: model.render_rays(x, o, d, box, n_samples, False, 32768, skip_far) for k, x in ctx.items()}
            hw = (s.height, s.width)
            r = {k: v["rgb"].view(*hw, 3) for k, v in out.items()}
            hit = out["plain"]["hit"].view(*hw)
            gt, msk = s.view(0, c)
            gt_rot = gt[..., rot]
            dg, dr = (gt_rot - gt)[msk], (r["rot"] - r["plain"])[msk]
            per.append({"view": c, "plain": evaluate_view(r["plain"], gt, hit)["psnr"],
                        "rot_vs_rot": evaluate_view(r["rot"], gt_rot, hit)["psnr"],
                        "rot_vs_plain": evaluate_view(r["rot"], gt, hit)["psnr"],
                        "follow": float((dr * dg).sum() / (dg * dg).sum().clamp_min(1e-12))})
        row = {"subject": s.name, **{k: float(np.mean([p[k] for p in per])) for k in per[0] if k != "view"},
               "per_view": per}
        res["subjects"].append(row)
        print(f"[colour] {s.name}: PSNR plain {row['plain']:.2f}, rotated vs rotated GT {row['rot_vs_rot']:.2f}, "
              f"rotated vs real GT {row['rot_vs_plain']:.2f}; follow {row['follow']:.2f}", flush=True)
    res["cpu_s"] = time.process_time() - t0
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "colour_source.json", json.dumps(res, indent=1))
    print(f"[colour] {res['cpu_s']:.0f} CPU s; {out_dir / 'colour_source.json'}")
    return res


if __name__ == "__main__":
    main()
