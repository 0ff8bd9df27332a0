#!/usr/bin/env python
"""Render a trained Gaussian scene (trainer checkpoint ``.pt`` or 3DGS ``.ply``) or a TransHuman checkpoint
(``--subject``, ``--frame``: the subject's target views with the authors' metrics, or an orbit / novel-pose video).

    python tools/render.py CKPT_or_PLY [--cameras test|train|orbit|path.json] [--out DIR]
                           [--width W --height H] [--video out.mp4|out.gif] [--config CFG]

Writes ``DIR/rgb/NNNN.png``, ``DIR/depth/NNNN.png`` (expected depth, colour-mapped, near = bright),
``DIR/alpha/NNNN.png``, optionally a video (MP4 through imageio's ffmpeg plugin; a GIF when no ffmpeg is
available), and for views with ground truth prints PSNR / SSIM and writes ``DIR/metrics.json``.
``--cameras test|train`` needs the dataset: taken from the checkpoint's config, or ``--config`` for a PLY.
"""
import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from perception3d.cli import check_checkpoint, load_config, run_cli  # noqa: E402


def colormap_depth(depth: torch.Tensor, alpha: torch.Tensor) -> np.ndarray:
    """[H, W] depth + [H, W] alpha → uint8 [H, W, 3] (turbo colour map over the 1–99 % range of the
    covered pixels, near = warm; uncovered pixels black)."""
    import matplotlib

    m = alpha > 0.5
    d = depth.clone()
    if m.any():
        lo, hi = torch.quantile(d[m], 0.01), torch.quantile(d[m], 0.99)
        x = ((hi - d) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    else:
        x = torch.zeros_like(d)
    rgb = matplotlib.colormaps["turbo"](x.numpy())[..., :3]
    rgb[~m.numpy()] = 0
    return (rgb * 255).round().astype(np.uint8)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write a uint8 image (format from the suffix) atomically: a render killed midway leaves no torn file."""
    import imageio.v3 as iio

    from perception3d.fileio import atomic_path

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, image, extension=Path(path).suffix)


def write_video(frames: list, path: Path, fps: int = 15) -> Path:
    """Write uint8 [H, W, 3] frames as MP4 (imageio + ffmpeg) or, failing that, GIF; returns the path written."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".mp4", ".mov", ".mkv", ".avi"):
        import importlib.util

        if importlib.util.find_spec("imageio_ffmpeg") is not None:
            iio.imwrite(path, np.stack(frames), fps=fps, plugin="FFMPEG", macro_block_size=1)
            return path
        if importlib.util.find_spec("av") is not None:
            iio.imwrite(path, np.stack(frames), fps=fps, plugin="pyav", codec="libx264")
            return path
        gif = path.with_suffix(".gif")
        print(f"[render] no ffmpeg backend for imageio (imageio-ffmpeg / av not installed); writing {gif} instead")
        path = gif
    iio.imwrite(path, np.stack(frames), duration=1000 / fps, loop=0)
    return path


def select_cameras(args, model, cfg):
    """→ (Cameras, list of gt images or None, scene or None)."""
    from perception3d.structures.cameras import Cameras, focal_from_fov, load_camera_path, orbit_path
    from perception3d.rendering.trainer import build_scene

    scene = None
    if cfg.get("data"):
        scene = build_scene(cfg["data"])
    if args.cameras in ("test", "train"):
        if scene is None:
            raise ValueError(f"--cameras {args.cameras} needs the dataset: pass --config (a PLY has no config)")
        ids = scene.test_ids if args.cameras == "test" else scene.train_ids
        if not ids:
            raise ValueError(f"the dataset has no {args.cameras} views")
        cams = scene.cameras[ids]
        gts = [scene.image(i) for i in ids]
        if args.width or args.height:
            cams = cams.resize(args.width or cams.width, args.height or cams.height)
            gts = None  # no ground truth at another size
        return cams, gts, scene
    if args.cameras == "orbit":
        W, H = args.width or (scene.width if scene else 256), args.height or (scene.height if scene else 256)
        if scene is not None:
            from perception3d.rendering.scenes import focus_point

            focus = focus_point(scene.cameras)  # what the capture looks at (None: forward-facing rig)
            center = scene.scene_center if focus is None else focus
            radius = float((scene.cameras.centers - center).norm(dim=-1).mean())
            fov = float(scene.cameras.fov_y[0])
            if args.up is None:  # the cameras' mean "up" (−y in OpenCV axes): real captures are not z-up
                up = -scene.cameras.camtoworlds[:, :3, 1].mean(0)
                args.up = (up / up.norm()).tolist()
        else:
            m = model.means.detach()
            center = m.median(0).values
            radius = 2.5 * float((m - center).norm(dim=-1).quantile(0.9))
            fov = math.radians(40.0)
        c2w = orbit_path(center, radius, args.n_frames, elevation=args.elevation, up=tuple(args.up or (0, 0, 1)))
        f = focal_from_fov(fov, H)
        K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1.0]])
        return Cameras.from_camtoworlds(c2w, K, W, H), None, scene
    p = Path(args.cameras)
    if p.suffix.lower() != ".json" or not p.is_file():
        raise ValueError(f"--cameras must be test, train, orbit or an existing camera-path .json, got {args.cameras}")
    cams = load_camera_path(p)
    if args.width or args.height:
        cams = cams.resize(args.width or cams.width, args.height or cams.height)
    return cams, None, scene


