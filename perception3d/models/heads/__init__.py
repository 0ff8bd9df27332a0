"""perception3d.models.heads."""
