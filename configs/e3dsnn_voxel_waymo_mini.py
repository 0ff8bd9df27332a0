"""CenterPoint-Voxel on the Waymo mini set with the spiking 3D backbone (E-3DSNN's detection variant).

Everything (data, voxel encoder, BEV backbone, CenterHead, schedule) comes from
``centerpoint_voxel_waymo_mini.py``; only ``backbone_3d`` is swapped for ``SpikingVoxelBackBone8x``: the
OpenPCDet ``VoxelBackBone8x`` layout (16-32-64-64 → 128, stride (16, 8, 8)) with every block a Spike Sparse
Convolution (integer multi-spike D = 4 → sparse conv → BN, residual before the spike). Its input/output
contract is ``VoxelResBackBone8x``'s, so ``HeightCompression`` and the head are unchanged.
"""
_base_ = ["./centerpoint_voxel_waymo_mini.py"]

model = dict(
    backbone_3d=dict(_delete_=True, type="SpikingVoxelBackBone8x",
                     in_channels=5,            # DynamicVFE mean of (x, y, z, intensity, elongation)
                     base_channels=16, out_channels=128, residual=True))
