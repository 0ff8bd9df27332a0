"""MetaCap: fine-tuning on n views of an unseen frame from the meta-learned initialisation vs from the geometric
(random) initialisation, the authors' "meta" and "notmeta" fine-tuning configs, in one run.

    python bench/metacap_meta_vs_random.py [--config configs/metacap_human_mini.py] [--views 2] [--steps 300]
                                           [--random-steps 1500] [--cfg-options key=value ...]

Runs the config's meta-learning once, then fine-tunes twice on the same rays (same seed): from the meta-learned
weights and from the initialisation. The novel-view PSNR (held-out cameras, inside the body's projected box) is
evaluated along the way; the headline target PSNR is the lower of the two runs' best PSNRs minus 0.5 dB, and a
second table gives, for every target on a 0.5 dB grid, the first evaluated step at which each run reaches it
("never" within the run; the ratio counts the meta run's steps as at least 1). ``--random-steps`` lets the run from
the random init go on longer than the meta run, to see whether it ever gets there. Also SSIM, the Chamfer distance
of each run's mesh to the ground-truth mesh, and as a reference that of the posed body model itself.
``--reuse`` redoes the tables and figures from a finished run's metrics without training.
Writes bench/results/metacap/{curves.png, grid.png, results.json} (the grid: input views, renders of the held-out
views from both runs, ground truth).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def steps_to(hist: list, target: float):
    for h in hist:
        if h["psnr"] >= target:
            return h["step"]
    return None


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "metacap_human_mini.py"))
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the config's)")
    ap.add_argument("--random-steps", type=int, default=None,
                    help="fine-tuning steps from the random init (default: as --steps), evaluated also at 300, 600, "
                         "1000, 1500, ... below it")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "metacap"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cfg-options", nargs="+", default=[])
    ap.add_argument("--reuse", action="store_true", help="tables and figures from the metrics already in --out")
    args = ap.parse_args(argv)

    from perception3d.cli import load_config
    from perception3d.rendering.human.metacap.trainer import MetaCapTrainer, evaluate_views, load_metacap
    from perception3d.rendering.human.metacap.frames import load_frame
    from perception3d.rendering.human.zju_mocap import read_zju_mocap
    from perception3d.rendering.human import load_body_model

    cfg = load_config(args.config)
    opts = {}
    for kv in args.cfg_options:
        k, _, v = kv.partition("=")
        opts[k] = json.loads(v)
    opts["finetune.views"] = [args.views]
    if args.steps is not None:
        opts["finetune.steps"] = args.steps
    cfg.merge_from_dict(opts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    rnd = {"meta.outer_steps": 0, "finetune.init": "random"}
    if args.random_steps is not None:
        base = list(cfg["finetune"].get("eval_steps", ()))
        rnd["finetune.steps"] = args.random_steps
        rnd["finetune.eval_steps"] = sorted(set(base + [s for s in (300, 600, 1000, 1500, 2000, 3000)
                                                        if s < args.random_steps]))
    for name, over in (("meta", {}), ("random", rnd)):
        c = cfg.copy()
        c.merge_from_dict(over)
        t0, p0 = time.time(), time.process_time()
        res = None if args.reuse else MetaCapTrainer(c, out / name, seed=args.seed).train()
        m = json.loads((out / name / "metrics.json").read_text())
        prev = {}
        if args.reuse and (out / "results.json").is_file():
            prev = json.loads((out / "results.json").read_text())["runs"][name]
        runs[name] = {"summary": res or prev.get("summary"), "metrics": m[f"{args.views}views"],
                      "wall_seconds": prev.get("wall_seconds") if args.reuse else time.time() - t0,
                      "cpu_seconds": prev.get("cpu_seconds") if args.reuse else time.process_time() - p0,
                      "meta_seconds": m.get("meta_seconds"), "meta_cpu_seconds": m.get("meta_cpu_seconds")}
    hm, hr = runs["meta"]["metrics"]["history"], runs["random"]["metrics"]["history"]
    target = min(max(h["psnr"] for h in hm), max(h["psnr"] for h in hr)) - 0.5
    sm, sr = steps_to(hm, target), steps_to(hr, target)
    ratio = (sr / max(sm, 1)) if (sm is not None and sr is not None) else None
    table = {"target_psnr": target, "steps_meta": sm, "steps_random": sr, "ratio_random_over_meta": ratio,
             "psnr_final_meta": hm[-1]["psnr"], "psnr_final_random": hr[-1]["psnr"],
             "psnr_step0_meta": hm[0]["psnr"], "psnr_step0_random": hr[0]["psnr"],
             "steps_final_meta": hm[-1]["step"], "steps_final_random": hr[-1]["step"],
             "ssim_final_meta": hm[-1].get("ssim"), "ssim_final_random": hr[-1].get("ssim"),
             "chamfer_cm_meta": runs["meta"]["metrics"]["chamfer_cm"],
             "chamfer_cm_random": runs["random"]["metrics"]["chamfer_cm"],
             "chamfer_cm_body_model": None,
             "finetune_cpu_seconds_meta": hm[-1]["train_seconds"],
             "finetune_cpu_seconds_random": hr[-1]["train_seconds"],
             "meta_learning_wall_seconds": runs["meta"]["meta_seconds"],
             "meta_learning_cpu_seconds": runs["meta"]["meta_cpu_seconds"],
             "threads": torch.get_num_threads()}
    # reference: the posed body model itself (the prior both runs are sampled around) against the ground truth
    d = cfg["data"]
    seq = read_zju_mocap(Path(d["root"]) / d["test_sequence"])
    body = load_body_model(d.get("body_model"), allow_template=d.get("allow_template", False))
    inp = load_frame(seq, d["test_frame"], body, list(d["input_views"])[:args.views])
    fid = seq.frame_ids[d["test_frame"]]
    if (seq.root / "mesh" / f"{fid}.npy").is_file():
        from perception3d.rendering.human.metacap.mesh import chamfer_distance
        from perception3d.rendering.human.synthetic import synthetic_gt_mesh

        gv, gf = synthetic_gt_mesh(seq.root, fid)
        n_pts = int(cfg["finetune"].get("chamfer_points", 20000))
        cd = chamfer_distance(inp.body.verts, inp.body.faces, gv, gf, n_pts, args.seed)
        table["chamfer_cm_body_model"] = 100 * cd["chamfer"]
    grid = []
    lo = math.floor(2 * min(h["psnr"] for h in hm + hr)) / 2
    hi = max(h["psnr"] for h in hm + hr)
    t = lo
    while t <= hi:
        grid.append({"target_psnr": t, "steps_meta": steps_to(hm, t), "steps_random": steps_to(hr, t)})
        t += 0.5
    table["targets"] = grid
    print(json.dumps({k: v for k, v in table.items() if k != "targets"}, indent=1))
    print("target PSNR | steps from meta init | steps from random init")
    for g in grid:
        print(f"{g['target_psnr']:11.1f} | {str(g['steps_meta'] if g['steps_meta'] is not None else 'never'):>20} | "
              f"{str(g['steps_random'] if g['steps_random'] is not None else 'never'):>22}")
    # curves
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, h, col in (("meta-learned init", hm, "C0"), ("random (geometric) init", hr, "C1")):
        ax.plot([x["step"] for x in h], [x["psnr"] for x in h], "o-", color=col, label=name)
    ax.axhline(target, color="gray", ls="--", lw=1, label=f"target {target:.1f} dB")
    ax.set_xlabel(f"fine-tuning step ({args.views} input views, unseen frame)")
    ax.set_ylabel("novel-view PSNR (dB, body box)")
    ax.set_title(f"MetaCap: steps to target — meta {sm}, random {sr}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    # grid: input views | renders (meta, random) | ground truth of the held-out views
    rows = {}
    for name in ("meta", "random"):
        fld, _ = load_metacap(out / name / f"finetune_{args.views}views.pt")
        ev = load_frame(seq, d["test_frame"], body, d["eval_views"])
        from perception3d.rendering.human.metacap.trainer import MetaCapModel
        from perception3d.rendering.config import section

        r = evaluate_views(fld, ev, section(MetaCapModel, dict(cfg["model"]), "model"), renders=True)
        rows[name] = r["renders"]
        rows["gt"] = r["gts"]
    n = len(rows["gt"])
    H, W = rows["gt"][0].shape[:2]
    canvas = np.ones((4 * H, max(n, args.views) * W, 3))
    for i in range(args.views):
        canvas[:H, i * W:(i + 1) * W] = inp.images[i].float().numpy() / 255.0
    for r, key in enumerate(("meta", "random", "gt"), start=1):
        for i in range(n):
            canvas[r * H:(r + 1) * H, i * W:(i + 1) * W] = rows[key][i].numpy()
    fig, ax = plt.subplots(figsize=(2 * max(n, args.views), 8))
    ax.imshow(np.clip(canvas, 0, 1))
    ax.set_yticks([H * (k + 0.5) for k in range(4)])
    ax.set_yticklabels(["input views", "meta init\n+ fine-tune", "random init\n+ fine-tune", "ground truth"])
    ax.set_xticks([])
    fig.tight_layout()
    fig.savefig(out / "grid.png", dpi=120)
    (out / "results.json").write_text(json.dumps({"table": table, "runs": runs}, indent=1, default=float))
    return table


if __name__ == "__main__":
    main()
