"""SparseFusion on nuScenes, the authors' hyper-parameters (yichen928/SparseFusion
``configs/sparsefusion_nusc_voxel_LC_r50.py``: 70.5 mAP / 72.8 NDS on val).

Range [-54, 54]² × [-5, 3] m, voxels 0.075 × 0.075 × 0.2 m (1440 × 1440 × 41), 10 sweeps with the time lag as
5th feature; LiDAR: sparse-conv ResNet (VoxelResBackBone8x = their SparseEncoder with basic blocks) → SECOND +
SECOND-FPN (2 × 256) → 180 × 180 BEV (stride 8); cameras: 6 × ResNet-50 (``frozen_stages=1``, ``norm_eval``) +
FPN(256), images 800 × 448; head: 128 channels, 8 heads, FFN 256, dropout 0.1, 200 LiDAR + 200 camera queries, one
decoder layer per branch and one fusion layer, both transfers on, CameraSE on.
Schedule (their fusion stage): AdamW lr 1e-4 (×0.1 for the image backbone/neck), wd 0.01, one-cycle to 8e-4 at
40 % then to 1e-8, β₁ 0.95 ↔ 0.85, grad clip 0.1, 6 epochs, batch 4 per GPU on 4 GPUs, starting from a LiDAR-only
TransFusion-L checkpoint (their first stage, ``configs/sparsefusion_nus_lidar.py``: the LiDAR model alone, 20
epochs) with the LiDAR backbone and detector frozen. Set ``load_from`` to that checkpoint and ``model.img_backbone.pretrained`` to a local
torchvision ResNet-50 file; nothing is downloaded.
Data: ``tools/create_data.py nuscenes --root data/nuscenes``. Class order: mmdet3d's (the reader's), so
pedestrian = 7 and traffic_cone = 8 keep every heat-map cell (their nuScenes NMS exception).
"""
_base_ = ["./_base_/default_runtime.py", "./_base_/schedules/adamw_onecycle.py"]

class_names = ["car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle", "pedestrian",
               "traffic_cone", "barrier"]
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
voxel_size = [0.075, 0.075, 0.2]
img_size = (448, 800)  # (H, W)
lr = 1e-4
max_epochs = 6

model = dict(
    type="SparseFusion",
    freeze_lidar=True,
    voxel_encoder=dict(type="DynamicVFE", voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                       num_point_features=5),
    backbone_3d=dict(type="VoxelResBackBone8x", in_channels=5, base_channels=16, out_channels=128),
    map_to_bev=dict(type="HeightCompression", num_bev_features=256),
    backbone_2d=dict(type="BaseBEVBackbone", in_channels=256, layer_nums=[5, 5], layer_strides=[1, 2],
                     num_filters=[128, 256], upsample_strides=[1, 2], num_upsample_filters=[256, 256]),
    img_backbone=dict(type="ImageResNet", depth=50, out_indices=(0, 1, 2, 3), frozen_stages=1, norm_eval=True,
                      pretrained=None),
    img_neck=dict(type="ImageFPN", in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5),
    head=dict(type="SparseFusionHead", in_channels=512, num_classes=len(class_names),
              pc_range=point_cloud_range,  # BEV cell size read off the LiDAR sparse tensor (BEVGrid)
              channels=128, img_channels=256, num_queries=200, num_img_queries=200, num_img_levels=4,
              num_heads=8, ffn_channels=256, dropout=0.1, use_camera=True, semantic_transfer=True,
              geometric_transfer=True, view_se=True, semantic_level=1, z_ref=0.0, no_nms_classes=(7, 8),
              code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2], max_det=200))

dataset_type = "NuScenesDataset"
data_root = "data/nuscenes/"
_pack = dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d", "images", "cam2img",
                                           "lidar2cam", "sparse_depth", "cam_names"])
train_pipeline = [
    dict(type="MultiModalGlobalRotScaleTrans", rot_range=[-0.785, 0.785], scale_ratio_range=[0.9, 1.1],
         translation_std=[0.5, 0.5, 0.5]),
    dict(type="MultiModalRandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="ImageResizeCropFlip", final_dim=img_size, resize_lim=(0.45, 0.55), rand_flip=True),
    dict(type="SparseDepthMap", stride=4),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    _pack,
]
test_pipeline = [
    dict(type="ImageResizeCropFlip", final_dim=img_size, resize_lim=(0.5, 0.5), test_mode=True),
    dict(type="SparseDepthMap", stride=4),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    _pack,
]
train_dataloader = dict(batch_size=4, num_workers=4, persistent_workers=True,
                        sampler=dict(type="DefaultSampler", shuffle=True),
                        dataset=dict(type=dataset_type, data_root=data_root, ann_file="nuscenes_infos_train.pkl",
                                     sweeps_num=10, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=4, persistent_workers=True,
                      sampler=dict(type="DefaultSampler", shuffle=False),
                      dataset=dict(type=dataset_type, data_root=data_root, ann_file="nuscenes_infos_val.pkl",
                                   sweeps_num=10, pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="NuScenesMetric")
test_evaluator = val_evaluator

optim_wrapper = dict(type="OptimWrapper",
                     optimizer=dict(type="AdamW", lr=lr, betas=(0.95, 0.99), weight_decay=0.01),
                     paramwise_cfg=dict(custom_keys={"img_backbone": dict(lr_mult=0.1),
                                                     "img_neck": dict(lr_mult=0.1)}),
                     clip_grad=dict(max_norm=0.1, norm_type=2))
# mmcv's cyclic policy of the authors: target_ratio (8, 1e-4), step_ratio_up 0.4 = one cycle 1e-4 → 8e-4 → 1e-8
param_scheduler = [dict(type="OneCycleLR", eta_max=8 * lr, pct_start=0.4, div_factor=8, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(type="ExactEpochBasedTrainLoop", max_epochs=max_epochs, val_interval=1)
load_from = None  # the checkpoint of configs/sparsefusion_nus_lidar.py (TransFusion-L, the first stage)
