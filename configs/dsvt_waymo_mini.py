"""DSVT-P on the built-in mini Waymo dataset, sized for a 2-core CPU (inherits ``dsvt_waymo.py``): the main job's
recipe (``scripts/main_job.sh``).

Same architecture (dynamic pillar VFE on tanh'd intensity / elongation, DSVT blocks with rotated sets over hybrid
12 × 12 / 24 × 24 windows and set size 36, BEV ResNet, IoU-rectified CenterHead with the authors' BN / init);
changes for a CPU: range ±32 m (the mini dataset labels boxes within 32 m), 0.4 m pillars → a 160 × 160 grid,
d_model 32 (4 heads, FFN 64), 2 blocks (one per window configuration), PFN [32, 32], a narrower BEV ResNet
([1, 1] / strides [2, 2] / [64, 128] → 2 × 64) and the head at stride 2 (0.8 m cells; shared conv 64 as the
paper's, regression / heat-map towers 32 wide instead of 64, which saves ~12 % of an iteration), batch 2,
12 epochs over 160 training frames (each its own street scene), one-cycle peak lr 0.008. The DIoU box loss and
the augmentation-free last epoch are the paper's (inherited).

Augmentation: ±22.5° rotation (±45° in the paper; the short schedule converges faster with less) and
0.95–1.05 scaling, but no flips and no GT sampling (GT sampling cost ~1 s per frame here).

Where an iteration goes (``bench/profile_dsvt_mini.py``, 1 thread, batch 2): before this recipe the head's
64-wide towers took a third of the time, the BEV convs 28 %, DSVT attention 20 %, the VFE 14 %; the set
partition (0.5 %) and data loading (2 %) are not worth caching. What limits the vehicle AP (IoU 0.7) is the box, not the detection:
on a model of the earlier recipe (32-wide BEV/head, 12 epochs) AP was 0.82 at IoU 0.5 against 0.54 at 0.7; giving
the matched boxes their true yaw, z, size or centre lifted it by 0.09 / 0.09 / 0.03 / 0.15, and about 12 % of
its true positives pointed backwards (APH/AP 0.86): the cars of the mini data were nearly front/back symmetric.
Since generator version 7 a car's cabin sits towards its rear, as on real cars: with this recipe APH/AP is
0.98 for vehicles (AP per seed and thread count: ``docs/model_zoo.md``).
The rest is precision (median yaw error of matched cars 8° mod π): 18 epochs of the 32-wide variant reached
vehicle 0.650 on the earlier data, so a longer schedule helps, but it does not fit the main job's 10 minutes.
The dataset is generated and converted on first use (``prepare_data``).
"""
_base_ = ["./dsvt_waymo.py"]

data_root = "{{fileDirname}}/../data/waymo_mini/processed/"
prepare_data = dict(_delete_=True, type="prepare_waymo_mini", root="{{fileDirname}}/../data/waymo_mini",
                    gt_database=False)  # no GT sampling in this recipe

class_names = ["Car", "Pedestrian", "Cyclist"]
point_cloud_range = [-32.0, -32.0, -2.0, 32.0, 32.0, 4.0]
voxel_size = [0.4, 0.4, 6.0]
d_model = 32
max_epochs = 12
lr = 0.008

model = dict(
    bev_channels_last=True,  # oneDNN's channels-last convolutions: the BEV backbone + head ~15 % faster on CPU
    voxel_encoder=dict(voxel_size=voxel_size, point_cloud_range=point_cloud_range, num_filters=[32, 32]),
    backbone_3d=dict(grid_size=[160, 160, 1], set_info=[[36, 2]], d_model=[d_model], nhead=[4],
                     dim_feedforward=[64]),
    map_to_bev=dict(num_bev_features=d_model),
    backbone_2d=dict(in_channels=d_model, layer_nums=[1, 1], layer_strides=[2, 2], num_filters=[64, 128],
                     upsample_strides=[1, 2], num_upsample_filters=[64, 64]),
    bbox_head=dict(in_channels=128, point_cloud_range=point_cloud_range,  # BEV cells 0.4 m × 2 (from the backbone)
                   shared_conv_channels=64, head_conv_channels=32,
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
train_dataloader = dict(batch_size=2, num_workers=0,
                        dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=1000), logger=dict(interval=10))
custom_hooks = [dict(type="RNGStateHook"), dict(type="ProgressHook", interval=10),
                dict(type="DisableAugHook", transforms=["GlobalRotScaleTrans"], num_last_epochs=1)]
