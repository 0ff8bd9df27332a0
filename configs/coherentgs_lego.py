"""CoherentGS on NeRF-synthetic "lego" (../shared/data, the 12 training views it holds) from 3 training views
(0, 6, 11: evenly spaced), evaluated on the other 9, at 400 × 400 on a white background — the views, resolution
and time budget of ``gs_sparse_baseline_lego.py`` (same ``data``). 6 / 9 views::

    nice -n 10 python tools/train_gs.py configs/coherentgs_lego.py --work-dir work_dirs/cgs_lego6 \\
        --cfg-options data.n_train_views=6

* Gaussians: one per foreground pixel (alpha > 0.5) of each training view — the pixel SparseTensor has no site
  on the background;
* Gaussians per pixel: ``pixel_stride="auto"`` — one per pixel for 3 views (the authors' setting), one per
  2 × 2 block for 6 and 9 views (⌈√(views / 3)⌉), so 9 views hold about as many Gaussians as 3 views at full
  resolution (at one per pixel, with the plane sweep below, the 9-view run reached 17 steps in its budget);
* time budget: 2 minutes of process CPU time from the start of the run, priors included (600 steps, the
  schedule's length, are never reached);
* depth prior: SIFT features triangulated with the known cameras and densified along the image (as the fox;
  ~0.7 CPU-s a view), falling back to the plane sweep (its range from the cameras: the object sits inside ±1.3
  of the origin, the cameras 4 units away) for a view with fewer than 20 anchors. The plane sweep alone costs
  ~12 CPU-s a view (measured on the fox), most of the budget at 9 views, and was valid on only 4–30 % of the
  pixels there.
* mask carving (``mask_carving=1``): no Gaussian for a pixel whose point lands on another training view's
  background (its mask grown by one pixel of the Gaussian grid) — a point of the object lies inside every
  view's silhouette; with the depth prior's errors, 16.5 % of the 9 views' Gaussians did not, and drew the
  object's colours over the white background of the other views. Chosen on the training views at the start
  (9 views; held-out views not used): training-view PSNR 17.8 → 19.2 dB, each training view rendered from
  the other views' Gaussians only (its own mask left out of the carving) 16.8 → 17.6 dB; tolerance 0 / 2
  pixels: 18.6 / 19.0 and 17.2 / 17.6 dB.
* decoder learning rates with 6 / 9 views (session 13, measured on the training views only): the authors' cyclic
  rates (1e-6..1e-4 depth, 1e-6..1e-5 opacity) leave the decoders underfitting in the ~230 steps the budget
  allows. Ten times higher (``--cfg-options "train.decoder_lr=[1e-5,1e-3]"
  "train.opacity_decoder_lr=[1e-5,1e-4]"``), 9 views: training-view PSNR 19.5 → 20.05 dB (231 steps, 121 CPU-s);
  training the pixels' colours instead (``train.train_colors=true``) gave 19.68 dB. Leave-one-training-view-out
  (train on 8 of the 9 training views, score the 9th, view 6; held-out views not used): 16.38 / 0.709 → 17.35 /
  0.719 (247 / 246 steps, 121 CPU-s each). Recommended for 6 / 9 views; not the default here, because 3 views
  were not measured with it (the fox's 3 views overfit at 10× — see ``coherentgs_fox.py``).
  Everything else as ``coherentgs_fox.py``.
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
model = dict(depth_prior=dict(_delete_=True, type="triangulated", max_dist=0.15,
                             fallback=dict(type="plane_sweep", depth_range=(2.0, 6.0))),
             pixel_stride="auto", mask_carving=1)
train = dict(max_minutes=None, max_cpu_minutes=2.0, background=(1.0, 1.0, 1.0), eval_background=(1.0, 1.0, 1.0))
