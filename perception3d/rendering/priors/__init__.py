"""perception3d.rendering.priors."""
