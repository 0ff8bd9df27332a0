"""Accuracy of the built-in (weight-free) depth priors on the real sample scenes: plane sweep vs triangulated
features densified along the image (``rendering.priors``), on the training views of the sparse-view configs.

References (no ground-truth depth ships with these captures):

* **Barn** (3 views, 512 × 288): the DUSt3R depth LM-Gaussian ships, put in scene units by a scale/shift fit to
  SIFT features triangulated with the scene's cameras; the prior is then scale-and-shift aligned to it (MiDaS
  protocol) and AbsRel / δ₁ are taken over the prior's valid pixels (as ``tests/test_priors.py``).
* **fox** (views 0, 24, 49 of 50, 384 × 683 portrait) and **lego** (3 of the 12 views, 400 × 400): SIFT features
  of the view triangulated with its 4 nearest views that are *not* training views (small baselines, reprojection ≤ 1 px;
  independent of the 3 training views the prior sees). AbsRel without alignment (both are metric), on the prior's
  valid pixels ("valid") and on every reference pixel once the holes are filled as CoherentGS fills them ("all":
  the geometry a trainer actually receives).

Prints one row per scene × prior × view, then the means, with the coverage (valid share of the image) and the CPU
seconds the prior took.

    OMP_NUM_THREADS=1 nice -n 10 python bench/depth_prior_accuracy.py [--scenes barn fox lego] [--priors ...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

PRIORS = {
    "plane_sweep": dict(type="plane_sweep"),
    "triangulated": dict(type="triangulated", max_dist=0.15),
    # the same, interpolating across depth discontinuities (before edge_ratio)
    "triangulated_no_edge": dict(type="triangulated", max_dist=0.15, edge_ratio=None),
    # object captures only (lego): the triangulated prior's holes filled from the visual hull, depths in front of
    # the hull moved onto it (``lmgaussian_lego.py``'s prior)
    "hull_filled": dict(type="hull_filled", prior=dict(type="triangulated", max_dist=0.15,
                                                       fallback=dict(type="plane_sweep"))),
}


def _sparse_map(scene, uv, z) -> torch.Tensor:
    r = torch.zeros(scene.height, scene.width)
    u = torch.from_numpy(np.floor(uv[:, 0])).long().clamp(0, scene.width - 1)
    v = torch.from_numpy(np.floor(uv[:, 1])).long().clamp(0, scene.height - 1)
    r[v, u] = torch.from_numpy(z).float()
    return r


def _scene(name):
    from perception3d.rendering.trainer import build_scene

    if name == "barn":
        return build_scene(dict(type="lmgaussian", root=str(DATA / "tnt_barn_3view" / "train"), size=(512, 288),
                                train_views=[0, 1, 2]))
    if name == "fox":
        return build_scene(dict(type="nerfstudio", root=str(DATA / "ngp_fox"), only_existing=True, size=(384, 683),
                                n_train_views=3))
    return build_scene(dict(type="blender", root=str(DATA / "nerf_synthetic_lego" / "nerf_synthetic" / "lego"),
                            splits=("train",), only_existing=True, size=(400, 400), n_train_views=3,
                            background=(1.0, 1.0, 1.0)))


def _reference(name, scene, i, ids):
    from perception3d.rendering.priors import ShippedDepth, align_scale_shift, feature_depths

    if name == "barn":
        ref = ShippedDepth("dust3r").estimate(scene, i).depth
        uv, z = feature_depths(scene, i, ids)
        sparse = _sparse_map(scene, uv, z)
        return align_scale_shift(ref, sparse, sparse > 0)[0], True
    c = scene.cameras.centers
    others = sorted((j for j in range(len(c)) if j not in ids), key=lambda j: float((c[j] - c[i]).norm()))[:4]
    uv, z = feature_depths(scene, i, [i] + others, max_reproj=1.0)
    return _sparse_map(scene, uv, z), False


def main(argv=None) -> None:
    from perception3d.rendering.coherentgs.depth_init import fill_holes
    from perception3d.rendering.priors import align_scale_shift, build_depth_prior, depth_metrics

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", nargs="+", default=["barn", "fox", "lego"])
    ap.add_argument("--priors", nargs="+", default=["plane_sweep", "triangulated"], choices=list(PRIORS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.scenes:
        scene = _scene(name)
        ids = list(scene.train_ids)
        for i in ids:
            ref, dense_ref = _reference(name, scene, i, ids)
            for p in args.priors:
                prior = build_depth_prior(dict(PRIORS[p]))
                c0 = time.process_time()
                try:
                    dm = prior.estimate(scene, i, ids)
                except ValueError as e:  # e.g. too few features survive on wide baselines
                    print(f"scene={name} prior={p} view={i} failed: {e}", flush=True)
                    rows.append({"scene": name, "prior": p, "view": i, "coverage": 0.0})
                    continue
                cpu = time.process_time() - c0
                valid = dm.valid
                if dense_ref:  # scale-and-shift aligned to the reference over the prior's valid pixels
                    pred = align_scale_shift(dm.depth, ref, valid)[0]
                else:
                    pred = dm.depth
                r = {"scene": name, "prior": p, "view": i, "coverage": float(valid.float().mean()), "cpu_s": cpu}
                try:
                    m = depth_metrics(pred, ref, valid)
                    r.update(abs_rel=m["abs_rel"], delta1=m["delta1"], n=m["n"])
                except ValueError:
                    r.update(abs_rel=float("nan"), delta1=float("nan"), n=0)
                if not dense_ref:  # what a trainer receives: holes filled (CoherentGS's push-pull filling)
                    r["abs_rel_all"] = depth_metrics(fill_holes(dm.depth, valid), ref, None)["abs_rel"]
                rows.append(r)
                print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()),
                      flush=True)
    print("\nscene  prior          coverage  AbsRel(valid)  delta1  AbsRel(all ref px)  CPU s/view")
    for name in args.scenes:
        for p in args.priors:
            rs = [r for r in rows if r["scene"] == name and r["prior"] == p]
            if not rs:
                continue
            mean = {k: float(np.nanmean([r.get(k, np.nan) for r in rs]))
                    for k in ("coverage", "abs_rel", "delta1", "abs_rel_all", "cpu_s")}
            print(f"{name:6s} {p:14s} {mean['coverage']:8.3f}  {mean['abs_rel']:13.3f}  {mean['delta1']:6.3f}  "
                  f"{mean['abs_rel_all']:18.3f}  {mean['cpu_s']:10.1f}")


if __name__ == "__main__":
    main()
