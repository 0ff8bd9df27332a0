"""DSVT-P on Waymo (Wang et al., CVPR 2023), the authors' ``dsvt_plain_1f_onestage.yaml`` hyper-parameters.

Pillars 0.32 × 0.32 m over [-74.88, 74.88]² × [-2, 4] m → a 468 × 468 × 1 grid; dynamic pillar VFE [192, 192]
on (x, y, z, tanh(intensity), tanh(elongation)) (the authors' loader applies the tanh);
DSVT: one stage, 4 blocks × 2 layers (y-major then x-major sets), window 12 × 12 (shifted configuration
24 × 24, shift 6), set size 36, d_model 192, 8 heads, FFN 384, GELU; BEV ResNet [1, 2, 2] / [1, 2, 2] /
[128, 128, 256], up-sampled to 3 × 128; CenterHead at stride 1 with the IoU branch and IoU-rectified scores
(rectifier 0.68 / 0.71 / 0.65, per-class NMS 0.7 / 0.6 / 0.55) and the DIoU box loss (``IOU_REG_LOSS``).
Schedule: Adam one-cycle, lr 0.003, wd 0.05, 24 epochs, batch 3 per GPU, grad clip 10. Augmentation: GT
sampling (15 / 10 / 10), flips, ±45°, ×0.95–1.05, all switched off for the last epoch (``DisableAugmentationHook``).

Data: ``python tools/create_data.py waymo --root data/waymo --gt-database`` (infos in data/waymo/processed/).
Without it the run stops at once and says so; ``configs/dsvt_waymo_mini.py`` runs on the built-in mini set.
"""
_base_ = ["./_base_/default_runtime.py", "./_base_/schedules/adamw_onecycle.py",
          "./_base_/datasets/waymo_3class.py"]

class_names = ["Car", "Pedestrian", "Cyclist"]          # mmdet3d's Waymo names (Vehicle in the metric)
point_cloud_range = [-74.88, -74.88, -2.0, 74.88, 74.88, 4.0]
voxel_size = [0.32, 0.32, 6.0]
grid_size = [468, 468, 1]          # (X, Y, Z) = range / voxel
d_model = 192
data_root = "data/waymo/processed/"

# Stop before anything is built when the Waymo infos are missing (see DSVT's require_prepared_data).
prepare_data = dict(type="require_prepared_data", data_root=data_root,
                    files=["waymo_infos_train.pkl", "waymo_infos_val.pkl", "waymo_dbinfos_train.pkl"],
                    how="python tools/create_data.py waymo --root data/waymo --gt-database",
                    mini_config="configs/dsvt_waymo_mini.py")

model = dict(
    type="CenterPoint",
    voxel_encoder=dict(type="DynamicPillarVFE", voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                       num_point_features=5, num_filters=[192, 192], with_distance=False, use_absolute_xyz=True,
                       points_tanh_dim=[3, 4]),     # tanh(intensity), tanh(elongation), as the authors' loader
    backbone_3d=dict(
        type="DSVT", grid_size=grid_size,
        window_shape=[[12, 12, 1]], hybrid_factor=[2, 2, 1], shifts_list=[[[0, 0, 0], [6, 6, 0]]],
        set_info=[[36, 4]], d_model=[d_model], nhead=[8], dim_feedforward=[384], downsample_stride=[],
        activation="gelu", dropout=0.0, normalize_pos=False),
    map_to_bev=dict(type="PointPillarScatter", num_bev_features=d_model),
    backbone_2d=dict(type="BaseBEVResBackbone", in_channels=d_model, layer_nums=[1, 2, 2], layer_strides=[1, 2, 2],
                     num_filters=[128, 128, 256], upsample_strides=[1, 2, 4], num_upsample_filters=[128, 128, 128]),
    bbox_head=dict(
        type="CenterHead", in_channels=384, class_names=class_names, tasks=[class_names],
        point_cloud_range=point_cloud_range,  # the BEV grid (0.32 m pillars, stride 1) comes from the backbone
        shared_conv_channels=64, head_conv_channels=64, num_head_convs=2,
        common_heads=dict(center=2, center_z=1, dim=3, rot=2), with_iou=True, iou_reg_loss=True,
        gaussian_overlap=0.1, min_radius=2, max_objs=500, loss_cls_weight=1.0, loss_reg_weight=2.0,
        code_weights=[1.0] * 8,
        test_cfg=dict(score_thresh=0.1, topk=500, nms_type="rotate", nms_thr=[0.7, 0.6, 0.55], nms_per_class=True,
                      pre_max_size=4096, post_max_size=500, post_center_limit_range=[-80, -80, -10, 80, 80, 10],
                      iou_rectifier=[0.68, 0.71, 0.65])),
)

db_sampler = dict(info_path=data_root + "waymo_dbinfos_train.pkl", data_root=data_root, classes=class_names,
                  sample_groups=dict(Car=15, Pedestrian=10, Cyclist=10),
                  min_points=dict(Car=5, Pedestrian=10, Cyclist=10))
train_pipeline = [
    dict(type="ObjectSample", db_sampler=db_sampler),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.5, 0.5, 0.5]),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
test_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
train_dataloader = dict(batch_size=3, dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

lr = 0.003
max_epochs = 24
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=lr, betas=(0.95, 0.99), weight_decay=0.05),
                     clip_grad=dict(max_norm=10, norm_type=2))
# adam_onecycle: PCT_START 0.1, DIV_FACTOR 100, MOMS [0.95, 0.85]
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.1, div_factor=100, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.1, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# DSVT's DisableAugmentationHook: the last epoch trains without GT sampling, flips and global rot/scale/trans
custom_hooks = [dict(type="RNGStateHook"), dict(type="ProgressHook", interval=20),
                dict(type="DisableAugHook", transforms=["ObjectSample", "RandomFlip3D", "GlobalRotScaleTrans"],
                     num_last_epochs=1)]
