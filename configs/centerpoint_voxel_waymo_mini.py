"""CenterPoint-Voxel on the built-in mini Waymo dataset, sized for a 2-core CPU (inherits the official config).

Changes from ``centerpoint_voxel_waymo.py``: range ±32 m (the mini dataset labels boxes within 32 m), voxels
0.2 × 0.2 × 0.25 m (320 × 320 × 24), and a half-width 3D backbone with one SubM block per stage (8 → 64 ch; the
pure-PyTorch sparse convs dominate the CPU time). Its last down-sampling (conv4) keeps x/y
(``xy_strides=(2, 2, 1)``), so the backbone ends on the official 0.8 m cell (stride 4 of 0.2 m voxels instead of
stride 8 of 0.1 m). Then a SECOND-FPN with one block per level ([1, 1] / strides [1, 2] / [64, 128] → 2 × 96)
and the head on those 80 × 80 cells. BN momentum 0.1, batch 1, 12 epochs over the 160 training frames (1,920
steps), one-cycle peak lr 0.008, the last epoch without augmentation (DSVT's DisableAugmentationHook), no
worker processes. Adam's β₁ is not cycled (``docs/model_zoo.md`` has what it measured and what was tried).

Augmentation: ±22.5° rotation (as ``dsvt_waymo_mini.py``) and 0.95–1.05 scaling, no flips and no GT sampling
(see ``dsvt_waymo_mini.py``: on the mini streets the side of the road is what tells a car's heading, and flips
made the heading targets a coin toss). The dataset is generated and converted on first use (``prepare_data``).
"""
_base_ = ["./centerpoint_voxel_waymo.py"]

data_root = "{{fileDirname}}/../data/waymo_mini/processed/"
prepare_data = dict(type="prepare_waymo_mini", root="{{fileDirname}}/../data/waymo_mini", gt_database=False)

class_names = ["Car", "Pedestrian", "Cyclist"]
point_cloud_range = [-32.0, -32.0, -2.0, 32.0, 32.0, 4.0]
voxel_size = [0.2, 0.2, 0.25]
max_epochs = 12
lr = 0.008

model = dict(
    bn_momentum=0.1,
    voxel_encoder=dict(voxel_size=voxel_size, point_cloud_range=point_cloud_range),
    backbone_3d=dict(base_channels=8, out_channels=64, blocks_per_stage=1, xy_strides=(2, 2, 1)),
    map_to_bev=dict(num_bev_features=64),
    backbone_2d=dict(in_channels=64, layer_nums=[1, 1], layer_strides=[1, 2], num_filters=[64, 128],
                     upsample_strides=[1, 2], num_upsample_filters=[96, 96]),
    bbox_head=dict(in_channels=192, point_cloud_range=point_cloud_range,  # BEV cells: 0.2 m × 8 / 2 = 0.8 m
                   test_cfg=dict(post_center_limit_range=point_cloud_range)))

train_pipeline = [
    dict(type="GlobalRotScaleTrans", rot_range=[-0.39269908, 0.39269908], scale_ratio_range=[0.95, 1.05],
         translation_std=[0, 0, 0]),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
test_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
train_dataloader = dict(batch_size=1, num_workers=0,
                        dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=100, max_keep_ckpts=2), logger=dict(interval=10))
custom_hooks = [dict(type="RNGStateHook"), dict(type="ProgressHook", interval=10),
                dict(type="DisableAugHook", transforms=["GlobalRotScaleTrans"], num_last_epochs=1)]
