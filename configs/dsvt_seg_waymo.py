"""DSVT segmentation backbone (``DSVTSegBackbone``) at the size of the authors' Waymo DSVT-V
(``dsvt_voxel_waymo.py``): voxels (0.32, 0.32, 0.1875) m in (±74.88, ±74.88, −2…4) m → a 468 × 468 × 32 grid,
d_model 192, 8 heads, FFN 384, set size 48, windows 12 × 12 × 32 (the first DSVT-V stage's), 4 blocks on the
full-resolution voxels (no pooling: segmentation needs every voxel), their optimiser (AdamW lr 0.003,
betas (0.9, 0.99), wd 0.05, one-cycle pct 0.1, grad clip 10), 24 epochs, batch 3 per GPU, CE + Lovász.
The DSVT authors give no segmentation recipe, so this is this package's. Data as ``minkunet_waymo.py``.
"""
_base_ = ["./minkunet_waymo.py"]

max_epochs = 24
lr = 0.003
point_range = (-74.88, -74.88, -2.0, 74.88, 74.88, 4.0)

model = dict(
    _delete_=True, type="PointSegmentor", num_classes=22, ignore_index=-1, tanh_channels=(3,),
    loss_weights=dict(ce=1.0, lovasz=1.0),
    backbone=dict(type="DSVTSegBackbone", in_channels=4, d_model=192, nhead=8, dim_feedforward=384, set_size=48,
                  num_blocks=4, window_shape=(12, 12, 32), voxel_size=(0.32, 0.32, 0.1875), point_range=point_range),
    decode_head=dict(type="SegHead"))
train_dataloader = dict(batch_size=3, dataset=dict(point_range=point_range))
val_dataloader = dict(dataset=dict(point_range=point_range))
test_dataloader = val_dataloader
optim_wrapper = dict(_delete_=True, type="OptimWrapper",
                     optimizer=dict(type="AdamW", lr=lr, betas=(0.9, 0.99), weight_decay=0.05),
                     clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [dict(_delete_=True, type="OneCycleLR", eta_max=lr, pct_start=0.1, div_factor=10,
                        final_div_factor=1e4, by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
