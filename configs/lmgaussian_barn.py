"""LM-Gaussian (Yu et al. 2024) on the Tanks-and-Temples "Barn" views in LM-Gaussian's own layout
(../shared/data/tnt_barn_3view), leave-one-out exactly as ``gs_sparse_baseline_barn.py`` (same views, 512 × 288,
same time budget: 1.5 minutes of process CPU time per fold, the priors' time included). The default fold holds
out the middle view; the other folds::

    nice -n 10 python tools/train_gs.py configs/lmgaussian_barn.py --work-dir work_dirs/lmg_barn_loo0 \\
        --cfg-options data.train_views=[1,2] data.test_views=[0]
    nice -n 10 python tools/train_gs.py configs/lmgaussian_barn.py --work-dir work_dirs/lmg_barn_loo2 \\
        --cfg-options data.train_views=[0,1] data.test_views=[2]

Priors (all shipped with the scene; nothing runs a network): the DUSt3R depth maps (``dust3r_depth/``, the
authors' initialisation) aligned to SIFT features triangulated with the DUSt3R cameras, the Marigold depth maps
(``depth_maps/``) for the Pearson loss and the Marigold normal maps (``normal_maps/``) for the normal loss, as
the authors' ``stage1_forward.py`` uses them. Learning rates: the authors' ``OptimizationParamsinstant``; no
densification (their forward-facing setting never densifies). The refinement stage needs an image refiner
(the authors' is a fine-tuned ControlNet); none is given here, so from half of the run the stage has no refined
targets (the log and checkpoint say so): the photometric loss alone, the stage-1 regularisers stopped as in the
authors' stage 2, the depth-normal consistency off.
To run it with the built-in weight-free refiner add ``--cfg-options lmgaussian.refiner.type=classical``.
"""
_base_ = ["./gs_sparse_baseline_barn.py"]

method = "lmgaussian"
model = dict(init="auto", init_num=60_000, init_opacity=0.1, init_scale=1.0)  # init_depth_range: scene scale only
train = dict(
    # authors' OptimizationParamsinstant: position 1e-4 → 1e-6 (× scene extent), feature 5e-3, opacity 0.065,
    # scaling 0.015, rotation 3e-3
    lr=dict(means=1e-4, sh0=5e-3, shN=5e-3 / 20, opacities=0.065, scales=0.015, quats=3e-3),
)
strategy = dict(_delete_=True, refine_stop_iter=0)  # no densification / pruning / opacity reset
lmgaussian = dict(
    depth_prior=dict(type="shipped", kind="dust3r"),
    depth_loss_prior=dict(type="shipped", kind="mono"),
    normal_prior="shipped",
    refiner=dict(type="none"),  # no refined targets (logged); see the docstring
    # the authors' stage 2 from half of the run without its refined targets: the depth / normal / point-render
    # losses stop (stage2_forward.py); Eq. 10 off (on in the stage it collapsed the training views' fit). Chosen on
    # the training views' PSNR after the full budget (fold holding out view 1: 28.29 dB, stage 1 to the end
    # 25.83 dB, Eq. 10 on in the stage 17.60 dB)
    stage2_without_refiner=True,
    lambda_depth_normal=0.0,
)
