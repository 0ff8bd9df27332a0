"""The labelled objects of the street simulator as primitives: vehicles, pedestrians and cyclists built inside
their label boxes, one frame's scene, and the overlap test used when placing them."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from perception3d.datasets.synthetic.materials import _GLASS_DROPOUT, _MAT
from perception3d.datasets.synthetic.raycast import Primitives, SceneBuilder
from perception3d.datasets.synthetic.scene import Agent, StreetSegment

__all__ = ["CLASS_TO_WAYMO_TYPE", "frame_scene"]

CLASS_TO_WAYMO_TYPE = {"vehicle": 1, "pedestrian": 2, "cyclist": 4}


def _add_agent_shape(sb: SceneBuilder, ag: Agent, f: int, idx: int) -> None:
    """Primitives of one agent at frame f.  Shapes fit inside the label box with a few cm margin."""
    x, y, yaw = ag.poses[f]
    l, w, h = ag.size
    c, s = np.cos(yaw), np.sin(yaw)
    at = lambda lx, ly: (x + c * lx - s * ly, y + s * lx + c * ly)  # noqa: E731  local → world xy
    z0, paint, pr = ag.z0, ag.paint, ag.paint_refl
    glass_r, glass_c = _MAT["glass"]
    tyre_r, tyre_c = _MAT["tyre"]
    if ag.cls == "vehicle":
        m = 0.05
        clear = ag.params["clearance"]
        for ax in (-0.32 * l, 0.32 * l):                                  # axles with wheels
            px, py = at(ax, 0.0)
            sb.box_bottom(px, py, z0, 0.62, w - 2 * m, min(0.62, clear + 0.3), yaw, tyre_r, tyre_c, idx)
        if ag.subtype == "car":
            hb = clear + (h - clear) * ag.params["body_frac"]
            px, py = at(0.0, 0.0)
            sb.box_bottom(px, py, z0 + clear, l - 2 * m, w - 2 * m, hb - clear, yaw, pr, paint, idx)
            cl = l * ag.params["cabin_frac"]
            px, py = at(ag.params["cabin_off"] * l, 0.0)
            sb.box_bottom(px, py, z0 + hb, cl, w - 0.2, h - m - hb, yaw, glass_r, glass_c, idx, _GLASS_DROPOUT)
            px, py = at(ag.params["cabin_off"] * l, 0.0)                  # roof panel
            sb.box_bottom(px, py, z0 + h - m - 0.04, cl - 0.3, w - 0.25, 0.04, yaw, pr, paint, idx)
        elif ag.subtype == "van":
            hood = 0.9
            px, py = at(-hood / 2, 0.0)
            sb.box_bottom(px, py, z0 + clear, l - 2 * m - hood, w - 2 * m, h - m - clear, yaw, pr, paint, idx)
            px, py = at(l / 2 - m - hood / 2, 0.0)
            sb.box_bottom(px, py, z0 + clear, hood, w - 2 * m, 0.55 * h - clear, yaw, pr, paint, idx)
            px, py = at(l / 2 - m - hood - 0.05, 0.0)                     # windscreen band
            sb.box_bottom(px, py, z0 + 0.6 * h, 0.12, w - 0.1, 0.3 * h, yaw, glass_r, glass_c, idx)
        else:                                                             # truck: cab + cargo box
            cab = 2.2
            px, py = at(l / 2 - m - cab / 2, 0.0)
            sb.box_bottom(px, py, z0 + clear, cab, w - 2 * m, 0.8 * h - clear, yaw, pr, paint, idx)
            px, py = at(-cab / 2 - 0.1, 0.0)
            sb.box_bottom(px, py, z0 + clear + 0.3, l - 2 * m - cab - 0.2, w - 2 * m, h - m - clear - 0.3, yaw,
                          0.35, ag.params["cargo"], idx)
    elif ag.cls == "pedestrian":
        skin_r, skin_c = _MAT["skin"]
        rt = ag.params["torso_r"]
        stride = ag.params["stride"] * np.sin(ag.params["phase"] + 2 * np.pi * 1.8 * f * ag.params["dt"])
        leg_top = z0 + 0.48 * h
        for sgn in (-1, 1):
            px, py = at(sgn * stride / 2, sgn * 0.09)
            sb.cylinder(px, py, 0.075, z0, leg_top, 0.12, ag.params["legs"], idx)
            px, py = at(-sgn * stride / 3, sgn * (rt + 0.06))
            sb.cylinder(px, py, 0.05, z0 + 0.5 * h, z0 + 0.8 * h, pr, paint, idx)
        px, py = at(0.0, 0.0)
        sb.cylinder(px, py, rt, leg_top, z0 + 0.83 * h, pr, paint, idx)
        sb.sphere(px, py, z0 + h - 0.11, 0.1, skin_r, skin_c, idx)
    else:                                                                 # cyclist: bicycle + rider
        br, bc = _MAT["bike"]
        px, py = at(0.0, 0.0)
        sb.box_bottom(px, py, z0 + 0.02, l - 0.1, 0.08, 0.9, yaw, br, bc, idx)
        px, py = at(l / 2 - 0.35, 0.0)
        sb.box_bottom(px, py, z0 + 0.9, 0.1, w - 0.1, 0.1, yaw, br, bc, idx)        # handlebar
        px, py = at(-0.15, 0.0)
        sb.cylinder(px, py, 0.16, z0 + 0.85, z0 + h - 0.22, pr, paint, idx)
        sb.sphere(px, py, z0 + h - 0.12, 0.11, 0.3, (0.2, 0.2, 0.2), idx)             # helmet
        for sgn in (-1, 1):
            px, py = at(-0.05, sgn * 0.13)
            sb.cylinder(px, py, 0.06, z0 + 0.3, z0 + 0.88, 0.12, ag.params["legs"], idx)


def frame_scene(seg: StreetSegment, f: int) -> Tuple[Primitives, np.ndarray, List[int]]:
    """Primitives of frame f, the agents' label boxes (world, centre) [A, 7] and their indices."""
    sb = seg.static.copy()
    boxes = []
    for i, ag in enumerate(seg.agents):
        _add_agent_shape(sb, ag, f, i)
        x, y, yaw = ag.poses[f]
        l, w, h = ag.size
        boxes.append((x, y, ag.z0 + h / 2, l, w, h, yaw))
    return sb.finish(), np.asarray(boxes, np.float64).reshape(-1, 7), list(range(len(seg.agents)))


def _obb_overlap(a: Tuple[float, ...], b: Tuple[float, ...], margin: float = 0.2) -> bool:
    """Separating-axis test of two BEV rectangles (x, y, l, w, yaw), each grown by ``margin``."""
    def corners(r):
        x, y, l, w, yaw = r
        c, s = np.cos(yaw), np.sin(yaw)
        hl, hw = l / 2 + margin, w / 2 + margin
        loc = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
        return loc @ np.array([[c, s], [-s, c]]) + (x, y)
    ca, cb = corners(a), corners(b)
    for r in (a, b):
        c, s = np.cos(r[4]), np.sin(r[4])
        for axis in ((c, s), (-s, c)):
            pa, pb = ca @ axis, cb @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True
