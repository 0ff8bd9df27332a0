"""The data model of one simulated street segment: its cross-section (layout), its labelled agents and the ego
trajectory."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from perception3d.datasets.synthetic.raycast import SceneBuilder

__all__ = ["StreetLayout", "Agent", "StreetSegment"]


@dataclass
class StreetLayout:
    """Cross-section of the street (world frame, the street runs along x)."""
    road_half: float                 # road surface |y| < road_half (kerb to kerb)
    lane_width: float
    lanes_per_dir: int
    parking: Tuple[bool, bool]       # parking strip on the (right y<0, left y>0) side
    sidewalk: float                  # sidewalk width
    setback: Tuple[float, float]     # distance from the sidewalk's outer edge to the facades (right, left)
    crossing_x: Optional[float]      # x of a cross street's centre line, None when there is none
    crossing_half: float = 0.0


@dataclass
class Agent:
    """A labelled object of a segment.  ``poses`` [F, 3] world (x, y, yaw) of the bottom centre per frame."""
    name: str                        # laser_object_id
    cls: str                         # vehicle | pedestrian | cyclist
    subtype: str                     # car | van | truck | walker | rider
    size: Tuple[float, float, float]  # label box (length, width, height)
    z0: float                        # bottom height (0 road, 0.15 sidewalk)
    poses: np.ndarray
    velocity: np.ndarray             # [F, 2] world velocity
    paint: np.ndarray                # [3] main colour
    paint_refl: float
    params: dict = field(default_factory=dict)


@dataclass
class StreetSegment:
    """A segment: static scene, agents, ego poses [F, 4, 4] (world_from_vehicle), ego velocity [3] (world, m/s,
    constant), frame times [F] s."""
    layout: StreetLayout
    static: SceneBuilder
    agents: List[Agent]
    ego_poses: np.ndarray
    times: np.ndarray
    sun: np.ndarray
    ego_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
