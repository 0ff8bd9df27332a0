"""perception3d.evaluation."""
