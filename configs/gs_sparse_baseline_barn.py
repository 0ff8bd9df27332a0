"""Sparse-view baseline: vanilla 3DGS on the Tanks-and-Temples "Barn" views in LM-Gaussian's layout
(../shared/data/tnt_barn_3view, 3 photos with DUSt3R cameras), leave-one-out: train on two views, render the
third. The default fold holds out the middle view; the other folds::

    nice -n 10 python tools/train_gs.py configs/gs_sparse_baseline_barn.py --work-dir work_dirs/barn_loo1
    nice -n 10 python tools/train_gs.py configs/gs_sparse_baseline_barn.py --work-dir work_dirs/barn_loo0 \\
        --cfg-options data.train_views=[1,2] data.test_views=[0]
    nice -n 10 python tools/train_gs.py configs/gs_sparse_baseline_barn.py --work-dir work_dirs/barn_loo2 \\
        --cfg-options data.train_views=[0,1] data.test_views=[2]

* resolution: 512 × 288 (the DUSt3R cameras' own size; the photos are 1920 × 1080);
* time budget: 1.5 minutes of process CPU time per fold (the 30k step cap is never reached);
* initialisation: 20k points random in the two views' frustum overlap, coloured from their pixels. The cameras
  are nearly parallel (a forward-facing pair), so the depth range cannot come from where they look: it is set
  to 0.08–1.9 scene units, the 2–98 % range of SIFT matches triangulated with the given cameras
  (``perception3d.rendering.priors.feature_depths``), widened by 0.8 / 1.25;
* scene scale from the depth range (``scene_scale="depth"``): the rig's radius (0.03) would make every
  Gaussian "large" for densification; random background while training, black at evaluation (as the fox
  baseline, whose other settings this config inherits).

What it has measured so far: ``docs/model_zoo.md``.
"""
_base_ = ["./gs_sparse_baseline_fox.py"]

data = dict(
    _delete_=True,
    type="lmgaussian",
    root="../shared/data/tnt_barn_3view/train",
    size=(512, 288),
    train_views=[0, 2],
    test_views=[1],
)
model = dict(init_num=20_000, init_depth_range=(0.08, 1.9))
train = dict(max_minutes=None, max_cpu_minutes=1.5, sh_degree_interval=100, eval_every=100,
             scene_scale="depth")
strategy = dict(refine_stop_iter=300)
