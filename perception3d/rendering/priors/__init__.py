"""Pluggable priors for sparse-view Gaussian splatting: depth, flow, pose and image refinement.

Built in, weight-free, always available (the default of every builder):

=========  =====================================================  =====================================
kind       ``type``                                               what runs
=========  =====================================================  =====================================
depth      ``plane_sweep`` (default), ``features``,               multi-view plane sweep (ZNCC) from the
           ``triangulated``,                                      calibrated views; triangulated features;
           ``shipped`` (``kind``: dust3r | mono | file),          those densified along the image (wide
           ``hull_filled`` (object captures)                      baselines); the maps an LM-Gaussian /
                                                                  nerfstudio scene ships; another prior's
                                                                  holes filled from the visual hull
flow       ``dis`` (default)                                      OpenCV DIS optical flow
pose       ``features`` (default)                                 SIFT/ORB + essential matrix + PnP
refiner    ``classical`` (default), ``none``                      NL-means denoise + colour transfer
=========  =====================================================  =====================================

The papers' learned priors (``depth_anything``, ``marigold``, ``raft``, ``flowformerpp``, ``dust3r``,
``stable_diffusion``) take a local ``checkpoint`` path, which is verified. Depth Anything v1 / v2
(:mod:`.depth_anything`) and RAFT (:mod:`.raft`) run from it; the other networks are not built in, so they raise
:class:`PriorUnavailableError` naming what is missing (:mod:`.learned`). Nothing is downloaded.

A prior of one's own (another stereo method, a depth sensor's maps) is registered under a name with
:func:`register_prior` and then named in configs like the built-in ones.

Configs name a prior as a dict, e.g. ``dict(type="plane_sweep", num_planes=128)`` or
``dict(type="raft", checkpoint="/models/raft-things.pth")``; ``describe()`` of the built prior is what the
trainer records.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch

from .base import (DepthMap, DepthPrior, FlowPrior, ImageRefiner, PosePrior, PriorUnavailableError,  # noqa: F401
                   RelativePose, SceneMemo)
from .densify import TriangulatedDepth, densify_depth, guided_filter, triangulated_anchors  # noqa: F401
from .depth import (FeatureDepth, PlaneSweepDepth, ShippedDepth, align_scale_shift, depth_metrics,  # noqa: F401
                    feature_depth_map, feature_depths, read_depth_file)
from .flow import DISFlow, flow_consistency, warp_by_flow  # noqa: F401
from .hull import HullFilledDepth, visual_hull_depth  # noqa: F401
from .learned import LEARNED_PRIORS, LearnedPriorCheckpoint, load_learned_prior  # noqa: F401
from .pose import FeaturePose, match_features, rotation_angle_deg, solve_pnp, triangulate  # noqa: F401
from .refine import ClassicalRefiner

__all__ = ["DepthMap", "DepthPrior", "FlowPrior", "PosePrior", "ImageRefiner", "RelativePose",
           "PriorUnavailableError", "SceneMemo", "PlaneSweepDepth", "FeatureDepth", "ShippedDepth", "TriangulatedDepth",
           "HullFilledDepth", "visual_hull_depth",
           "DISFlow", "FeaturePose", "ClassicalRefiner", "build_depth_prior", "build_flow_prior", "build_pose_prior",
           "build_image_refiner", "register_prior",
           "depth_prior_points", "align_scale_shift", "depth_metrics", "LEARNED_PRIORS"]

log = logging.getLogger("perception3d.priors")

_BUILTIN = {
    "depth": {"plane_sweep": PlaneSweepDepth, "features": FeatureDepth, "shipped": ShippedDepth,
              "triangulated": TriangulatedDepth, "hull_filled": HullFilledDepth},
    "flow": {"dis": DISFlow},
    "pose": {"features": FeaturePose},
    "refiner": {"classical": ClassicalRefiner},
}
_DEFAULT = {"depth": "plane_sweep", "flow": "dis", "pose": "features", "refiner": "classical"}


def _build(kind: str, cfg):
    cfg = dict(cfg or {})
    typ = cfg.pop("type", _DEFAULT[kind])
    if typ in _BUILTIN[kind]:
        if "checkpoint" in cfg:
            raise ValueError(f"{kind} prior {typ!r} is built in and takes no checkpoint")
        try:
            prior = _BUILTIN[kind][typ](**cfg)
        except TypeError as e:
            raise ValueError(f"{kind} prior {typ!r}: bad options {sorted(cfg)} ({e})") from e
    elif typ in LEARNED_PRIORS and LEARNED_PRIORS[typ][1] == kind:
        prior = load_learned_prior(typ, cfg.pop("checkpoint", None), **cfg)
    else:
        learned = [k for k, v in LEARNED_PRIORS.items() if v[1] == kind]
        raise ValueError(f"unknown {kind} prior {typ!r}: built in {sorted(_BUILTIN[kind])}, "
                         f"from a local checkpoint {learned}")
    log.info("%s prior: %s", kind, prior.describe())
    return prior


_BASES = {"depth": DepthPrior, "flow": FlowPrior, "pose": PosePrior, "refiner": ImageRefiner}


def register_prior(kind: str, name: str, cls: type) -> None:
    """Make ``cls`` (a subclass of the ``kind``'s interface: :class:`DepthPrior`, :class:`FlowPrior`,
    :class:`PosePrior` or :class:`ImageRefiner`) buildable as ``dict(type=name, **its options)``. A name that is
    already a prior is refused."""
    if kind not in _BASES:
        raise ValueError(f"register_prior: kind must be one of {sorted(_BASES)}, got {kind!r}")
    if name in _BUILTIN[kind] or name in LEARNED_PRIORS:
        raise ValueError(f"register_prior: {name!r} is already the name of a prior")
    if not (isinstance(cls, type) and issubclass(cls, _BASES[kind])):
        raise TypeError(f"register_prior: a {kind} prior must subclass {_BASES[kind].__name__}, got {cls!r}")
    _BUILTIN[kind][name] = cls


def build_depth_prior(cfg: Optional[dict] = None) -> DepthPrior:
    """A :class:`DepthPrior` from a config dict (default: ``plane_sweep``)."""
    return _build("depth", cfg)


def build_flow_prior(cfg: Optional[dict] = None) -> FlowPrior:
    """A :class:`FlowPrior` from a config dict (default: ``dis``)."""
    return _build("flow", cfg)


def build_pose_prior(cfg: Optional[dict] = None) -> PosePrior:
    """A :class:`PosePrior` from a config dict (default: ``features``)."""
    return _build("pose", cfg)


def build_image_refiner(cfg: Optional[dict] = None) -> Optional[ImageRefiner]:
    """An :class:`ImageRefiner` from a config dict (default: ``classical``); ``type="none"`` → None (the
    refinement stage is skipped, and says so in its log)."""
    if cfg is not None and dict(cfg).get("type") == "none":
        log.info("refiner: none (refinement stage skipped)")
        return None
    return _build("refiner", cfg)


@torch.no_grad()
def depth_prior_points(prior: DepthPrior, scene, ids: Sequence[int], n: int,
                       generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial points from a depth prior (depth-guided initialisation, as LM-Gaussian's): each view in ``ids``
    gets its depth (a relative prior is first aligned by scale and shift to the triangulated features of the
    views, :func:`~.depth.feature_depths`), the valid pixels are unprojected, and ``n`` of them are drawn
    (uniformly over all views' valid pixels) with the pixels' colours. → (points [n', 3], rgb [n', 3])."""
    pts, cols = [], []
    for i in ids:
        dm = prior.estimate(scene, i, ids)
        depth = dm.depth
        if not dm.metric:
            sparse, n_feat = feature_depth_map(scene, i, ids)
            if n_feat < 10:
                raise ValueError(f"depth_prior_points: {dm.source} depth of view {i} is relative and only "
                                 f"{n_feat} triangulated features anchor its scale")
            depth, _, _ = align_scale_shift(depth, sparse, sparse > 0)
        valid = dm.valid & (depth > 0)
        vv, uu = torch.nonzero(valid, as_tuple=True)
        uvp = torch.stack([uu.float() + 0.5, vv.float() + 0.5], -1)
        pts.append(scene.cameras[i].unproject(uvp, depth[vv, uu])[0])
        cols.append(scene.image(i)[vv, uu])
    P, C = torch.cat(pts), torch.cat(cols)
    if len(P) == 0:
        raise ValueError(f"depth_prior_points: the {prior.name} prior gave no valid depth on views {list(ids)}")
    if len(P) > n:
        sel = torch.randperm(len(P), generator=generator)[:n]
        P, C = P[sel], C[sel]
    return P, C
