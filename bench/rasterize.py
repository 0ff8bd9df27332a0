#!/usr/bin/env python
"""Benchmark of the CPU rasterizer backends on two scenes, forward and forward + backward, with peers in one run.

    python bench/rasterize.py [--scene synthetic|lego|both] [--threads 1] [--n 100000] [--size 800] [--skip-naive]

Scenes: "synthetic" — 100k Gaussians (SH degree 3) on a noisy sphere, 800 × 800; "lego" — a 3DGS model of the
NeRF-synthetic lego trained with ``configs/gs_lego.py`` (``--lego-model``, a PLY or a trainer checkpoint; default
``~/.cache/perception3d/bench/lego_gs.ply``; make one with ``python tools/train_gs.py configs/gs_lego.py
--cfg-options train.max_steps=250`` and pass ``work_dirs/gs_lego/point_cloud.ply``), rendered from its first test
view at ``--size`` (intrinsics scaled), the realistic density (tens of pixel–Gaussian pairs per pixel).

Rows: ``backend="cpu"`` (compiled projection, SH, binning and compositing), ``backend="torch"`` (pure torch), and
on the synthetic scene the naive dense compositor (timed on a subset, extrapolated linearly in N · pixels — the table says so); with CUDA +
gsplat, ``backend="gsplat"`` vs gsplat directly. Each measurement runs in a fresh subprocess: time is the best
of ``--reps`` (wall and process CPU time), peak memory is the process's peak RSS minus its RSS after imports and
scene set-up. "pairs/px" counts pixel–Gaussian evaluations (the pixels of each Gaussian's opacity-aware box in
each tile it is binned to, before early termination) per pixel; ns/pair = time / those evaluations. The compiled
backend's library build (first use only) is reported and excluded from the timings (one warm-up call).
Prints a table, writes bench/results/rasterize_<scene>_<threads>t.json.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_scene(n, size, seed=0, device="cpu"):
    """A scene-like cloud: Gaussians on a noisy sphere of radius 1 plus a filled core, log-normal scales,
    camera at distance 3.5 with a 45° field of view."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    r = torch.where(torch.rand(n, generator=g) < 0.8, 1.0 + 0.03 * torch.randn(n, generator=g),
                    torch.rand(n, generator=g) ** (1 / 3))
    means = d * r[:, None]
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.4 + torch.log(torch.tensor(0.008)))
    quats = torch.randn(n, 4, generator=g)
    opac = torch.rand(n, generator=g) * 0.9 + 0.1
    sh = torch.randn(n, 16, 3, generator=g) * 0.2
    vm = torch.eye(4)[None].clone()
    vm[0, 2, 3] = 3.5
    f = 0.5 * size / torch.tan(torch.tensor(0.5 * 0.785))
    K = torch.tensor([[[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]]])
    t = [means, quats, scales, opac, sh, vm, K]
    return [x.to(device) for x in t]


def load_lego(path, size):
    """The lego scene: a trained model (PLY or trainer checkpoint) and gs_lego's first test camera, intrinsics
    scaled to size × size. Returns the same list as :func:`make_scene`, or None when the model is missing."""
    import torch
    from mmengine.config import Config

    from perception3d.rendering import GaussianModel
    from perception3d.rendering.trainer import build_scene

    path = Path(path).expanduser()
    if not path.is_file():
        return None
    if path.suffix == ".ply":
        m = GaussianModel.load_ply(path)
    else:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        m = GaussianModel({k: v for k, v in ck["params"].items()}, ck["sh_degree"])
    cfg = Config.fromfile(str(ROOT / "configs" / "gs_lego.py"))
    data = dict(cfg.data)
    data["root"] = str((ROOT / data["root"]).resolve()) if not Path(data["root"]).is_absolute() else data["root"]
    scene = build_scene(data)
    cam = scene.cameras[scene.test_ids[0]]
    K = cam.Ks.clone()
    K[:, :2] *= size / cam.width
    with torch.no_grad():
        return [m.means.detach().clone(), m.quats.detach().clone(), m.scales.detach().clone(),
                m.opacities.detach().clone(), m.sh.detach().clone(), cam.viewmats.clone(), K]


FWD_FLOPS, BWD_FLOPS = 60, 96  # scalar flops per pixel–Gaussian evaluation of the compiled kernels (see below)


def _cpu_ghz():
    try:
        mhz = [float(ln.split(":")[1]) for ln in open("/proc/cpuinfo") if ln.startswith("cpu MHz")]
        return max(mhz) / 1000.0 if mhz else None
    except OSError:
        return None


