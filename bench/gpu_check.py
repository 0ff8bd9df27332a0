"""The GPU parts of scripts/gpu_check.sh: two CUDA benchmarks and the one-JSON report.

    python bench/gpu_check.py sparse-conv --out DIR/sparse_conv_cuda.json   # SubMConv3d: ours vs spconv-cu120
    python bench/gpu_check.py rasterize   --out DIR/rasterize_cuda.json     # ours (torch tiles) vs gsplat
    python bench/gpu_check.py report --dir DIR --out DIR/gpu_check.json     # steps + tests + benchmarks → 1 JSON

sparse-conv: SubMConv3d 3×3×3 at 32 and 64 channels on the 120k-voxel scan-shaped tensor of bench/scan_like.py,
forward and forward+backward, CUDA-synchronised medians; with spconv-cu120 its forward (same weights, its indice
pairs cached) and the largest difference. rasterize: 100k Gaussians (SH degree 3) at 800 × 800 from
bench/rasterize.py's scene, our pure-torch backend vs ``gsplat.rasterization``, forward. ``report`` needs no GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Dict, Optional

ROOT = Path(__file__).resolve().parents[1]
PAPER_DSVT_P_PYTORCH_MS = 67.0  # DSVT paper, Table 7 (RTX 3090, whole DSVT-P model in PyTorch)


def _cuda_median_ms(fn: Callable[[], object], repeat: int = 10, warmup: int = 2) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(1000 * (time.perf_counter() - t0))
    return sorted(ts)[len(ts) // 2]


def bench_sparse_conv() -> dict:
    """SubMConv3d on CUDA: ours (fwd, fwd+bwd) vs spconv-cu120 (fwd) on the scan-shaped tensor."""
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    from scan_like import scan_tensor

    from perception3d.sparse import SubMConv3d
    try:
        import spconv.pytorch as spconv
    except ImportError:
        spconv = None
    rows = []
    for ch in (32, 64):
        x = scan_tensor(ch).to("cuda")
        conv = SubMConv3d(ch, ch, 3, bias=False).cuda()
        feats = x.feats.clone().requires_grad_()
        xg = x.replace(feats=feats)

        def fwd():
            with torch.no_grad():
                return conv(x)

        def fwd_bwd():
            conv.zero_grad(set_to_none=True)
            feats.grad = None
            conv(xg).feats.sum().backward()

        row = dict(channels=ch, voxels=len(x), ours_fwd_ms=round(_cuda_median_ms(fwd), 3),
                   ours_fwd_bwd_ms=round(_cuda_median_ms(fwd_bwd), 3))
        if spconv is not None:
            sp = spconv.SubMConv3d(ch, ch, 3, bias=False, indice_key="bench").cuda()
            sp.load_state_dict(conv.state_dict())
            xs = x.to_spconv()

            def sp_fwd():
                with torch.no_grad():
                    return sp(xs)

            row["spconv_fwd_ms"] = round(_cuda_median_ms(sp_fwd), 3)
            row["ours_over_spconv"] = round(row["ours_fwd_ms"] / row["spconv_fwd_ms"], 3)
            row["max_abs_diff"] = float((fwd().feats - sp_fwd().features).abs().max())  # SubM keeps the row order
        rows.append(row)
    return dict(kind="sparse_conv_cuda", spconv=spconv is not None, rows=rows)


def bench_rasterize(n: int = 100_000, size: int = 800) -> dict:
    """Forward of 100k Gaussians at 800 × 800 on CUDA: our torch backend vs gsplat.rasterization."""
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    from rasterize import make_scene

    from perception3d.rendering import rasterize
    scene = make_scene(n, size, device="cuda")
    out = dict(kind="rasterize_cuda", n=n, size=size)
    with torch.no_grad():
        out["ours_torch_ms"] = round(_cuda_median_ms(
            lambda: rasterize(*scene, size, size, sh_degree=3, backend="torch"), repeat=5, warmup=1), 2)
        try:
            import gsplat
        except ImportError:
            out["gsplat"] = None
            return out
        ref = gsplat.rasterization(*scene, size, size, sh_degree=3)[0]
        ours = rasterize(*scene, size, size, sh_degree=3, backend="torch")[0]
        out["gsplat"] = getattr(gsplat, "__version__", "?")
        out["gsplat_ms"] = round(_cuda_median_ms(lambda: gsplat.rasterization(*scene, size, size, sh_degree=3)), 3)
        out["ours_over_gsplat"] = round(out["ours_torch_ms"] / out["gsplat_ms"], 2)
        out["mean_abs_diff"] = float((ours - ref).abs().mean())
    return out


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _junit(path: Path) -> Optional[dict]:
    """Counts and the non-passing tests of a pytest ``--junitxml`` file."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    out = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "not_passed": []}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kids = {c.tag: c for c in case}
        if "failure" in kids or "error" in kids:
            key = "failed" if "failure" in kids else "errors"
            out[key] += 1
            out["not_passed"].append({"test": name, "outcome": key,
                                      "message": kids["failure" if "failure" in kids else "error"].get("message", "")[:300]})
        elif "skipped" in kids:
            out["skipped"] += 1
            out["not_passed"].append({"test": name, "outcome": "skipped",
                                      "message": kids["skipped"].get("message", "")[:300]})
        else:
            out["passed"] += 1
    return out


