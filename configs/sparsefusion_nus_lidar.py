"""SparseFusion's first stage on nuScenes: the LiDAR-only detector (TransFusion-L) that the fusion stage
(``configs/sparsefusion_nus.py``) starts from, with the authors' hyper-parameters
(yichen928/SparseFusion ``configs/transfusion_nusc_voxel_L.py``).

The same LiDAR backbone and LiDAR branch as the fusion model (so its checkpoint loads there as ``load_from``), no
cameras. Schedule: AdamW lr 1e-4, wd 0.01, one cycle to 1e-3 at 40 % then to 1e-8, β₁ 0.95 ↔ 0.85, grad clip
0.1, 20 epochs, batch 2 per GPU on 8 GPUs. The authors also use GT sampling and class-balanced resampling
(CBGS) in this stage; neither has a nuScenes database here yet, so they are left out.
"""
_base_ = ["./sparsefusion_nus.py"]

lr = 1e-4
max_epochs = 20
model = dict(freeze_lidar=False, img_backbone=None, img_neck=None,
             head=dict(use_camera=False, semantic_transfer=False, geometric_transfer=False))

_pack = dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"])
train_pipeline = [
    dict(type="GlobalRotScaleTrans", rot_range=[-0.785, 0.785], scale_ratio_range=[0.9, 1.1],
         translation_std=[0.5, 0.5, 0.5]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="PointsRangeFilter", point_cloud_range={{_base_.point_cloud_range}}),
    dict(type="ObjectRangeFilter", point_cloud_range={{_base_.point_cloud_range}}),
    dict(type="PointShuffle"),
    _pack,
]
test_pipeline = [dict(type="PointsRangeFilter", point_cloud_range={{_base_.point_cloud_range}}), _pack]
train_dataloader = dict(batch_size=2, dataset=dict(cameras=None, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(cameras=None, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=lr), paramwise_cfg=dict(_delete_=True))
param_scheduler = [dict(type="OneCycleLR", eta_max=10 * lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs)
load_from = None
