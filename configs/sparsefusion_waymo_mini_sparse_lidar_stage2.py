"""SparseFusion's fusion stage on the sparse-LiDAR mini data: ``sparsefusion_waymo_mini_stage2_from_control.py``
(LiDAR side frozen, 160 iterations) started from the sparse-LiDAR control
(``transfusion_l_waymo_mini_sparse_lidar_stage2_decay.py``) and the camera side of
``sparsefusion_waymo_mini_sparse_lidar_camera.py``. Compared with that control it adds exactly the cameras, the
transfers and the fusion layer (``docs/model_zoo.md``, "A sparse LiDAR").

    python tools/train.py configs/sparsefusion_waymo_mini_sparse_lidar_stage2.py
"""
_base_ = ["./sparsefusion_waymo_mini_stage2_from_control.py", "./_base_/datasets/waymo_mini_sparse_lidar.py"]

load_from = "{{fileDirname}}/../work_dirs/transfusion_l_waymo_mini_sparse_lidar_stage2_decay/iter_160.pth"
model = dict(camera_checkpoint="{{fileDirname}}/../work_dirs/sparsefusion_waymo_mini_sparse_lidar_camera/iter_480.pth")
data_root = {{_base_.sparse_lidar_data_root}}
prepare_data = {{_base_.sparse_lidar_prepare_data}}
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
