"""CenterPoint-Voxel on Waymo, the official hyper-parameters (OpenPCDet ``waymo_models/centerpoint.yaml``).

Range [-75.2, 75.2]² × [-2, 4] m, voxels 0.1 × 0.1 × 0.15 m (1504 × 1504 × 40), 5 point features, GT sampling
(Car 15, Pedestrian 10, Cyclist 10), flips, ±45° rotation, 0.95–1.05 scaling; batch 4 per GPU, 30 epochs,
AdamW one-cycle lr 0.003, wd 0.01, grad clip 10. Data: ``tools/create_data.py waymo --root data/waymo
--out data/waymo/processed --gt-database``.
"""
_base_ = ["./_base_/default_runtime.py", "./_base_/schedules/adamw_onecycle.py",
          "./_base_/datasets/waymo_3class.py"]

# Model: MeanVFE on dynamic voxels, VoxelResBackBone8x, HeightCompression (128 × 2 = 256), SECOND-FPN
# [5, 5] / [1, 2] / [128, 256] → 2 × 256, one class-agnostic CenterHead task at stride 8, rotated NMS 0.7.
class_names = ["Car", "Pedestrian", "Cyclist"]
point_cloud_range = [-75.2, -75.2, -2.0, 75.2, 75.2, 4.0]
voxel_size = [0.1, 0.1, 0.15]
model = dict(
    type="CenterPoint",
    voxel_encoder=dict(type="DynamicVFE", voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                       num_point_features=5),
    backbone_3d=dict(type="VoxelResBackBone8x", in_channels=5, base_channels=16, out_channels=128),
    map_to_bev=dict(type="HeightCompression", num_bev_features=256),
    backbone_2d=dict(type="BaseBEVBackbone", in_channels=256, layer_nums=[5, 5], layer_strides=[1, 2],
                     num_filters=[128, 256], upsample_strides=[1, 2], num_upsample_filters=[256, 256]),
    bbox_head=dict(
        type="CenterHead", in_channels=512, class_names=class_names, tasks=[class_names],
        point_cloud_range=point_cloud_range,  # the BEV grid (0.1 m voxels × stride 8) comes from the backbone
        shared_conv_channels=64, head_conv_channels=64, num_head_convs=2,
        common_heads=dict(center=2, center_z=1, dim=3, rot=2), gaussian_overlap=0.1, min_radius=2, max_objs=500,
        loss_cls_weight=1.0, loss_reg_weight=2.0, code_weights=[1.0] * 8,
        test_cfg=dict(score_thresh=0.1, topk=500, nms_type="rotate", nms_thr=0.7, nms_per_class=False,
                      pre_max_size=4096, post_max_size=500, post_center_limit_range=point_cloud_range)))
