"""E-3DSNN's spiking U-Net (``E3DSNNUNet``: Spike Voxel Coding, SSC encoder, inverse-conv decoder with spiking
skip fusion) on the built-in mini Waymo dataset with the authors' SemanticKITTI recipe
(``semseg-3dsnn-v1m1-0-base.py``): Mix3D (mix_prob 0.8), z rotation in [−π, π] with p = 0.5, flips of x and y
(p = 0.5 each), scale 0.9–1.1, jitter σ 0.005 (clip 0.02), cross-entropy (their only criterion), AdamW
(wd 0.005) with one-cycle (pct 0.04, cos, div 10, final div 100), four-rotation test-time augmentation
(0, ½π, π, 3⁄2π).

CPU-sized: stem 16, encoder (16, 32, 64, 128) × 1 block, decoder (32, 48, 64, 128), voxels 0.1 m (theirs: stem
64, (64, 128, 128, 256) × 2, decoder 256 × 4, 0.05 m: ``e3dsnn_semantickitti.py``), lr 4e-3, batch 1,
1 epoch (160 iterations: what the shared CPU allowed; the schedule is not converged); points outside the range
are dropped, as in the other mini segmentation configs (the authors clip them on SemanticKITTI), so the three
mini models are scored on the same points.
"""
_base_ = ["./_base_/datasets/waymo_mini_seg.py"]

max_epochs = 1
lr = 0.004
voxel_size = (0.1, 0.1, 0.1)

model = dict(
    type="PointSegmentor", num_classes={{_base_.num_classes}}, ignore_index=-1, tanh_channels=(3,),
    loss_weights=dict(ce=1.0), test_cfg=dict(tta_rotations=4),
    backbone=dict(type="E3DSNNUNet", in_channels=4, num_classes={{_base_.num_classes}}, embed_channels=16,
                  enc_channels=(16, 32, 64, 128), enc_depth=(1, 1, 1, 1), dec_channels=(32, 48, 64, 128),
                  voxel_size=voxel_size, point_range={{_base_.point_range}}))

train_dataloader = dict(dataset=dict(dataset=dict(
    mix_prob=0.8, augment=dict(rotate_z=True, rotate_p=0.5, flip_x=0.5, flip_y=0.5, scale=(0.9, 1.1),
                               jitter=0.005))))
val_evaluator = dict(confusion_png="work_dirs/e3dsnn_seg_waymo_mini/confusion.png")
test_evaluator = val_evaluator
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, weight_decay=0.005))
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.04, anneal_strategy="cos", div_factor=10.0,
                        final_div_factor=100.0, by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