def build_report(run_dir: Path, environment: Optional[Dict] = None) -> dict:
    """One dict from a gpu_check run folder: ``steps.tsv`` (name, exit code, seconds per step), ``tests.xml``
    (pytest junit), ``dsvt.json`` (bench/dsvt.py), ``sparse_conv_cuda.json`` and ``rasterize_cuda.json``.
    Missing pieces are reported as missing, never guessed. ``ok`` is True when every step exited 0 and no test
    failed or errored."""
    run_dir = Path(run_dir)
    steps = []
    tsv = run_dir / "steps.tsv"
    if tsv.is_file():
        for line in tsv.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                steps.append({"step": parts[0], "exit_code": int(parts[1]), "seconds": int(parts[2]),
                              "note": parts[3] if len(parts) > 3 else ""})
    tests = _junit(run_dir / "tests.xml")
    dsvt = _read_json(run_dir / "dsvt.json")
    bench: Dict[str, object] = {"sparse_conv": _read_json(run_dir / "sparse_conv_cuda.json"),
                                "rasterize": _read_json(run_dir / "rasterize_cuda.json"), "dsvt": None}
    if dsvt is not None:
        row = dsvt.get("models", {}).get("DSVT-P", {})
        bench["dsvt"] = {"device": dsvt.get("device"), "dsvt_p_whole_ms": row.get("whole_ms"),
                         "dsvt_p_backbone_ms": row.get("backbone_ms"),
                         "paper_pytorch_ms": PAPER_DSVT_P_PYTORCH_MS,
                         "ours_over_paper": (round(row["whole_ms"] / PAPER_DSVT_P_PYTORCH_MS, 3)
                                             if row.get("whole_ms") else None),
                         "full": dsvt}
    ok = bool(steps) and all(s["exit_code"] == 0 for s in steps) and tests is not None \
        and tests["failed"] == 0 and tests["errors"] == 0
    return {"ok": ok, "environment": environment or {}, "steps": steps,
            "total_seconds": sum(s["seconds"] for s in steps), "tests": tests, "benchmarks": bench}


def environment() -> dict:
    env = {"machine": platform.platform(), "python": platform.python_version()}
    try:
        import torch

        env.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
        if torch.cuda.is_available():
            env.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count())
    except Exception as exc:  # the report must still be written
        env["torch_error"] = str(exc)
    for mod in ("spconv", "gsplat"):
        try:
            m = __import__(mod)
            env[mod] = getattr(m, "__version__", "installed")
        except Exception:
            env[mod] = None
    return env


def _write(obj: dict, path: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name("." + p.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["sparse-conv", "rasterize", "report"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dir", help="the gpu_check run folder (report)")
    args = ap.parse_args(argv)
    if args.what == "report":
        if not args.dir:
            ap.error("report needs --dir")
        rep = build_report(Path(args.dir), environment())
        _write(rep, args.out)
        t = rep["tests"] or {}
        print(f"gpu_check: {'OK' if rep['ok'] else 'NOT OK'} in {rep['total_seconds']} s; tests passed "
              f"{t.get('passed', '?')}, failed {t.get('failed', '?')}, errors {t.get('errors', '?')}, skipped "
              f"{t.get('skipped', '?')}; report {args.out}")
        return 0 if rep["ok"] else 1
    res = bench_sparse_conv() if args.what == "sparse-conv" else bench_rasterize()
    _write(res, args.out)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
