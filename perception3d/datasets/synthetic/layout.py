"""A random street segment: the layout (lanes, parking, sidewalks, cross street), the static content along it
(buildings, fences, poles, trees, clutter), the agents and the ego trajectory."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from perception3d.datasets.synthetic.materials import _CAR_PAINT_REFL, _CAR_PAINTS, _MAT
from perception3d.datasets.synthetic.objects import _obb_overlap
from perception3d.datasets.synthetic.raycast import SceneBuilder
from perception3d.datasets.synthetic.scene import Agent, StreetLayout, StreetSegment
from perception3d.datasets.synthetic.sensors import pose_matrix

__all__ = ["sample_street_segment"]


def sample_street_segment(rng: np.random.Generator, num_frames: int = 5, frame_dt: float = 0.5,
                          name_prefix: str = "") -> StreetSegment:
    """A random street with parked/moving vehicles, pedestrians, cyclists and clutter, and an ego trajectory.

    The street runs along world +x; the ego drives in a right-hand lane (y < 0) heading +x, or stands still.
    Agents that would overlap one another, the ego, or static clutter in any frame are dropped.
    """
    u = rng.uniform
    times = np.arange(num_frames) * frame_dt
    # --- layout --------------------------------------------------------------------------------------------
    lanes = int(rng.choice([1, 2, 2, 3]))
    lane_w = u(3.1, 3.6)
    parking = (bool(rng.random() < 0.8), bool(rng.random() < 0.8))
    park_w = 2.3
    road_half = lanes * lane_w + park_w * max(parking) + u(0.0, 0.5)
    sidewalk = u(2.5, 5.0)
    setback = (u(0.0, 4.0) if rng.random() < 0.6 else 0.0, u(0.0, 4.0) if rng.random() < 0.6 else 0.0)
    ego_speed = 0.0 if rng.random() < 0.15 else u(3.0, 10.0)
    x_end = ego_speed * times[-1]
    crossing_x = float(u(-10.0, x_end + 30.0)) if rng.random() < 0.45 else None
    crossing_half = u(4.5, 7.0)
    layout = StreetLayout(road_half, lane_w, lanes, parking, sidewalk, setback, crossing_x, crossing_half)
    in_crossing = lambda x, pad=0.0: crossing_x is not None and abs(x - crossing_x) < crossing_half + pad  # noqa

    sb = SceneBuilder()
    x_lo, x_hi = -95.0, x_end + 95.0
    # --- sidewalks (slabs), split around the cross street ---------------------------------------------------
    sw_r, sw_c = _MAT["sidewalk"]
    spans = [(x_lo, x_hi)] if crossing_x is None else [(x_lo, crossing_x - crossing_half),
                                                        (crossing_x + crossing_half, x_hi)]
    far = road_half + sidewalk + max(setback) + 40.0
    for side in (-1, 1):
        yc = side * (road_half + (far - road_half) / 2)
        for a, b in spans:
            sb.box(((a + b) / 2, yc, -0.15), (b - a, far - road_half, 0.6), 0.0, sw_r, sw_c)
    # --- buildings / walls / fences along both sides ---------------------------------------------------------
    for side_i, side in enumerate((-1, 1)):
        y_face = road_half + sidewalk + setback[side_i]
        x = x_lo
        while x < x_hi:
            length = u(8.0, 35.0)
            gap = u(0.0, 6.0) if rng.random() < 0.5 else 0.0
            a, b = x, min(x + length, x_hi)
            if crossing_x is not None and b > crossing_x - crossing_half - sidewalk and \
                    a < crossing_x + crossing_half + sidewalk:
                x = crossing_x + crossing_half + sidewalk + 0.5
                continue
            depth, height = u(8.0, 20.0), u(4.0, 25.0)
            tint = np.array(_MAT["building"][1]) * u(0.6, 1.25, 3)
            sb.box(((a + b) / 2, side * (y_face + depth / 2), height / 2 - 0.5), (b - a, depth, height + 1.0),
                   0.0, u(0.12, 0.4), np.clip(tint, 0, 1))
            if setback[side_i] > 0.8 and rng.random() < 0.6:          # fence or hedge in front
                kind = "fence" if rng.random() < 0.5 else "hedge"
                fr, fc = _MAT[kind]
                th, hh = (0.08, u(1.0, 1.8)) if kind == "fence" else (u(0.5, 0.9), u(0.8, 1.6))
                sb.box_bottom((a + b) / 2, side * (y_face - 0.4 - th / 2), 0.15, b - a, th, hh, 0.0, fr, fc)
            x = b + gap
    # --- street furniture: poles, trees, bins -----------------------------------------------------------------
    clutter_fp: List[Tuple[float, float, float, float, float]] = []   # BEV footprints for the overlap check
    for side in (-1, 1):
        x = x_lo + u(0, 20)
        while x < x_hi:
            if not in_crossing(x, 1.0):
                py = side * (road_half + 0.5)
                r = u(0.08, 0.18)
                sb.cylinder(x, py, r, 0.0, u(4.0, 8.0), *_MAT["pole"])
                clutter_fp.append((x, py, 2 * r, 2 * r, 0.0))
            x += u(18.0, 35.0)
        if rng.random() < 0.6:
            x = x_lo + u(0, 10)
            while x < x_hi:
                if not in_crossing(x, 2.0):
                    py = side * (road_half + u(0.9, 1.5))
                    r, th = u(0.12, 0.28), u(2.2, 3.5)
                    sb.cylinder(x, py, r, 0.15, th, *_MAT["trunk"])
                    cr = u(1.2, 2.6)
                    sb.sphere(x, py, th + 0.6 * cr, cr, _MAT["foliage"][0],
                              np.clip(np.array(_MAT["foliage"][1]) * u(0.7, 1.3, 3), 0, 1))
                    clutter_fp.append((x, py, 2 * r, 2 * r, 0.0))
                x += u(8.0, 16.0)
        for _ in range(rng.integers(0, 6)):                           # bins, boxes, hydrants
            x = u(-40.0, x_end + 40.0)
            if in_crossing(x, 1.0):
                continue
            py = side * (road_half + u(0.4, sidewalk - 0.4))
            l, w, hh = u(0.4, 1.0), u(0.4, 0.8), u(0.6, 1.3)
            yaw = u(-0.3, 0.3)
            sb.box_bottom(x, py, 0.15, l, w, hh, yaw, _MAT["clutter"][0],
                          np.clip(np.array(_MAT["clutter"][1]) * u(0.5, 2.0, 3), 0, 1))
            clutter_fp.append((x, py, l, w, yaw))

    # --- ego ------------------------------------------------------------------------------------------------
    ego_lane = int(rng.integers(0, lanes))
    ego_y = -(ego_lane + 0.5) * lane_w + u(-0.3, 0.3)
    ego_yaw = u(-0.03, 0.03)
    ego_poses = np.stack([pose_matrix(ego_speed * t * np.cos(ego_yaw), ego_y + ego_speed * t * np.sin(ego_yaw),
                                      u(-0.01, 0.01), roll=u(-0.012, 0.012), pitch=u(-0.018, 0.018),
                                      yaw=ego_yaw + u(-0.003, 0.003)) for t in times])
    ego_fp = [(p[0, 3] + 1.0, p[1, 3], 9.0, 2.3, ego_yaw) for p in ego_poses]   # ego + 2 m gap ahead/behind

    # --- agents ---------------------------------------------------------------------------------------------
    agents: List[Agent] = []
    t_mid = times[len(times) // 2]

    def track(x_mid, y, yaw, speed):
        vx, vy = speed * np.cos(yaw), speed * np.sin(yaw)
        poses = np.stack([x_mid + vx * (times - t_mid), y + vy * (times - t_mid), np.full_like(times, yaw)], 1)
        return poses, np.tile((vx, vy), (len(times), 1))

    def vehicle(subtype=None):
        subtype = subtype or str(rng.choice(["car"] * 8 + ["van", "truck"]))
        if subtype == "car":
            size = (u(3.9, 5.0), u(1.7, 2.0), u(1.4, 1.8))
        elif subtype == "van":
            size = (u(4.8, 6.0), u(1.9, 2.2), u(1.9, 2.6))
        else:
            size = (u(6.5, 10.0), u(2.3, 2.6), u(2.8, 3.6))
        k = int(rng.integers(0, len(_CAR_PAINTS)))
        paint = np.clip(_CAR_PAINTS[k] * u(0.85, 1.15, 3), 0, 1)
        clearance, body_frac, cabin_frac = u(0.15, 0.3), u(0.45, 0.6), u(0.45, 0.6)
        # cars are not front/back symmetric: the cabin sits towards the rear (rear overhang 2–12 % of the length,
        # a longer bonnet in front), so that the heading can be seen in the points, as on real cars
        rear_gap = u(0.02, 0.12)
        params = dict(clearance=clearance, body_frac=body_frac, cabin_frac=cabin_frac,
                      cabin_off=-0.5 + rear_gap + cabin_frac / 2, cargo=np.clip(u(0.5, 1.0, 3), 0, 1))
        return subtype, size, paint, float(_CAR_PAINT_REFL[k] * u(0.8, 1.2)), params

    def add(cls, subtype, size, z0, poses, vel, paint, refl, params):
        agents.append(Agent(f"{name_prefix}{cls[:3]}_{len(agents):03d}", cls, subtype, size, z0, poses, vel,
                            paint, refl, params))

    ax_lo, ax_hi = -45.0, x_end + 45.0
    # parked vehicles along the kerbs (some diagonal bays)
    for side_i, side in enumerate((-1, 1)):
        if not parking[side_i]:
            continue
        occ = u(0.4, 0.9)
        diagonal = rng.random() < 0.15
        x = ax_lo + u(0, 5)
        while x < ax_hi:
            st, size, paint, refl, params = vehicle(str(rng.choice(["car"] * 10 + ["van"])))
            yaw = (np.pi / 2 - side * 0.5 if diagonal else (0.0 if side < 0 else np.pi)) + u(-0.06, 0.06)
            ext_x = abs(size[0] * np.cos(yaw)) + abs(size[1] * np.sin(yaw))     # footprint along / across the kerb
            ext_y = abs(size[0] * np.sin(yaw)) + abs(size[1] * np.cos(yaw))
            step = ext_x + (u(0.4, 1.0) if diagonal else u(0.6, 2.5))
            if rng.random() < occ and not in_crossing(x, 3.0 + size[0] / 2):
                if rng.random() < 0.15 and not diagonal:
                    yaw += np.pi
                # diagonal bays reach into the outer lane (vehicles driving there are dropped on overlap)
                y = side * (road_half - max(park_w, ext_y + 0.3) / 2 + u(-0.15, 0.1))
                poses, vel = track(x, y, yaw, 0.0)
                add("vehicle", st, size, 0.0, poses, vel, paint, refl, params)
            x += step
    # moving vehicles in lanes (same direction: y < 0, heading +x; oncoming: y > 0, heading pi)
    for side in (-1, 1):
        for lane in range(lanes):
            y = side * (lane + 0.5) * lane_w
            speed = ego_speed if (side < 0 and lane == ego_lane) else u(0.0, 12.0) * (rng.random() > 0.15)
            x = ax_lo + u(0, 15)
            while x < ax_hi:
                st, size, paint, refl, params = vehicle()
                if rng.random() < u(0.3, 0.7):
                    yaw = (0.0 if side < 0 else np.pi) + u(-0.04, 0.04)
                    poses, vel = track(x, y + u(-0.3, 0.3), yaw, speed)
                    add("vehicle", st, size, 0.0, poses, vel, paint, refl, params)
                x += size[0] + u(4.0, 20.0)
    # cross street: vehicles waiting at the junction, pedestrians on the zebra crossing
    if crossing_x is not None:
        for _ in range(rng.integers(1, 5)):
            st, size, paint, refl, params = vehicle()
            side = rng.choice([-1, 1])
            yaw = -np.pi / 2 if side > 0 else np.pi / 2
            lane_off = (crossing_half / 2) * (1 if yaw > 0 else -1)
            yv = side * (road_half + 1.0 + size[0] / 2 + u(0.0, 25.0))
            poses, vel = track(crossing_x + lane_off, yv, yaw + u(-0.05, 0.05), 0.0)   # waiting
            add("vehicle", st, size, 0.0, poses, vel, paint, refl, params)
    # cyclists and pedestrians draw from their own streams: changing one group's sampling leaves the rest alone
    rng_cyc, rng_ped, rng_end = rng.spawn(3)
    rng, u = rng_cyc, rng_cyc.uniform
    # cyclists near the kerb
    for side in (-1, 1):
        for _ in range(rng.integers(1, 6)):
            yaw = (0.0 if side < 0 else np.pi) + u(-0.1, 0.1)
            y = side * (lanes * lane_w - 0.8 + u(-0.3, 0.2))
            poses, vel = track(u(ax_lo, ax_hi), y, yaw, u(2.5, 7.0))
            size = (u(1.6, 1.9), u(0.5, 0.8), u(1.6, 1.8))
            paint = np.clip(u(0.05, 1.0, 3), 0, 1)
            add("cyclist", "rider", size, 0.0, poses, vel, paint, u(0.15, 0.35),
                dict(legs=np.clip(u(0.05, 0.5, 3), 0, 1)))

    def walker(x, y, z0, yaw, speed):
        size = (u(0.5, 0.9), u(0.5, 0.9), u(1.6, 1.9))
        poses, vel = track(x, y, yaw, speed)
        paint = np.clip(u(0.05, 0.9) * u(0.6, 1.4, 3), 0, 1)
        rt = min(0.2, size[1] / 2 - 0.13)
        stride = max(0.0, min(size[0] - 0.3, 0.6)) if speed > 0 else 0.0
        add("pedestrian", "walker", size, z0, poses, vel, paint, u(0.1, 0.3),
            dict(torso_r=rt, stride=stride, phase=u(0, 2 * np.pi), dt=frame_dt,
                 legs=np.clip(u(0.05, 0.5) * u(0.7, 1.3, 3), 0, 1)))

    # pedestrians on the sidewalks (some in pairs), a few on the zebra crossing
    rng, u = rng_ped, rng_ped.uniform
    for side in (-1, 1):
        n = int(rng.integers(5, 18))
        for _ in range(n):
            x = u(ax_lo, ax_hi)
            y = side * (road_half + u(0.5, sidewalk - 0.4))
            moving = rng.random() < 0.7
            yaw = (rng.choice([0.0, np.pi]) + u(-0.25, 0.25)) if moving else u(-np.pi, np.pi)
            speed = u(0.8, 1.7) if moving else 0.0
            walker(x, y, 0.15, yaw, speed)
            if rng.random() < 0.25:
                walker(x + u(-0.4, 0.4), y - side * u(0.7, 1.0), 0.15, yaw, speed)
    if crossing_x is not None:
        for _ in range(rng.integers(0, 5)):
            yaw = rng.choice([-np.pi / 2, np.pi / 2]) + u(-0.2, 0.2)
            walker(crossing_x - crossing_half - 2.0 + u(-1.2, 1.2), u(-road_half, road_half), 0.0, yaw,
                   u(0.8, 1.6))

    # --- drop agents that collide with anything kept before them, in any frame ----------------------------------
    kept: List[Agent] = []
    for ag in agents:
        ok = True
        for f in range(num_frames):
            r = (ag.poses[f, 0], ag.poses[f, 1], ag.size[0], ag.size[1], ag.poses[f, 2])
            others = [ego_fp[f]] + clutter_fp + [(k.poses[f, 0], k.poses[f, 1], k.size[0], k.size[1],
                                                  k.poses[f, 2]) for k in kept]
            near = [o for o in others if abs(o[0] - r[0]) < 12 and abs(o[1] - r[1]) < 12]
            if any(_obb_overlap(r, o, 0.15) for o in near):
                ok = False
                break
        if ok:
            kept.append(ag)
    for i, ag in enumerate(kept):                                       # stable, dense ids
        ag.name = f"{name_prefix}{ag.cls[:3]}_{i:03d}"
    rng, u = rng_end, rng_end.uniform
    sun_az, sun_el = u(-np.pi, np.pi), u(0.5, 1.2)
    sun = np.array([np.cos(sun_az) * np.cos(sun_el), np.sin(sun_az) * np.cos(sun_el), np.sin(sun_el)])
    ego_velocity = np.array([ego_speed * np.cos(ego_yaw), ego_speed * np.sin(ego_yaw), 0.0])
    return StreetSegment(layout, sb, kept, ego_poses, times, sun, ego_velocity)
