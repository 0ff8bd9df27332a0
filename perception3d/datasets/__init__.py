"""perception3d.datasets."""
from perception3d.datasets.synthetic_street import ensure_waymo_mini, generate_waymo_mini  # noqa: F401
