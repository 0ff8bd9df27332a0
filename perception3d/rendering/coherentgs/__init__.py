"""CoherentGS (Paliwal et al., "CoherentGS: Sparse Novel View Synthesis with Coherent 3D Gaussians", ECCV 2024;
authors' code avinashpaliwal/CoherentGS): one Gaussian per input pixel held as a 2-D SparseTensor, depth from a
depth prior aligned by a flow-based correspondence loss, an implicit convolutional decoder (sparse 2-D convs over
the pixel tensor) and depth-layer masks for single-view coherence, TV on rendered disparity for multi-view
coherence, no densification.

    config.py      the ``model`` / ``train`` config sections and the authors' defaults
    decoder.py     the pixel pyramid and the sparse implicit decoder
    depth_init.py  dense depth from the prior, depth-layer masks, flow correspondences (pose-guided)
    losses.py      ML1, second-order TV, the warping (flow) loss
    model.py       CoherentGaussians: the per-pixel Gaussians and how they render
    trainer.py     CoherentGSTrainer, registered as RENDER_METHODS "coherentgs"
"""
from .config import CoherentGSModelConfig, CoherentGSTrainConfig  # noqa: F401
from .decoder import PixelPyramid, SparseImplicitDecoder  # noqa: F401
from .depth_init import (correspondences, dense_depth, depth_layers, fill_holes, induced_flow,  # noqa: F401
                         outside_masks)
from .losses import ml1_loss, second_order_tv, warping_loss  # noqa: F401
from .model import CoherentGaussians  # noqa: F401
from .trainer import CoherentGSTrainer  # noqa: F401

__all__ = ["CoherentGSTrainer", "CoherentGaussians", "CoherentGSModelConfig", "CoherentGSTrainConfig",
           "PixelPyramid", "SparseImplicitDecoder", "dense_depth", "depth_layers", "correspondences",
           "fill_holes", "induced_flow", "outside_masks", "ml1_loss", "second_order_tv", "warping_loss"]
