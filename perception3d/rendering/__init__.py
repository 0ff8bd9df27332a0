"""perception3d.rendering."""
