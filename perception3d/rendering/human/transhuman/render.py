"""``tools/render.py`` for a TransHuman checkpoint: novel views of a (by default unseen) subject from its
reference views — the dataset's target cameras with the authors' metrics, or an orbit; several ``--frame`` values
with ``--cameras orbit`` step through the poses while the camera circles (a novel-pose video)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ....fileio import atomic_write_text
from ...config import section
from ..body_model import load_body_model
from .config import THDataConfig
from .metrics import evaluate_view
from .trainer import build_subjects, load_transhuman, render_view

__all__ = ["is_transhuman_checkpoint", "render_transhuman"]


def is_transhuman_checkpoint(path) -> bool:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    return isinstance(ck, dict) and ck.get("method") == "transhuman"


def _subject(data: THDataConfig, name, body):
    if name is None or name in data.test_subjects:
        subs = build_subjects(data, "test", body)
    else:
        subs = build_subjects(section(THDataConfig, {**vars(data), "test_subjects": [name]}, "data"), "test", body)
    if name is None:
        return subs[0]
    for s in subs:
        if s.name == name:
            return s
    raise ValueError(f"--subject {name}: not found under {data.root}")


def render_transhuman(args, write_image, write_video) -> dict:
    """Render with the parsed ``tools/render.py`` arguments (``model``, ``cameras``, ``out``, ``width``,
    ``height``, ``video``, ``fps``, ``config``, ``n_frames``, ``elevation``, ``subject``, ``frames``)."""
    from perception3d.cli import load_config
    from perception3d.structures.cameras import Cameras, orbit_path

    model, cfg = load_transhuman(args.model)
    if args.config:
        c = load_config(args.config)
        cfg = {**cfg, **{k: dict(c[k]) for k in ("data",) if k in c}}
    data = section(THDataConfig, cfg.get("data", {}), "data")
    tcfg = cfg.get("train", {})
    body = load_body_model(data.body_model, allow_template=data.allow_template)
    subj = _subject(data, getattr(args, "subject", None), body)
    frames = list(getattr(args, "frames", None) or ([data.eval_frames[0]] if data.eval_frames else [0]))
    for f in frames:
        if not 0 <= f < subj.num_frames:
            raise ValueError(f"--frame {f}: {subj.seq.root} has {subj.num_frames} frames")
    n_samples, skip_far = int(tcfg.get("n_samples", 64)), tcfg.get("skip_far", 0.1)
    out = Path(args.out) if args.out else Path(args.model).parent / f"render_{Path(args.cameras).stem}"
    for sub in ("rgb", "alpha"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    jobs = []   # (frame, viewmat, K, W, H, gt view or None)
    if args.cameras == "test":
        for f in frames:
            for c in data.target_views:
                cam = subj.cameras[c]
                jobs.append((f, cam.viewmats[0], cam.Ks[0], subj.width, subj.height, c))
    elif args.cameras == "orbit":
        W, H = args.width or subj.width, args.height or subj.height
        verts = subj.frame_body(frames[0]).verts
        center = 0.5 * (verts.min(0).values + verts.max(0).values)
        cams = subj.cameras
        radius = float((cams.centers - center).norm(dim=-1).mean())
        up = -cams.camtoworlds[:, :3, 1].mean(0)
        c2w = orbit_path(center, radius, args.n_frames, elevation=args.elevation, up=(up / up.norm()).tolist())
        K = cams.Ks[0].clone()
        K[0] *= W / subj.width
        K[1] *= H / subj.height
        oc = Cameras.from_camtoworlds(c2w, K.expand(args.n_frames, 3, 3), W, H)
        for i in range(args.n_frames):
            f = frames[i * len(frames) // args.n_frames]
            jobs.append((f, oc.viewmats[i], oc.Ks[i], W, H, None))
    else:
        raise ValueError(f"--cameras for a TransHuman checkpoint must be test or orbit, got {args.cameras}")
    frames_out, per = [], []
    for i, (f, vm, K, W, H, gt_view) in enumerate(jobs):
        r = render_view(model, subj, f, data.input_views, vm, K, W, H, data.box_pad, n_samples, skip_far)
        rgb8 = (r["rgb"].clamp(0, 1) * 255).round().byte().numpy()
        write_image(out / "rgb" / f"{i:04d}.png", rgb8)
        write_image(out / "alpha" / f"{i:04d}.png", (r["acc"].clamp(0, 1) * 255).round().byte().numpy())
        frames_out.append(rgb8)
        if gt_view is not None:
            m = evaluate_view(r["rgb"], subj.view(f, gt_view)[0], r["mask_at_box"])
            per.append({"frame": f, "view": gt_view, **m})
            print(f"frame {f} view {gt_view:3d}: PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    result = {"n_views": len(jobs), "out": str(out), "subject": subj.name, "frames": frames}
    if per:
        result.update(psnr=float(np.mean([p["psnr"] for p in per])), ssim=float(np.mean([p["ssim"] for p in per])),
                      lpips=None, per_view=per)
        print(f"mean over {len(per)} views: PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f} "
              "(authors' protocol: PSNR in the projected body box, SSIM on its crop)")
        atomic_write_text(out / "metrics.json", json.dumps(result, indent=1))
    if args.video:
        result["video"] = str(write_video(frames_out, Path(args.video), args.fps))
        print(f"video: {result['video']}")
    return result
