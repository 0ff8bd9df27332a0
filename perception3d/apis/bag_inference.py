"""Offline inference on recorded bags: PointCloud2 scans in, ``vision_msgs/Detection3DArray`` + markers out.

    model = init_model("configs/centerpoint_voxel_waymo_mini.py", ckpt)
    result = infer_bag(model, "drive.mcap", "/points", out="drive_det.mcap")
    print(result.summary())

For every message of ``topic`` (in log-time order): decode the cloud (any PointField layout, see
:mod:`perception3d.io.pointcloud2`), optionally move it into the model's frame (``extrinsic``, a 4×4
``target ← sensor``) and crop it to ``point_range``, run :func:`inference_detector` ``batch_size`` scans at a time,
keep boxes with ``score >= score_thr``, and write, stamped with the scan's header stamp and frame id (the target
frame when an extrinsic is given) at the scan's log time:

- ``<det_topic>`` (default ``/perception3d/detections``): ``vision_msgs/Detection3DArray`` (ROS1 noetic or ROS2
  humble definition, matching the output bag);
- ``<marker_topic>`` (default ``/perception3d/markers``): ``visualization_msgs/MarkerArray`` (DELETEALL, then
  LINE_LIST or CUBE boxes in class colours + TEXT_VIEW_FACING labels);
- the input cloud under its own topic (``keep_input``; copied byte for byte when the serialisation matches);
- for a segmentor (``PointSegmentor`` config) instead of the two above: ``<label_topic>`` (default
  ``/perception3d/labels``): the scan's points (after the transform / crop) as a ``sensor_msgs/PointCloud2`` with
  fields x, y, z, intensity (float32) and ``label`` (int32 class index into the config's ``class_names``, −1 where
  the model gives no prediction); its JSON line holds ``{"num_points", "label_counts" {name: count}}``;
- one JSON line per scan in ``jsonl`` (``{"index", "t_ns", "stamp_ns", "frame_id", "boxes" [[x, y, z_bottom,
  dx, dy, dz, yaw]], "scores", "labels", "names"}``, or ``{"index", "t_ns", "skipped": reason}``).

A scan that cannot be used is skipped, counted by reason and reported (the rest of the bag is processed):
undecodable message bytes (not copied to the output), undecodable cloud (no x/y/z, data shorter than ``row_step × height``, bad layout), empty cloud (before or after the
crop), another frame than the first scan's without an extrinsic for it (warned once).  What makes the whole run
impossible (missing / unreadable bag, unknown topic, output = input) raises before anything is written; outputs
appear only when the run completes (written aside, then renamed).
"""
from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from perception3d.apis.inference import inference_detector, inference_segmentor, is_segmentor, model_point_dims
from perception3d.io.bags import BagReader, BagWriter, StagedOutputs, list_pointcloud_topics, output_format
from perception3d.io.pointcloud2 import PointCloud2Error, pointcloud2_to_points
from perception3d.io.ros_msgs import (POINTCLOUD2, boxes_to_markers, convert_msg, detections_to_msg,
                                      stamp_to_ns)
from perception3d.structures.points import point_columns

__all__ = ["BagInferenceResult", "infer_bag", "make_demo_bag", "list_pointcloud_topics", "model_point_columns",
           "parse_extrinsic", "default_output_path", "WAYMO_POINT_COLUMNS"]

PathLike = Union[str, Path]
#: column order of the Waymo-style point features the mini / Waymo configs are trained on (DESIGN.md §4)
WAYMO_POINT_COLUMNS = ("x", "y", "z", "intensity", "elongation", "time")


@dataclass
class BagInferenceResult:
    """What a run did: counts, skip reasons, timing and the paths written."""
    scans: int = 0                                   # messages on the topic
    processed: int = 0                               # scans with a detection message written
    skipped: Counter = field(default_factory=Counter)   # reason → count
    detections: int = 0                              # boxes written in total
    seconds: float = 0.0
    out: Optional[Path] = None
    jsonl: Optional[Path] = None
    missing_columns: list = field(default_factory=list)
    invalid_points: int = 0                          # non-finite points dropped over all scans

    @property
    def scans_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [f"scans: {self.scans}  processed: {self.processed}  skipped: {sum(self.skipped.values())}  "
                 f"boxes: {self.detections}  time: {self.seconds:.1f} s  ({self.scans_per_s:.2f} scans/s)"]
        for reason, n in sorted(self.skipped.items()):
            lines.append(f"  skipped {n} × {reason}")
        if self.invalid_points:
            lines.append(f"  dropped {self.invalid_points} non-finite (NaN) points")
        if self.missing_columns:
            lines.append(f"  columns absent from the clouds, fed as 0: {self.missing_columns}")
        lines.append(f"  wrote {self.out}" + (f" and {self.jsonl}" if self.jsonl else ""))
        return "\n".join(lines)


