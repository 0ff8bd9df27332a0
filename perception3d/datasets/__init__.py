"""perception3d.datasets."""
