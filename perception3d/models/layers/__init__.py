"""perception3d.models.layers."""
