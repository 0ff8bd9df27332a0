"""How much CoherentGS's depth prior limits it on lego with V training views: vanilla 3DGS, CoherentGS with the
config's weight-free depth prior, and CoherentGS with a near-exact depth, with the same views, resolution
(400 × 400) and CPU budget, in one run.

The near-exact depth is a diagnostic, not a prior a user could have: vanilla 3DGS fitted to all 12 lego images
(the held-out views included) for ``--fit-minutes``, its expected depth rendered in each training view where its
alpha is above 0.5. It bounds what any depth prior, learned or not, could buy CoherentGS here. The script also
prints the weight-free prior's AbsRel against that depth on the training views' object pixels.

Both CoherentGS runs use the settings recommended for 6 / 9 views (decoder rates × 10, pixel colours trained) and
a schedule of 300 steps per CPU-minute (the config's 600 at 2 minutes), so that the decoders' cycles fit the
budget.

    OMP_NUM_THREADS=1 python bench/coherentgs_depth_bound.py [--views 9] [--budget 2] [--fit-minutes 4] \\
        [--seed 0] [--out work_dirs/cgs_depth_bound]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _config(name: str, **options):
    from perception3d.cli import load_config

    cfg = load_config(str(ROOT / "configs" / name))
    cfg.merge_from_dict({k: v for k, v in options.items() if k != "model.depth_prior"})
    if "model.depth_prior" in options:
        cfg.model["depth_prior"] = options["model.depth_prior"]
    return cfg


def _train(cfg, work_dir: Path, seed: int) -> dict:
    from perception3d.registry import RENDER_METHODS

    tr = RENDER_METHODS.get(cfg.get("method", "3dgs"))(cfg, work_dir, seed=seed, progress=False)
    res = tr.train()
    return {"psnr": res["psnr"], "ssim": res["ssim"], "steps": res["steps"], "cpu_s": res["cpu_s"],
            "trainer": tr}


def near_exact_prior():
    """A depth prior that renders a fitted 3DGS model's expected depth (registered as ``fitted_3dgs_depth``)."""
    from perception3d.rendering.priors import DepthMap, DepthPrior
    from perception3d.rendering.trainer import load_model

    class Fitted3DGSDepth(DepthPrior):
        name, metric = "fitted_3dgs_depth", True

        def __init__(self, model_path: str):
            self.model_path = model_path
            self.model, _ = load_model(model_path)

        def describe(self):
            return {"type": self.name, "metric": True, "model_path": self.model_path, "weights": None}

        @torch.no_grad()
        def estimate(self, scene, i, ids=None):
            cam = scene.cameras[i]
            out, alpha, _ = self.model.render(cam.viewmats, cam.Ks, cam.width, cam.height, render_mode="RGB+ED")
            depth = torch.where(alpha[0, ..., 0] > 0.5, out[0, ..., 3], torch.zeros_like(out[0, ..., 3]))
            return DepthMap(depth.float(), None, True, self.name)

    return Fitted3DGSDepth


def prior_abs_rel(trainer, reference) -> float:
    """Mean over the training views of the AbsRel of the trainer's dense depth against ``reference``'s depth,
    on the object's pixels (alpha > 0.5) where the reference is confident."""
    from perception3d.rendering.coherentgs.depth_init import dense_depth
    from perception3d.rendering.priors import build_depth_prior

    sc, ids = trainer.scene, list(trainer.scene.train_ids)
    prior = build_depth_prior(dict(trainer.model_cfg.depth_prior))
    rels = []
    for i in ids:
        d, _ = dense_depth(prior, sc, i, ids)
        ref = reference.estimate(sc, i, ids).depth
        m = (sc.alpha(i) > 0.5) & (ref > 0) & (d > 0)
        rels.append(float(((d[m] - ref[m]).abs() / ref[m]).mean()))
    return sum(rels) / len(rels)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--views", type=int, default=9)
    ap.add_argument("--budget", type=float, default=2.0, help="CPU minutes of each compared run")
    ap.add_argument("--fit-minutes", type=float, default=4.0, help="CPU minutes of the near-exact depth's fit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "work_dirs" / "cgs_depth_bound")
    args = ap.parse_args(argv)
    from perception3d.rendering.priors import register_prior

    torch.set_num_threads(1)
    fit_dir = args.out / "fit_all_12_views"
    if not (fit_dir / "ckpt_latest.pt").is_file():
        _train(_config("gs_sparse_baseline_lego.py", **{"data.train_views": list(range(12)),
                                                         "data.n_train_views": None,
                                                         "train.max_cpu_minutes": args.fit_minutes}),
               fit_dir, args.seed)
    Fitted = near_exact_prior()
    register_prior("depth", Fitted.name, Fitted)
    common = {"data.n_train_views": args.views, "train.max_cpu_minutes": args.budget}
    cgs = {**common, "train.max_steps": int(round(300 * args.budget)), "train.decoder_lr": [1e-5, 1e-3],
           "train.opacity_decoder_lr": [1e-5, 1e-4], "train.train_colors": True}
    rows = {
        "vanilla 3DGS (gs_sparse_baseline_lego.py)": _train(_config("gs_sparse_baseline_lego.py", **common),
                                                             args.out / "baseline", args.seed),
        "CoherentGS, weight-free prior (the config's)": _train(_config("coherentgs_lego.py", **cgs),
                                                                args.out / "coherentgs", args.seed),
        "CoherentGS, near-exact depth (diagnostic)": _train(
            _config("coherentgs_lego.py", **cgs, **{"model.depth_prior": {
                "type": Fitted.name, "model_path": str(fit_dir / "ckpt_latest.pt")}}),
            args.out / "coherentgs_near_exact", args.seed),
    }
    base = rows["vanilla 3DGS (gs_sparse_baseline_lego.py)"]
    abs_rel = prior_abs_rel(rows["CoherentGS, weight-free prior (the config's)"]["trainer"],
                            Fitted(str(fit_dir / "ckpt_latest.pt")))
    print(f"lego, {args.views} training views, 400 x 400, {args.budget:g} CPU-minutes each, seed {args.seed}, "
          f"1 thread; near-exact depth from 3DGS fitted to all 12 images for {args.fit_minutes:g} CPU-minutes")
    print(f"{'run':48s} {'steps':>6s} {'CPU s':>6s} {'PSNR':>6s} {'SSIM':>6s} {'dPSNR':>6s} {'SSIM ratio':>10s}")
    for name, r in rows.items():
        print(f"{name:48s} {r['steps']:6d} {r['cpu_s']:6.0f} {r['psnr']:6.2f} {r['ssim']:6.3f} "
              f"{r['psnr'] - base['psnr']:+6.2f} {r['ssim'] / base['ssim']:10.3f}")
    print(f"weight-free prior vs the near-exact depth on the training views' object pixels: AbsRel {abs_rel:.3f}")
    summary = {k: {m: v for m, v in r.items() if m != "trainer"} for k, r in rows.items()}
    (args.out / "summary.json").write_text(json.dumps({**summary, "prior_abs_rel": abs_rel,
                                                       "args": {k: str(v) for k, v in vars(args).items()}},
                                                      indent=1))
    return summary


if __name__ == "__main__":
    main()
