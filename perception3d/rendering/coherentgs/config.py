"""The typed sections of a CoherentGS config (``configs/coherentgs_*.py``): every key, its default and where it
comes from. Defaults are the authors' (avinashpaliwal/CoherentGS, ``arguments/__init__.py``, ``train.py``,
``scene/gaussian_model.py``); where a default had to change for a metric-depth prior or a short CPU schedule, the
field's comment says what the authors use.

The authors' schedule is 1000 alignment steps, then 13000 training steps (their iterations 7001–20000) with events
at fixed iterations; here each event is a fraction of ``train.max_steps``, so a shorter run keeps its shape:

=====================================  ======================  ============================
event                                  authors' iteration      fraction of the 13000 steps
=====================================  ======================  ============================
Gaussian radius reset from depth       every 100, until 15000  ``scale_reset_every`` 100/13000, until 8000/13000
multisampling (random 1–4× supersample) from 12000              5000/13000
one more SH band                       15000, 16000, 17000     8000, 9000, 10000 /13000
TV mixing weight γ = iteration / 20000 7001 … 20000            0.35 → 1
=====================================  ======================  ============================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

from ..config import GSTrainConfig

__all__ = ["CoherentGSModelConfig", "CoherentGSTrainConfig", "INIT_OPACITY", "DECODER_NGF"]

# scene/gaussian_model.py: initial opacity and decoder capacity (ngf) by number of input views
INIT_OPACITY = {2: 0.6, 3: 0.5, 4: 0.35}
DECODER_NGF = {"xyz": {2: 10, 3: 15, 4: 18}, "opacity": {2: 6, 3: 10, 4: 12}}


@dataclass
class CoherentGSModelConfig:
    """``model``: the per-pixel Gaussians, their priors and the implicit decoders.

    sh_degree: largest SH degree (authors: 3).
    depth_prior: the depth prior's config (:func:`~perception3d.rendering.priors.build_depth_prior`; authors:
        Depth Anything from a local checkpoint — built in: ``plane_sweep``; an LM-Gaussian scene's
        ``dict(type="shipped", kind="dust3r")``). A relative prior is first aligned by least squares to the views'
        triangulated features; holes (pixels without depth) are filled from their neighbours.
    flow_prior: the optical-flow prior (authors: FlowFormer++; built in: ``dis``).
    flow_init: where the flow search between two views starts: ``"depth"`` — at the flow the initial depth and
        the known cameras predict (:func:`~.depth_init.induced_flow`; a pose-guided search for views too far
        apart for the flow prior alone), ``"none"`` — at zero flow (authors, with FlowFormer++ on forward-facing
        LLFF views).
    num_mask_channels: depth layers of the depth-layer masks (authors' name and default, 5).
    radius_mult: Gaussian radius in pixel footprints (authors 1.2).
    init_opacity: None = the authors' table by the number of views (2: 0.6, 3: 0.5, 4: 0.35; beyond 4 views,
        1.4 / views, which keeps the summed opacity of 4 views).
    use_alpha: in RGBA scenes (Blender) only foreground pixels (alpha > 0.5) get a Gaussian — the SparseTensor
        simply has no site there.
    mask_carving: None (authors) or a tolerance in pixels of the Gaussian grid: in object captures (every view
        has a mask), no Gaussian for a site whose point X = o + d r lands on another view's background (off its
        mask grown by the tolerance; :func:`~.depth_init.outside_masks`): a point on the object lies inside
        every view's silhouette (its visual hull), and one outside is a depth error that would show as a fringe
        over that view's background.
    ngf / opacity_ngf: decoder widths (None: the authors' table by views, 15 / 10 for 3 views); layer widths are
        [16, 16, 16, 8, 8, 8, 4, 4, …] × ngf from the coarsest level to the finest.
    decoder_finest_level: the decoders run down to stride 2^level and are bilinearly upsampled to the pixels
        (authors: 0, full resolution).
    depth_residual_scale: the depth residual is ``scale × d_ref × tanh(decoder)`` with d_ref the training views'
        median depth (authors: 50 in LLFF's normalised units).
    opacity_residual_scale: the learned opacity logit is ``scale × tanh(decoder)`` (authors 100).
    embed_freqs: positional-encoding frequencies of the decoder's per-view input code (authors 10 → 20 channels).
    pixel_stride: one Gaussian per s × s block of input pixels (the block's mean colour and disparity, at its
        centre, radius × s); depth, layers and flow are taken at that grid, while rendering and the losses keep
        the images' full resolution (authors: 1, one Gaussian per pixel). ``"auto"``: the smallest stride that
        keeps the Gaussians of V views at most those of the 3 views the authors' setting has one per pixel,
        ⌈√(V / 3)⌉ (1 for ≤ 3 views, 2 for 4–12): per-pixel Gaussians of many views overlap each other, while
        a step's cost grows with their number.
    """
    sh_degree: int = 3
    depth_prior: Mapping[str, Any] = field(default_factory=dict)
    flow_prior: Mapping[str, Any] = field(default_factory=dict)
    flow_init: str = "depth"
    num_mask_channels: int = 5
    radius_mult: float = 1.2
    init_opacity: Optional[float] = None
    use_alpha: bool = True
    mask_carving: Optional[int] = None
    ngf: Optional[int] = None
    opacity_ngf: Optional[int] = None
    decoder_finest_level: int = 0
    depth_residual_scale: float = 1.0
    opacity_residual_scale: float = 100.0
    embed_freqs: int = 10
    pixel_stride: Union[int, str] = 1


@dataclass
class CoherentGSTrainConfig(GSTrainConfig):
    """``train``: 3DGS's keys (``max_steps``, ``max_minutes``, ``background`` … — here ``max_minutes`` counts
    from the start of the run, priors included) and the CoherentGS schedule and loss weights (authors' names).

    align_steps: steps of the depth alignment (per-view scale / offset by the flow correspondence loss; authors
        1000, who align a relative monocular depth).
    align_metric_depth: also align a metric depth prior (one in the known cameras' frame, e.g. ``triangulated``
        or ``plane_sweep``); off by default: there is no scale or offset to find (lego, 9 views, pose-guided
        flow: scale 1 ± 0.007, offsets < 0.5 % of the depth after 300 steps, which took 24 CPU-s of a 120 CPU-s
        budget; with the unguided flow the same steps moved them to 0.89 / +0.63 and training views fell
        17.8 → 17.0 dB).
    align_lr: Adam learning rates of (scale, offset / d_ref), cosine-annealed (authors (1, 5) on an unaligned
        monocular depth; our priors start aligned, so the defaults are small).
    feature_lr, scaling_lr, rotation_lr: authors' ``OptimizationParams`` (f_rest gets feature_lr / 10).
    train_colors: also optimise the SH DC colour (the authors' code never does: each Gaussian keeps its pixel's
        colour).
    decoder_lr / opacity_decoder_lr: (base, max) of the decoders' CyclicLR ("triangular2"), with half-periods
        ``decoder_cycle`` / ``opacity_decoder_cycle`` as fractions of max_steps (authors 1000 / 13000 and
        2000 / 13000 steps).
    ssim_lambda: λ of (1 − λ) ML1 + λ (1 − SSIM) (authors' lambda_dssim 0.2).
    smooth_coeff: weight of the TV regulariser on rendered disparity (authors 5).
    warp_coeff: weight of the flow loss; the authors' code multiplies by it twice (0.1 × 0.1), so does this.
    tv_gamma_start: γ at the first training step (authors 7001 / 20000 = 0.35), rising linearly to 1.
    flow_threshold: the flow-consistency weight above which a correspondence counts (authors 0.5).
    multisample_from / multisample_max: supersampling by a random factor 1…max after this fraction (authors
        5000 / 13000, 4).
    scale_reset_until / scale_reset_every: fractions of max_steps (authors 8000 / 13000 and 100 / 13000).
    sh_up_at: fractions at which one more SH band turns on.
    device: "auto" (CUDA when available — the rasterizer is then gsplat's —, else CPU), "cpu" or "cuda".
    """
    max_steps: int = 13000
    align_steps: int = 1000
    align_metric_depth: bool = False
    align_lr: Sequence[float] = (0.01, 0.01)
    feature_lr: float = 0.0005
    scaling_lr: float = 0.0001
    rotation_lr: float = 0.00001
    train_colors: bool = False
    decoder_lr: Sequence[float] = (1e-6, 1e-4)
    decoder_cycle: float = 1000 / 13000
    opacity_decoder_lr: Sequence[float] = (1e-6, 1e-5)
    opacity_decoder_cycle: float = 2000 / 13000
    smooth_coeff: float = 5.0
    warp_coeff: float = 0.1
    tv_gamma_start: float = 7001 / 20000
    flow_threshold: float = 0.5
    multisample_from: float = 5000 / 13000
    multisample_max: int = 4
    scale_reset_until: float = 8000 / 13000
    scale_reset_every: float = 100 / 13000
    sh_up_at: Sequence[float] = (8000 / 13000, 9000 / 13000, 10000 / 13000)
    device: str = "auto"
