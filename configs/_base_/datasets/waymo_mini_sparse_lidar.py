"""The mini dataset with a sparse LiDAR (256 range-image columns instead of 1,024; the same scenes, boxes and
surround-camera images), for the ``*_waymo_mini_sparse_lidar*`` configs. Listed as a second base, its names do not
collide with the first base's; each config applies them by substituting ``_base_.sparse_lidar_*``."""
sparse_lidar_data_root = "{{fileDirname}}/../../../data/waymo_mini_surround_w256/processed/"
sparse_lidar_prepare_data = dict(type="prepare_waymo_mini",
                                 root="{{fileDirname}}/../../../data/waymo_mini_surround_w256",
                                 gt_database=False, surround_cameras=True, generator=dict(lidar_width=256))

# four times the training frames (640; the generator's first 160 are the frames above, byte for byte) for the
# ``*_sparse_lidar_640*`` stages, which start from the 160-frame stage 1
sparse_lidar_640_data_root = "{{fileDirname}}/../../../data/waymo_mini_surround_w256_640/processed/"
sparse_lidar_640_prepare_data = dict(type="prepare_waymo_mini",
                                     root="{{fileDirname}}/../../../data/waymo_mini_surround_w256_640",
                                     gt_database=False, surround_cameras=True,
                                     generator=dict(lidar_width=256, num_train=640))
