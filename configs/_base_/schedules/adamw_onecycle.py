# OpenPCDet's adam_onecycle as mmengine pieces: AdamW (wd 0.01), one-cycle LR (pct_start 0.4, div_factor 10)
# with Adam's β₁ cycled against it (MOMS [0.95, 0.85]), gradient clipping at 10. `lr`, `max_epochs` are set by
# the model config; the total steps are filled in by the runner from the train loop length
# (mmengine convert_to_iter_based).
lr = 0.003
max_epochs = 30
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, betas=(0.95, 0.99), weight_decay=0.01),
                     clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(type="ExactEpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
