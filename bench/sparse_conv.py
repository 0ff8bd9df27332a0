"""SubMConv3d 3x3x3 on a 120k-voxel LiDAR-scan-shaped tensor (1504 x 1504 x 40): ours vs spconv (CPU).

For each thread count (1, 2) a fresh process is started with OMP_NUM_THREADS set, because spconv's CPU build
reads it at import and is only correct single-threaded (its multi-threaded numbers are timed but wrong).
Our forward, our forward+backward and spconv's forward run in turn, 9 rounds; times are medians and the ratios
are medians of the per-round ratios (this VM's speed drifts by tens of per cent from minute to minute).
Prints a table and writes bench/results/sparse_conv.json.

    python bench/sparse_conv.py            # both thread counts
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _time(fn, repeat: int = 7, warmup: int = 2) -> float:
    """Median wall time in ms."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return 1000 * ts[len(ts) // 2]


def _interleaved(fns: dict, rounds: int = 9, warmup: int = 1) -> dict:
    """Wall times in ms of each function, run in turn round after round (name → list, one per round), so that
    a slow stretch of a shared machine hits every function alike; ratios are taken per round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(1000 * (time.perf_counter() - t0))
    return times


def _median(v) -> float:
    v = sorted(v)
    return v[len(v) // 2]


def worker(threads: int) -> dict:
    import torch
    torch.set_num_threads(threads)
    sys.path.insert(0, str(HERE))
    from scan_like import cached_scan_tensor, mean_neighbours
    from perception3d.sparse import SparseTensor, SubMConv3d, subm_kmap
    try:
        import spconv.pytorch as spconv
    except ImportError:
        spconv = None
    rows = []
    for ch in (32, 64):
        x = cached_scan_tensor(ch)
        # kernel-map build on a fresh coordinate set each time
        def build():
            fresh = SparseTensor(x.feats, x.coords, x.spatial_shape, 1, check=False)
            return subm_kmap(fresh.coord_set, (3, 3, 3), (1, 1, 1))
        t_kmap = _time(build, repeat=5, warmup=1)
        kmap = subm_kmap(x.coord_set, (3, 3, 3), (1, 1, 1))
        pairs = kmap.num_pairs
        conv = SubMConv3d(ch, ch, 3, bias=False)
        feats = x.feats.clone().requires_grad_()
        xg = x.replace(feats=feats)

        def fwd():
            with torch.no_grad():
                conv(x)

        def fwd_bwd():
            conv.zero_grad(set_to_none=True)
            feats.grad = None
            conv(xg).feats.sum().backward()
        fns = dict(fwd=fwd, fwd_bwd=fwd_bwd)
        if spconv is not None:
            sp = spconv.SubMConv3d(ch, ch, 3, bias=False, indice_key="bench")
            sp.load_state_dict(conv.state_dict())
            xs = x.to_spconv()
            with torch.no_grad():
                sp(xs)                      # builds and caches its indice pairs in xs.indice_dict

            def sp_fwd():
                with torch.no_grad():
                    sp(xs)
            fns["spconv"] = sp_fwd
        ts = _interleaved(fns)
        t_fwd, t_fb = _median(ts["fwd"]), _median(ts["fwd_bwd"])
        a = torch.randn(pairs, ch)
        w = torch.randn(ch, ch)
        buf = torch.empty(pairs, ch)
        t_mm = _time(lambda: torch.mm(a, w, out=buf))
        sq = torch.randn(2048, 2048)
        t_sq = _time(lambda: torch.mm(sq, sq), repeat=5)
        flops = 2.0 * pairs * ch * ch
        row = dict(threads=threads, channels=ch, voxels=len(x), pairs_per_voxel=round(mean_neighbours(x), 2),
                   kmap_ms=round(t_kmap, 1), ours_fwd_ms=round(t_fwd, 1), ours_fwd_bwd_ms=round(t_fb, 1),
                   fwd_bwd_over_fwd=round(_median([b / f for f, b in zip(ts["fwd"], ts["fwd_bwd"])]), 2),
                   ours_gflops=round(flops / t_fwd / 1e6, 1),
                   mm_same_shape_gflops=round(flops / t_mm / 1e6, 1),
                   mm_2048_gflops=round(2 * 2048 ** 3 / t_sq / 1e6, 1))
        row["ours_over_mm_same_shape"] = round(row["ours_gflops"] / row["mm_same_shape_gflops"], 3)
        row["ours_over_mm_2048"] = round(row["ours_gflops"] / row["mm_2048_gflops"], 3)
        if spconv is not None:
            with torch.no_grad():
                ref = conv(x).feats
                got = sp(xs).features       # SubM keeps the input order: compare row by row
            row.update(spconv_fwd_ms=round(_median(ts["spconv"]), 1),
                       ours_over_spconv=round(_median([o / t for o, t in zip(ts["fwd"], ts["spconv"])]), 3),
                       spconv_max_abs_err=float((ref - got).abs().max()))
        rows.append(row)
    return dict(rows=rows)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(worker(int(sys.argv[2]))))
        return
    results = []
    for threads in (1, 2):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
        out = subprocess.run([sys.executable, __file__, "--worker", str(threads)], env=env, capture_output=True,
                             text=True, check=True)
        results += json.loads(out.stdout.strip().splitlines()[-1])["rows"]
    cols = ["threads", "channels", "voxels", "pairs_per_voxel", "kmap_ms", "ours_fwd_ms", "spconv_fwd_ms",
            "ours_over_spconv", "ours_fwd_bwd_ms", "fwd_bwd_over_fwd", "ours_gflops", "mm_same_shape_gflops",
            "ours_over_mm_same_shape", "mm_2048_gflops", "ours_over_mm_2048", "spconv_max_abs_err"]
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(str(r.get(c, "-")) for c in cols))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "sparse_conv.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
