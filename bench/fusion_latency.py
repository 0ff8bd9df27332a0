"""SparseFusion's head vs the LiDAR-only (TransFusion-L) head: latency on one frame.

    python bench/fusion_latency.py [--preset small|nus] [--repeat 3] [--threads N] [--device cpu|cuda]

Both heads are ``SparseFusionHead`` with the dimensions of ``configs/sparsefusion_nus.py`` (128 channels, 8 heads,
200 LiDAR + 200 camera queries, random weights, eval mode); the input is the output of the backbones (random BEV
map and FPN levels; cameras on a ring around the car, with a sparse depth map of 5 % hits), so the rows differ only
by what the fusion adds:
  - ``lidar_only``: TransFusion-L's head (heat map, top-K, one decoder layer, prediction heads);
  - ``fusion``: + geometric transfer (depth encoder on every pyramid level), semantic transfer (image → BEV),
    camera branch (2D heat maps, deformable decoder, monocular 3D), view transformer, the sparse fusion layer;
  - ``fusion_no_transfer``: the same without the two transfer modules (the ablation row);
  - ``fusion_layer``: the sparse-fusion step alone (projections + one self-attention over 400 candidates + heads).
Presets: ``small`` = a mini frame (BEV 80 × 80, 3 cameras 224 × 400); ``nus`` = nuScenes (BEV 180 × 180, 6 cameras
448 × 800, FPN strides 4–32). Each figure is the median of ``--repeat`` runs after one warm-up.
Prints a table with the ratio to ``lidar_only`` and writes bench/results/fusion_latency.json.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

PRESETS = dict(small=dict(bev=80, cams=3, img=(224, 400), range=32.0),
               nus=dict(bev=180, cams=6, img=(448, 800), range=54.0))


def ring_cameras(n: int, h: int, w: int):
    """cam2img [n, 3, 3], lidar2cam [n, 4, 4]: n cameras at the origin, yaw 0, 360/n, … (f = 0.6 w)."""
    k = torch.tensor([[0.6 * w, 0, w / 2], [0, 0.6 * w, h / 2], [0, 0, 1.0]])
    l2c = []
    for i in range(n):
        a = 2 * math.pi * i / n
        m = torch.eye(4)
        m[:3, :3] = torch.tensor([[math.sin(a), -math.cos(a), 0.0], [0.0, 0.0, -1.0], [math.cos(a), math.sin(a), 0.0]])
        l2c.append(m)
    return k.expand(n, 3, 3), torch.stack(l2c)


def build_head(preset: dict, **kw):
    from perception3d.models.fusion import SparseFusionHead
    r = preset["range"]
    cell = 2 * r / preset["bev"]
    return SparseFusionHead(in_channels=512, num_classes=10, pc_range=[-r, -r, -5.0, r, r, 3.0],
                            voxel_size=[cell / 8, cell / 8], out_size_factor=8, no_nms_classes=(7, 8), **kw).eval()


def inputs(preset: dict, device: str):
    g = torch.Generator().manual_seed(0)
    n, (h, w), s = preset["cams"], preset["img"], preset["bev"]
    bev = torch.randn(1, 512, s, s, generator=g)
    feats = [torch.randn(n, 256, math.ceil(h / st), math.ceil(w / st), generator=g) for st in (4, 8, 16, 32)]
    depth = torch.zeros(n, 2, h // 4, w // 4)
    hit = torch.rand(n, h // 4, w // 4, generator=g) < 0.05
    depth[:, 0][hit], depth[:, 1][hit] = torch.randn(int(hit.sum()), generator=g), 1.0
    k, l2c = ring_cameras(n, h, w)
    k4 = torch.eye(4).repeat(n, 1, 1)
    k4[:, :3, :3] = k
    calib = dict(cam2img=k[None].to(device), lidar2cam=l2c[None].to(device), lidar2img=(k4 @ l2c)[None].to(device),
                 img_size=(h, w), sparse_depth=depth.to(device))
    return bev.to(device), [f.to(device) for f in feats], calib


def timed(fn, repeat: int, device: str) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "fusion_latency.json"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    torch.manual_seed(0)
    bev, feats, calib = inputs(preset, args.device)
    heads = dict(lidar_only=build_head(preset, use_camera=False),
                 fusion=build_head(preset),
                 fusion_no_transfer=build_head(preset, semantic_transfer=False, geometric_transfer=False))
    rows = {}
    with torch.no_grad():
        for name, head in heads.items():
            head.to(args.device)
            run = (lambda h=head: h(bev)) if name == "lidar_only" else (lambda h=head: h(bev, feats, calib))
            rows[name] = timed(run, args.repeat, args.device)
        f = heads["fusion"]
        out = f(bev, feats, calib)
        lid, view = out["lidar"], out["view"]

        def fusion_layer():
            q = torch.cat([f.proj_lidar(lid["feat"]), f.proj_img(view["feat"])], 2)
            pos = torch.cat([lid["pos"], view["pos"]], 1)
            return f.fusion_heads(f.fusion(q, q, pos, pos))
        rows["fusion_layer"] = timed(fusion_layer, args.repeat, args.device)
    base = rows["lidar_only"]
    print(f"preset {args.preset}: BEV {preset['bev']}², {preset['cams']} cameras {preset['img'][1]}×"
          f"{preset['img'][0]}, device {args.device}, {torch.get_num_threads()} threads, median of {args.repeat}")
    print(f"{'head':22s} {'ms':>10s} {'× lidar_only':>13s}")
    for name, ms in rows.items():
        print(f"{name:22s} {ms:10.1f} {ms / base:13.2f}")
    res = dict(preset=args.preset, device=args.device, threads=torch.get_num_threads(), repeat=args.repeat,
               ms=rows, ratio_fusion_to_lidar=rows["fusion"] / base)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=2))
    tmp.replace(out_path)
    return res


if __name__ == "__main__":
    main()
