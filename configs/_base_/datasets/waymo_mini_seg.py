# The built-in mini Waymo dataset with per-point labels (``lidar_segmentation``), for the segmentation configs:
# TOP return-1 points (x, y, z, intensity), 22 Waymo classes (training ids 0-21, undefined -1 = ignored),
# points within +-32 m (x, y) and -3..5 m (z); mIoU over the points of the val split (40 frames) in that range.
# The labels are written on first use (prepare_waymo_mini_seg; ~0.2 s CPU per frame).
_base_ = ["../default_runtime.py"]

data_root = "{{fileDirname}}/../../../data/waymo_mini"
prepare_data = dict(type="prepare_waymo_mini_seg", root=data_root)
num_classes = 22
point_columns = ["x", "y", "z", "intensity"]          # what the segmentors read (bag inference: PointCloud2 fields)
point_range = (-32.0, -32.0, -3.0, 32.0, 32.0, 5.0)
class_names = ["car", "truck", "bus", "other_vehicle", "motorcyclist", "bicyclist", "pedestrian", "sign",
               "traffic_light", "pole", "construction_cone", "bicycle", "motorcycle", "building", "vegetation",
               "tree_trunk", "curb", "road", "lane_marker", "other_ground", "walkable", "sidewalk"]
train_augment = dict(rotate_z=True, flip_x=0.5, flip_y=0.5, scale=(0.95, 1.05))

train_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type="ResumableSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="SeededDataset",            # augmentation = f(seed, epoch, index): exact resume
                 dataset=dict(type="WaymoSegDataset", data_root=data_root, split="train", point_range=point_range,
                              augment=train_augment)))
val_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="WaymoSegDataset", data_root=data_root, split="val", point_range=point_range))
test_dataloader = val_dataloader
val_evaluator = dict(type="SegMIoUMetric", num_classes=num_classes, ignore_index=-1, class_names=class_names)
test_evaluator = val_evaluator

train_cfg = dict(type="ExactEpochBasedTrainLoop", max_epochs=6, val_interval=6)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
