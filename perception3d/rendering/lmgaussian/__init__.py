"""LM-Gaussian (Yu et al. 2024), sparse-view Gaussian splatting with large-model priors: ``method =
"lmgaussian"`` in a rendering config (``configs/lmgaussian_*.py``). See :mod:`.trainer`."""
from .config import LMGaussianConfig
from .init import ViewDepth, background_aware_points, hull_volume_points, view_depth
from .losses import (depth_normal_consistency, depth_to_normal, local_pearson_loss, masked_l1, normal_prior_loss,
                     pearson_depth_loss)
from .normals import read_normal_map
from .trainer import LMGaussianTrainer, gaussian_normals
from .virtual import distance_weights, point_render_targets, virtual_cameras

__all__ = ["LMGaussianConfig", "LMGaussianTrainer", "ViewDepth", "background_aware_points", "hull_volume_points",
           "view_depth", "pearson_depth_loss", "local_pearson_loss", "normal_prior_loss", "depth_to_normal",
           "depth_normal_consistency", "masked_l1", "read_normal_map", "gaussian_normals", "virtual_cameras",
           "point_render_targets", "distance_weights"]
