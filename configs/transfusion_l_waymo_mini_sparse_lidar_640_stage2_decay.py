"""The sparse-LiDAR LiDAR-only control (``transfusion_l_waymo_mini_sparse_lidar_stage2_decay.py``: decaying lr from
the 160-frame stage-1 checkpoint, no warm-up) on four times the training frames: one epoch over 640 frames (320
iterations) instead of two over 160. The baseline of ``sparsefusion_waymo_mini_sparse_lidar_640_stage2.py``
(``docs/model_zoo.md``, "A sparse LiDAR, four times the training frames").

    python tools/train.py configs/transfusion_l_waymo_mini_sparse_lidar.py                 # stage 1 (160 frames)
    python tools/train.py configs/transfusion_l_waymo_mini_sparse_lidar_640_stage2_decay.py
"""
_base_ = ["./transfusion_l_waymo_mini_sparse_lidar_stage2_decay.py"]

max_epochs = 1
lr = 0.002 / 10
param_scheduler = [dict(type="CosineAnnealingLR", eta_min=lr / 1e4, by_epoch=True, begin=0, end=max_epochs,
                        convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
data_root = {{_base_.sparse_lidar_640_data_root}}
prepare_data = {{_base_.sparse_lidar_640_prepare_data}}
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
