"""Render grid of held-out views for sparse-view runs: one row per run (ground truth first), one column per
held-out view, each tile labelled with the run's name and its PSNR on that view. The scene (and its split) is
read from the first checkpoint's config; every run must hold the same test views.

    python bench/sparse_view_grid.py OUT.png base=work_dirs/a/ckpt_latest.pt lmg=... cgs=... [--views 4]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _tile(img: torch.Tensor, text: str, width: int) -> np.ndarray:
    import cv2

    a = (img.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    s = width / a.shape[1]
    a = cv2.resize(a, (width, max(int(round(a.shape[0] * s)), 1)), interpolation=cv2.INTER_AREA)
    a = np.ascontiguousarray(a)
    cv2.rectangle(a, (0, 0), (width, 18), (0, 0, 0), -1)
    cv2.putText(a, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return a


def main(argv=None) -> None:
    import imageio.v2 as imageio

    from perception3d.fileio import atomic_write_bytes
    from perception3d.ops.image_quality import psnr
    from perception3d.rendering.trainer import build_scene, load_model, resolve_background

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("runs", nargs="+", help="LABEL=CHECKPOINT")
    ap.add_argument("--views", type=int, default=4, help="held-out views shown (evenly spaced)")
    ap.add_argument("--tile", type=int, default=200, help="tile width in pixels")
    args = ap.parse_args(argv)
    runs = [r.split("=", 1) for r in args.runs]
    torch.set_num_threads(1)
    _, cfg = load_model(runs[0][1])
    data = dict(cfg["data"])
    root = Path(data["root"])
    if not root.is_absolute():
        data["root"] = str((ROOT / root).resolve())
    scene = build_scene(data)
    bg, _ = resolve_background(cfg)
    test = list(scene.test_ids)
    pick = [test[int(k)] for k in np.linspace(0, len(test) - 1, min(args.views, len(test))).round()]
    rows = [np.concatenate([_tile(scene.image(i), f"GT view {i}", args.tile) for i in pick], 1)]
    for label, ck in runs:
        model, _ = load_model(ck)
        tiles = []
        for i in pick:
            cam = scene.cameras[i]
            with torch.no_grad():
                out, _, _ = model.render(cam.viewmats, cam.Ks, cam.width, cam.height, background=bg)
            pred = out[0].clamp(0, 1)
            tiles.append(_tile(pred, f"{label} {float(psnr(pred, scene.image(i))):.2f} dB", args.tile))
        rows.append(np.concatenate(tiles, 1))
    import io

    buf = io.BytesIO()
    imageio.imwrite(buf, np.concatenate(rows, 0), format="png")
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out}: views {pick}, rows GT + {[r[0] for r in runs]}")


if __name__ == "__main__":
    main()
