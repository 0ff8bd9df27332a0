"""perception3d.models."""
from perception3d.models import voxel_encoders, backbones, heads, detectors  # noqa: F401,E402  (registration)
from perception3d.models import classifiers, segmentors  # noqa: F401,E402  (E-3DSNN cls/seg registration)
from perception3d.models import fusion  # noqa: F401,E402  (SparseFusion registration)
