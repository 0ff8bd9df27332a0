# Waymo (mmdet3d-layout infos from tools/create_data.py waymo), 3 classes, 5 point features
# (x, y, z, intensity, elongation), OpenPCDet/mmdet3d CenterPoint augmentations.
dataset_type = "Det3DDataset"
data_root = "data/waymo/processed/"
class_names = ["Car", "Pedestrian", "Cyclist"]            # mmdet3d's Waymo names; the metric prints Vehicle
point_cloud_range = [-75.2, -75.2, -2.0, 75.2, 75.2, 4.0]
metainfo = dict(classes=class_names)

db_sampler = dict(info_path=data_root + "waymo_dbinfos_train.pkl", data_root=data_root, classes=class_names,
                  sample_groups=dict(Car=15, Pedestrian=10, Cyclist=10),
                  min_points=dict(Car=5, Pedestrian=5, Cyclist=5))
train_pipeline = [
    dict(type="ObjectSample", db_sampler=db_sampler),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816], scale_ratio_range=[0.95, 1.05],
         translation_std=[0, 0, 0]),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
test_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=False,
    sampler=dict(type="ResumableSampler", shuffle=True),
    collate_fn=dict(type="det3d_collate"),
    dataset=dict(type="SeededDataset", dataset=dict(
        type=dataset_type, data_root=data_root, ann_file="waymo_infos_train.pkl", pipeline=train_pipeline,
        metainfo=metainfo, load_dim=6, use_dim=5, test_mode=False, filter_empty_gt=True)))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="det3d_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="waymo_infos_val.pkl", pipeline=test_pipeline,
                 metainfo=metainfo, load_dim=6, use_dim=5, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="WaymoMetric", classes=["Vehicle", "Pedestrian", "Cyclist"])
test_evaluator = val_evaluator