def model_point_columns(model) -> list:
    """Names of the point columns the model takes (``use_dim`` of its test dataset): the config's
    ``point_columns`` when it names them, else the Waymo order :data:`WAYMO_POINT_COLUMNS`."""
    cfg = getattr(model, "cfg", None)
    names = cfg.get("point_columns", None) if cfg is not None else None
    if names:
        return list(names)
    return [WAYMO_POINT_COLUMNS[i] for i in point_columns(model_point_dims(model)[1])]


def parse_extrinsic(values: Union[None, str, Path, Sequence[float], np.ndarray]) -> Optional[np.ndarray]:
    """A 4×4 ``target ← sensor`` transform from 16 numbers (row-major), a 4×4 array, or a YAML/JSON file
    holding a 4×4 nested list or 16 numbers (optionally under a key ``extrinsic`` / ``transform`` / ``matrix``)."""
    if values is None:
        return None
    if isinstance(values, (str, Path)):
        import yaml
        path = Path(values)
        if not path.is_file():
            raise FileNotFoundError(f"extrinsic file not found: {path}")
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict):
            for key in ("extrinsic", "transform", "matrix", "T"):
                if key in data:
                    data = data[key]
                    break
            else:
                raise ValueError(f"{path}: expected a 4×4 matrix or a key 'extrinsic'/'transform'/'matrix'")
        values = data
    m = np.asarray(values, dtype=np.float64)
    if m.size != 16:
        raise ValueError(f"extrinsic: expected 16 numbers (a 4×4 matrix), got {m.size}")
    m = m.reshape(4, 4)
    if not np.allclose(m[3], [0, 0, 0, 1]):
        raise ValueError(f"extrinsic: the last row must be 0 0 0 1, got {m[3].tolist()}")
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-4):
        raise ValueError("extrinsic: the upper-left 3×3 is not a rotation (R Rᵀ ≠ I)")
    return m


def default_output_path(inp: PathLike, fmt: Optional[str] = None) -> Path:
    """``<input stem>_detections`` next to the input, with the suffix of ``fmt`` (default: the input's)."""
    inp = Path(inp)
    stem = inp.stem if inp.suffix in (".bag", ".mcap", ".db3") else inp.name
    if fmt is None:
        from perception3d.io.bags import bag_format
        fmt = bag_format(inp)
    suffix = {"ros1": ".bag", "ros2-mcap": ".mcap", "ros2-sqlite3": ".db3"}[fmt]
    return inp.with_name(f"{stem}_detections{suffix}")


def _class_names(model) -> list:
    names = getattr(model, "class_names", None)
    if names is None and getattr(model, "cfg", None) is not None:
        names = model.cfg.get("class_names", None)
    return list(names) if names is not None else []


