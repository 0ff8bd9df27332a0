"""The typed sections of a 3DGS training config (``configs/gs_*.py``): every key, its type and its default in one
place, as gsplat's strategy dataclasses. ``data`` is the scene reader's (see ``rendering.scenes.read_scene``) and
``strategy`` is gsplat's ``DefaultStrategy``'s own keyword arguments; ``model`` and ``train`` are below.

A key that a section does not have is an error naming it and the section's keys (a typo would otherwise silently
train with the default).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

__all__ = ["GSModelConfig", "GSTrainConfig", "section"]


@dataclass
class GSModelConfig:
    """``model``: the initial Gaussians (3DGS §5.1) and the SH degree.

    init: "points" (the scene's SfM / PLY points), "frustum" (random in the training views' frustum overlap,
        coloured from the images), "depth_prior" (a depth prior's points), "auto" (points if the scene has them,
        else frustum) or "random" (the cube ``init_center ± init_extent``, 3DGS's NeRF-synthetic start).
    init_num: points drawn by "frustum", "depth_prior" and "random".
    init_center / init_extent: the "random" cube; default the camera-rig centre and half its radius.
    carve_with_masks: keep only "random" points inside every training view's alpha mask (visual hull).
    init_depth_range: (near, far) for "frustum"; default from the scene.
    init_voxel_size: None: one Gaussian per start point (3DGS); a size in metres: the start points are voxelised
        at it and each occupied voxel gives one Gaussian at its points' mean (``rendering.anchors``).
    depth_prior: the prior's config for "depth_prior" (``rendering.priors.build_depth_prior``).
    """
    init: str = "random"
    init_num: int = 100_000
    init_center: Optional[Sequence[float]] = None
    init_extent: Optional[float] = None
    carve_with_masks: bool = False
    sh_degree: int = 3
    init_opacity: float = 0.1
    init_scale: float = 1.0
    init_depth_range: Optional[Sequence[float]] = None
    init_voxel_size: Optional[float] = None
    depth_prior: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class GSTrainConfig:
    """``train``: the schedule and the loss (3DGS §5, Eq. 7: (1 − λ) L1 + λ D-SSIM).

    max_minutes: stop early after this wall time; None: run ``max_steps``.
    max_cpu_minutes: stop early after this much process CPU time (user + sys, all threads) counted from the
        trainer's construction (a method's priors included). On a machine shared with other work this is the fair
        budget to give a method and its baseline: wall time depends on the slice each run gets.
    sh_degree_interval: one more SH band every this many steps.
    tile_size: rasterizer tile (the image does not depend on it).
    scene_scale: "rig" (1.1 × the largest camera distance from the rig centre), "depth" (sparse / forward-facing
        rigs) or a number; times ``scene_scale_mult`` it scales the means' learning rate and densification.
    lr: learning rates per parameter group, over the 3DGS defaults (``means`` is multiplied by the scene scale).
    background: an RGB triple or "random" (a new colour every step); default ``data.background``, else white.
    eval_background: the background of evaluation and renders; default ``background``, black with "random".
    """
    max_steps: int = 3000
    max_minutes: Optional[float] = None
    max_cpu_minutes: Optional[float] = None
    ssim_lambda: float = 0.2
    sh_degree_interval: int = 1000
    eval_every: int = 1000
    save_every: int = 1000
    log_every: int = 10
    tile_size: int = 16
    scene_scale: Union[str, float] = "rig"
    scene_scale_mult: float = 1.1
    lr: Mapping[str, float] = field(default_factory=dict)
    background: Union[None, str, Sequence[float]] = None
    eval_background: Optional[Sequence[float]] = None


_SCALARS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_scalar(section_name: str, f: dataclasses.Field, value: Any) -> None:
    """A ``TypeError`` naming the key when a plain scalar field (``int``, ``float``, ``bool``, ``str``, optionally
    ``Optional[...]``) gets a value of another kind, e.g. the string "None" or "1e3" from a command line."""
    ann = str(f.type).replace("typing.", "")
    optional = ann.startswith("Optional[") and ann.endswith("]")
    base = ann[len("Optional["):-1] if optional else ann
    if base not in _SCALARS or (optional and value is None):
        return
    ok = isinstance(value, _SCALARS[base]) and (base == "bool" or not isinstance(value, bool))
    if not ok:
        raise TypeError(f"{section_name}.{f.name}={value!r}: expected {'None or ' if optional else ''}{base}, got "
                        f"{type(value).__name__}")


def section(cls, values: Optional[Mapping[str, Any]], name: str):
    """``cls(**values)`` for a config section: an unknown key is a ``ValueError`` naming it, a scalar of the wrong
    kind a ``TypeError`` naming it."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {unknown}; the keys of {name} are {list(fields)}")
    for key, value in values.items():
        _check_scalar(name, fields[key], value)
    return cls(**values)
