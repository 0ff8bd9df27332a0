"""TransFusion-L continued from its stage-1 checkpoint for exactly the iterations and schedule of
``sparsefusion_waymo_mini_stage2.py`` (``load_from`` the stage-1 checkpoint, a fresh one-cycle over ``max_epochs``
epochs, seed 0, nothing frozen): the LiDAR-only control of the fusion stage, so that the comparison is at the same
schedule and seed.

    python tools/train.py configs/transfusion_l_waymo_mini_stage2.py
"""
_base_ = ["./transfusion_l_waymo_mini.py"]

max_epochs = 2
lr = 0.002
load_from = "{{fileDirname}}/../work_dirs/transfusion_l_waymo_mini/iter_800.pth"
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
