"""TransFusion-L on the built-in mini Waymo dataset: the LiDAR-only ablation baseline of
``sparsefusion_waymo_mini.py``: the same data (the surround-camera dataset, whose LiDAR points and boxes are those of
the default mini dataset), the same LiDAR backbone and LiDAR branch, the same schedule, augmentation and seed; the
cameras are not loaded and the camera branch, transfers and fusion layer are off (``use_camera=False``).

    python tools/train.py configs/transfusion_l_waymo_mini.py
"""
_base_ = ["./sparsefusion_waymo_mini.py"]

model = dict(img_backbone=None, img_neck=None,
             head=dict(use_camera=False, semantic_transfer=False, geometric_transfer=False))
train_dataloader = dict(dataset=dict(dataset=dict(cameras=None)))
val_dataloader = dict(dataset=dict(cameras=None))
test_dataloader = val_dataloader
