"""SparseFusion's camera side pre-trained alone on the built-in mini data (the image half of the two-stage recipe):
the image backbone + FPN, the geometric transfer (projected LiDAR depth → image features), the camera branch
(2D heat maps → 50 image queries → monocular 3D boxes) and the view transformer, trained with the camera
branch's losses (image heat map, matched image-query class and camera-frame box) and the view transformer's set
loss (LiDAR-frame boxes, matched to the boxes a camera sees). No LiDAR network runs (``camera_only``); the
points only fill the sparse depth maps. The prediction is the view transformer's boxes: a monocular 3D detector,
scored like the others with ``bench/fusion_mini_ablation.py --fov``.

The authors start their image backbone from nuImages weights; on the mini data there are none, so this stage
gives the from-scratch ResNet-18 the image training the fusion stage alone (160 iterations) cannot.
``sparsefusion_waymo_mini_stage2.py`` loads its camera side (``camera_checkpoint``) and the TransFusion-L
stage-1 checkpoint (``load_from``).

Schedule: one-cycle to lr 0.002 as stage 1, ``max_epochs`` = 6 (480 iterations, batch 2, seed 0; sized for a 2-core CPU).

    python tools/train.py configs/sparsefusion_waymo_mini_camera.py   # → work_dirs/sparsefusion_waymo_mini_camera
"""
_base_ = ["./sparsefusion_waymo_mini.py"]

max_epochs = 6
lr = 0.002
model = dict(head=dict(camera_only=True, semantic_transfer=False, voxel_size=[0.2, 0.2], out_size_factor=4))
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
