"""The LiDAR-only control of the sparse-LiDAR fusion recipe: ``transfusion_l_waymo_mini_stage2_decay.py`` (160 more
iterations, decaying lr) from the stage-1 checkpoint of ``transfusion_l_waymo_mini_sparse_lidar.py``, on its data.

    python tools/train.py configs/transfusion_l_waymo_mini_sparse_lidar_stage2_decay.py
"""
_base_ = ["./transfusion_l_waymo_mini_stage2_decay.py", "./_base_/datasets/waymo_mini_sparse_lidar.py"]

load_from = "{{fileDirname}}/../work_dirs/transfusion_l_waymo_mini_sparse_lidar/iter_800.pth"
data_root = {{_base_.sparse_lidar_data_root}}
prepare_data = {{_base_.sparse_lidar_prepare_data}}
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
