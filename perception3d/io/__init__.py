"""perception3d.io."""
from perception3d.io.waymo_parquet import read_columns  # noqa: F401,E402  (Waymo v2 parquet, checked reads)
from perception3d.io.bags import BagError, BagReader, BagWriter, bag_format  # noqa: F401,E402  (ROS bags, issue 7)
from perception3d.io.pointcloud2 import PointCloud2Error, pointcloud2_to_points, points_to_pointcloud2  # noqa: F401,E402
from perception3d.io.ply import load_ply, read_points_ply, save_ply  # noqa: F401,E402  (3DGS scenes, coloured points)
