"""SparseFusion on the mini data, the authors' second stage: initialised from the TransFusion-L checkpoint of
``transfusion_l_waymo_mini.py`` (stage 1, ``load_from``), LiDAR backbone and LiDAR detector frozen
(``freeze_lidar=True``: no gradients, BatchNorm statistics kept), the camera branch, transfers and fusion layer
trained for ``max_epochs`` more epochs with a fresh one-cycle schedule (lr 0.002, seed 0, as stage 1).

Two initialisations differ from the authors' (who train this stage 6 epochs on nuScenes), both set in
``sparsefusion_waymo_mini.py`` for short fusion stages: the semantic transfer corrects the frozen LiDAR heat map
(``semantic_residual``, zero at the start) instead of replacing it with a random one, and the fusion heads
predict corrections to each candidate's own prediction, starting at zero (``fusion_residual``), so the fused
output starts as the frozen LiDAR model's (without it the fused output starts near 0 L1 mAP, ``docs/model_zoo.md``).

Its LiDAR-only control is ``transfusion_l_waymo_mini_stage2.py``: the same stage-1 checkpoint trained the same
number of extra iterations with the same schedule, so both models have seen the same schedule and seed.

    python tools/train.py configs/transfusion_l_waymo_mini.py      # stage 1 → work_dirs/transfusion_l_waymo_mini
    python tools/train.py configs/sparsefusion_waymo_mini_stage2.py
    python tools/train.py configs/sparsefusion_waymo_mini_stage2.py \\
        --cfg-options model.head.semantic_transfer=False          # ablation (or geometric_transfer=False)
"""
_base_ = ["./sparsefusion_waymo_mini.py"]

max_epochs = 2
lr = 0.002
load_from = "{{fileDirname}}/../work_dirs/transfusion_l_waymo_mini/iter_800.pth"
model = dict(freeze_lidar=True)
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
