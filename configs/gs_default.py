"""3DGS on the built-in default scene (perception3d/rendering/default_scene.py): a checker torus around a striped
sphere, rendered by our rasterizer into work_dirs/default_scene on first use (no download). 40 train / 8 test
views at 96 × 96; a few minutes on CPU:

    python tools/train_gs.py configs/gs_default.py
    python tools/render.py work_dirs/gs_default/ckpt_latest.pt --cameras test
"""
default_scope = "perception3d"

data = dict(
    type="default",
    root="work_dirs/default_scene",
    generate=dict(n_train=40, n_test=8, size=96),
    background=(1.0, 1.0, 1.0),
)
model = dict(
    init="random",
    init_num=20_000,
    init_center=(0.0, 0.0, 0.0),
    init_extent=1.0,
    carve_with_masks=True,  # keep the random points inside every training view's alpha mask (visual hull)
    sh_degree=1,
    init_opacity=0.1,
    init_scale=1.0,
)
train = dict(
    max_steps=300,
    max_minutes=6.0,
    sh_degree_interval=100,
    ssim_lambda=0.2,
    lr=dict(sh0=1e-2, shN=1e-2 / 20),
    eval_every=100,
    save_every=100,
    log_every=10,
    tile_size=8,
    background=(1.0, 1.0, 1.0),
)
strategy = dict(
    refine_start_iter=50,
    refine_stop_iter=250,
    refine_every=50,
    reset_every=100_000,
    grow_grad2d=0.0002,
)
