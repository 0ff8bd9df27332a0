"""DSVT-P on Waymo (Wang et al., CVPR 2023), the authors' ``dsvt_plain_1f_onestage.yaml`` hyper-parameters.

Pillars 0.32 × 0.32 m over [-74.88, 74.88]² × [-2, 4] m → a 468 × 468 × 1 grid; dynamic pillar VFE [192, 192];
DSVT: one stage, 4 blocks × 2 layers (y-major then x-major sets), window 12 × 12 (shifted configuration
24 × 24, shift 6), set size 36, d_model 192, 8 heads, FFN 384, GELU; BEV ResNet [1, 2, 2] / [1, 2, 2] /
[128, 128, 256], up-sampled to 3 × 128; CenterHead at stride 1 with the IoU branch and IoU-rectified scores.
"""
default_scope = "perception3d"

class_names = ["Vehicle", "Pedestrian", "Cyclist"]
point_cloud_range = [-74.88, -74.88, -2.0, 74.88, 74.88, 4.0]
voxel_size = [0.32, 0.32, 6.0]
grid_size = [468, 468, 1]          # (X, Y, Z) = range / voxel
d_model = 192

model = dict(
    type="CenterPoint",
    voxel_encoder=dict(type="DynamicPillarVFE", voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                       num_point_features=5, num_filters=[192, 192], with_distance=False, use_absolute_xyz=True),
    backbone_3d=dict(
        type="DSVT", grid_size=grid_size,
        window_shape=[[12, 12, 1]], hybrid_factor=[2, 2, 1], shifts_list=[[[0, 0, 0], [6, 6, 0]]],
        set_info=[[36, 4]], d_model=[d_model], nhead=[8], dim_feedforward=[384], downsample_stride=[],
        activation="gelu", dropout=0.0, normalize_pos=False),
    map_to_bev=dict(type="PointPillarScatter", num_bev_features=d_model),
    backbone_2d=dict(type="BaseBEVResBackbone", in_channels=d_model, layer_nums=[1, 2, 2], layer_strides=[1, 2, 2],
                     num_filters=[128, 128, 256], upsample_strides=[1, 2, 4], num_upsample_filters=[128, 128, 128]),
    bbox_head=dict(
        type="CenterHead", in_channels=384, class_names=class_names, point_cloud_range=point_cloud_range,
        voxel_size=voxel_size[:2], out_size_factor=1, shared_conv_channels=64, head_conv_channels=64,
        num_head_convs=2, common_heads=dict(center=2, center_z=1, dim=3, rot=2), with_iou=True,
        gaussian_overlap=0.1, min_radius=2, max_objs=500, loss_cls_weight=1.0, loss_reg_weight=2.0,
        code_weights=[1.0] * 8,
        test_cfg=dict(score_thresh=0.1, topk=500, nms_type="rotate", nms_thr=[0.7, 0.6, 0.55], nms_per_class=True,
                      pre_max_size=4096, post_max_size=500, post_center_limit_range=[-80, -80, -10, 80, 80, 10],
                      iou_rectifier=[0.68, 0.71, 0.65])),
)
