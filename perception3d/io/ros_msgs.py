"""ROS message types and builders that work without a ROS install (rosbags typestores).

``typestore_for("ros1" | "ros2")`` is the ROS1 noetic / ROS2 humble store with ``vision_msgs`` registered from
its ``.msg`` text (the two versions differ, see :data:`VISION_MSGS_ROS1` / :data:`VISION_MSGS_ROS2`).
``make_msg(ts, msgtype, **fields)`` builds any message, filling unnamed fields with zeros / empty values, so the
same call works for both stores (ROS1's ``Header.seq``, ROS2 humble's extra ``Marker`` fields).

Box convention in: LiDAR frame ``(x, y, z_bottom, dx, dy, dz, yaw)`` (DESIGN.md §4).  Out: a ``BoundingBox3D``
whose ``center`` is the box's geometric centre (z + dz / 2) with a yaw quaternion about +z, ``size = (dx, dy, dz)``.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np
import torch
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from perception3d.ops.box_tensor import BOX_EDGES, box_corners as _box_corners

__all__ = ["VISION_MSGS_ROS1", "VISION_MSGS_ROS2", "typestore_for", "make_msg", "make_header", "stamp_to_ns",
           "convert_msg", "detections_to_msg", "boxes_to_markers", "class_color", "box_corners",
           "DETECTION3D_ARRAY", "MARKER_ARRAY", "POINTCLOUD2"]

DETECTION3D_ARRAY = "vision_msgs/msg/Detection3DArray"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"

#: vision_msgs 0.0.2 (ROS1 noetic): hypotheses carry an int64 class id; Detection3D has ``source_cloud``.
VISION_MSGS_ROS1 = {
    "vision_msgs/msg/ObjectHypothesisWithPose": "int64 id\nfloat64 score\ngeometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D": ("std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
                                    "vision_msgs/BoundingBox3D bbox\nsensor_msgs/PointCloud2 source_cloud\n"),
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
}
#: vision_msgs 4.x (ROS2 humble): ``ObjectHypothesis{string class_id, float64 score}``; Detection3D has ``id``.
VISION_MSGS_ROS2 = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": ("vision_msgs/ObjectHypothesis hypothesis\n"
                                                 "geometry_msgs/PoseWithCovariance pose\n"),
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D": ("std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
                                    "vision_msgs/BoundingBox3D bbox\nstring id\n"),
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
}


@functools.lru_cache(maxsize=None)
def typestore_for(kind: str):
    """The rosbags typestore of ``kind`` ("ros1": noetic, "ros2": humble) with vision_msgs registered."""
    if kind not in ("ros1", "ros2"):
        raise ValueError(f"typestore kind must be 'ros1' or 'ros2', got {kind!r}")
    ts = get_typestore(Stores.ROS1_NOETIC if kind == "ros1" else Stores.ROS2_HUMBLE)
    types: dict = {}
    for name, text in (VISION_MSGS_ROS1 if kind == "ros1" else VISION_MSGS_ROS2).items():
        types.update(get_types_from_msg(text, name))
    ts.register(types)
    return ts


_NP = {"bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "byte": np.uint8, "char": np.uint8,
       "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
       "uint64": np.uint64, "float32": np.float32, "float64": np.float64}


def _default(ts, node) -> Any:
    kind, arg = node
    kind = int(kind)
    if kind == 1:                                          # BASE
        name = arg[0]
        return "" if name == "string" else (False if name == "bool" else (0.0 if name.startswith("float") else 0))
    if kind == 2:                                          # NAME (a nested message)
        return make_msg(ts, arg)
    sub, length = arg                                      # ARRAY (3) / SEQUENCE (4)
    if int(sub[0]) == 1 and sub[1][0] in _NP and sub[1][0] != "bool":
        return np.zeros(length if kind == 3 else 0, _NP[sub[1][0]])
    return [_default(ts, sub) for _ in range(length)] if kind == 3 else []


def make_msg(ts, msgtype: str, **fields: Any):
    """Message ``msgtype`` of typestore ``ts``; fields not given get zero / empty defaults (recursively).
    A field name the type does not have raises ``KeyError`` naming it."""
    if msgtype not in ts.fielddefs:
        raise KeyError(f"message type {msgtype!r} is not in the typestore")
    defs = ts.fielddefs[msgtype][1]
    if len(fields) != len(defs):
        names = [n for n, _ in defs]
        unknown = set(fields) - set(names)
        if unknown:
            raise KeyError(f"{msgtype} has no field(s) {sorted(unknown)} (fields: {names})")
        fields = {n: fields[n] if n in fields else _default(ts, node) for n, node in defs}
    return ts.types[msgtype](**fields)


def make_header(ts, stamp_ns: int, frame_id: str, seq: int = 0):
    """``std_msgs/Header`` with ``stamp`` from integer nanoseconds (ROS1 stores also get ``seq``)."""
    stamp = make_msg(ts, "builtin_interfaces/msg/Time", sec=int(stamp_ns // 1_000_000_000),
                     nanosec=int(stamp_ns % 1_000_000_000))
    extra = {"seq": int(seq)} if "seq" in [n for n, _ in ts.fielddefs["std_msgs/msg/Header"][1]] else {}
    return make_msg(ts, "std_msgs/msg/Header", stamp=stamp, frame_id=str(frame_id), **extra)


def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` (sec, nanosec) → integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def convert_msg(msg, msgtype: str, ts):
    """Rebuild ``msg`` (a message of another typestore, e.g. a ROS1 cloud) as ``msgtype`` of ``ts``: fields
    are matched by name, fields the target lacks are dropped (``seq``), fields it adds get defaults."""
    values = {}
    for name, node in ts.fielddefs[msgtype][1]:
        if not hasattr(msg, name):
            continue
        v = getattr(msg, name)
        kind = int(node[0])
        if kind == 2:
            v = convert_msg(v, node[1], ts)
        elif kind in (3, 4) and int(node[1][0][0]) == 2:
            v = [convert_msg(x, node[1][0][1], ts) for x in v]
        values[name] = v
    return make_msg(ts, msgtype, **values)


# ---------------------------------------------------------------------------------------------------------------
# detections → vision_msgs / visualization_msgs
# ---------------------------------------------------------------------------------------------------------------
_PALETTE = [(1.0, 0.6, 0.0), (0.1, 0.8, 0.1), (0.2, 0.5, 1.0), (0.9, 0.1, 0.9), (0.0, 0.9, 0.9), (0.9, 0.9, 0.1),
            (0.6, 0.3, 0.1), (1.0, 0.3, 0.3)]


def class_color(label: int) -> tuple[float, float, float]:
    """Fixed RGB colour of a class index (Car orange, Pedestrian green, Cyclist blue, …)."""
    return _PALETTE[int(label) % len(_PALETTE)]


def box_corners(box: Sequence[float]) -> np.ndarray:
    """Eight corners [8, 3] of ``(x, y, z_bottom, dx, dy, dz, yaw)``: bottom face 0–3 then top face 4–7,
    counter-clockwise seen from above."""
    return _box_corners(torch.tensor([[float(v) for v in box[:7]]], dtype=torch.float64))[0].numpy()


def _pose(ts, box):
    x, y, z, dx, dy, dz, yaw = [float(v) for v in box[:7]]
    q = make_msg(ts, "geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))
    p = make_msg(ts, "geometry_msgs/msg/Point", x=x, y=y, z=z + dz / 2)
    return make_msg(ts, "geometry_msgs/msg/Pose", position=p, orientation=q)


def detections_to_msg(ts, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                      stamp_ns: int, frame_id: str, seq: int = 0):
    """``vision_msgs/Detection3DArray`` of K boxes [K, 7] (LiDAR convention), scores [K], labels [K].

    ROS2 (humble): one hypothesis per detection with ``class_id`` = the class name; ``Detection3D.id`` = its
    index in the array.  ROS1 (noetic): ``id`` = the integer label (index into ``class_names``).
    Each detection's header equals the array's (the scan's stamp and frame).
    """
    ros2 = "vision_msgs/msg/ObjectHypothesis" in ts.fielddefs
    header = make_header(ts, stamp_ns, frame_id, seq)
    dets = []
    for k in range(len(boxes)):
        box, score, label = boxes[k], float(scores[k]), int(labels[k])
        pose = _pose(ts, box)
        pwc = make_msg(ts, "geometry_msgs/msg/PoseWithCovariance", pose=pose)
        if ros2:
            hyp = make_msg(ts, "vision_msgs/msg/ObjectHypothesis", class_id=str(class_names[label]), score=score)
            res = make_msg(ts, "vision_msgs/msg/ObjectHypothesisWithPose", hypothesis=hyp, pose=pwc)
            extra = {"id": str(k)}
        else:
            res = make_msg(ts, "vision_msgs/msg/ObjectHypothesisWithPose", id=label, score=score, pose=pwc)
            extra = {}
        size = make_msg(ts, "geometry_msgs/msg/Vector3", x=float(box[3]), y=float(box[4]), z=float(box[5]))
        bbox = make_msg(ts, "vision_msgs/msg/BoundingBox3D", center=pose, size=size)
        dets.append(make_msg(ts, "vision_msgs/msg/Detection3D", header=header, results=[res], bbox=bbox, **extra))
    return make_msg(ts, DETECTION3D_ARRAY, header=header, detections=dets)


def boxes_to_markers(ts, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                     stamp_ns: int, frame_id: str, style: str = "line_list", line_width: float = 0.08):
    """``visualization_msgs/MarkerArray`` for viewers (RViz, Foxglove): a ``DELETEALL`` marker first (clears the
    previous scan's boxes), then per box a ``LINE_LIST`` wireframe (12 edges) or a translucent ``CUBE``
    (``style="cube"``) in its class colour, and a ``TEXT_VIEW_FACING`` label "Class 0.87" above it."""
    if style not in ("line_list", "cube"):
        raise ValueError(f"marker style must be 'line_list' or 'cube', got {style!r}")
    M = ts.types["visualization_msgs/msg/Marker"]
    header = make_header(ts, stamp_ns, frame_id)
    markers = [make_msg(ts, "visualization_msgs/msg/Marker", header=header, ns="", id=0, action=M.DELETEALL)]
    ident = make_msg(ts, "geometry_msgs/msg/Pose",
                     orientation=make_msg(ts, "geometry_msgs/msg/Quaternion", w=1.0))
    for k in range(len(boxes)):
        box, label = boxes[k], int(labels[k])
        r, g, b = class_color(label)
        name = str(class_names[label]) if label < len(class_names) else str(label)
        if style == "line_list":
            corners = box_corners(box)
            P = ts.types["geometry_msgs/msg/Point"]
            c = corners.tolist()
            pts = [P(x=c[i][0], y=c[i][1], z=c[i][2]) for e in BOX_EDGES for i in e]
            markers.append(make_msg(
                ts, "visualization_msgs/msg/Marker", header=header, ns="boxes", id=k, type=M.LINE_LIST,
                action=M.ADD, pose=ident, points=pts,
                scale=make_msg(ts, "geometry_msgs/msg/Vector3", x=line_width),
                color=make_msg(ts, "std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=1.0)))
        else:
            markers.append(make_msg(
                ts, "visualization_msgs/msg/Marker", header=header, ns="boxes", id=k, type=M.CUBE, action=M.ADD,
                pose=_pose(ts, box),
                scale=make_msg(ts, "geometry_msgs/msg/Vector3", x=float(box[3]), y=float(box[4]), z=float(box[5])),
                color=make_msg(ts, "std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=0.4)))
        top = make_msg(ts, "geometry_msgs/msg/Point", x=float(box[0]), y=float(box[1]),
                       z=float(box[2]) + float(box[5]) + 0.5)
        markers.append(make_msg(
            ts, "visualization_msgs/msg/Marker", header=header, ns="labels", id=k, type=M.TEXT_VIEW_FACING,
            action=M.ADD, text=f"{name} {float(scores[k]):.2f}",
            pose=make_msg(ts, "geometry_msgs/msg/Pose", position=top,
                          orientation=make_msg(ts, "geometry_msgs/msg/Quaternion", w=1.0)),
            scale=make_msg(ts, "geometry_msgs/msg/Vector3", z=0.8),
            color=make_msg(ts, "std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=1.0)))
    return make_msg(ts, MARKER_ARRAY, markers=markers)
