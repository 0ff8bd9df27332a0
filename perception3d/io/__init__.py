"""perception3d.io."""
