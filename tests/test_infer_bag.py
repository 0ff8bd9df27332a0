"""Offline inference on bags (issue 7): bags in all three storage formats with varied PointCloud2 layouts go through
``infer_bag`` / ``tools/infer_bag.py``; the output is read back with rosbags and (mcap) with the independent
``mcap`` + ``mcap-ros2-support`` reader: one detection message per scan, stamps and frame ids kept, boxes equal to
calling ``inference_detector`` directly.  Bad messages are counted skips; what makes a run impossible is an error
and leaves no output.  The detector is the CenterPoint mini config with random weights (its heatmap conv re-drawn
with a wider spread so that scores differ and a threshold selects some boxes)."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.apis import inference_detector, init_model
from perception3d.apis import bag_inference
from perception3d.apis.bag_inference import infer_bag, model_point_columns, parse_extrinsic
from perception3d.io.bags import BagError, BagReader, BagWriter
from perception3d.io.pointcloud2 import pointcloud2_to_points, points_to_pointcloud2
from perception3d.io.ros_msgs import POINTCLOUD2, make_msg, stamp_to_ns

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "centerpoint_voxel_waymo_mini.py"
DET, MARK = "/perception3d/detections", "/perception3d/markers"
TOPK = {"model.bbox_head.test_cfg.topk": 40, "model.bbox_head.test_cfg.post_max_size": 40}


def _tune(model):
    torch.manual_seed(0)
    torch.nn.init.normal_(model.bbox_head.task_heads[0].hm[-1].weight, std=3.0)
    return model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return _tune(init_model(CONFIG, cfg_options=TOPK))


def _scene(rng, n=1500):
    """A small street-like cloud: ground points + three box-shaped clusters, x y z intensity elongation."""
    ground = np.c_[rng.uniform(-30, 30, (n, 2)), rng.normal(0, 0.05, n)]
    parts = [ground]
    for cx, cy in rng.uniform(-20, 20, (3, 2)):
        parts.append(np.c_[rng.uniform(cx - 2, cx + 2, 150), rng.uniform(cy - 1, cy + 1, 150),
                           rng.uniform(0, 1.6, 150)])
    xyz = np.concatenate(parts).astype(np.float32)
    return np.c_[xyz, rng.integers(0, 256, len(xyz)), rng.uniform(0, 0.3, len(xyz))].astype(np.float32)


# three layouts per bag: float32 packed with elongation; float64 xyz + uint8 intensity, padded points and rows, no
# elongation; big-endian organised (height 3) float32 with NaN points
def _encode(ts, pts, i, stamp, frame):
    k = i % 3
    if k == 0:
        return (points_to_pointcloud2(ts, pts, ["x", "y", "z", "intensity", "elongation"], stamp, frame, seq=i),
                np.c_[pts[:, :4], pts[:, 4:5]].astype(np.float32))
    if k == 1:
        msg = points_to_pointcloud2(ts, pts[:, :4], ["x", "y", "z", "intensity"], stamp, frame,
                                    dtypes=["f8", "f8", "f8", "u1"], offsets=[0, 8, 16, 28], point_step=32,
                                    row_padding=5, seq=i)
        want = np.c_[pts[:, :3], (pts[:, 3].astype(np.uint8).astype(np.float64) / 255.0), np.zeros(len(pts))]
        return msg, want.astype(np.float32)
    m = len(pts) - len(pts) % 3
    p = pts[:m].copy()
    p[::50, :3] = np.nan
    msg = points_to_pointcloud2(ts, p[:, [0, 1, 2, 3]], ["x", "y", "z", "intensity"], stamp, frame, height=3,
                                big_endian=True, seq=i)
    keep = np.isfinite(p[:, 0])
    return msg, np.c_[p[keep, :4], np.zeros(keep.sum())].astype(np.float32)


def _write_input(path, n=3, frame="lidar", seed=0, topic="/points"):
    rng = np.random.default_rng(seed)
    want, stamps = [], []
    with BagWriter(path) as w:
        for i in range(n):
            stamp = 1_700_000_000 * 10**9 + i * 100_000_000 + 123
            msg, expect = _encode(w.typestore, _scene(rng), i, stamp, frame)
            w.write(topic, stamp + 5_000_000, msg)   # log time = stamp + 5 ms, like a recorder
            want.append(expect)
            stamps.append(stamp)
    return want, stamps


def _reference(model, clouds, batch_size, thr=None):
    """``inference_detector`` on the expected model inputs, boxes with score ≥ ``thr`` (default: the median
    score, so that the threshold keeps some boxes and drops others).  Returns (per-scan dicts, thr)."""
    dets = inference_detector(model, [torch.from_numpy(c) for c in clouds], batch_size=batch_size)
    if thr is None:
        thr = float(np.median(np.concatenate([d["scores_3d"].numpy() for d in dets])))
    out = []
    for det in dets:
        keep = det["scores_3d"].numpy() >= thr
        out.append({k: v.numpy()[keep] for k, v in det.items()})
    return out, thr


def _boxes_from_msg(msg):
    rows = []
    for d in msg.detections:
        c, s, q = d.bbox.center.position, d.bbox.size, d.bbox.center.orientation
        rows.append([c.x, c.y, c.z - s.z / 2, s.x, s.y, s.z, 2 * math.atan2(q.z, q.w)])
    return np.array(rows).reshape(-1, 7)


def _assert_boxes(got, ref_boxes):
    assert got.shape == ref_boxes.shape
    np.testing.assert_allclose(got[:, :6], ref_boxes[:, :6], atol=1e-5)
    dyaw = (got[:, 6] - ref_boxes[:, 6] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(dyaw, 0, atol=1e-5)


@pytest.mark.parametrize("in_name,out_name,out_fmt", [("in.bag", "out.mcap", None),
                                                       ("in.mcap", "out_dir", "ros2-sqlite3"),
                                                       ("in.db3", "out.bag", None)])
def test_infer_bag_all_formats(model, tmp_path, in_name, out_name, out_fmt):
    inp = tmp_path / in_name
    clouds, stamps = _write_input(inp)
    in_bytes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert model_point_columns(model) == ["x", "y", "z", "intensity", "elongation"]
    out = tmp_path / out_name
    ref, thr = _reference(model, clouds, batch_size=2)
    assert 0 < sum(len(r["scores_3d"]) for r in ref) < 3 * 40       # the threshold selects some boxes
    res = infer_bag(model, inp, "/points", out=out, fmt=out_fmt, score_thr=thr, batch_size=2)
    assert (res.scans, res.processed, sum(res.skipped.values())) == (3, 3, 0)
    assert res.invalid_points > 0
    assert {p.name: p.stat().st_size for p in tmp_path.iterdir() if p.name == in_name} == \
        {in_name: in_bytes[in_name]}                                  # the input is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([in_name, out_name, out_name + ".jsonl"])
    ros1 = out.suffix == ".bag"
    with BagReader(out) as bag:
        topics = bag.topics()
        assert topics[DET] == ("vision_msgs/msg/Detection3DArray", 3)
        assert topics[MARK] == ("visualization_msgs/msg/MarkerArray", 3)
        assert topics["/points"] == (POINTCLOUD2, 3)
        dets = list(bag.messages([DET]))
        marks = list(bag.messages([MARK]))
        kept = list(bag.messages(["/points"]))
    for i, ((_, t, msg), (_, tm, mk), (_, tp, pc)) in enumerate(zip(dets, marks, kept)):
        assert t == tm == tp == stamps[i] + 5_000_000
        assert stamp_to_ns(msg.header.stamp) == stamps[i] and msg.header.frame_id == "lidar"
        assert stamp_to_ns(mk.markers[0].header.stamp) == stamps[i] and mk.markers[0].action == 3   # DELETEALL
        assert len(mk.markers) == 1 + 2 * len(msg.detections)
        np.testing.assert_array_equal(pointcloud2_to_points(pc).points[:, :3], clouds[i][:, :3])
        _assert_boxes(_boxes_from_msg(msg), ref[i]["bboxes_3d"].astype(np.float64))
        scores = [(d.results[0] if ros1 else d.results[0].hypothesis).score for d in msg.detections]
        np.testing.assert_array_equal(scores, ref[i]["scores_3d"].astype(np.float64))
        if ros1:
            assert [d.results[0].id for d in msg.detections] == ref[i]["labels_3d"].tolist()
        else:
            assert [d.results[0].hypothesis.class_id for d in msg.detections] == \
                [model.class_names[l] for l in ref[i]["labels_3d"]]
    lines = [json.loads(s) for s in (tmp_path / (out_name + ".jsonl")).read_text().splitlines()]
    assert [l["stamp_ns"] for l in lines] == stamps
    for l, r in zip(lines, ref):
        np.testing.assert_array_equal(np.array(l["boxes"]).reshape(-1, 7), r["bboxes_3d"].astype(np.float64))
    if out.suffix == ".mcap":
        _check_with_mcap_reader(out, stamps, ref, model.class_names)


def _check_with_mcap_reader(path, stamps, ref, names):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    with open(path, "rb") as f:
        got = [(ch.topic, msg.log_time, m) for _, ch, msg, m in
               make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages(topics=[DET, MARK])]
    dets = [g for g in got if g[0] == DET]
    assert len(dets) == len(stamps) and len([g for g in got if g[0] == MARK]) == len(stamps)
    for (_, log_time, m), stamp, r in zip(dets, stamps, ref):
        assert log_time == stamp + 5_000_000
        assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp and m.header.frame_id == "lidar"
        _assert_boxes(_boxes_from_msg(m), r["bboxes_3d"].astype(np.float64))
        assert [d.results[0].hypothesis.class_id for d in m.detections] == [names[l] for l in r["labels_3d"]]


def _bad_bag(path):
    """good, no z field, data shorter than row_step × height, empty, all-NaN, another frame, good."""
    rng = np.random.default_rng(3)
    good = [_scene(rng, 800), _scene(rng, 800)]
    names = ["x", "y", "z", "intensity", "elongation"]
    with BagWriter(path) as w:
        ts = w.typestore
        enc = lambda p, i, frame="lidar", cols=names: points_to_pointcloud2(ts, p, cols, 10**9 * (i + 1), frame)  # noqa
        short = enc(good[0], 2)
        short = make_msg(ts, POINTCLOUD2, **{**{k: getattr(short, k) for k in
                                                ("header", "height", "width", "fields", "is_bigendian",
                                                 "point_step", "row_step", "is_dense")},
                                             "data": short.data[:-7]})
        nan = good[0][:10].copy()
        nan[:, :3] = np.nan
        msgs = [enc(good[0], 0), enc(good[0][:, [0, 1, 3]], 1, cols=["x", "y", "intensity"]), short,
                enc(good[0][:0], 3), enc(nan, 4), enc(good[1], 5, frame="radar"), enc(good[1], 6)]
        for i, m in enumerate(msgs):
            w.write("/points", 10**9 * (i + 1), m)
    return good


def test_bad_messages_are_counted_skips(model, tmp_path):
    inp = tmp_path / "bad.mcap"
    good = _bad_bag(inp)
    ref, thr = _reference(model, [good[0], good[1]], batch_size=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = infer_bag(model, inp, "/points", out=tmp_path / "o.mcap", score_thr=thr)
    assert (res.scans, res.processed) == (7, 2)
    reasons = dict(res.skipped)
    assert reasons.pop("empty cloud") == 2
    assert reasons.pop("frame 'radar' without extrinsic") == 1
    assert len(reasons) == 2 and all(k.startswith("bad PointCloud2") for k in reasons)
    assert any("no 'z' field" in k for k in reasons) and any("row_step × height" in k for k in reasons)
    assert sum("differs from" in str(w.message) for w in caught) == 1          # frame warned once
    assert "skipped 2 × empty cloud" in res.summary()
    lines = [json.loads(s) for s in (tmp_path / "o.mcap.jsonl").read_text().splitlines()]
    assert [("skipped" in l) for l in lines] == [False, True, True, True, True, True, False]
    with BagReader(tmp_path / "o.mcap") as bag:
        dets = list(bag.messages([DET]))
    assert [stamp_to_ns(m.header.stamp) for _, _, m in dets] == [10**9, 7 * 10**9]
    for (_, _, m), r in zip(dets, ref):
        _assert_boxes(_boxes_from_msg(m), r["bboxes_3d"].astype(np.float64))


def test_extrinsic_and_range(model, tmp_path):
    inp = tmp_path / "lidar.bag"
    clouds, stamps = _write_input(inp, n=2, frame="velodyne", seed=5)
    yaw = 0.5
    T = np.eye(4)
    T[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
    T[:3, 3] = [1.0, -0.5, 1.8]
    (tmp_path / "T.yaml").write_text("extrinsic:\n" + "".join(f"  - {row.tolist()}\n" for row in T))
    np.testing.assert_array_equal(parse_extrinsic(tmp_path / "T.yaml"), T)
    rng_box = [-15, -15, -1, 15, 15, 3]
    want = []
    for c in clouds:
        p = c.copy()
        p[:, :3] = (c[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
        keep = ((p[:, :3] >= rng_box[:3]) & (p[:, :3] < rng_box[3:])).all(1)
        want.append(p[keep])
    ref, thr = _reference(model, want, batch_size=1)
    res = infer_bag(model, inp, "/points", out=tmp_path / "o.mcap", score_thr=thr, target_frame="base_link",
                    extrinsic=tmp_path / "T.yaml", point_range=rng_box, keep_input=False)
    assert res.processed == 2
    with BagReader(tmp_path / "o.mcap") as bag:
        assert "/points" not in bag.topics()
        dets = list(bag.messages([DET]))
    for (_, _, m), r, s in zip(dets, ref, stamps):
        assert m.header.frame_id == "base_link" and stamp_to_ns(m.header.stamp) == s
        _assert_boxes(_boxes_from_msg(m), r["bboxes_3d"].astype(np.float64))
    with pytest.raises(ValueError, match="rotation"):
        parse_extrinsic([2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    # target frame without an extrinsic: scans in another frame are skipped and counted
    res2 = infer_bag(model, inp, "/points", out=tmp_path / "o2.mcap", target_frame="base_link", jsonl=False)
    assert res2.processed == 0 and res2.skipped["frame 'velodyne' without extrinsic"] == 2


def test_impossible_runs_raise_and_leave_nothing(model, tmp_path, monkeypatch):
    inp = tmp_path / "in.mcap"
    _write_input(inp, n=3)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BagError, match=r"in\.mcap: no topic '/velodyne'"):
        infer_bag(model, inp, "/velodyne", out=tmp_path / "o.mcap")
    with pytest.raises(ValueError, match="into or over the input"):
        infer_bag(model, inp, "/points", out=inp, overwrite=True)
    (tmp_path / "exists.mcap").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        infer_bag(model, inp, "/points", out=tmp_path / "exists.mcap")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["exists.mcap"])
    # a crash in the middle of the run: no output, no staging directory
    calls = {"n": 0}
    real = bag_inference.inference_detector

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return real(*a, **k)
    monkeypatch.setattr(bag_inference, "inference_detector", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        infer_bag(model, inp, "/points", out=tmp_path / "o.mcap")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["exists.mcap"])
    monkeypatch.setattr(bag_inference, "inference_detector", real)
    # a truncated input bag: a clear error naming it
    trunc = tmp_path / "t.mcap"
    trunc.write_bytes(inp.read_bytes()[: inp.stat().st_size // 2])
    with pytest.raises(BagError, match=r"t\.mcap"):
        infer_bag(model, trunc, "/points", out=tmp_path / "o.mcap")
    assert not (tmp_path / "o.mcap").exists()


def test_cli_lists_topics_and_matches_package(model, tmp_path, capsys):
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    import infer_bag as tool
    inp = tmp_path / "in.mcap"
    _write_input(inp, n=2)
    assert tool.main([str(CONFIG), "none", "--in", str(inp)]) == {"/points": 2}
    assert "/points  (2 messages)" in capsys.readouterr().out
    ckpt = tmp_path / "m.pth"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    opts = [f"{k}={v}" for k, v in TOPK.items()]
    res = tool.main([str(CONFIG), str(ckpt), "--in", str(inp), "--topic", "/points", "--out",
                     str(tmp_path / "cli.bag"), "--score-thr", "0.12", "--batch-size", "2", "--cfg-options", *opts])
    assert "scans: 2  processed: 2" in capsys.readouterr().out
    pkg = infer_bag(model, inp, "/points", out=tmp_path / "pkg.bag", score_thr=0.12, batch_size=2)
    a = [json.loads(s) for s in (tmp_path / "cli.bag.jsonl").read_text().splitlines()]
    b = [json.loads(s) for s in (tmp_path / "pkg.bag.jsonl").read_text().splitlines()]
    assert a == b and res.processed == pkg.processed == 2


def test_make_demo_bag_matches_dataset(tmp_path):
    from perception3d.datasets.synthetic.writer import waymo_mini_is_current
    root = ROOT / "data" / "waymo_mini"
    if not waymo_mini_is_current(root):
        pytest.skip("the built-in mini dataset (this generator version) is not at data/waymo_mini; "
                    "make_demo_bag would generate it")
    from perception3d.apis.bag_inference import make_demo_bag
    from perception3d.datasets.waymo_v2 import WaymoV2Segment, find_split_dir, list_segments
    info = make_demo_bag(tmp_path / "demo.bag", scans=2, root=root)
    assert info["format"] == "ros1" and info["scans"] == 2
    split = find_split_dir(root, "val")
    frames = [(seg, ts) for name in list_segments(split)
              for seg in [WaymoV2Segment(split, name, lasers=(1,), returns=(1,))] for ts in seg.timestamps][:2]
    with BagReader(tmp_path / "demo.bag") as bag:
        msgs = list(bag.messages(["/points"]))
    assert len(msgs) == 2
    for (_, t, m), (seg, ts) in zip(msgs, frames):
        want = seg.points(ts)[0][:, :5]
        got = pointcloud2_to_points(m, extra=("intensity", "elongation")).points
        np.testing.assert_array_equal(got, want)
        assert m.header.frame_id == "base_link" and stamp_to_ns(m.header.stamp) == t
    assert stamp_to_ns(msgs[0][2].header.stamp) == frames[0][1] * 1000


def test_cli_user_error_is_one_line(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "infer_bag.py"), str(CONFIG), "none", "--in",
                        str(tmp_path / "nope.mcap")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (f"infer_bag.py: error: bag not found: {tmp_path / 'nope.mcap'} "
                                                 f"(--debug shows the traceback)")


def test_corrupt_message_is_a_counted_skip(model, tmp_path):
    """The 2nd of 3 PointCloud2 messages holds undecodable bytes: scans 1 and 3 are processed, the bad one is
    counted (not a rosbags traceback), and the output bag is written."""
    inp = tmp_path / "corrupt.mcap"
    rng = np.random.default_rng(3)
    clouds = [_scene(rng) for _ in range(2)]
    with BagWriter(inp) as w:
        names = ["x", "y", "z", "intensity", "elongation"]
        w.write("/points", 10**9, points_to_pointcloud2(w.typestore, clouds[0], names, 10**9, "lidar"))
        w.write_raw("/points", 2 * 10**9, b"\x00\x01\x00\x00" + b"\xff" * 11, POINTCLOUD2)
        w.write("/points", 3 * 10**9, points_to_pointcloud2(w.typestore, clouds[1], names, 3 * 10**9, "lidar"))
    ref, thr = _reference(model, clouds, batch_size=1)
    res = infer_bag(model, inp, "/points", out=tmp_path / "o.mcap", score_thr=thr)
    assert (res.scans, res.processed) == (3, 2)
    (reason, n), = res.skipped.items()
    assert n == 1 and reason.startswith("undecodable message")
    lines = [json.loads(s) for s in (tmp_path / "o.mcap.jsonl").read_text().splitlines()]
    assert [("skipped" in l) for l in lines] == [False, True, False]
    with BagReader(tmp_path / "o.mcap") as bag:
        dets = list(bag.messages([DET]))
        assert len(list(bag.messages(["/points"]))) == 2          # the corrupt bytes are not copied
    assert [stamp_to_ns(m.header.stamp) for _, _, m in dets] == [10**9, 3 * 10**9]
    for (_, _, m), r in zip(dets, ref):
        _assert_boxes(_boxes_from_msg(m), r["bboxes_3d"].astype(np.float64))


def test_topic_of_wrong_type_is_an_error(model, tmp_path):
    """A topic that holds another message type: a BagError naming the file, the topic and both types; no output."""
    inp = tmp_path / "strings.mcap"
    with BagWriter(inp) as w:
        msg = w.typestore.types["std_msgs/msg/String"](data="hello")
        w.write("/points", 10**9, msg)
    with pytest.raises(BagError, match=r"strings\.mcap: topic '/points' is std_msgs/msg/String, not "
                                       r"sensor_msgs/msg/PointCloud2"):
        infer_bag(model, inp, "/points", out=tmp_path / "o.mcap")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strings.mcap"]
