"""MinkUNet on SemanticKITTI with the reference recipe of SPVNAS (``configs/semantic_kitti/default.yaml``,
``core/models/semantic_kitti/minkunet.py``; mmdet3d's ``minkunet18_w32`` is the same network).

Network (cr 1.0): stem 32, encoder (32, 64, 128, 256) × 2 residual blocks with k2s2 downs, decoder (256, 128, 96,
96) × 2 with k2 inverse convs, Linear(96 → 19): 21.72 M parameters (SPVNAS model zoo: 21.7 M,
``SemanticKITTI_val_MinkUNet@114GMACs``).  Voxels 0.05 m; every point is kept (clipped to ±100 m, ±20 m in z,
far outside any KITTI return); at most 80,000 points per training scan.  Training: SGD lr 0.24, momentum 0.9,
Nesterov, weight decay 1e-4, one warm-up epoch then cosine, 15 epochs, batch 16 (2 per GPU × 8), cross-entropy;
augmentation: z rotation in [0, 2π), scale 0.95–1.05.  Dataset / evaluation as ``e3dsnn_semantickitti.py``.
"""
_base_ = ["./e3dsnn_semantickitti.py"]

max_epochs = 15
batch_size = 2
point_range = (-100.0, -100.0, -20.0, 100.0, 100.0, 20.0)

model = dict(
    _delete_=True, type="PointSegmentor", num_classes=19, ignore_index=-1, loss_weights=dict(ce=1.0),
    backbone=dict(type="MinkUNetBackbone", in_channels=4, base_channels=32, encoder_channels=(32, 64, 128, 256),
                  encoder_blocks=(2, 2, 2, 2), decoder_channels=(256, 128, 96, 96), decoder_blocks=(2, 2, 2, 2),
                  voxel_size=(0.05, 0.05, 0.05), point_range=point_range),
    decode_head=dict(type="SegHead"))

train_dataloader = dict(
    batch_size=batch_size,
    dataset=dict(_delete_=True, type="SemanticKITTIDataset", data_root={{_base_.data_root}}, split="train",
                 point_range=point_range, range_mode="clip", max_points=80000,
                 augment=dict(rotate_z=(0.0, 6.283185307179586), scale=(0.95, 1.05))))
val_dataloader = dict(dataset=dict(point_range=point_range))
test_dataloader = val_dataloader

optim_wrapper = dict(_delete_=True, type="OptimWrapper",
                     optimizer=dict(type="SGD", lr=0.24, momentum=0.9, nesterov=True, weight_decay=1e-4))
param_scheduler = [dict(type="LinearLR", start_factor=1e-3, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
                   dict(type="CosineAnnealingLR", T_max=max_epochs - 1, eta_min=0.0, by_epoch=True, begin=1,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=1)
