"""perception3d.structures."""
