"""perception3d.models.classifiers: point-cloud classifiers (mmengine BaseModels)."""
from perception3d.models.classifiers.point_classifier import PointClassifier  # noqa: F401

__all__ = ["PointClassifier"]
