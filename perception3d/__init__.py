"""perception3d: 3D perception and neural rendering from sparse data, on CPU and GPU."""

__version__ = "0.1.0"
