"""CenterPoint-Voxel on the Waymo mini set with the spiking 3D backbone (E-3DSNN's detection variant).

Everything (data, voxel encoder, BEV backbone, CenterHead, schedule) comes from
``centerpoint_voxel_waymo_mini.py``; only ``backbone_3d`` is swapped for ``SpikingVoxelBackBone8x``: the
OpenPCDet ``VoxelBackBone8x`` layout (here at the mini config's half width: 8-16-32-32 → 64, stride (16, 8, 8)) with every block a Spike Sparse
Convolution (integer multi-spike D = 4 → sparse conv → BN, residual before the spike). Its input/output
contract is ``VoxelResBackBone8x``'s, so ``HeightCompression`` and the head are unchanged.
"""
_base_ = ["./centerpoint_voxel_waymo_mini.py"]

model = dict(
    backbone_3d=dict(_delete_=True, type="SpikingVoxelBackBone8x",
                     in_channels=5,            # DynamicVFE mean of (x, y, z, intensity, elongation)
                     base_channels=8, out_channels=64,   # the mini config's half width: BEV 64 × 1 z level
                     residual=True))
