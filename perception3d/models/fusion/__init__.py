"""perception3d.models.fusion."""
