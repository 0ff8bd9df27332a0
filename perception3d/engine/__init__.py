"""perception3d.engine."""
