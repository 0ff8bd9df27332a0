"""perception3d.io bags / PointCloud2 / ROS messages: decoding any field layout (checked against clouds packed by
hand with ``struct``), writing and reading ROS1 / rosbag2-sqlite3 / rosbag2-mcap bags (rosbags and the independent
``mcap`` + ``mcap-ros2-support`` reader), bad inputs and the staged (atomic) output."""
from __future__ import annotations

import struct
from types import SimpleNamespace

import numpy as np
import pytest

from perception3d.io.bags import BagError, BagReader, BagWriter, StagedOutputs, bag_format, output_format
from perception3d.io.pointcloud2 import (PointCloud2Error, pointcloud2_to_array, pointcloud2_to_points,
                                         points_to_pointcloud2)
from perception3d.io.ros_msgs import (DETECTION3D_ARRAY, box_corners, boxes_to_markers, convert_msg,
                                      detections_to_msg, make_header, stamp_to_ns, typestore_for)

FMT_PATHS = {"ros1": "b.bag", "ros2-mcap": "b.mcap", "ros2-sqlite3": "b.db3"}


def _field(name, offset, datatype, count=1):
    return SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


def _cloud(fields, data: bytes, width, height=1, point_step=0, row_step=0, big=False, dense=True):
    return SimpleNamespace(fields=fields, data=np.frombuffer(data, np.uint8), width=width, height=height,
                           point_step=point_step, row_step=row_step, is_bigendian=big, is_dense=dense)


# --------------------------------------------------------------------------------------------- decoding by hand
def test_decode_hand_packed_big_endian_padded_organised():
    """x, y, z float64 + intensity uint8 + ring uint16 + time float32, big-endian, 40-byte points with gaps,
    2 rows of 3 points with 5 bytes of row padding, one NaN point: packed with struct, decoded by us."""
    pts = [(1.5, -2.0, 0.25, 200, 7, 0.01), (3.0, 4.0, -1.0, 0, 1, 0.02), (np.nan, 0.0, 0.0, 10, 2, 0.03),
           (5.0, 6.0, 7.0, 255, 3, 0.04), (-1.0, -1.0, -1.0, 51, 4, 0.05), (0.0, 0.0, 9.0, 1, 5, 0.06)]
    fields = [_field("x", 0, 8), _field("y", 8, 8), _field("z", 16, 8), _field("intensity", 25, 2),
              _field("ring", 28, 4), _field("time", 32, 7)]
    rows = []
    for r in range(2):
        row = b""
        for p in pts[3 * r:3 * r + 3]:
            rec = bytearray(b"\xee" * 40)
            struct.pack_into(">ddd", rec, 0, *p[:3])
            struct.pack_into(">B", rec, 25, p[3])
            struct.pack_into(">H", rec, 28, p[4])
            struct.pack_into(">f", rec, 32, p[5])
            row += bytes(rec)
        rows.append(row + b"\x00" * 5)
    msg = _cloud(fields, b"".join(rows), width=3, height=2, point_step=40, row_step=125, big=True, dense=False)
    dec = pointcloud2_to_points(msg, extra=("intensity", "ring", "time"))
    good = [p for p in pts if np.isfinite(p[0])]
    want = np.array([[p[0], p[1], p[2], p[3] / 255.0, p[4], p[5]] for p in good], np.float32)
    assert dec.num_invalid == 1 and dec.missing == []
    assert dec.points.dtype == np.float32 and dec.points.shape == (5, 6)
    np.testing.assert_array_equal(dec.points, want)
    assert dec.columns == ["x", "y", "z", "intensity", "ring", "time"]


