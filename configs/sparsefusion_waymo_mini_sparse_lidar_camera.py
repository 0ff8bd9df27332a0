"""SparseFusion's camera pre-training stage for the sparse-LiDAR mini data (``sparsefusion_waymo_mini_camera.py``
on ``transfusion_l_waymo_mini_sparse_lidar.py``'s data: the images are the same, the projected LiDAR depth of the
geometric transfer is sparser), with the 2D heat-map loss weighted 1.0 instead of the authors' 0.1: the authors'
image backbone starts from nuImages weights, ours from scratch, and this weight makes it a two to five times better
2D detector in the same 480 iterations (``docs/model_zoo.md``).

    python tools/train.py configs/sparsefusion_waymo_mini_sparse_lidar_camera.py
"""
_base_ = ["./sparsefusion_waymo_mini_camera.py", "./_base_/datasets/waymo_mini_sparse_lidar.py"]

model = dict(head=dict(img_heatmap_weight=1.0))
data_root = {{_base_.sparse_lidar_data_root}}
prepare_data = {{_base_.sparse_lidar_prepare_data}}
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
