"""E3DSNN-T on the built-in procedural shape dataset (12 classes, ModelNet40 layout): the CPU demo.

    python tools/train.py configs/e3dsnn_t_shapes.py            # ~8 CPU-minutes (single thread), test top-1 >= 90 %
    python tools/test.py  configs/e3dsnn_t_shapes.py work_dirs/e3dsnn_t_shapes/epoch_36.pth
    python tools/snn_energy.py configs/e3dsnn_t_shapes.py work_dirs/e3dsnn_t_shapes/epoch_36.pth

The dataset is generated into ``data/synthetic_shapes`` on first use (deterministic, atomic). The network is
exactly E3DSNN-T (stem 16, stages [16, 32, 64, 128] × 1, k2s2 downs, 1×1 conv, mean over voxels) with a
12-way final conv; voxels are coarser (0.1 on unit-sphere-normalised shapes) and 512 points per shape, so that
it trains on a CPU. Optimiser: AdamW + one-cycle cosine (converges in fewer epochs than the authors' SGD).
"""
default_scope = "perception3d"

num_classes = 12
max_epochs = 36
data_root = "data/synthetic_shapes"
voxel_size = (0.1, 0.1, 0.1)
point_range = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)

model = dict(
    type="PointClassifier",
    label_smoothing=0.2,
    backbone=dict(type="E3DSNN", in_channels=6, num_classes=num_classes, embed_channels=16,
                  enc_channels=(16, 32, 64, 128), enc_depth=(1, 1, 1, 1),
                  voxel_size=voxel_size, point_range=point_range))

dataset_common = dict(type="SyntheticShapesDataset", data_root=data_root, num_train=60, num_test=25,
                      gen_points=1024, gen_seed=0)
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**dataset_common, split="train", num_points=512,
                 augment=dict(rotate="so3", scale=(0.9, 1.1), shift=0.2, jitter=0.005)))
val_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**dataset_common, split="test", num_points=512))
test_dataloader = val_dataloader
val_evaluator = dict(type="ClsAccuracyMetric", num_classes=num_classes)
test_evaluator = val_evaluator

train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=4e-3, weight_decay=0.01),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=40),
    dict(type="CosineAnnealingLR", T_max=max_epochs, eta_min=4e-5, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=20),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=max_epochs, max_keep_ckpts=1),
    sampler_seed=dict(type="DistSamplerSeedHook"))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
randomness = dict(seed=0)
log_level = "INFO"
load_from = None
resume = False