def test_decode_aliases_int_types_and_uint16_intensity():
    """Little-endian int16 x/y/z (a quantised driver), ``reflectivity`` uint16 → intensity / 65535, ``t`` uint32
    → time, int8 / int32 / uint32 fields as is."""
    fields = [_field("x", 0, 3), _field("y", 2, 3), _field("z", 4, 3), _field("reflectivity", 6, 4),
              _field("t", 8, 6), _field("a", 12, 1), _field("b", 16, 5)]
    vals = [(-3, 4, 5, 65535, 123456, -7, -100000), (1, 2, 3, 0, 0, 5, 7)]
    data = b"".join(struct.pack("<hhhHIb3xi", *v) for v in vals)
    msg = _cloud(fields, data, width=2, point_step=20, row_step=40)
    dec = pointcloud2_to_points(msg, extra=("intensity", "time", "a", "b", "elongation"))
    np.testing.assert_array_equal(dec.points[:, :3], [[-3, 4, 5], [1, 2, 3]])
    np.testing.assert_array_equal(dec.points[:, 3], [1.0, 0.0])
    np.testing.assert_array_equal(dec.points[:, 4], [123456, 0])
    np.testing.assert_array_equal(dec.points[:, 5:7], [[-7, -100000], [5, 7]])
    assert dec.missing == ["elongation"] and np.all(dec.points[:, 7] == 0)
    assert dec.source_fields["intensity"] == "reflectivity" and dec.source_fields["time"] == "t"
    raw = pointcloud2_to_points(msg, extra=("intensity",), normalize_intensity=False)
    np.testing.assert_array_equal(raw.points[:, 3], [65535, 0])


@pytest.mark.parametrize("layout", [
    dict(dtypes=["f4", "f4", "f4", "f4"]),
    dict(dtypes=["f8", "f8", "f8", "u1"], point_step=48, offsets=[0, 8, 16, 40]),
    dict(dtypes=["f4", "f4", "f4", "u2"], row_padding=7, height=4, big_endian=True),
    dict(dtypes=["f4", "f4", "f4", "f4"], offsets=[16, 0, 8, 4], point_step=24, height=2, row_padding=1),
])
def test_encode_decode_round_trip(layout):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-30, 30, (40, 4)).astype(np.float32)
    pts[:, 3] = rng.integers(0, 200, 40)
    ts = typestore_for("ros2")
    msg = points_to_pointcloud2(ts, pts, ["x", "y", "z", "intensity"], 5, "lidar", **layout)
    dec = pointcloud2_to_points(msg, extra=("intensity",), normalize_intensity=False)
    big = np.dtype(layout["dtypes"][0]).itemsize == 8
    np.testing.assert_array_equal(dec.points, pts if not big else pts.astype(np.float64).astype(np.float32))
    assert pointcloud2_to_array(msg).shape == (40,)


def test_nan_points_dropped_and_counted():
    ts = typestore_for("ros2")
    pts = np.array([[1, 2, 3], [np.nan, np.nan, np.nan], [4, np.inf, 5], [6, 7, 8]], np.float32)
    msg = points_to_pointcloud2(ts, pts, ["x", "y", "z"], 0, "f")
    assert msg.is_dense is False
    dec = pointcloud2_to_points(msg, extra=())
    assert dec.num_invalid == 2
    np.testing.assert_array_equal(dec.points, pts[[0, 3]])


def test_decode_errors():
    ts = typestore_for("ros2")
    no_z = points_to_pointcloud2(ts, np.zeros((3, 2), np.float32), ["x", "y"], 0, "f")
    with pytest.raises(PointCloud2Error, match="no 'z' field"):
        pointcloud2_to_points(no_z)
    ok = points_to_pointcloud2(ts, np.ones((4, 3), np.float32), ["x", "y", "z"], 0, "f")
    short = _cloud(ok.fields, bytes(ok.data[:40]), width=4, point_step=12, row_step=48)
    with pytest.raises(PointCloud2Error, match=r"data holds 40 bytes, row_step × height = 48 × 1 = 48"):
        pointcloud2_to_points(short)
    bad_type = _cloud([_field("x", 0, 9), _field("y", 4, 7), _field("z", 8, 7)], bytes(12), 1, 1, 12, 12)
    with pytest.raises(PointCloud2Error, match="unknown datatype code 9"):
        pointcloud2_to_points(bad_type)
    beyond = _cloud([_field("x", 0, 7), _field("y", 4, 7), _field("z", 10, 7)], bytes(12), 1, 1, 12, 12)
    with pytest.raises(PointCloud2Error, match="exceeds point_step 12"):
        pointcloud2_to_points(beyond)
    small_row = _cloud(ok.fields, bytes(48), width=4, point_step=12, row_step=40)
    with pytest.raises(PointCloud2Error, match="row_step 40 is smaller"):
        pointcloud2_to_points(small_row)
    empty = points_to_pointcloud2(ts, np.zeros((0, 3), np.float32), ["x", "y", "z"], 0, "f")
    assert pointcloud2_to_points(empty).points.shape == (0, 4)


