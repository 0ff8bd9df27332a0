"""CoherentGS (Paliwal et al., ECCV 2024) on the real instant-ngp "fox" capture (../shared/data/ngp_fox), with the
views, resolution and time budget of ``gs_sparse_baseline_fox.py`` (its ``data`` is inherited unchanged):

* views: ``n_train_views=3`` → views 0, 24, 49 of the 50 (55°, 74° and 20° apart), the 47 others held out;
* resolution: 384 × 683 (1080 × 1920 undistorted to a pinhole camera, then shrunk 2.8×), rendered and scored
  at that size; the Gaussians sit on a 2 × 2 pixel grid (``pixel_stride=2``: 196,992 of them for the three views
  instead of the authors' one per pixel, 786,816, whose steps cost ~3 s of CPU each here), never densified or
  pruned;
* time budget: 600 steps or 5 minutes of process CPU time counted from the start of the run (the depth / flow
  priors and the depth alignment included), whichever comes first; the schedule's fractions follow the larger
  of the two.

Priors, all built in (no weights): depth from SIFT matches triangulated with the known cameras and densified
along the image (``rendering.priors.TriangulatedDepth``; the authors use Depth Anything, which takes a
local checkpoint: ``depth_prior=dict(type="depth_anything", checkpoint=...)``), OpenCV DIS flow (authors:
FlowFormer++). The authors' schedule (1000 alignment + 13000 training steps) is kept as fractions of
``max_steps`` (``rendering/coherentgs/config.py``); what a 2-core CPU cannot afford is scaled down and says so
below.

    nice -n 10 python tools/train_gs.py configs/coherentgs_fox.py
    python tools/render.py work_dirs/coherentgs_fox/ckpt_latest.pt --cameras orbit --video fox.mp4
"""
_base_ = ["./gs_sparse_baseline_fox.py"]

method = "coherentgs"
model = dict(
    _delete_=True,
    sh_degree=1,  # as the baseline (authors: 3)
    # triangulated features densified along the image: the plane sweep was valid on only 3-28 % of the fox's
    # pixels (its 20-74° baselines defeat window matching), these anchors cover 22-75 % at 0.9-3 % AbsRel
    depth_prior=dict(type="triangulated", max_dist=0.15),
    flow_prior=dict(type="dis", preset="medium"),
    num_mask_channels=5,
    radius_mult=1.2,
    ngf=2,  # authors 15 for 3 views (60-240 channels); CPU: 8-32
    opacity_ngf=1,  # authors 10
    decoder_finest_level=1,  # the decoders run at half the Gaussian grid's resolution, upsampled (authors: full)
    pixel_stride=2,  # authors 1 (see above)
)
train = dict(
    _delete_=True,
    max_steps=600,
    max_minutes=None,
    max_cpu_minutes=5.0,
    align_steps=300,  # authors 1000
    # the decoders keep the authors' cyclic learning rates (1e-6..1e-4, 1e-6..1e-5): ten times higher, the fox's
    # training views reached 28 dB while the held-out views fell to 7.2 dB (opacity holes, scattered depth)
    multisample_max=2,  # authors 4 (a random 1-4× supersampled render in the last 62 % of the steps)
    eval_every=100_000,  # evaluate once, at the end (47 views)
    save_every=100_000,
    log_every=10,
    tile_size=16,
    background="random",
    eval_background=(0.0, 0.0, 0.0),
)
strategy = dict(_delete_=True)  # no densification
