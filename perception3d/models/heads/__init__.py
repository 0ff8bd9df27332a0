"""perception3d.models.heads."""
from perception3d.models.heads import center_head  # noqa: F401,E402  (register CenterHead)
from perception3d.models.heads import seg_head  # noqa: F401,E402  (register SegHead)
