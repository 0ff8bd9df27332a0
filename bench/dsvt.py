"""DSVT-P latency and peak memory on a Waymo-sized frame, beside a CenterPoint-Pillar-style peer.

    python bench/dsvt.py [--pillars 25000] [--repeat 3] [--threads N] [--device cpu|cuda] [--voxel]

Frame: ≈ 25k non-empty 0.32 m pillars on the 468 × 468 grid (a ray-cast street scan from ``bench/scan_like.py``
topped up with radially distributed clutter to the Waymo pillar count), 5 point features.
Models (``configs/dsvt_waymo.py``, random weights, eval mode):
  - DSVT-P: pillar VFE [192, 192] → DSVT (4 blocks, d_model 192) → BEV scatter → BEV ResNet → CenterHead;
  - peer, CenterPoint-Pillar style: the same pillar VFE → BEV scatter → the same BEV ResNet → the same head,
    i.e. DSVT-P without the transformer, so the difference of the rows is the price of DSVT.
"Backbone" = everything before the head (whole − head); "whole" = the network forward (head outputs, no box
decoding / NMS). Each figure is the median of ``--repeat`` runs after one warm-up forward.
Peak memory: CPU = growth of the peak RSS during the whole-model forward (VmHWM after resetting it through
/proc/self/clear_refs); CUDA = ``torch.cuda.max_memory_allocated``. With CUDA the table adds the paper's
figures (Table 7, RTX 3090: 67 ms whole model in PyTorch, 37 ms with TensorRT).
Prints a table and writes bench/results/dsvt.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

PAPER_MS = {"pytorch_whole": 67.0, "tensorrt_whole": 37.0}
PC_RANGE = (-74.88, -74.88, -2.0, 74.88, 74.88, 4.0)
VOXEL = (0.32, 0.32, 6.0)


def waymo_sized_points(num_pillars: int = 25000, seed: int = 0) -> torch.Tensor:
    """[N, 5] float32 points (x, y, z, intensity, elongation) occupying ≈ ``num_pillars`` pillars."""
    from bench.scan_like import lidar_points
    rng = np.random.default_rng(seed)
    scan = lidar_points(64, 2650, seed=seed)
    inside = np.all((scan[:, :3] >= PC_RANGE[:3]) & (scan[:, :3] < PC_RANGE[3:]), axis=1)
    scan = scan[inside]
    cells = set(map(tuple, np.floor((scan[:, :2] - PC_RANGE[:2]) / VOXEL[:2]).astype(int).tolist()))
    extra = []
    while len(cells) < num_pillars:
        r = 74.0 * np.sqrt(rng.random())             # denser near the sensor
        a = rng.random() * 2 * math.pi
        cell = (int((r * math.cos(a) - PC_RANGE[0]) / VOXEL[0]), int((r * math.sin(a) - PC_RANGE[1]) / VOXEL[1]))
        if cell in cells or not (0 <= cell[0] < 468 and 0 <= cell[1] < 468):
            continue
        cells.add(cell)
        k = int(rng.integers(1, 6))
        xy = (np.array(cell) + rng.random((k, 2))) * VOXEL[:2] + PC_RANGE[:2]
        z = rng.uniform(-1.5, 2.5, (k, 1))
        extra.append(np.concatenate([xy, z, rng.random((k, 1))], 1))
    pts = np.concatenate([scan[:, :4]] + extra).astype(np.float32)
    pts = np.concatenate([pts, np.zeros((len(pts), 1), np.float32)], 1)      # elongation
    return torch.from_numpy(pts)


def build(peer: bool, voxel: bool = False):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import perception3d.models  # noqa: F401
    from perception3d.registry import MODELS
    cfg = Config.fromfile(str(ROOT / "configs" / ("dsvt_voxel_waymo.py" if voxel else "dsvt_waymo.py")))
    init_default_scope("perception3d")
    if peer:
        cfg.model.backbone_3d = None
    return MODELS.build(cfg.model).eval()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(fn, device: str, repeat: int, warmup: int = 0) -> float:
    """Median wall time of ``fn()`` in ms."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _proc_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_mb(fn, device: str) -> float | None:
    """Peak memory added while running ``fn()`` (see module docstring), MiB."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    try:
        Path("/proc/self/clear_refs").write_text("5")   # reset VmHWM to the current RSS
    except OSError:
        return None
    base = _proc_kb("VmRSS")
    fn()
    hwm = _proc_kb("VmHWM")
    return None if base is None or hwm is None else (hwm - base) / 1024


def stages(model, points, device):
    """Callables for each stage of ``model`` on ``points`` (inputs of later stages precomputed once)."""
    pts = [points.to(device)]
    with torch.no_grad():
        x0 = model.voxel_encoder(pts)
        x1 = model.backbone_3d(x0) if model.backbone_3d is not None else x0
        bev = model.map_to_bev(x1)
        feat = model.backbone_2d(bev)
    out = {"num_pillars": int(x0.coords.shape[0])}
    calls = {"vfe": lambda: model.voxel_encoder(pts)}
    if model.backbone_3d is not None:
        calls["dsvt"] = lambda: model.backbone_3d(x0)
    calls["scatter+bev2d"] = lambda: model.backbone_2d(model.map_to_bev(x1))
    calls["head"] = lambda: model.bbox_head(feat)
    calls["whole"] = lambda: model(pts, mode="tensor")
    return out, calls


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pillars", type=int, default=25000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--voxel", action="store_true", help="also time DSVT-V (configs/dsvt_voxel_waymo.py)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "dsvt.json"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    points = waymo_sized_points(args.pillars)
    models = [("DSVT-P", build(False)), ("CenterPoint-Pillar-style peer", build(True))]
    if args.voxel:
        models.insert(1, ("DSVT-V", build(False, voxel=True)))
    results = {"device": args.device, "threads": torch.get_num_threads(), "num_points": int(points.shape[0]),
               "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
               "load_avg_1min": os.getloadavg()[0], "models": {}}
    with torch.no_grad():
        for name, model in models:
            model.to(args.device)
            info, calls = stages(model, points, args.device)
            row = dict(info, params_M=sum(q.numel() for q in model.parameters()) / 1e6)
            for key, fn in calls.items():      # stages() ran the model once: warm
                row[f"{key}_ms"] = time_ms(fn, args.device, args.repeat)
            row["backbone_ms"] = row["whole_ms"] - row["head_ms"]
            row["peak_mem_MiB"] = peak_mb(calls["whole"], args.device)
            results["models"][name] = row
            model.to("cpu")
    if args.device == "cuda":
        results["paper_ms"] = PAPER_MS
    keys = ["params_M", "num_pillars", "vfe_ms", "dsvt_ms", "scatter+bev2d_ms", "head_ms", "backbone_ms",
            "whole_ms", "peak_mem_MiB"]
    print(f"device {args.device}, {results['threads']} threads, {results['num_points']} points, "
          f"load avg {results['load_avg_1min']:.1f}")
    print(f"{'model':32s}" + "".join(f"{k:>17s}" for k in keys))
    for name, row in results["models"].items():
        cells = [row.get(k) for k in keys]
        print(f"{name:32s}" + "".join(f"{'-':>17s}" if v is None else f"{v:17.1f}" for v in cells))
    if args.device == "cuda":
        print(f"{'paper (RTX 3090) DSVT-P':32s} whole PyTorch {PAPER_MS['pytorch_whole']} ms, "
              f"TensorRT {PAPER_MS['tensorrt_whole']} ms")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
