"""SparseFusion on the built-in mini Waymo dataset with its surround cameras, sized for a 2-core CPU.

Data: the mini dataset generated with the surround rig (``generate_waymo_mini(surround_cameras=True)``: FRONT,
FRONT_LEFT, FRONT_RIGHT, 240 × 160 px, f = 257.5 px, 50° each, 5° overlaps; class-coloured objects) into
``data/waymo_mini_surround`` and converted with the cameras (``prepare_data``, first run only). Its LiDAR points
and boxes are byte-identical to the default mini dataset's (160 training / 40 validation frames).

Model: the LiDAR stages of ``centerpoint_voxel_waymo_mini.py`` (range ±32 m, voxels 0.2 × 0.2 × 0.25 m, half-width
sparse ResNet ending on 0.8 m BEV cells, SECOND-FPN 2 × 96) → TransFusion-L branch (100 queries, one decoder
layer); cameras: ResNet-18 from scratch + FPN (64 ch) on strides 8 and 16 (30 × 20 and 15 × 10 cells; the
projected LiDAR depth of the geometric transfer at stride 8, the semantic transfer samples stride 8) → 50 image
queries → view transformer; both transfers and CameraSE on; one fusion layer. Head width 64, 4 heads, FFN 128.
(The authors' finest level is stride 4; on a CPU its depth encoder and heat maps cost more than the rest of the
head, ``docs/model_zoo.md``.)

Schedule (both this and ``transfusion_l_waymo_mini.py``, the LiDAR-only ablation baseline, seed 0): AdamW, one-cycle
to lr 0.002 at 40 % (β₁ 0.95 ↔ 0.85), wd 0.01, grad clip 0.1 as the authors, batch 2, ``max_epochs`` = 10 epochs
(800 iterations; TransFusion-L's validation L1 mAP after 4 / 6 / 8 / 10 epochs: 0.10 / 0.42 / 0.71 / 0.82,
``docs/model_zoo.md``). This config trains everything jointly from scratch; the authors' two-stage recipe
(TransFusion-L first, then this model from its checkpoint with the LiDAR side frozen) is
``sparsefusion_waymo_mini_stage2.py``, with ``transfusion_l_waymo_mini_stage2.py`` as its same-schedule LiDAR-only
control. Augmentation: ±22.5° rotation and 0.95–1.05 scaling of the LiDAR frame (``lidar2cam`` / ``lidar2img``
follow), no flips (as the other mini configs).

    python tools/train.py configs/sparsefusion_waymo_mini.py
    python tools/test.py configs/sparsefusion_waymo_mini.py work_dirs/sparsefusion_waymo_mini/iter_800.pth
    python tools/visualize.py configs/sparsefusion_waymo_mini.py CKPT --frames 0 1   # BEV + each camera
"""
_base_ = ["./_base_/default_runtime.py", "./_base_/schedules/adamw_onecycle.py",
          "./_base_/datasets/waymo_3class.py"]

data_root = "{{fileDirname}}/../data/waymo_mini_surround/processed/"
prepare_data = dict(type="prepare_waymo_mini", root="{{fileDirname}}/../data/waymo_mini_surround",
                    gt_database=False, surround_cameras=True)

class_names = ["Car", "Pedestrian", "Cyclist"]
cameras = ["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT"]
point_cloud_range = [-32.0, -32.0, -2.0, 32.0, 32.0, 4.0]
voxel_size = [0.2, 0.2, 0.25]
max_epochs = 10
lr = 0.002

model = dict(
    type="SparseFusion",
    voxel_encoder=dict(type="DynamicVFE", voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                       num_point_features=5),
    backbone_3d=dict(type="VoxelResBackBone8x", in_channels=5, base_channels=8, out_channels=64,
                     blocks_per_stage=1, xy_strides=(2, 2, 1)),
    map_to_bev=dict(type="HeightCompression", num_bev_features=64),
    backbone_2d=dict(type="BaseBEVBackbone", in_channels=64, layer_nums=[1, 1], layer_strides=[1, 2],
                     num_filters=[64, 128], upsample_strides=[1, 2], num_upsample_filters=[96, 96]),
    img_backbone=dict(type="ImageResNet", depth=18, out_indices=(1, 2), pretrained=None),
    img_neck=dict(type="ImageFPN", in_channels=[128, 256], out_channels=64),
    head=dict(type="SparseFusionHead", in_channels=192, num_classes=len(class_names),
              pc_range=point_cloud_range,  # BEV cell size read off the LiDAR sparse tensor (BEVGrid)
              channels=64, img_channels=64, num_queries=100, num_img_queries=50, num_img_levels=2,
              num_heads=4, ffn_channels=128, dropout=0.1, use_camera=True, semantic_transfer=True,
              geometric_transfer=True, view_se=True, semantic_level=0, z_ref=0.8, max_det=100,
              semantic_residual=True, fusion_residual=True,
              code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2]))

dataset_type = "MultiViewDet3DDataset"
_pack = dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d", "images", "cam2img",
                                           "lidar2cam", "sparse_depth", "cam_names"])
train_pipeline = [
    dict(type="MultiModalGlobalRotScaleTrans", rot_range=[-0.39269908, 0.39269908], scale_ratio_range=[0.95, 1.05],
         translation_std=[0, 0, 0]),
    dict(type="SparseDepthMap", stride=8, time_lag_dim=None),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    _pack,
]
test_pipeline = [
    dict(type="SparseDepthMap", stride=8, time_lag_dim=None),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    _pack,
]
train_dataloader = dict(
    batch_size=2, num_workers=0,
    dataset=dict(dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline, cameras=cameras)))
val_dataloader = dict(num_workers=0, dataset=dict(type=dataset_type, data_root=data_root, pipeline=test_pipeline,
                                                  cameras=cameras))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=lr), clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=100, max_keep_ckpts=2), logger=dict(interval=10))
