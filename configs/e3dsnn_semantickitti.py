"""E-3DSNN semantic segmentation on SemanticKITTI: the authors' base config
(bollossom/E-3DSNN ``semseg-3dsnn-v1m1-0-base.py``, ~20 M parameters).

U-Net: 4 input channels (x, y, z, remission), stem 64, encoder [64, 128, 128, 256] × 2 residual SSC blocks with
k2s2 downs, decoder 256 × 4 with inverse k2 convs + spiking linear skip fusion, 19 classes (ignore −1).
Voxels 0.05 m inside (−35.2, −35.2, −4, 35.2, 35.2, 2); points outside are clipped onto it (``PointClip``), so
every point is scored. Schedule: batch 24 (total), AdamW lr 2e-3, wd 5e-3, one-cycle (pct 0.04, cos, div 10,
final div 100), 100 epochs; weighted CE (the authors' class weights, their only criterion).
Augmentation: Mix3D (mix_prob 0.8), z rotation in [−π, π] with p 0.5, flips of x and y (p 0.5 each), scale
(0.9, 1.1), jitter 0.005 (clip 0.02). Test: four rotations about z (0, ½π, π, 3⁄2π), probabilities averaged.
Data: ``data/semantic_kitti/sequences/XX/{velodyne,labels}`` (official layout; not shipped).
"""
default_scope = "perception3d"

num_classes = 19
max_epochs = 100
batch_size = 24
data_root = "data/semantic_kitti"
point_range = (-35.2, -35.2, -4.0, 35.2, 35.2, 2.0)
class_weight = [3.1557, 8.7029, 7.8281, 6.1354, 6.3161, 7.9937, 8.9704, 10.1922, 1.6155, 4.2187, 1.9385, 5.5455,
                2.0198, 2.6261, 1.3212, 5.1102, 2.5492, 5.8585, 7.3929]

model = dict(
    type="PointSegmentor",
    num_classes=num_classes,
    class_weight=class_weight,
    ignore_index=-1,
    test_cfg=dict(tta_rotations=4),
    backbone=dict(type="E3DSNNUNet", in_channels=4, num_classes=num_classes, embed_channels=64,
                  enc_channels=(64, 128, 128, 256), enc_depth=(2, 2, 2, 2), dec_channels=(256, 256, 256, 256),
                  voxel_size=(0.05, 0.05, 0.05), point_range=point_range))

train_dataloader = dict(
    batch_size=batch_size, num_workers=4, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="SemanticKITTIDataset", data_root=data_root, split="train", point_range=point_range,
                 range_mode="clip", mix_prob=0.8,
                 augment=dict(rotate_z=True, rotate_p=0.5, flip_x=0.5, flip_y=0.5, scale=(0.9, 1.1), jitter=0.005)))
val_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="SemanticKITTIDataset", data_root=data_root, split="val", point_range=point_range,
                 range_mode="clip"))
test_dataloader = val_dataloader
class_names = ["car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist", "motorcyclist", "road",
               "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk", "terrain", "pole",
               "traffic-sign"]
val_evaluator = dict(type="SegMIoUMetric", num_classes=num_classes, ignore_index=-1, class_names=class_names)
test_evaluator = val_evaluator

train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=2)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=0.002, weight_decay=0.005))
param_scheduler = [dict(type="OneCycleLR", eta_max=0.002, pct_start=0.04, anneal_strategy="cos", div_factor=10.0,
                        final_div_factor=100.0, by_epoch=True, begin=0, end=max_epochs,
                        convert_to_iter_based=True)]

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=2, max_keep_ckpts=2, save_best="seg/mIoU", rule="greater"),
    sampler_seed=dict(type="DistSamplerSeedHook"))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl"))
randomness = dict(seed=0)
log_level = "INFO"
load_from = None
resume = False
