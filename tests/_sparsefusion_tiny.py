"""A tiny SparseFusion build and a fixed synthetic 2-camera batch for the CPU tests (seconds, not minutes)."""
import math

import numpy as np
import torch

PC_RANGE = [-8.0, -8.0, -2.0, 8.0, 8.0, 2.0]
VOXEL = [0.5, 0.5, 0.1]


def tiny_cfg(use_camera=True, semantic=True, geometric=True, backbone="resnet"):
    """backbone: "resnet" (sparse-conv VoxelResBackBone8x, BEV 8 × 8 of 2 m) or "dsvt" (pillars → DSVT → BEV
    ResNet, BEV 16 × 16 of 1 m)."""
    lidar = dict(
        voxel_encoder=dict(type="DynamicVFE", voxel_size=VOXEL, point_cloud_range=PC_RANGE, num_point_features=4),
        backbone_3d=dict(type="VoxelResBackBone8x", in_channels=4, base_channels=4, out_channels=16,
                         blocks_per_stage=1, xy_strides=(2, 2, 1)),
        map_to_bev=dict(type="HeightCompression"))
    bev_channels, stride = 32, 4
    if backbone == "dsvt":
        lidar = dict(
            voxel_encoder=dict(type="DynamicPillarVFE", voxel_size=[0.5, 0.5, 4.0], point_cloud_range=PC_RANGE,
                               num_point_features=4, num_filters=[16, 16], with_distance=False,
                               use_absolute_xyz=True),
            backbone_3d=dict(type="DSVT", grid_size=[32, 32, 1], window_shape=[[8, 8, 1]], hybrid_factor=[2, 2, 1],
                             shifts_list=[[[0, 0, 0], [4, 4, 0]]], set_info=[[16, 1]], d_model=[16], nhead=[2],
                             dim_feedforward=[32], downsample_stride=[], activation="gelu", dropout=0.0,
                             normalize_pos=False),
            map_to_bev=dict(type="PointPillarScatter", num_bev_features=16),
            backbone_2d=dict(type="BaseBEVResBackbone", in_channels=16, layer_nums=[1, 1], layer_strides=[2, 2],
                             num_filters=[16, 32], upsample_strides=[1, 2], num_upsample_filters=[16, 16]))
        bev_channels, stride = 32, 2
    return dict(
        type="SparseFusion", **lidar,
        img_backbone=dict(type="ImageResNet", depth=18, out_indices=(1, 2)),
        img_neck=dict(type="ImageFPN", in_channels=[128, 256], out_channels=32),
        head=dict(type="SparseFusionHead", in_channels=bev_channels, num_classes=3, pc_range=PC_RANGE,
                  voxel_size=VOXEL[:2], out_size_factor=stride, channels=32, img_channels=32, num_queries=12,
                  num_img_queries=12, num_img_levels=2, num_heads=4, ffn_channels=64, dropout=0.0, use_camera=use_camera,
                  semantic_transfer=semantic, geometric_transfer=geometric, semantic_level=0, z_ref=0.0))


def cameras(n=2, h=64, w=96):
    """n cameras at the origin looking along +x rotated by 90° steps (yaw), f = 60 px."""
    k = np.array([[60.0, 0, w / 2], [0, 60.0, h / 2], [0, 0, 1]])
    l2c = []
    for i in range(n):
        a = i * math.pi / 2
        # LiDAR (x fwd, y left, z up) → camera (x right, y down, z fwd) for a camera looking along yaw a
        fwd = np.array([math.cos(a), math.sin(a), 0.0])
        right = np.array([math.sin(a), -math.cos(a), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        m = np.eye(4)
        m[:3, :3] = np.stack([right, down, fwd])
        l2c.append(m)
    return np.stack([k] * n), np.stack(l2c)


def tiny_batch(seed=0, b=2, n_cam=2, h=64, w=96):
    g = torch.Generator().manual_seed(seed)
    points, imgs, samples = [], [], []
    cam2img, l2c = cameras(n_cam, h, w)
    for i in range(b):
        boxes = torch.tensor([[4.0 + i, 0.5, -1.0, 2.0, 1.0, 1.5, 0.3, 0.0, 0.0],
                              [-0.5, 4.5, -1.0, 1.0, 1.0, 1.8, 1.2, 0.5, 0.0]])
        pts = []
        for bx in boxes:
            p = torch.rand(60, 3, generator=g) - 0.5
            p = p * bx[3:6] + bx[:3] + torch.tensor([0, 0, bx[5] / 2])
            pts.append(p)
        ground = torch.rand(200, 3, generator=g) * torch.tensor([16.0, 16.0, 0.0]) + torch.tensor([-8.0, -8.0, -1.9])
        p = torch.cat(pts + [ground])
        points.append(torch.cat([p, torch.rand(len(p), 1, generator=g)], 1))
        imgs.append(torch.rand(n_cam, 3, h, w, generator=g))
        depth = torch.zeros(n_cam, 2, h // 4, w // 4)
        depth[:, 1, ::3, ::3] = 1.0
        samples.append(dict(gt_bboxes_3d=boxes, gt_labels_3d=torch.tensor([0, 1]), cam2img=cam2img,
                            lidar2cam=l2c, sparse_depth=depth))
    return dict(points=points, imgs=imgs), samples
