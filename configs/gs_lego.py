"""3DGS on the 12 NeRF-synthetic "lego" views in ../shared/data: 9 train / 3 test (every 4th view) at 200 × 200,
on CPU within a 15-minute budget.  Run: ``nice -n 5 python tools/train_gs.py configs/gs_lego.py``.

CPU-budget choices (the paper's schedule is 30k steps with 100k random initial points):
* initial points: random in the ±1.3 cube (3DGS's NeRF-synthetic init), carved by the training views' alpha
  masks (visual hull) so the first steps are not spent on empty space;
* an 800-step schedule: SH band every 150 steps, densification every 50 steps from step 100 to 600, no
  opacity reset inside the short run, colour learning rates 4× the paper's (few steps to move them);
  ``max_minutes`` stops training early when the machine is slower (shared CPU);
* 8 × 8 tiles (fewer wasted pixel–Gaussian evaluations on CPU; the image does not depend on the tile size).
"""
default_scope = "perception3d"

data = dict(
    type="blender",
    root="../shared/data/nerf_synthetic_lego/nerf_synthetic/lego",
    splits=("train",),
    only_existing=True,  # the folder holds 12 of the 100 listed frames
    holdout_every=4,  # views 0, 4, 8 → test; the other 9 → train
    size=(200, 200),
    background=(1.0, 1.0, 1.0),
)
model = dict(
    init="random",
    init_num=60_000,
    init_center=(0.0, 0.0, 0.0),
    init_extent=1.3,
    carve_with_masks=True,
    sh_degree=3,
    init_opacity=0.1,
    init_scale=1.0,
)
train = dict(
    max_steps=800,
    max_minutes=14.0,
    sh_degree_interval=150,
    ssim_lambda=0.2,
    lr=dict(sh0=1e-2, shN=1e-2 / 20),
    eval_every=100,
    save_every=50,
    log_every=10,
    tile_size=8,
    background=(1.0, 1.0, 1.0),
)
strategy = dict(
    refine_start_iter=100,
    refine_stop_iter=600,
    refine_every=50,
    reset_every=100_000,
    grow_grad2d=0.0002,
    prune_opa=0.005,
)
