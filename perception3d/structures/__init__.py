"""perception3d.structures: boxes (LiDAR convention), cameras, point clouds."""
from .boxes import Boxes3D

__all__ = ["Boxes3D"]
