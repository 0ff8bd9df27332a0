"""Sparse-view baseline: vanilla 3DGS on NeRF-synthetic "lego" (../shared/data, 12 of the training views) from 3
training views (0, 6, 11: evenly spaced), evaluated on the other 9, at 400 × 400 on a white background. The bar
LM-Gaussian and CoherentGS must beat with the same views, resolution and time. 6 / 9 views::

    nice -n 10 python tools/train_gs.py configs/gs_sparse_baseline_lego.py --work-dir work_dirs/lego6 \\
        --cfg-options data.n_train_views=6

* time budget: 2 minutes of process CPU time (one thread; the 30k step cap is never reached);
* initialisation: 3DGS's NeRF-synthetic start (random in the ±1.3 cube, 30k points) carved by the training
  views' alpha masks; densification from step 100 to 450 (as the fox baseline).
"""
_base_ = ["./gs_sparse_baseline_fox.py"]

data = dict(
    _delete_=True,
    type="blender",
    root="../shared/data/nerf_synthetic_lego/nerf_synthetic/lego",
    splits=("train",),
    only_existing=True,  # the folder holds 12 of the 100 listed frames
    size=(400, 400),
    n_train_views=3,
    background=(1.0, 1.0, 1.0),
)
model = dict(init="random", init_num=30_000, init_center=(0.0, 0.0, 0.0), init_extent=1.3,
             carve_with_masks=True, init_scale=1.0)
train = dict(max_minutes=None, max_cpu_minutes=2.0, background=(1.0, 1.0, 1.0),
             eval_background=(1.0, 1.0, 1.0),
             scene_scale="rig")
