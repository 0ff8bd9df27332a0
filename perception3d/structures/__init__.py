"""perception3d.structures: boxes (LiDAR convention), cameras, point clouds."""
from .boxes import Boxes3D
from .bev_grid import BEVGrid
from .cameras import Cameras

__all__ = ["BEVGrid", "Boxes3D", "Cameras"]
from . import calibration  # noqa: F401,E402  (camera <-> LiDAR projection helpers)
