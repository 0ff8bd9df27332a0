"""MinkUNet (submanifold sparse-conv U-Net with inverse-conv decoder) on the built-in mini Waymo dataset, sized for
a CPU: voxels 0.1 m, base 16, encoder (16, 32, 64, 128) × 1 residual block, decoder (64, 48, 32, 32) × 1,
Linear head; CE + Lovász-softmax (the MinkUNet / SPVCNN recipe's losses); AdamW one-cycle lr 4e-3, batch 1,
5 epochs over the 160 training frames (~0.55 s of one core per frame: ~8 CPU-minutes).

Full-size models on real data: ``minkunet_semantickitti.py`` (mmdet3d's MinkUNet34), ``minkunet_waymo.py``.
"""
_base_ = ["./_base_/datasets/waymo_mini_seg.py"]

max_epochs = 5
lr = 0.004
voxel_size = (0.1, 0.1, 0.1)

model = dict(
    type="PointSegmentor", num_classes={{_base_.num_classes}}, ignore_index=-1, tanh_channels=(3,),
    loss_weights=dict(ce=1.0, lovasz=1.0),
    backbone=dict(type="MinkUNetBackbone", in_channels=4, base_channels=16, encoder_channels=(16, 32, 64, 128),
                  encoder_blocks=(1, 1, 1, 1), decoder_channels=(64, 48, 32, 32), decoder_blocks=(1, 1, 1, 1),
                  voxel_size=voxel_size, point_range={{_base_.point_range}}),
    decode_head=dict(type="SegHead"))

val_evaluator = dict(confusion_png="work_dirs/minkunet_waymo_mini/confusion.png")
test_evaluator = val_evaluator
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, weight_decay=0.01),
                     clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.1, div_factor=10, final_div_factor=100,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