def infer_bag(model: torch.nn.Module, bag: PathLike, topic: str, out: Optional[PathLike] = None,
              fmt: Optional[str] = None, score_thr: float = 0.0, batch_size: int = 1, keep_input: bool = True,
              target_frame: Optional[str] = None, extrinsic=None, source_frame: Optional[str] = None,
              point_range: Optional[Sequence[float]] = None, jsonl: Union[None, bool, PathLike] = True,
              det_topic: str = "/perception3d/detections", marker_topic: str = "/perception3d/markers",
              marker_style: str = "line_list", overwrite: bool = False, progress: bool = False,
              max_scans: Optional[int] = None, label_topic: str = "/perception3d/labels") -> BagInferenceResult:
    """Run ``model`` on every PointCloud2 of ``topic`` in ``bag`` and write an output bag (+ JSON lines).

    Args:
        out: output bag (default :func:`default_output_path`); ``fmt`` "ros1" | "ros2-mcap" | "ros2-sqlite3"
            (default from the suffix of ``out``; with neither, the input's format).
        score_thr: keep boxes with score ≥ this (on top of the model's own ``score_thresh``).
        batch_size: scans per forward pass (``inference_detector``'s batching).
        target_frame / extrinsic: move clouds of ``source_frame`` (default: the first scan's frame) into
            ``target_frame`` with the 4×4 ``extrinsic`` (target ← source); detections carry ``target_frame``.
            With ``target_frame`` alone, scans must already be in it.
        point_range: crop ``[x0, y0, z0, x1, y1, z1]`` (after the transform).
        jsonl: True → ``<out>.jsonl``; a path; False/None → none.
        label_topic: where a segmentor's labelled clouds go.
    Returns:
        a :class:`BagInferenceResult` (``.summary()`` prints it).
    Raises:
        BagError: unreadable bag, unknown topic or a topic of another type (naming the file and topic).
        FileExistsError / ValueError: an existing output without ``overwrite``, an output that is the input.
    """
    bag = Path(bag)
    if extrinsic is not None and target_frame is None:
        raise ValueError("an extrinsic needs target_frame (the frame the transformed clouds are in)")
    T = parse_extrinsic(extrinsic)
    if point_range is not None:
        point_range = np.asarray(point_range, np.float32).reshape(-1)
        if point_range.size != 6 or np.any(point_range[3:] <= point_range[:3]):
            raise ValueError(f"point_range must be x0 y0 z0 x1 y1 z1 with x1 > x0 …, got {point_range.tolist()}")
    columns = model_point_columns(model)
    class_names = _class_names(model)
    result = BagInferenceResult()
    reader = BagReader(bag)
    try:
        reader.check_topic(topic, POINTCLOUD2)
        total = reader.topics()[topic][1]
        in_fmt = reader.format
        if out is None:
            out = default_output_path(bag, fmt or in_fmt)
        out = Path(out)
        out_fmt = output_format(out, fmt, default=in_fmt)
        stage = StagedOutputs(overwrite=overwrite, protect=[bag])
        jsonl_path = None
        if jsonl:
            jsonl_path = Path(out.as_posix() + ".jsonl") if jsonl is True else Path(jsonl)
        try:
            staged_jsonl = stage.path(jsonl_path) if jsonl_path else None
            writer = BagWriter(out, out_fmt, stage=stage)
        except BaseException:
            stage.abort()
            raise
        ts = writer.typestore
        same_serialization = (in_fmt == "ros1") == (writer.kind == "ros1")
        jf = open(staged_jsonl, "w") if staged_jsonl else None
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total if max_scans is None else min(total, max_scans), unit="scan",
                       desc=f"{bag.name}:{topic}")
        ok = False
        outputs = dict(seg=is_segmentor(model), label_topic=label_topic, columns=columns)
        try:
            if outputs["seg"]:
                writer.add_topic(label_topic, POINTCLOUD2)
            else:
                writer.add_topic(det_topic, "vision_msgs/msg/Detection3DArray")
                writer.add_topic(marker_topic, "visualization_msgs/msg/MarkerArray")
            if keep_input:
                writer.add_topic(topic, POINTCLOUD2)
            t0 = time.perf_counter()
            state = dict(ref_frame=source_frame, warned_frame=False, warned_cols=False)
            pending: list = []
            for index, (_, t_ns, raw, msgtype) in enumerate(reader.raw_messages([topic])):
                if max_scans is not None and index >= max_scans:
                    break
                result.scans += 1
                try:
                    msg = reader.deserialize(raw, msgtype)
                except Exception as exc:   # rosbags raises several types on undecodable bytes
                    reason = f"undecodable message ({type(exc).__name__})"
                    result.skipped[reason] += 1
                    if jf:
                        jf.write(json.dumps(dict(index=index, t_ns=t_ns, skipped=reason)) + "\n")
                    if bar is not None:
                        bar.update(1)
                    continue
                if keep_input:
                    if same_serialization:
                        writer.write_raw(topic, t_ns, raw, POINTCLOUD2)
                    else:
                        writer.write(topic, t_ns, convert_msg(msg, POINTCLOUD2, ts))
                item = _prepare(msg, index, t_ns, columns, state, target_frame, T, point_range, result)
                if isinstance(item, str):
                    result.skipped[item] += 1
                    if jf:
                        jf.write(json.dumps(dict(index=index, t_ns=t_ns, skipped=item)) + "\n")
                else:
                    pending.append(item)
                if len(pending) >= batch_size:
                    _flush(model, pending, batch_size, score_thr, writer, ts, det_topic, marker_topic, marker_style,
                           class_names, jf, result, outputs)
                if bar is not None:
                    bar.update(1)
            _flush(model, pending, batch_size, score_thr, writer, ts, det_topic, marker_topic, marker_style,
                   class_names, jf, result, outputs)
            result.seconds = time.perf_counter() - t0
            if jf:
                jf.close()
                jf = None
            writer.finish()
            stage.commit()
            ok = True
        finally:
            if bar is not None:
                bar.close()
            if jf:
                jf.close()
            if not ok:
                writer.abort()
                stage.abort()
    finally:
        reader.close()
    result.out, result.jsonl = out, jsonl_path
    return result


