"""perception3d.models.backbones."""
