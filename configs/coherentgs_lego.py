"""CoherentGS on NeRF-synthetic "lego" (../shared/data, the 12 training views it holds) from 3 training views
(0, 6, 11: evenly spaced), evaluated on the other 9, at 400 × 400 on a white background — the views, resolution
and time budget of ``gs_sparse_baseline_lego.py`` (same ``data``). 6 / 9 views::

    nice -n 10 python tools/train_gs.py configs/coherentgs_lego.py --work-dir work_dirs/cgs_lego6 \\
        --cfg-options data.n_train_views=6

* Gaussians: one per foreground pixel (alpha > 0.5) of each training view — the pixel SparseTensor has no site
  on the background;
* time budget: 600 steps or 2 minutes of process CPU time from the start of the run, priors included;
* depth prior: plane sweep over the training views, its range from the cameras (the object sits inside
  ±1.3 of the origin, the cameras 4 units away). Everything else as ``coherentgs_fox.py``.
"""
_base_ = ["./coherentgs_fox.py"]

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
model = dict(depth_prior=dict(_delete_=True, type="plane_sweep", depth_range=(2.0, 6.0)), pixel_stride=1)
train = dict(max_minutes=None, max_cpu_minutes=2.0, background=(1.0, 1.0, 1.0), eval_background=(1.0, 1.0, 1.0))
