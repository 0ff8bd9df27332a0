"""The sparse-LiDAR fusion stage (``sparsefusion_waymo_mini_sparse_lidar_stage2.py``: LiDAR side frozen) on 640
training frames: one epoch (320 iterations) from the 640-frame control and camera stage.

    python tools/train.py configs/transfusion_l_waymo_mini_sparse_lidar_640_stage2_decay.py   # ~5 min
    python tools/train.py configs/sparsefusion_waymo_mini_sparse_lidar_640_camera.py          # ~10 min
    python tools/train.py configs/sparsefusion_waymo_mini_sparse_lidar_640_stage2.py          # ~6 min
"""
_base_ = ["./sparsefusion_waymo_mini_sparse_lidar_stage2.py"]

max_epochs = 1
lr = 0.002
load_from = "{{fileDirname}}/../work_dirs/transfusion_l_waymo_mini_sparse_lidar_640_stage2_decay/iter_320.pth"
model = dict(camera_checkpoint="{{fileDirname}}/../work_dirs/sparsefusion_waymo_mini_sparse_lidar_640_camera/"
                               "iter_960.pth")
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
data_root = {{_base_.sparse_lidar_640_data_root}}
prepare_data = {{_base_.sparse_lidar_640_prepare_data}}
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
