"""perception3d.rendering."""
from .cameras import Cameras, decompose_projection, look_at, opengl_to_opencv, orbit_path  # noqa: F401
from .scenes import (Scene, load_image, read_blender, read_colmap, read_dtu, read_lmgaussian,  # noqa: F401
                     read_scene)
from .rasterize import rasterize  # noqa: F401,E402