def pair_stats(meta, size):
    """Tile–Gaussian pairs and pixel–Gaussian evaluations (pixels of each Gaussian's box inside each of its
    tiles, as the kernels visit them before early termination)."""
    import torch

    ids, off, ts = meta["flatten_ids"], meta["isect_offsets"].reshape(-1), meta["tile_size"]
    m2 = meta["means2d"].detach().reshape(-1, 2)[ids].double()
    op = meta["opacities"].reshape(-1)[ids].double()
    cov_xx = meta["conics"].detach().reshape(-1, 3)[ids].double()
    a, b, c = cov_xx.unbind(-1)
    det = a * c - b * b
    sd = torch.stack([(c / det).sqrt(), (a / det).sqrt()], -1)  # √Σ'_xx, √Σ'_yy from the conic
    ext = torch.sqrt(2.0 * torch.log((255.0 * op).clamp_min(1.0)))[:, None]
    r = torch.minimum(meta["radii"].reshape(-1, 2)[ids].double(), torch.ceil(ext * sd + 0.01))
    counts = torch.diff(torch.cat([off, torch.tensor([ids.numel()])]))
    tile = torch.repeat_interleave(torch.arange(off.numel()), counts) % (meta["tile_width"] * meta["tile_height"])
    tx, ty = (tile % meta["tile_width"]) * ts, (tile // meta["tile_width"]) * ts
    w = (torch.minimum(tx + ts, torch.floor(m2[:, 0] + r[:, 0] - 0.5) + 1).clamp(max=size)
         - torch.maximum(tx, torch.ceil(m2[:, 0] - r[:, 0] - 0.5))).clamp(min=0)
    h = (torch.minimum(ty + ts, torch.floor(m2[:, 1] + r[:, 1] - 0.5) + 1).clamp(max=size)
         - torch.maximum(ty, torch.ceil(m2[:, 1] - r[:, 1] - 0.5))).clamp(min=0)
    return int(ids.numel()), int((w * h).sum())


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time(fn, reps):
    """Best wall and process-CPU seconds of ``reps`` calls."""
    walls, cpus = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def worker(kind, args):
    import torch

    dev = "cuda" if kind.startswith("cuda") else "cpu"
    size, n = args.size, args.n
    scene = make_scene(n, size, device=dev) if args.scene == "synthetic" else load_lego(args.lego_model, size)
    from perception3d.rendering import rasterize, rasterize_cpu

    res = {"kind": kind, "scene": args.scene, "n": int(scene[0].shape[0])}
    if kind.startswith("cpu"):
        rasterize_cpu.load_library()
        res["build"] = dict(rasterize_cpu.BUILD_INFO)
    base = _rss_mb()
    if kind in ("cpu", "torch"):
        with torch.no_grad():
            fn = lambda: rasterize(*scene, size, size, sh_degree=3, backend=kind)  # noqa: E731
            _, alpha, meta = fn()  # warm-up
            res["wall_s"], res["cpu_s"] = _time(fn, args.reps)
        res.update(mean_alpha=float(alpha.mean()), peak_mb=_rss_mb() - base)
        res["tile_pairs"], res["evals"] = pair_stats(meta, size)
    elif kind in ("cpu_fb", "torch_fb"):
        be = kind[:-3]

        def fn():
            xs = [x.clone().requires_grad_(True) for x in scene[:5]]
            out, alpha, meta = rasterize(*xs, *scene[5:], size, size, sh_degree=3, backend=be)
            (out.sum() + alpha.sum()).backward()

        if be == "cpu":
            fn()  # warm-up (the torch backend is too slow to warm up twice; its first call costs the same)
        res["wall_s"], res["cpu_s"] = _time(fn, args.reps)
        res["peak_mb"] = _rss_mb() - base
    elif kind == "parity":  # float32 images, alphas, depths and gradients, compiled vs torch backend
        out = {}
        for be in ("torch", "cpu"):
            xs = [x.clone().requires_grad_(True) for x in scene[:5]]
            img, alpha, meta = rasterize(*xs, *scene[5:], size, size, sh_degree=3, backend=be, render_mode="RGB+D")
            meta["means2d"].retain_grad()
            w = torch.rand(img.shape, generator=torch.Generator().manual_seed(0))
            ((img * w).sum() + alpha.sum()).backward()
            out[be] = [img[..., :3].detach(), alpha.detach(), img[..., 3].detach()] + [x.grad for x in xs] + [
                meta["means2d"].grad]
        names = ["image", "alpha", "depth", "means", "quats", "scales", "opacities", "sh", "means2d"]
        res["max_abs_diff"] = {k: float((a - b).abs().max()) for k, a, b in zip(names[:3], out["cpu"], out["torch"])}
        res["grad_rel_diff"] = {k: float((a - b).abs().max() / b.abs().max())
                                for k, a, b in zip(names[3:], out["cpu"][3:], out["torch"][3:])}
        off = torch.maximum((out["cpu"][0] - out["torch"][0]).abs().amax(-1),
                            (out["cpu"][1] - out["torch"][1]).abs()[..., 0])
        res["pixels_off_1e-5"] = int((off > 1e-5).sum())
        res["alpha_bitwise_equal"] = bool(torch.equal(out["cpu"][1], out["torch"][1]))
        res["max_depth"] = float(out["torch"][2].max())
    elif kind == "naive":
        sys.path.insert(0, str(ROOT / "tests"))
        from test_rasterize import naive_rasterize

        means, quats, scales, opac, sh, vm, K = scene
        # subset: every (n // sub_n)-th Gaussian, a centred sub_px × sub_px crop (shift the principal point)
        sub_n, sub_px = args.sub_n, args.sub_px or size
        idx = torch.arange(0, n, max(1, n // sub_n))[:sub_n]
        Kc = K.clone()
        Kc[:, 0, 2] -= (size - sub_px) / 2
        Kc[:, 1, 2] -= (size - sub_px) / 2
        with torch.no_grad():
            t0 = time.perf_counter()
            naive_rasterize(means[idx], quats[idx], scales[idx], opac[idx], sh[idx], vm, Kc, sub_px, sub_px,
                            sh_degree=3)
            t = time.perf_counter() - t0
        scale = (n / len(idx)) * (size * size) / (sub_px * sub_px)
        # memory of the dense compositor is per pixel (a few [H·W] buffers), not per Gaussian
        res.update(sub_time_s=t, sub_n=int(len(idx)), sub_px=sub_px, extrapolation_factor=scale,
                   wall_s=t * scale, peak_mb=(_rss_mb() - base) * (size * size) / (sub_px * sub_px))
    elif kind in ("cuda_ours", "cuda_gsplat"):
        import gsplat

        fn = (lambda: rasterize(*scene, size, size, sh_degree=3, backend="gsplat")) if kind == "cuda_ours" else (
            lambda: gsplat.rasterization(*scene, size, size, sh_degree=3, packed=False))
        with torch.no_grad():
            fn()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            ts = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                fn()
                torch.cuda.synchronize()
                ts.append(time.perf_counter() - t0)
        res.update(wall_s=min(ts), peak_mb=torch.cuda.max_memory_allocated() / 2 ** 20)
    print("RESULT " + json.dumps(res), flush=True)


def run(kind, args):
    cmd = [sys.executable, __file__, "--worker", kind, "--scene", args.scene, "--n", str(args.n), "--size",
           str(args.size), "--sub-n", str(args.sub_n), "--reps", str(args.reps), "--threads", str(args.threads),
           "--lego-model", str(args.lego_model)] + (["--sub-px", str(args.sub_px)] if args.sub_px else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"worker {kind} failed:\n{p.stdout}\n{p.stderr}")


def bench_scene(args):
    import torch

    rows = {k: run(k, args) for k in ("cpu", "torch", "cpu_fb", "torch_fb")}
    if not args.skip_parity:
        rows["parity"] = run("parity", args)
    if args.scene == "synthetic" and not args.skip_naive:
        rows["naive"] = run("naive", args)
    cuda = torch.cuda.is_available()
    if cuda:
        try:
            import gsplat  # noqa: F401

            rows["cuda_ours"] = run("cuda_ours", args)
            rows["cuda_gsplat"] = run("cuda_gsplat", args)
        except Exception as e:  # pragma: no cover
            rows["cuda_error"] = str(e)
    f = rows["cpu"]
    ev, px = f["evals"], args.size * args.size
    print(f"\nrasterize, scene {args.scene}: {f['n']} Gaussians (SH degree 3), {args.size} x {args.size}, CPU, "
          f"{args.threads} thread(s); {f['tile_pairs']} tile-Gaussian pairs, {ev / px:.1f} pixel-Gaussian pairs "
          f"per pixel, mean alpha {f['mean_alpha']:.3f}")
    print(f"{'method':<36}{'wall (s)':>10}{'CPU (s)':>10}{'ns/pair':>10}{'peak MB':>10}   (ns/pair from CPU time)")
    for key, label in (("cpu", "cpu backend, forward"), ("torch", "torch backend, forward"),
                       ("cpu_fb", "cpu backend, forward + backward"), ("torch_fb", "torch backend, fwd + bwd")):
        r = rows[key]
        print(f"{label:<36}{r['wall_s']:>10.3f}{r['cpu_s']:>10.3f}{1e9 * r['cpu_s'] / ev:>10.1f}"
              f"{r['peak_mb']:>10.0f}")
    if "naive" in rows:
        nv = rows["naive"]
        print(f"{'naive dense (extrapolated*)':<36}{nv['wall_s']:>10.0f}{'':>10}{'':>10}{nv['peak_mb']:>10.0f}")
    sp = {f"{k}_{t}": rows[f"torch{s}"][f"{t}_s"] / rows[f"cpu{s}"][f"{t}_s"]
          for k, s in (("fwd", ""), ("fb", "_fb")) for t in ("wall", "cpu")}
    print(f"speed-up cpu vs torch backend, wall (CPU time): forward {sp['fwd_wall']:.1f}x ({sp['fwd_cpu']:.1f}x), "
          f"forward + backward {sp['fb_wall']:.1f}x ({sp['fb_cpu']:.1f}x); "
          f"peak memory fwd+bwd {rows['cpu_fb']['peak_mb']:.0f} vs {rows['torch_fb']['peak_mb']:.0f} MB")
    ghz = _cpu_ghz()
    if ghz:
        print(f"scalar estimate at {ghz:.2f} GHz, 1 flop/cycle: forward {FWD_FLOPS / ghz:.1f} ns/pair, backward "
              f"{BWD_FLOPS / ghz:.1f} ns/pair (kernel flops per pixel-Gaussian evaluation: forward ~{FWD_FLOPS}, "
              f"backward ~{BWD_FLOPS})")
    if "parity" in rows:
        pr = rows["parity"]
        print("parity cpu vs torch (float32, RGB+D): max |diff| image {image:.2e}, alpha {alpha:.2e}, depth {depth:.2e}"
              .format(**pr["max_abs_diff"]) + f" (depths up to {pr['max_depth']:.2f}); alpha images bitwise equal: "
              f"{pr['alpha_bitwise_equal']}; pixels off by > 1e-5: {pr['pixels_off_1e-5']}; grad rel. diff "
              + ", ".join(f"{k} {v:.1e}" for k, v in pr["grad_rel_diff"].items()))
    if "naive" in rows:
        nv = rows["naive"]
        print(f"* naive timed on {nv['sub_n']} of the Gaussians over a {nv['sub_px']}x{nv['sub_px']} image: "
              f"{nv['sub_time_s']:.2f} s, multiplied by {nv['extrapolation_factor']:.0f} (linear in Gaussians x "
              f"pixels).")
    b = rows["cpu"]["build"]
    print(f"compiled library: {'built now' if b.get('built') else 'loaded from cache'} in {b.get('seconds', 0):.2f} s "
          f"({b.get('path', b.get('error'))})")
    out = {"scene": args.scene, "size": args.size, "threads": args.threads, "speedup": sp, "rows": rows,
           "machine": platform.platform(), "cuda": cuda, "load_avg_1min": os.getloadavg()[0]}
    res_dir = ROOT / "bench" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / f"rasterize_{args.scene}_{args.threads}t.json").write_text(json.dumps(out, indent=1))
    print(f"load average (1 min) at the end: {out['load_avg_1min']:.1f} on {os.cpu_count()} cores")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", default="both", choices=("synthetic", "lego", "both"))
    ap.add_argument("--lego-model", default="~/.cache/perception3d/bench/lego_gs.ply")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--sub-n", type=int, default=500, help="Gaussians in the naive subset")
    ap.add_argument("--sub-px", type=int, default=None, help="crop side for the naive subset (default: full)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-parity", action="store_true")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        return worker(args.worker, args)
    results = []
    for scene in (("synthetic", "lego") if args.scene == "both" else (args.scene,)):
        args.scene = scene
        if scene == "lego" and not Path(args.lego_model).expanduser().is_file():
            print(f"\nscene lego skipped: no model at {args.lego_model} (see --help)")
            continue
        results.append(bench_scene(args))
    return results


if __name__ == "__main__":
    main()
