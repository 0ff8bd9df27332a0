"""The ``lmgaussian`` section of an LM-Gaussian config: every key, its default, and which of the authors' settings
it is (``arguments/__init__.py`` ``OptimizationParamsinstant`` and ``stage1_forward.py`` / ``stage2_forward.py``,
the scripts for few-view forward-facing scenes such as Barn). The authors' schedule is 12 000 iterations with
the depth-normal consistency from iteration 6000 and the refinement stage from the stage-1 checkpoint at 6000;
here the schedule is written as fractions of the run (``train.max_steps`` or ``train.max_minutes``, whichever
ends it first), so a short CPU run keeps the same proportions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

__all__ = ["LMGaussianConfig"]


@dataclass
class LMGaussianConfig:
    """``lmgaussian``:

    depth_prior: the initialisation's depth prior (``rendering.priors.build_depth_prior``; LM-Gaussian: DUSt3R —
        ``dict(type="shipped", kind="dust3r")`` on its scenes; built in: ``plane_sweep``).
    depth_loss_prior: the depth the Pearson loss follows; None = the initialisation's (LM-Gaussian: the Marigold
        maps, ``dict(type="shipped", kind="mono")``).
    normal_prior: "shipped" (the scene's normal maps), "depth" (normals of the depth prior), "auto" (shipped when
        the scene has them, else depth) or None (no normal loss).
    background_ratio: pixels deeper than this × the view's median depth are background, always kept (1.5).
    occlusion_tol: relative depth margin of the occluder removal.
    fill_holes: inpaint the holes of a sparse depth prior before unprojecting.
    hull_volume_points: on object captures (every training view has a mask), add this many points drawn
        uniformly inside the training views' visual hull (within the depth points' bounding box, grown by 10 %)
        to the initial cloud, with random colours (:func:`.init.hull_volume_points`). Not the authors' (0: their
        DUSt3R cloud is dense); for weight-free priors, whose surfaces are incomplete.
    lambda_depth: weight of (global + local Pearson) depth loss (0.1); local_box_frac: the local patch side as a
        fraction of the image width (authors: 128 px at their ~1600-px working width → 0.08); p_corr: 0.5.
    lambda_normal_l1, lambda_normal_cos: the normal loss (0.01, 0.01).
    target_min_agree: keep the depth and normal losses to the pixels whose depth prior agrees with at least this
        many other training views' (:func:`.init.background_aware_points` ``agreement``; the authors keep
        DUSt3R's confident pixels); 0 = every valid pixel of the prior. Only with ``depth_loss_prior`` None (the
        target is the initialisation's depth, whose agreement is measured).
    lambda_virtual: the virtual-view point-render loss (0.3); num_virtual: poses per training pair (10);
        virtual_every: apply it every this many steps (authors: 1); point_scale: the points' size (× kNN).
    lambda_depth_normal: depth-normal consistency (0.05) from ``regularization_from`` of the run (6000 / 12000),
        in the refinement stage only (the authors' stage 1 ends before it starts), so never when that stage is
        skipped.
    refiner: the refinement stage's image refiner (``rendering.priors.build_image_refiner``); None = stage
        skipped (logged and recorded in the checkpoint). refine_from: the stage starts at this fraction of the
        run (the authors' stage 2 starts from the stage-1 checkpoint at 6000 of 12 000 iterations);
        refine_rounds: refinement rounds in the stage (the authors refine again every 6000 iterations);
        refine_gain: the distance weight's gain (16).
    stage2_without_refiner: with no refiner, still enter the refinement stage at ``refine_from``: the authors'
        ``stage2_forward.py`` turns the depth, normal and point-render losses off there (``opt_train_depth =
        opt_train_normal = False``), so the stage is the photometric loss (plus Eq. 10 when on) without the
        refined virtual views. False: stage 1 runs to the end.
    """
    depth_prior: Mapping[str, Any] = field(default_factory=lambda: {"type": "plane_sweep"})
    depth_loss_prior: Optional[Mapping[str, Any]] = None
    normal_prior: Optional[str] = "auto"
    background_ratio: float = 1.5
    occlusion_tol: float = 0.05
    fill_holes: bool = True
    hull_volume_points: int = 0
    lambda_depth: float = 0.1
    local_box_frac: float = 0.08
    p_corr: float = 0.5
    lambda_normal_l1: float = 0.01
    lambda_normal_cos: float = 0.01
    target_min_agree: int = 0
    lambda_virtual: float = 0.3
    num_virtual: int = 10
    virtual_every: int = 1
    point_scale: float = 1.0
    lambda_depth_normal: float = 0.05
    regularization_from: float = 0.5
    refiner: Optional[Mapping[str, Any]] = None
    refine_from: float = 0.5
    refine_rounds: int = 1
    refine_gain: float = 16.0
    stage2_without_refiner: bool = False
