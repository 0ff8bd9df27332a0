"""perception3d.models.detectors."""