def _prepare(msg, index: int, t_ns: int, columns: list, state: dict, target_frame, T, point_range,
             result: BagInferenceResult):
    """One scan → (index, t_ns, stamp_ns, frame_id, points [N, len(columns)]) or a skip reason (str)."""
    frame = str(msg.header.frame_id)
    if state["ref_frame"] is None:
        state["ref_frame"] = frame
    ref = state["ref_frame"]
    if target_frame is not None:
        usable = frame == target_frame or (T is not None and frame == ref)
        why = (f"is not the target frame {target_frame!r}" + (f" nor the extrinsic's source frame {ref!r}"
                                                             if T is not None else " and no extrinsic is given"))
    else:
        usable = frame == ref
        why = f"differs from the first scan's frame {ref!r} and no extrinsic maps it"
    if not usable:
        if not state["warned_frame"]:
            state["warned_frame"] = True
            warnings.warn(f"scan {index}: frame {frame!r} {why}; such scans are skipped (warned once, counted in "
                          f"the summary)")
        return f"frame {frame!r} without extrinsic"
    out_frame = frame
    try:
        dec = pointcloud2_to_points(msg, extra=columns[3:])
    except PointCloud2Error as exc:
        return f"bad PointCloud2 ({exc})"
    result.invalid_points += dec.num_invalid
    result.missing_columns += [c for c in dec.missing if c not in result.missing_columns]
    if dec.missing and not state["warned_cols"]:
        state["warned_cols"] = True
        warnings.warn(f"scan {index}: the cloud has no field for {dec.missing} (fields: "
                      f"{[f.name for f in msg.fields]}); the model gets 0 there")
    pts = dec.points
    if T is not None and frame != target_frame:
        pts = pts.copy()
        pts[:, :3] = (pts[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
        out_frame = target_frame
    if point_range is not None:
        keep = ((pts[:, :3] >= point_range[:3]) & (pts[:, :3] < point_range[3:])).all(1)
        pts = pts[keep]
    if pts.shape[0] == 0:
        return "empty cloud"
    return (index, t_ns, stamp_to_ns(msg.header.stamp), out_frame, pts)


def _flush(model, pending: list, batch_size: int, score_thr: float, writer: BagWriter, ts, det_topic: str,
           marker_topic: str, marker_style: str, class_names: list, jf, result: BagInferenceResult,
           outputs: Optional[dict] = None) -> None:
    if not pending:
        return
    if outputs and outputs["seg"]:
        _flush_labels(model, pending, batch_size, writer, ts, class_names, jf, result, outputs)
        return
    dets = inference_detector(model, [torch.from_numpy(p[4]) for p in pending], batch_size=batch_size)
    for (index, t_ns, stamp_ns, frame, _), det in zip(pending, dets):
        scores = det["scores_3d"].cpu().numpy()
        keep = scores >= score_thr
        boxes = det["bboxes_3d"].cpu().numpy()[keep].astype(np.float64)
        scores = scores[keep].astype(np.float64)
        labels = det["labels_3d"].cpu().numpy()[keep].astype(np.int64)
        writer.write(det_topic, t_ns, detections_to_msg(ts, boxes, scores, labels, class_names, stamp_ns, frame,
                                                        seq=index))
        writer.write(marker_topic, t_ns, boxes_to_markers(ts, boxes, scores, labels, class_names, stamp_ns, frame,
                                                          style=marker_style))
        if jf:
            jf.write(json.dumps(dict(index=index, t_ns=t_ns, stamp_ns=stamp_ns, frame_id=frame,
                                     boxes=boxes.tolist(), scores=scores.tolist(), labels=labels.tolist(),
                                     names=[class_names[l] if l < len(class_names) else str(l) for l in labels]))
                     + "\n")
        result.processed += 1
        result.detections += int(len(boxes))
    pending.clear()


def _flush_labels(model, pending: list, batch_size: int, writer: BagWriter, ts, class_names: list, jf,
                  result: BagInferenceResult, outputs: dict) -> None:
    """Segmentor output: each scan's points with a ``label`` field on ``outputs["label_topic"]``."""
    from perception3d.io.pointcloud2 import points_to_pointcloud2
    preds = inference_segmentor(model, [torch.from_numpy(p[4]) for p in pending], batch_size=batch_size)
    names = list(outputs["columns"]) + ["label"]
    for (index, t_ns, stamp_ns, frame, pts), pred in zip(pending, preds):
        labels = pred["labels"].cpu().numpy().astype(np.int64)
        cloud = np.concatenate([pts, labels[:, None].astype(np.float64)], 1)
        writer.write(outputs["label_topic"], t_ns, points_to_pointcloud2(
            ts, cloud, names, stamp_ns, frame, dtypes=[np.float32] * pts.shape[1] + [np.int32], seq=index))
        if jf:
            ids, counts = np.unique(labels, return_counts=True)
            jf.write(json.dumps(dict(index=index, t_ns=t_ns, stamp_ns=stamp_ns, frame_id=frame,
                                     num_points=int(labels.shape[0]),
                                     label_counts={(class_names[i] if 0 <= i < len(class_names) else str(i)): int(c)
                                                   for i, c in zip(ids.tolist(), counts.tolist())})) + "\n")
        result.processed += 1
    pending.clear()


def make_demo_bag(out: PathLike, fmt: Optional[str] = None, scans: int = 10, root: PathLike = "data/waymo_mini",
                  topic: str = "/points", frame_id: str = "base_link", period_ns: int = 100_000_000,
                  overwrite: bool = False) -> dict:
    """Write ``scans`` TOP-lidar scans of the built-in mini dataset's val split (generated at ``root`` when
    missing) as ``sensor_msgs/PointCloud2`` on ``topic`` (fields x, y, z, intensity, elongation: float32, in the
    vehicle frame ``frame_id``).  More scans than the split holds cycle through it again.  Header stamps start at
    the first frame's timestamp and advance by ``period_ns`` (10 Hz), log time = header stamp.
    Returns {"out", "format", "scans", "points"}."""
    from perception3d.datasets.synthetic.writer import ensure_waymo_mini
    from perception3d.datasets.waymo_v2 import WaymoV2Segment, find_split_dir, list_segments
    from perception3d.io.pointcloud2 import points_to_pointcloud2
    if scans < 1:
        raise ValueError(f"scans must be ≥ 1, got {scans}")
    root = ensure_waymo_mini(root)
    split_dir = find_split_dir(root, "val")
    frames = []
    for seg in list_segments(split_dir):
        segment = WaymoV2Segment(split_dir, seg, lasers=(1,), returns=(1,))
        for ts_us in segment.timestamps:
            frames.append((int(ts_us), seg, segment))
            if len(frames) >= scans:
                break
        if len(frames) >= scans:
            break
    if not frames:
        raise ValueError(f"{split_dir}: no frames in the val split")
    t0 = frames[0][0] * 1000
    names = ["x", "y", "z", "intensity", "elongation"]
    cache: dict = {}
    total = 0
    with BagWriter(out, output_format(out, fmt), overwrite=overwrite) as w:
        for i in range(scans):
            ts_us, seg, segment = frames[i % len(frames)]
            if (seg, ts_us) not in cache:
                cache[(seg, ts_us)] = segment.points(ts_us)[0][:, :5].copy()
            pts = cache[(seg, ts_us)]
            stamp = t0 + i * period_ns
            w.write(topic, stamp, points_to_pointcloud2(w.typestore, pts, names, stamp, frame_id, seq=i))
            total += int(pts.shape[0])
        fmt_written = w.format
    return dict(out=str(out), format=fmt_written, scans=scans, points=total)
