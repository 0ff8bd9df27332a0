"""SparseFusion's fusion stage (``sparsefusion_waymo_mini_stage2.py``: LiDAR backbone and detector frozen, as the
authors) started from the LiDAR-only control ``transfusion_l_waymo_mini_stage2_decay.py`` instead of stage 1.

The authors' recipe trains TransFusion-L to convergence, freezes it, and adds the camera side, the transfers and
the fusion layer. On the mini data stage 1 (800 iterations) is not converged, and the control gains +0.018 L1 mAP
from 160 more iterations at a small decaying lr. Starting the frozen fusion stage from the control's checkpoint
gives SparseFusion exactly the control's LiDAR side (bit-identical: frozen, BatchNorm statistics kept) plus the
camera side, so the comparison with the control isolates what the cameras and the fusion layer add. (Training the
LiDAR side jointly instead, ``sparsefusion_waymo_mini_stage2_joint.py``, moves the LiDAR predictions under the
fusion layer's residual corrections while it learns them.)

    python tools/train.py configs/transfusion_l_waymo_mini_stage2_decay.py   # → work_dirs/transfusion_l_waymo_mini_stage2_decay
    python tools/train.py configs/sparsefusion_waymo_mini_camera.py          # → work_dirs/sparsefusion_waymo_mini_camera
    python tools/train.py configs/sparsefusion_waymo_mini_stage2_from_control.py
"""
_base_ = ["./sparsefusion_waymo_mini_stage2.py"]

load_from = "{{fileDirname}}/../work_dirs/transfusion_l_waymo_mini_stage2_decay/iter_160.pth"
