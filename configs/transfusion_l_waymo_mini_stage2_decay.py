"""TransFusion-L continued from its stage-1 checkpoint for the iterations of ``sparsefusion_waymo_mini_stage2.py``
(``max_epochs`` = 2, 160 iterations) **without restarting a warm-up**: the learning rate starts at the fusion
stage's starting lr (0.002 / 10) and decays by a cosine to the fusion stage's final lr (0.002 / 10 / 1e4), Adam's
β₁ stays at 0.95 (where stage 1's one-cycle ends). The LiDAR-only control that a fresh one-cycle cannot push
back off its converged stage-1 weights (``transfusion_l_waymo_mini_stage2.py`` warms the trained model up to lr
0.002 again and ends below its own stage-1 checkpoint, ``docs/model_zoo.md``).

    python tools/train.py configs/transfusion_l_waymo_mini_stage2_decay.py
"""
_base_ = ["./transfusion_l_waymo_mini_stage2.py"]

max_epochs = 2
lr = 0.002 / 10
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [dict(type="CosineAnnealingLR", eta_min=lr / 1e4, by_epoch=True, begin=0, end=max_epochs,
                        convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