# ---------------------------------------------------------------------------------------------------- bag I/O
def _write_clouds(path, fmt=None, n=3, frame="lidar"):
    rng = np.random.default_rng(1)
    clouds = []
    with BagWriter(path, fmt) as w:
        for i in range(n):
            pts = rng.uniform(-10, 10, (20 + i, 4)).astype(np.float32)
            layout = [dict(), dict(dtypes=["f8", "f8", "f8", "f4"], row_padding=3),
                      dict(big_endian=True, point_step=20)][i % 3]
            msg = points_to_pointcloud2(w.typestore, pts, ["x", "y", "z", "intensity"], 10**9 * (i + 1) + 11,
                                        frame, seq=i, **layout)
            w.write("/velodyne_points", 10**9 * (i + 1), msg)
            clouds.append(pts)
    return clouds


@pytest.mark.parametrize("name,fmt", [("b.bag", None), ("b.mcap", None), ("b.db3", None),
                                      ("dir_mcap", "ros2-mcap"), ("dir_sqlite", "ros2-sqlite3")])
def test_bag_round_trip_all_formats(tmp_path, name, fmt):
    path = tmp_path / name
    clouds = _write_clouds(path, fmt)
    assert bag_format(path) == (fmt or {".bag": "ros1", ".mcap": "ros2-mcap", ".db3": "ros2-sqlite3"}[path.suffix])
    assert [p.name for p in tmp_path.iterdir()] == [name]            # no staging leftovers
    with BagReader(path) as bag:
        assert bag.topics() == {"/velodyne_points": ("sensor_msgs/msg/PointCloud2", 3)}
        assert bag.pointcloud_topics() == ["/velodyne_points"]
        got = list(bag.messages(["/velodyne_points"]))
    assert [t for _, t, _ in got] == [10**9, 2 * 10**9, 3 * 10**9]
    for i, (_, _, msg) in enumerate(got):
        assert msg.header.frame_id == "lidar" and stamp_to_ns(msg.header.stamp) == 10**9 * (i + 1) + 11
        np.testing.assert_array_equal(pointcloud2_to_points(msg).points, clouds[i])


def test_mcap_readable_by_independent_reader(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    path = tmp_path / "c.mcap"
    ts = typestore_for("ros2")
    boxes = np.array([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.3]])
    with BagWriter(path) as w:
        w.write("/det", 5, detections_to_msg(ts, boxes, np.array([0.9]), np.array([1]), ["Car", "Ped"], 77, "lidar"))
        w.write("/markers", 5, boxes_to_markers(ts, boxes, np.array([0.9]), np.array([1]), ["Car", "Ped"], 77,
                                                "lidar"))
    with open(path, "rb") as f:
        msgs = {ch.topic: m for _, ch, _, m in make_reader(f, decoder_factories=[DecoderFactory()])
                .iter_decoded_messages()}
    det = msgs["/det"]
    assert det.header.frame_id == "lidar" and det.header.stamp.nanosec == 77
    d = det.detections[0]
    assert d.results[0].hypothesis.class_id == "Ped" and d.results[0].hypothesis.score == pytest.approx(0.9)
    assert (d.bbox.center.position.x, d.bbox.center.position.z) == (1.0, -1.0 + 0.75)
    assert d.bbox.center.orientation.z == pytest.approx(np.sin(0.15))
    assert (d.bbox.size.x, d.bbox.size.y, d.bbox.size.z) == (4.0, 2.0, 1.5)
    mk = msgs["/markers"].markers
    assert mk[0].action == 3 and mk[1].type == 5 and len(mk[1].points) == 24 and mk[2].type == 9
    assert mk[2].text == "Ped 0.90"


