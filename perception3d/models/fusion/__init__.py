"""perception3d.models.fusion: SparseFusion's LiDAR-camera fusion parts (disentangled camera → LiDAR transform,
candidates as SparseTensor)."""
from perception3d.models.fusion.candidates import candidates_to_sparse, sparse_to_candidates  # noqa: F401
from perception3d.models.fusion.view_transform import (CameraSE, camera_candidates_to_lidar,  # noqa: F401
                                                       camera_info_vector, lidar_boxes_to_camera_candidates)
from perception3d.models.fusion.image_backbone import ImageFPN, ImageResNet  # noqa: F401,E402  (registration)
from perception3d.models.fusion.sparsefusion import SparseFusion, SparseFusionHead  # noqa: F401,E402
