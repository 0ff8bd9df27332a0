"""DSVT-V on Waymo: the authors' ``dsvt_3D_1f_onestage.yaml`` (everything else as ``dsvt_waymo.py``).

Voxels 0.32 × 0.32 × 0.1875 m → 468 × 468 × 32; dynamic voxel PFN [192, 192]; DSVT: 4 stages × 1 block,
set size 48, windows 12 × 12 × {32, 8, 2, 1} (shifted configuration 24 × 24, shift 6), attention-style
pooling in z by 4, 4, 2 (32 → 8 → 2 → 1 levels), so the last stage is a 468 × 468 BEV grid.
"""
_base_ = ["./dsvt_waymo.py"]

voxel_size = [0.32, 0.32, 0.1875]
grid_size = [468, 468, 32]

model = dict(
    voxel_encoder=dict(type="DynamicVoxelPFN", voxel_size=voxel_size),
    backbone_3d=dict(
        grid_size=grid_size,
        window_shape=[[12, 12, 32], [12, 12, 8], [12, 12, 2], [12, 12, 1]],
        shifts_list=[[[0, 0, 0], [6, 6, 0]]] * 4,
        downsample_stride=[[1, 1, 4], [1, 1, 4], [1, 1, 2]],
        set_info=[[48, 1]] * 4, d_model=[192] * 4, nhead=[8] * 4, dim_feedforward=[384] * 4,
        reduction_type="attention"),
)