def test_vision_msgs_ros1_and_ros2_definitions():
    r1, r2 = typestore_for("ros1"), typestore_for("ros2")
    b = np.array([[0.0, 0.0, 0.0, 2.0, 1.0, 1.0, np.pi / 2]])
    m1 = detections_to_msg(r1, b, np.array([0.5]), np.array([2]), ["a", "b", "c"], 3 * 10**9 + 4, "f", seq=9)
    back = r1.deserialize_ros1(r1.serialize_ros1(m1, DETECTION3D_ARRAY), DETECTION3D_ARRAY)
    assert back.header.seq == 9 and back.detections[0].results[0].id == 2
    assert hasattr(back.detections[0], "source_cloud")
    m2 = detections_to_msg(r2, b, np.array([0.5]), np.array([2]), ["a", "b", "c"], 3 * 10**9 + 4, "f")
    back2 = r2.deserialize_cdr(r2.serialize_cdr(m2, DETECTION3D_ARRAY), DETECTION3D_ARRAY)
    assert back2.detections[0].results[0].hypothesis.class_id == "c" and back2.detections[0].id == "0"
    assert stamp_to_ns(back2.header.stamp) == 3 * 10**9 + 4
    # a ROS1 cloud rebuilt for ROS2 keeps its fields, loses seq
    pc1 = points_to_pointcloud2(r1, np.ones((2, 3), np.float32), ["x", "y", "z"], 7, "f", seq=3)
    pc2 = convert_msg(pc1, "sensor_msgs/msg/PointCloud2", r2)
    assert not hasattr(pc2.header, "seq") and bytes(pc2.data) == bytes(pc1.data)
    r2.serialize_cdr(pc2, "sensor_msgs/msg/PointCloud2")


def test_box_corners_hand_worked():
    c = box_corners([1.0, 2.0, 0.5, 4.0, 2.0, 1.0, np.pi / 2])   # 90°: dx runs along +y
    np.testing.assert_allclose(c[0], [1.0 - 1.0, 2.0 + 2.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(c[6], [1.0 + 1.0, 2.0 - 2.0, 1.5], atol=1e-12)


@pytest.mark.parametrize("name", ["t.bag", "t.mcap", "t.db3"])
def test_truncated_bag_is_a_clear_error(tmp_path, name):
    path = tmp_path / name
    _write_clouds(path, n=6)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(BagError, match=name.replace(".", r"\.")):
        with BagReader(path) as bag:
            list(bag.messages(["/velodyne_points"]))


def test_unknown_topic_names_file_and_topic(tmp_path):
    path = tmp_path / "u.mcap"
    _write_clouds(path, n=1)
    with BagReader(path) as bag, pytest.raises(BagError, match=r"u\.mcap: no topic '/points'.*velodyne_points"):
        bag.check_topic("/points")


def test_writer_leaves_nothing_on_error_and_refuses_existing(tmp_path):
    path = tmp_path / "x.mcap"
    with pytest.raises(RuntimeError):
        with BagWriter(path) as w:
            w.write("/a", 1, make_header(w.typestore, 1, "f"))
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    _write_clouds(path, n=1)
    with pytest.raises(FileExistsError):
        BagWriter(path)
    stage = StagedOutputs(overwrite=True, protect=[path])
    with pytest.raises(ValueError, match="input"):
        stage.path(path)
    assert output_format(tmp_path / "d", None) == "ros2-mcap"
    with pytest.raises(ValueError, match="suffix says ros1"):
        output_format(tmp_path / "a.bag", "ros2-mcap")
