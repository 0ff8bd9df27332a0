"""perception3d.io."""
from perception3d.io.waymo_parquet import read_columns  # noqa: F401,E402  (Waymo v2 parquet, checked reads)
