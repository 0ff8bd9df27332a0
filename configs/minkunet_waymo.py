"""MinkUNet (``minkunet_semantickitti.py``'s network and SGD recipe) on the Waymo Open Dataset v2 3D semantic
segmentation labels: TOP return-1 points of the frames that have a ``lidar_segmentation`` row, 22 classes
(Waymo types 1–22; undefined ignored), points clipped to ±75.2 m / −4…4 m, voxels 0.05 m.

Data: ``data/waymo/{training,validation}/<component>/<segment>.parquet`` (the official v2 layout, with the
``lidar_segmentation`` component).  No download happens: without it the dataset stops with the path it looked in.
On the built-in mini data: ``minkunet_waymo_mini.py``.
"""
_base_ = ["./minkunet_semantickitti.py"]

data_root = "data/waymo"
point_range = (-75.2, -75.2, -4.0, 75.2, 75.2, 4.0)
class_names = ["car", "truck", "bus", "other_vehicle", "motorcyclist", "bicyclist", "pedestrian", "sign",
               "traffic_light", "pole", "construction_cone", "bicycle", "motorcycle", "building", "vegetation",
               "tree_trunk", "curb", "road", "lane_marker", "other_ground", "walkable", "sidewalk"]
point_columns = ["x", "y", "z", "intensity"]

model = dict(num_classes=22, tanh_channels=(3,), backbone=dict(point_range=point_range))
train_dataloader = dict(dataset=dict(_delete_=True, type="WaymoSegDataset", data_root=data_root, split="train",
                                     point_range=point_range, range_mode="clip", cache=False,
                                     augment=dict(rotate_z=(0.0, 6.283185307179586), scale=(0.95, 1.05))))
val_dataloader = dict(dataset=dict(_delete_=True, type="WaymoSegDataset", data_root=data_root, split="val",
                                   point_range=point_range, range_mode="clip", cache=False))
test_dataloader = val_dataloader
val_evaluator = dict(num_classes=22, class_names=class_names)
test_evaluator = val_evaluator
