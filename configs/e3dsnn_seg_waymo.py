"""E-3DSNN's base segmentation U-Net (~20 M parameters) with the authors' SemanticKITTI recipe
(``e3dsnn_semantickitti.py``: Mix3D 0.8, rotation p 0.5, x/y flips, scale, jitter, AdamW 2e-3 one-cycle,
100 epochs, four-rotation TTA) on the Waymo v2 3D segmentation labels (22 classes, TOP return 1, unweighted CE:
the authors' class weights are SemanticKITTI's).  Points clipped to ±75.2 m / −4…4 m, voxels 0.05 m.
"""
_base_ = ["./e3dsnn_semantickitti.py"]

data_root = "data/waymo"
point_range = (-75.2, -75.2, -4.0, 75.2, 75.2, 4.0)
class_names = ["car", "truck", "bus", "other_vehicle", "motorcyclist", "bicyclist", "pedestrian", "sign",
               "traffic_light", "pole", "construction_cone", "bicycle", "motorcycle", "building", "vegetation",
               "tree_trunk", "curb", "road", "lane_marker", "other_ground", "walkable", "sidewalk"]
point_columns = ["x", "y", "z", "intensity"]

model = dict(num_classes=22, class_weight=None, tanh_channels=(3,),
             backbone=dict(num_classes=22, point_range=point_range))
train_dataloader = dict(dataset=dict(_delete_=True, type="WaymoSegDataset", data_root=data_root, split="train",
                                     point_range=point_range, range_mode="clip", cache=False, mix_prob=0.8,
                                     augment=dict(rotate_z=True, rotate_p=0.5, flip_x=0.5, flip_y=0.5,
                                                  scale=(0.9, 1.1), jitter=0.005)))
val_dataloader = dict(dataset=dict(_delete_=True, type="WaymoSegDataset", data_root=data_root, split="val",
                                   point_range=point_range, range_mode="clip", cache=False))
test_dataloader = val_dataloader
val_evaluator = dict(num_classes=22, class_names=class_names)
test_evaluator = val_evaluator
