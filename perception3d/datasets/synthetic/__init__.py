"""The street simulator that makes the built-in mini dataset (Waymo Open Dataset v2 layout), in readable parts:

- :mod:`.raycast`    the scene's primitives (boxes, vertical cylinders, spheres) and the first-hit ray caster;
- :mod:`.materials`  lidar reflectivity and albedo per material, the ground's material at a point;
- :mod:`.scene`      the data model of a segment: street layout, labelled agents, ego trajectory;
- :mod:`.objects`    vehicles, pedestrians and cyclists as primitives inside their label boxes; one frame's scene;
- :mod:`.layout`     a random street segment (layout, static content, agents, ego);
- :mod:`.sensors`    the 64-beam spinning LiDAR (range images) and the pinhole camera, and their poses;
- :mod:`.cameras`    the surround camera rig (FRONT, FRONT_LEFT, FRONT_RIGHT) with class-textured objects, on demand;
- :mod:`.writer`     ``generate_waymo_mini``: segments → Waymo v2 parquet files + a manifest, atomically.

Everything is numpy and deterministic in the seed: the generated files are byte-identical for one seed and set of
arguments (``tests/test_synthetic_street.py`` checks this).
"""
from perception3d.datasets.synthetic.layout import sample_street_segment  # noqa: F401
from perception3d.datasets.synthetic.objects import CLASS_TO_WAYMO_TYPE, frame_scene  # noqa: F401
from perception3d.datasets.synthetic.raycast import Primitives, SceneBuilder, ray_cast  # noqa: F401
from perception3d.datasets.synthetic.scene import Agent, StreetLayout, StreetSegment  # noqa: F401
from perception3d.datasets.synthetic.sensors import (CameraSpec, LidarSpec, pose_matrix, render_camera,  # noqa: F401
                                                     rpy_from_rotation, simulate_lidar)
from perception3d.datasets.synthetic.writer import (MANIFEST_NAME, V2_SCHEMAS, ensure_waymo_mini,  # noqa: F401
                                                    generate_waymo_mini, waymo_mini_is_current)
