"""perception3d.ops."""