def _load(path: str):
    """(model, config) from a trainer checkpoint or a PLY; a missing, corrupt or foreign file is a ValueError
    naming it."""
    from perception3d.rendering.trainer import load_model

    if Path(path).suffix.lower() != ".ply":
        check_checkpoint(path)
        return load_model(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"PLY {path}: no such file")
    try:
        return load_model(path)
    except (ValueError, KeyError, IndexError, EOFError, OSError) as exc:
        raise ValueError(f"PLY {path} is not a readable 3DGS PLY: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # plyfile's own parse errors derive from Exception only
        if type(exc).__module__.startswith("plyfile"):
            raise ValueError(f"PLY {path} is corrupt: {exc}") from exc
        raise


def _checkpoint_method(path: str):
    """The ``method`` a trainer checkpoint records (None for a PLY or a checkpoint without one)."""
    if Path(path).suffix.lower() != ".pt" or not Path(path).is_file():
        return None
    check_checkpoint(path)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    return ck.get("method") if isinstance(ck, dict) else None


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="trainer checkpoint (.pt) or 3DGS .ply")
    ap.add_argument("--cameras", default="test", help="test | train | orbit | camera-path .json")
    ap.add_argument("--out", default=None, help="default: <model folder>/render_<cameras>")
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--video", default=None, help="also write a video (.mp4, or .gif)")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--config", default=None, help="config whose data section gives the dataset")
    ap.add_argument("--n-frames", type=int, default=60, help="orbit frames")
    ap.add_argument("--elevation", type=float, default=30.0, help="orbit elevation (degrees)")
    ap.add_argument("--up", type=float, nargs=3, default=None,
                    help="world up for the orbit (default: the dataset cameras' mean up, else +z)")
    ap.add_argument("--background", type=float, nargs=3, default=None)
    ap.add_argument("--tile-size", type=int, default=16)
    ap.add_argument("--subject", default=None, help="human fields: the subject to render (default: first test one)")
    ap.add_argument("--frames", "--frame", dest="frames", type=int, nargs="+", default=None,
                    help="human fields: frame(s) of the sequence whose body poses drive the render; several with "
                         "--cameras orbit give a novel-pose video")
    args = ap.parse_args(argv)

    if Path(args.model).suffix.lower() == ".pt":  # a human field (TransHuman) checkpoint has its own renderer
        from perception3d.rendering.human.transhuman.render import is_transhuman_checkpoint, render_transhuman

        check_checkpoint(args.model)
        if is_transhuman_checkpoint(args.model):
            return render_transhuman(args, write_image, write_video)

    from perception3d.ops.image_quality import psnr, ssim

    if _checkpoint_method(args.model) == "metacap":  # a human field: novel views / poses of its frame
        from perception3d.rendering.human.metacap.trainer import render_checkpoint

        res = render_checkpoint(args.model, args.cameras, args.out, args.n_frames, args.frames, args.width,
                                write=write_image)
        if args.video:
            res["video"] = str(write_video(res["frames"], Path(args.video), args.fps))
        print(json.dumps({k: v for k, v in res.items() if k != "frames"}))
        return res
    c = load_config(args.config) if args.config else None
    model, cfg = _load(args.model)
    if c is not None:
        cfg = {k: dict(c[k]) for k in ("data", "model", "train") if k in c}
    bg = args.background
    if bg is None:  # the checkpoint's evaluation background (black for a run trained on random backgrounds)
        from perception3d.rendering.trainer import resolve_background

        bg = resolve_background(cfg)[0]
    bg = torch.as_tensor(bg, dtype=torch.float32)
    cams, gts, _ = select_cameras(args, model, cfg)
    out = Path(args.out) if args.out else Path(args.model).parent / f"render_{Path(args.cameras).stem}"
    for sub in ("rgb", "depth", "alpha"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    frames, ps, ss = [], [], []
    with torch.no_grad():
        for i in range(len(cams)):
            c = cams[i]
            img, alpha, _ = model.render(c.viewmats, c.Ks, c.width, c.height, background=bg,
                                         render_mode="RGB+ED", tile_size=args.tile_size)
            rgb = img[0, ..., :3].clamp(0, 1)
            a = alpha[0, ..., 0]
            rgb8 = (rgb * 255).round().byte().numpy()
            write_image(out / "rgb" / f"{i:04d}.png", rgb8)
            write_image(out / "depth" / f"{i:04d}.png", colormap_depth(img[0, ..., 3], a))
            write_image(out / "alpha" / f"{i:04d}.png", (a.clamp(0, 1) * 255).round().byte().numpy())
            frames.append(rgb8)
            if gts is not None:
                ps.append(psnr(rgb, gts[i]))
                ss.append(ssim(rgb, gts[i]))
                print(f"view {i:3d}: PSNR {ps[-1]:.2f} dB  SSIM {ss[-1]:.4f}")
    result = {"n_views": len(cams), "out": str(out)}
    if ps:
        result.update(psnr=float(np.mean(ps)), ssim=float(np.mean(ss)), psnr_per_view=ps, ssim_per_view=ss)
        print(f"mean over {len(ps)} views: PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}")
        from perception3d.fileio import atomic_write_text
        atomic_write_text(out / "metrics.json", json.dumps(result, indent=1))
    if args.video:
        result["video"] = str(write_video(frames, Path(args.video), args.fps))
        print(f"video: {result['video']}")
    return result


if __name__ == "__main__":
    run_cli(main)
