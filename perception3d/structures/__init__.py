"""perception3d.structures: boxes (LiDAR convention), cameras, point clouds."""
from .boxes import Boxes3D

__all__ = ["Boxes3D"]
from . import calibration  # noqa: F401,E402  (camera <-> LiDAR projection helpers)
