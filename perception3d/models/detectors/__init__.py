"""perception3d.models.detectors."""
from perception3d.models.detectors import centerpoint  # noqa: F401,E402  (register CenterPoint)
