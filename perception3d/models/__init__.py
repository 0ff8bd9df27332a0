"""perception3d.models."""
