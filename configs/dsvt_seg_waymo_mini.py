"""DSVT as a segmentation backbone (``DSVTSegBackbone``: SubM stem, two DSVT-V blocks on 3-D voxels with rotated
sets in 12 × 12 × 40-voxel windows covering the whole z range, the hybrid shifted window in the second block,
stem/DSVT fusion, ``SegHead``) on the built-in mini Waymo dataset.

The DSVT authors give no segmentation recipe; the optimiser is their Waymo one (AdamW, betas (0.9, 0.99),
wd 0.05, one-cycle, grad clip 10), the losses CE + Lovász as the other mini segmenters. CPU-sized: voxels
0.2 m, input BatchNorm over the voxel features (metres and intensity at one scale), d_model 32 (4 heads,
FFN 64), set size 36, lr 4e-3, batch 1, 4 epochs (640 iterations).  Measured (seed 0, 1 thread, loaded 2-core
VM): val mIoU 77.5 in 6.5 CPU-minutes (``docs/model_zoo.md``).
"""
_base_ = ["./_base_/datasets/waymo_mini_seg.py"]

max_epochs = 4
lr = 0.004
voxel_size = (0.2, 0.2, 0.2)

model = dict(
    type="PointSegmentor", num_classes={{_base_.num_classes}}, ignore_index=-1, tanh_channels=(3,),
    loss_weights=dict(ce=1.0, lovasz=1.0),
    backbone=dict(type="DSVTSegBackbone", in_channels=4, d_model=32, nhead=4, dim_feedforward=64, set_size=36,
                  num_blocks=2, window_shape=(12, 12, 40), voxel_size=voxel_size,
                  point_range={{_base_.point_range}}, input_norm=True),
    decode_head=dict(type="SegHead"))

val_evaluator = dict(confusion_png="work_dirs/dsvt_seg_waymo_mini/confusion.png")
test_evaluator = val_evaluator
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, betas=(0.9, 0.99), weight_decay=0.05),
                     clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.1, div_factor=10, final_div_factor=100,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
