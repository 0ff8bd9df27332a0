#!/usr/bin/env python
"""Benchmark: our tiled torch rasterizer vs the naive dense compositor (every Gaussian against every pixel),
100k Gaussians at 800 × 800 on CPU; with CUDA + gsplat present, also ours(backend="gsplat") vs gsplat directly.

    python bench/rasterize.py [--n 100000] [--size 800] [--threads 1]

Each measurement runs in a fresh subprocess, so the peak memory reported is that process's peak RSS minus
its RSS after imports and scene set-up. The naive compositor costs O(N · H · W); at full size it would take
hours, so it is timed on a subset (N_sub Gaussians against an H_sub × W_sub crop, the same per-pixel loop) and
extrapolated linearly in N · pixels — the table says so. Prints a table, writes bench/results/rasterize.json.
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


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(kind, n, size, sub_n, sub_px, reps):
    import torch

    if kind.startswith("cuda"):
        dev = "cuda"
    else:
        dev = "cpu"
    scene = make_scene(n, size, device=dev)
    from perception3d.rendering import rasterize

    base = _rss_mb()
    res = {"kind": kind}
    if kind == "ours":
        with torch.no_grad():
            rasterize(*scene, size, size, sh_degree=3, backend="torch")  # warm-up
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                out, alpha, meta = rasterize(*scene, size, size, sh_degree=3, backend="torch")
                ts.append(time.perf_counter() - t0)
        res.update(time_s=min(ts), pairs=int(meta["flatten_ids"].numel()),
                   mean_alpha=float(alpha.mean()), peak_mb=_rss_mb() - base)
    elif kind == "ours_fwd_bwd":
        for x in scene[:5]:
            x.requires_grad_(True)
        t0 = time.perf_counter()
        out, alpha, meta = rasterize(*scene, size, size, sh_degree=3, backend="torch")
        t1 = time.perf_counter()
        (out.sum() + alpha.sum()).backward()
        t2 = time.perf_counter()
        res.update(fwd_s=t1 - t0, bwd_s=t2 - t1, peak_mb=_rss_mb() - base)
    elif kind == "naive":
        sys.path.insert(0, str(ROOT / "tests"))
        from test_rasterize import naive_rasterize

        means, quats, scales, opac, sh, vm, K = scene
        # subset: every (n // sub_n)-th Gaussian, a centred sub_px × sub_px crop (shift the principal point)
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
                   time_s=t * scale, peak_mb_sub=_rss_mb() - base,
                   peak_mb=(_rss_mb() - base) * (size * size) / (sub_px * sub_px))
    elif kind in ("cuda_ours", "cuda_gsplat"):
        import gsplat

        fn = (lambda: rasterize(*scene, size, size, sh_degree=3, backend="gsplat")) if kind == "cuda_ours" else (
            lambda: gsplat.rasterization(*scene, size, size, sh_degree=3, packed=False))
        with torch.no_grad():
            fn()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                torch.cuda.synchronize()
                ts.append(time.perf_counter() - t0)
        res.update(time_s=min(ts), peak_mb=torch.cuda.max_memory_allocated() / 2 ** 20)
    print("RESULT " + json.dumps(res), flush=True)


def run(kind, args):
    cmd = [sys.executable, __file__, "--worker", kind, "--n", str(args.n), "--size", str(args.size),
           "--sub-n", str(args.sub_n), "--sub-px", str(args.sub_px), "--reps", str(args.reps)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"worker {kind} failed:\n{p.stdout}\n{p.stderr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--sub-n", type=int, default=500, help="Gaussians in the naive subset")
    ap.add_argument("--sub-px", type=int, default=None, help="crop side for the naive subset (default: full)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--skip-backward", action="store_true")
    args = ap.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        args.sub_px = args.sub_px or args.size
        return worker(args.worker, args.n, args.size, args.sub_n, args.sub_px, args.reps)

    import torch

    args.sub_px = args.sub_px or args.size
    rows = {"ours": run("ours", args), "naive": run("naive", args)}
    if not args.skip_backward:
        rows["ours_fwd_bwd"] = run("ours_fwd_bwd", args)
    cuda = torch.cuda.is_available()
    if cuda:
        try:
            import gsplat  # noqa: F401

            rows["cuda_ours"] = run("cuda_ours", args)
            rows["cuda_gsplat"] = run("cuda_gsplat", args)
        except Exception as e:  # pragma: no cover
            rows["cuda_error"] = str(e)
    ours, naive = rows["ours"], rows["naive"]
    speedup = naive["time_s"] / ours["time_s"]
    print(f"\nrasterize: {args.n} Gaussians (SH degree 3), {args.size} x {args.size}, CPU, {args.threads} thread(s)")
    print(f"{'method':<34}{'time (s)':>12}{'peak mem (MB)':>16}")
    print(f"{'ours (torch backend, forward)':<34}{ours['time_s']:>12.2f}{ours['peak_mb']:>16.0f}")
    print(f"{'naive dense (extrapolated*)':<34}{naive['time_s']:>12.0f}{naive['peak_mb']:>16.0f}")
    if "ours_fwd_bwd" in rows:
        fb = rows["ours_fwd_bwd"]
        print(f"{'ours forward + backward':<34}{fb['fwd_s'] + fb['bwd_s']:>12.2f}{fb['peak_mb']:>16.0f}")
    if cuda and "cuda_ours" in rows:
        print(f"{'ours backend=gsplat (CUDA)':<34}{rows['cuda_ours']['time_s']:>12.4f}{rows['cuda_ours']['peak_mb']:>16.0f}")
        print(f"{'gsplat.rasterization (CUDA)':<34}{rows['cuda_gsplat']['time_s']:>12.4f}"
              f"{rows['cuda_gsplat']['peak_mb']:>16.0f}")
    print(f"speed-up ours vs naive: {speedup:.0f}x   (pairs: {ours['pairs']}, mean alpha {ours['mean_alpha']:.3f})")
    print(f"* naive timed on {naive['sub_n']} of the Gaussians (every {args.n // naive['sub_n']}th) over a "
          f"{naive['sub_px']}x{naive['sub_px']} image: {naive['sub_time_s']:.2f} s, multiplied by "
          f"{naive['extrapolation_factor']:.0f} (its cost is linear in Gaussians x pixels); its memory is "
          f"per-pixel buffers" + (", measured at full size" if naive['sub_px'] == args.size
                                  else ", scaled by the pixel ratio") + ".")
    out = {"n": args.n, "size": args.size, "threads": args.threads, "speedup": speedup, "rows": rows,
           "machine": platform.platform(), "cuda": cuda,
           "load_avg_1min": os.getloadavg()[0]}
    res_dir = ROOT / "bench" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / "rasterize.json").write_text(json.dumps(out, indent=1))
    print(f"load average (1 min) during the run: {out['load_avg_1min']:.1f} on {os.cpu_count()} cores")
    return out


if __name__ == "__main__":
    main()
