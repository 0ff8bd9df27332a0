"""TransFusion-L on the mini dataset with a **sparse LiDAR**: the surround-camera dataset generated with 256
range-image columns instead of 1,024 (``generate_waymo_mini(lidar_width=256)``, the same scenes, boxes and images;
a quarter of the azimuth resolution, about a quarter of the points: on 200 new frames the median box has 33 points
instead of 110, and 2,182 boxes have 1–19 points instead of 1,068). Stage 1 of the sparse-LiDAR fusion recipe; the
same model and schedule as ``transfusion_l_waymo_mini.py``.

    python tools/train.py configs/transfusion_l_waymo_mini_sparse_lidar.py                # 800 iterations, ~12 min
    python tools/train.py configs/transfusion_l_waymo_mini_sparse_lidar_stage2_decay.py    # the LiDAR-only control
    python tools/train.py configs/sparsefusion_waymo_mini_sparse_lidar_camera.py           # the camera stage
    python tools/train.py configs/sparsefusion_waymo_mini_sparse_lidar_stage2.py           # the fusion stage
"""
_base_ = ["./transfusion_l_waymo_mini.py", "./_base_/datasets/waymo_mini_sparse_lidar.py"]

data_root = {{_base_.sparse_lidar_data_root}}
prepare_data = {{_base_.sparse_lidar_prepare_data}}
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
