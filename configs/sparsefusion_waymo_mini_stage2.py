"""SparseFusion on the mini data, the fusion stage: initialised from both pre-trained branches — the TransFusion-L
checkpoint of ``transfusion_l_waymo_mini.py`` (stage 1, ``load_from``) and the camera side of
``sparsefusion_waymo_mini_camera.py`` (the camera pre-training stage, ``model.camera_checkpoint``: image backbone,
FPN, geometric transfer, camera branch, view transformer) — with the LiDAR backbone and LiDAR detector frozen
(``freeze_lidar=True``: no gradients, BatchNorm statistics kept); the semantic transfer and the fusion layer (new)
and the camera side (pre-trained) are trained for ``max_epochs`` more epochs with a fresh one-cycle schedule
(lr 0.002, seed 0, as stage 1).

Two initialisations differ from the authors' (who train this stage 6 epochs on nuScenes), both set in
``sparsefusion_waymo_mini.py`` for short fusion stages: the semantic transfer corrects the frozen LiDAR heat map
(``semantic_residual``, zero at the start) instead of replacing it with a random one, and the fusion heads
predict corrections to each candidate's own prediction, starting at zero (``fusion_residual``), so the fused
output starts as the frozen LiDAR model's (without it the fused output starts near 0 L1 mAP, ``docs/model_zoo.md``).
The authors' image side starts from nuImages weights; ours from the camera pre-training stage
(``--cfg-options model.camera_checkpoint=None``: from scratch, the previous recipe).

LiDAR-only controls: ``transfusion_l_waymo_mini_stage2.py`` (the same stage-1 checkpoint trained the same number
of extra iterations with this same one-cycle schedule) and ``transfusion_l_waymo_mini_stage2_decay.py`` (the same
iterations with a decaying learning rate and no warm-up, ending at this schedule's final lr).
``sparsefusion_waymo_mini_stage2_joint.py`` is this stage with the LiDAR side trained on the latter control's
learning rates instead of frozen (stage 1 is not converged on the mini data).

    python tools/train.py configs/transfusion_l_waymo_mini.py        # stage 1 → work_dirs/transfusion_l_waymo_mini
    python tools/train.py configs/sparsefusion_waymo_mini_camera.py  # camera → work_dirs/sparsefusion_waymo_mini_camera
    python tools/train.py configs/sparsefusion_waymo_mini_stage2.py
    python tools/train.py configs/sparsefusion_waymo_mini_stage2.py \\
        --cfg-options model.head.semantic_transfer=False          # ablation (or geometric_transfer=False)
"""
_base_ = ["./sparsefusion_waymo_mini.py"]

max_epochs = 2
lr = 0.002
load_from = "{{fileDirname}}/../work_dirs/transfusion_l_waymo_mini/iter_800.pth"
model = dict(freeze_lidar=True,
             camera_checkpoint="{{fileDirname}}/../work_dirs/sparsefusion_waymo_mini_camera/iter_480.pth")
param_scheduler = [dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
                        by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
                   dict(type="OneCycleMomentum", moms=(0.95, 0.85), pct_start=0.4, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
