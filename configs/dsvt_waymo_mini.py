"""DSVT-P on the built-in mini Waymo dataset, sized for a 2-core CPU (inherits ``dsvt_waymo.py``).

Same architecture family and voxel size (0.32 m pillars, 12 × 12 windows with the shifted 24 × 24
configuration, rotated sets of 36, attention blocks + BEV ResNet + IoU-rectified CenterHead at stride 1);
changes for a CPU: range ±32 m (the mini dataset labels boxes within 32 m) → a 200 × 200 grid, d_model 64
(4 heads, FFN 128), 2 blocks (one per window configuration), PFN [64, 64], a narrower BEV ResNet
([1, 1, 1] / [64, 64, 128] → 3 × 64), fewer GT-sampling objects, batch 2, 40 training frames. The dataset is
generated and converted on first use (``prepare_data``).
"""
_base_ = ["./dsvt_waymo.py"]

data_root = "{{fileDirname}}/../data/waymo_mini/processed/"
prepare_data = dict(_delete_=True, type="prepare_waymo_mini", root="{{fileDirname}}/../data/waymo_mini")

class_names = ["Car", "Pedestrian", "Cyclist"]
point_cloud_range = [-32.0, -32.0, -2.0, 32.0, 32.0, 4.0]
voxel_size = [0.4, 0.4, 6.0]
d_model = 32
out_size_factor = 2
max_epochs = 10
lr = 0.003

model = dict(
    voxel_encoder=dict(voxel_size=voxel_size, point_cloud_range=point_cloud_range, num_filters=[32, 32]),
    backbone_3d=dict(grid_size=[160, 160, 1], set_info=[[36, 2]], d_model=[d_model], nhead=[4],
                     dim_feedforward=[64]),
    map_to_bev=dict(num_bev_features=d_model),
    backbone_2d=dict(in_channels=d_model, layer_nums=[1, 1], layer_strides=[2, 2], num_filters=[64, 128],
                     upsample_strides=[1, 2], num_upsample_filters=[64, 64]),
    bbox_head=dict(in_channels=128, point_cloud_range=point_cloud_range, voxel_size=voxel_size[:2],
                   out_size_factor=out_size_factor, shared_conv_channels=32, head_conv_channels=32,
                   test_cfg=dict(post_center_limit_range=point_cloud_range)))

db_sampler = dict(info_path=data_root + "waymo_dbinfos_train.pkl", data_root=data_root, classes=class_names,
                  sample_groups=dict(Car=20, Pedestrian=12, Cyclist=6),
                  min_points=dict(Car=5, Pedestrian=5, Cyclist=5))
train_pipeline = [
    dict(type="ObjectSample", db_sampler=db_sampler),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816], scale_ratio_range=[0.95, 1.05],
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
train_dataloader = dict(batch_size=2, num_workers=0,
                        dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=1000), logger=dict(interval=10))
custom_hooks = [dict(type="RNGStateHook"), dict(type="ProgressHook", interval=10)]
