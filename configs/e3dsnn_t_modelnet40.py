"""E3DSNN-T on ModelNet40 (resampled, with normals): the authors' model and schedule
(bollossom/E-3DSNN ``cls-E3DSNN-v1m1-0-T.py``; Pointcept-based).

Model: 6 input channels (x, y, z, nx, ny, nz), stem 16, stages [16, 32, 64, 128] × 1 block, k2s2 downs,
1×1 conv to 40 classes, mean over voxels — 1,874,216 parameters. Voxels (GridSample) of 0.01 on
unit-sphere-normalised shapes. Schedule: batch 16, 300 epochs, SGD (lr 0.1, momentum 0.9, nesterov,
weight decay 1e-3), MultiStep ×0.1 at 60 % and 80 %, CE with label smoothing 0.2; augmentation
RandomScale (0.9, 1.1) + RandomShift ±0.2.

Data: ``data/modelnet40_normal_resampled`` (``modelnet40_shape_names.txt``, ``modelnet40_{train,test}.txt``,
``<class>/<item>.txt``) — not shipped (licence); see ``perception3d/datasets/modelnet40.py``.
"""
default_scope = "perception3d"

num_classes = 40
max_epochs = 300
batch_size = 16
data_root = "data/modelnet40_normal_resampled"
voxel_size = (0.01, 0.01, 0.01)
point_range = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
embed_channels = 16
enc_channels = (16, 32, 64, 128)

model = dict(
    type="PointClassifier",
    label_smoothing=0.2,
    backbone=dict(type="E3DSNN", in_channels=6, num_classes=num_classes, embed_channels=embed_channels,
                  enc_channels=enc_channels, enc_depth=(1, 1, 1, 1), voxel_size=voxel_size,
                  point_range=point_range))

train_dataloader = dict(
    batch_size=batch_size, num_workers=4, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="ModelNet40Dataset", data_root=data_root, split="train",
                 augment=dict(scale=(0.9, 1.1), shift=0.2)))
val_dataloader = dict(
    batch_size=batch_size, num_workers=4, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="ModelNet40Dataset", data_root=data_root, split="test"))
test_dataloader = val_dataloader
val_evaluator = dict(type="ClsAccuracyMetric", num_classes=num_classes)
test_evaluator = val_evaluator

train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

optim_wrapper = dict(type="OptimWrapper",
                     optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True))
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[int(0.6 * max_epochs), int(0.8 * max_epochs)],
                        gamma=0.1)]

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=10, max_keep_ckpts=2, save_best="cls/top1", rule="greater"),
    sampler_seed=dict(type="DistSamplerSeedHook"))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl"))
randomness = dict(seed=0)
log_level = "INFO"
load_from = None
resume = False
