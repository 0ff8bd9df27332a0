"""perception3d.apis."""
