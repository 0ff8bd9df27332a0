"""perception3d.models.segmentors: point-cloud semantic segmentors (mmengine BaseModels)."""
from perception3d.models.segmentors.point_segmentor import PointSegmentor  # noqa: F401

__all__ = ["PointSegmentor"]
