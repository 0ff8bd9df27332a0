"""Scene readers, one per on-disk format; :mod:`perception3d.rendering.scenes` re-exports them all."""

from .base import Scene, load_image  # noqa: F401
from .blender import read_blender  # noqa: F401
from .colmap import read_colmap, read_colmap_model, write_colmap_model  # noqa: F401
from .dtu import read_dtu  # noqa: F401
from .lmgaussian import decode_jet_depth, read_lmgaussian, read_lmgaussian_depth  # noqa: F401
from .nerfstudio import UndistortedScene, read_nerfstudio, read_points_ply  # noqa: F401
