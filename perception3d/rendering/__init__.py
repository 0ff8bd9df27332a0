"""perception3d.rendering."""
from perception3d.structures.cameras import (Cameras, decompose_projection, interpolate_path, load_camera_path, look_at,  # noqa: F401
                      opengl_to_opencv, orbit_path, save_camera_path)
from .scenes import (Scene, load_image, read_blender, read_colmap, read_dtu, read_lmgaussian,  # noqa: F401
                     read_scene)
from .rasterize import rasterize  # noqa: F401,E402
from .gaussians import GaussianModel  # noqa: F401,E402
from perception3d.io.ply import load_ply, save_ply  # noqa: F401,E402
