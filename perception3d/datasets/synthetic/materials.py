"""Materials of the street simulator: lidar reflectivity (≈ Waymo intensity of a surface seen head-on) and RGB
albedo per material, car paints, and the ground's material (asphalt, lane markings, grass) at a point."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

if TYPE_CHECKING:
    from perception3d.datasets.synthetic.scene import StreetLayout

# material table: lidar reflectivity (≈ Waymo intensity of a surface seen head-on) and RGB albedo
_MAT = {
    "road": (0.07, (0.30, 0.30, 0.32)),
    "marking": (0.60, (0.92, 0.92, 0.88)),
    "grass": (0.12, (0.30, 0.42, 0.22)),
    "sidewalk": (0.20, (0.62, 0.60, 0.57)),
    "building": (0.25, (0.70, 0.62, 0.52)),
    "fence": (0.20, (0.45, 0.40, 0.35)),
    "hedge": (0.10, (0.20, 0.40, 0.18)),
    "pole": (0.40, (0.45, 0.47, 0.50)),
    "trunk": (0.15, (0.35, 0.25, 0.17)),
    "foliage": (0.10, (0.22, 0.45, 0.20)),
    "clutter": (0.30, (0.25, 0.35, 0.30)),
    "glass": (0.05, (0.12, 0.15, 0.18)),
    "tyre": (0.05, (0.08, 0.08, 0.08)),
    "skin": (0.20, (0.80, 0.62, 0.50)),
    "bike": (0.30, (0.15, 0.15, 0.18)),
}
_CAR_PAINTS = np.array([(0.92, 0.92, 0.92), (0.08, 0.08, 0.09), (0.62, 0.63, 0.65), (0.38, 0.39, 0.41),
                        (0.70, 0.08, 0.07), (0.10, 0.20, 0.55), (0.12, 0.30, 0.18), (0.78, 0.72, 0.58)])
_CAR_PAINT_REFL = np.array([0.55, 0.12, 0.40, 0.30, 0.30, 0.25, 0.22, 0.40])
_GLASS_DROPOUT = 0.35           # extra dropout probability of returns from windows


def _ground_material(p: np.ndarray, layout: Optional[StreetLayout]) -> Tuple[np.ndarray, np.ndarray]:
    """Reflectivity and albedo of ground-plane hits: asphalt with lane markings, grass/dirt off the road."""
    n = p.shape[0]
    road_r, road_c = _MAT["road"]
    if layout is None:
        return np.full(n, road_r), np.tile(road_c, (n, 1))
    x, y = p[:, 0], p[:, 1]
    on_road = np.abs(y) < layout.road_half
    if layout.crossing_x is not None:
        on_road |= np.abs(x - layout.crossing_x) < layout.crossing_half
    marking = np.zeros(n, bool)
    # centre line (double, solid) and dashed lane dividers
    marking |= (np.abs(np.abs(y) - 0.12) < 0.06)
    for k in range(1, layout.lanes_per_dir):
        marking |= (np.abs(np.abs(y) - k * layout.lane_width) < 0.07) & (np.mod(x, 9.0) < 3.0)
    if layout.crossing_x is not None:
        in_cross = np.abs(x - layout.crossing_x) < layout.crossing_half + 0.5
        marking &= ~in_cross
        # zebra crossing just before the cross street
        zx = np.abs(x - (layout.crossing_x - layout.crossing_half - 2.0)) < 1.5
        marking |= zx & (np.mod(y, 1.0) < 0.5) & (np.abs(y) < layout.road_half)
    marking &= on_road
    refl = np.where(on_road, road_r, _MAT["grass"][0])
    rgb = np.where(on_road[:, None], np.array(road_c), np.array(_MAT["grass"][1]))
    refl = np.where(marking, _MAT["marking"][0], refl)
    rgb = np.where(marking[:, None], np.array(_MAT["marking"][1]), rgb)
    return refl, rgb
