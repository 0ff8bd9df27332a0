"""Read and write ROS bags without a ROS install: ROS1 ``.bag``, rosbag2 sqlite3 and rosbag2 mcap, one interface.

    with BagReader("drive.mcap") as bag:          # a .bag file, a rosbag2 directory, a bare .mcap / .db3 file
        bag.topics()                               # {topic: (msgtype, count)}
        for topic, t_ns, msg in bag.messages(["/points"]):
            cloud = pointcloud2_to_points(msg)     # perception3d.io.pointcloud2

    with BagWriter("out.mcap", "ros2-mcap") as out:   # written aside, renamed into place on success
        out.add_topic("/points", POINTCLOUD2)
        out.write("/points", t_ns, msg)                # msg of out.typestore (see perception3d.io.ros_msgs)

Output layouts: ``ros1`` → one ``.bag`` file; ``ros2-mcap`` / ``ros2-sqlite3`` → a rosbag2 directory
(``metadata.yaml`` + storage file) or, when the path ends in ``.mcap`` / ``.db3``, that one storage file (mcap
files are self-describing; rosbags, ``ros2 bag`` and Foxglove read them bare).

Nothing half-written is left in place: every output is written into a staging directory next to its final path
(``.<name>.partial-XXXX``) and renamed into place by :meth:`StagedOutputs.commit`; an error removes the staging
directory.  Read errors (truncated or corrupt bags) raise :class:`BagError` naming the file.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_typestore

from perception3d.io.ros_msgs import POINTCLOUD2, typestore_for

__all__ = ["BagError", "FORMATS", "bag_format", "output_format", "BagReader", "BagWriter", "StagedOutputs",
           "list_pointcloud_topics"]

PathLike = Union[str, Path]
FORMATS = ("ros1", "ros2-mcap", "ros2-sqlite3")


class BagError(ValueError):
    """A bag that cannot be read / written (the message names the file and the problem)."""


def bag_format(path: PathLike) -> str:
    """Storage format of an existing bag: "ros1", "ros2-mcap" or "ros2-sqlite3"."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"bag not found: {p}")
    if p.is_dir():
        meta = p / "metadata.yaml"
        if meta.is_file():
            text = meta.read_text(errors="replace")
            if "storage_identifier: mcap" in text:
                return "ros2-mcap"
            if "storage_identifier: sqlite3" in text:
                return "ros2-sqlite3"
        if list(p.glob("*.mcap")):
            return "ros2-mcap"
        if list(p.glob("*.db3")):
            return "ros2-sqlite3"
        raise BagError(f"{p}: a directory without metadata.yaml, .mcap or .db3 files is not a rosbag2 bag")
    if p.suffix == ".bag":
        return "ros1"
    if p.suffix == ".mcap":
        return "ros2-mcap"
    if p.suffix == ".db3":
        return "ros2-sqlite3"
    with p.open("rb") as f:
        head = f.read(13)
    if head.startswith(b"#ROSBAG V2.0"):
        raise BagError(f"{p}: a ROS1 bag must have the suffix .bag (rosbags needs it)")
    raise BagError(f"{p}: unknown bag format (expected a .bag, .mcap or .db3 file or a rosbag2 directory)")


def output_format(path: PathLike, fmt: Optional[str] = None, default: str = "ros2-mcap") -> str:
    """The format to write ``path`` in: ``fmt`` when given (checked against the suffix), else from the suffix
    (.bag → ros1, .mcap → ros2-mcap, .db3 → ros2-sqlite3), else ``default`` (a rosbag2 directory)."""
    by_suffix = {".bag": "ros1", ".mcap": "ros2-mcap", ".db3": "ros2-sqlite3"}.get(Path(path).suffix)
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown bag format {fmt!r}; choose one of {FORMATS}")
        if by_suffix is not None and by_suffix != fmt:
            raise ValueError(f"{path}: the suffix says {by_suffix}, --format says {fmt}")
        if fmt == "ros1" and by_suffix is None:
            raise ValueError(f"{path}: a ROS1 bag needs the suffix .bag")
        return fmt
    return by_suffix or default


class BagReader:
    """Any bag (ROS1 ``.bag``, rosbag2 directory, bare ``.mcap`` / ``.db3``) through rosbags' ``AnyReader``.
    Messages come deserialised with the bag's own definitions (type names ROS2-style for both)."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.format = bag_format(self.path)
        store = Stores.ROS1_NOETIC if self.format == "ros1" else Stores.ROS2_HUMBLE
        try:
            self._reader = AnyReader([self.path], default_typestore=get_typestore(store))
            self._reader.open()
        except Exception as exc:  # rosbags raises several types (ReaderError, struct.error, sqlite3 …)
            raise BagError(f"{self.path}: cannot open {self.format} bag (truncated or corrupt?): "
                           f"{type(exc).__name__}: {exc}") from exc

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._reader.close()
        except Exception:
            pass

    def topics(self) -> dict:
        """{topic: (msgtype, message count)}."""
        return {t: (info.msgtype, int(info.msgcount)) for t, info in self._reader.topics.items()}

    def pointcloud_topics(self) -> list:
        """Topics of type sensor_msgs/PointCloud2, sorted."""
        return sorted(t for t, (ty, _) in self.topics().items() if ty == POINTCLOUD2)

    def check_topic(self, topic: str, msgtype: Optional[str] = None) -> None:
        """Raise ``BagError`` naming the file when ``topic`` is absent or not of ``msgtype``."""
        topics = self.topics()
        if topic not in topics:
            raise BagError(f"{self.path}: no topic {topic!r}; topics: "
                           + (", ".join(f"{t} [{ty}]" for t, (ty, _) in sorted(topics.items())) or "none"))
        if msgtype is not None and topics[topic][0] != msgtype:
            raise BagError(f"{self.path}: topic {topic!r} is {topics[topic][0]}, not {msgtype}")

    def raw_messages(self, topics: Sequence[str]) -> Iterator[tuple]:
        """(topic, t_ns, raw bytes, msgtype) in log-time order; read errors → ``BagError`` naming the file."""
        conns = [c for c in self._reader.connections if c.topic in set(topics)]
        count = 0
        it = self._reader.messages(connections=conns)
        while True:
            try:
                conn, t_ns, raw = next(it)
            except StopIteration:
                return
            except Exception as exc:
                raise BagError(f"{self.path}: read error after {count} message(s) (truncated or corrupt bag?): "
                               f"{type(exc).__name__}: {exc}") from exc
            count += 1
            yield conn.topic, int(t_ns), raw, conn.msgtype

    def deserialize(self, raw: bytes, msgtype: str):
        return self._reader.deserialize(raw, msgtype)

    def messages(self, topics: Sequence[str]) -> Iterator[tuple]:
        """(topic, t_ns, message) in log-time order."""
        for topic, t_ns, raw, msgtype in self.raw_messages(topics):
            yield topic, t_ns, self.deserialize(raw, msgtype)


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Remove the staging folders ``.<name>.partial-<pid>-*`` that writers killed by SIGKILL (no cleanup runs)
    left next to ``name``: those whose process is gone.  Called when ``name`` is staged again."""
    from perception3d.fileio import _pid_alive
    prefix = f".{name}.partial-"
    for d in parent.iterdir():
        pid = d.name[len(prefix):].split("-", 1)[0] if d.name.startswith(prefix) else ""
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


class StagedOutputs:
    """Write several outputs aside in one staging directory next to them; rename all into place on
    :meth:`commit` (in the order staged), remove everything on :meth:`abort`.

    An existing final path raises ``FileExistsError`` unless ``overwrite``; a path in ``protect`` (the inputs)
    is never written over, whatever ``overwrite`` says.
    """

    def __init__(self, overwrite: bool = False, protect: Sequence[PathLike] = ()):
        self.overwrite = overwrite
        self.protect = [Path(p).resolve() for p in protect]
        self._dirs: dict = {}
        self._items: list = []   # (staged path, final path)

    def path(self, final: PathLike) -> Path:
        """A staging path for ``final`` (same file system, so the final rename is atomic for a file)."""
        final = Path(final).resolve()
        for p in self.protect:
            if final == p or p in final.parents or final in p.parents:
                raise ValueError(f"output {final} would write into or over the input {p}")
        if final.exists() and not self.overwrite:
            raise FileExistsError(f"output {final} exists (pass overwrite / --overwrite to replace it)")
        parent = final.parent
        parent.mkdir(parents=True, exist_ok=True)
        if parent not in self._dirs:
            _remove_stale_staging(parent, final.name)
            self._dirs[parent] = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-{os.getpid()}-", dir=parent))
        staged = self._dirs[parent] / f"{len(self._items)}_{final.name}"
        self._items.append((staged, final))
        return staged

    def commit(self) -> None:
        for staged, final in self._items:
            if not staged.exists():
                raise BagError(f"staged output {staged} for {final} was not written")
            if final.exists():
                if final.is_dir() and not final.is_symlink():
                    trash = staged.with_name(staged.name + ".old")
                    os.replace(final, trash)
                    os.replace(staged, final)
                    shutil.rmtree(trash, ignore_errors=True)
                    continue
                if staged.is_dir():
                    final.unlink()
            os.replace(staged, final)
        self._cleanup()

    def abort(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        for d in self._dirs.values():
            shutil.rmtree(d, ignore_errors=True)
        self._dirs.clear()


class BagWriter:
    """Write a bag in ``fmt`` ("ros1", "ros2-mcap", "ros2-sqlite3"; default from the suffix) at ``path``.

    Messages are objects of ``self.typestore`` (``typestore_for("ros1" | "ros2")``, vision_msgs included),
    serialised as ROS1 or CDR.  The bag is written aside and appears at ``path`` on :meth:`close` (or on
    ``stage.commit()`` when a shared :class:`StagedOutputs` is given); an exception inside ``with`` leaves nothing.
    """

    def __init__(self, path: PathLike, fmt: Optional[str] = None, overwrite: bool = False,
                 stage: Optional[StagedOutputs] = None):
        self.path = Path(path)
        self.format = output_format(self.path, fmt)
        self.kind = "ros1" if self.format == "ros1" else "ros2"
        self.typestore = typestore_for(self.kind)
        self._own_stage = stage is None
        self.stage = stage if stage is not None else StagedOutputs(overwrite=overwrite)
        self._staged = self.stage.path(self.path)
        self._bare = self.kind == "ros2" and self.path.suffix in (".mcap", ".db3")
        if self.kind == "ros1":
            self._writer = Ros1Writer(self._staged)
        else:
            plugin = StoragePlugin.MCAP if self.format == "ros2-mcap" else StoragePlugin.SQLITE3
            target = self._staged.with_name(self._staged.name + ".dir") if self._bare else self._staged
            self._writer = Ros2Writer(target, version=9, storage_plugin=plugin)
        self._writer.open()
        self._conns: dict = {}
        self._closed = False

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._conns:
            if self._conns[topic].msgtype != msgtype:
                raise BagError(f"{self.path}: topic {topic!r} already holds {self._conns[topic].msgtype}")
            return
        self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore)

    def write(self, topic: str, t_ns: int, msg) -> None:
        """Serialise ``msg`` (its ``__msgtype__``) and write it at log time ``t_ns`` (adds the topic if new)."""
        msgtype = msg.__msgtype__
        self.add_topic(topic, msgtype)
        ser = self.typestore.serialize_ros1 if self.kind == "ros1" else self.typestore.serialize_cdr
        self._writer.write(self._conns[topic], int(t_ns), ser(msg, msgtype))

    def write_raw(self, topic: str, t_ns: int, raw: bytes, msgtype: str) -> None:
        """Write already serialised bytes (ROS1 for a ros1 bag, CDR for rosbag2)."""
        self.add_topic(topic, msgtype)
        self._writer.write(self._conns[topic], int(t_ns), raw)

    def finish(self) -> None:
        """Close the storage in the staging directory (``close`` = finish + commit when the stage is ours)."""
        if self._closed:
            return
        self._writer.close()
        self._closed = True
        if self._bare:
            tmpdir = self._staged.with_name(self._staged.name + ".dir")
            files = [p for p in tmpdir.iterdir() if p.suffix in (".mcap", ".db3")]
            if len(files) != 1:
                raise BagError(f"{self.path}: expected one storage file in {tmpdir}, found {files}")
            os.replace(files[0], self._staged)
            shutil.rmtree(tmpdir, ignore_errors=True)

    def close(self) -> None:
        self.finish()
        if self._own_stage:
            self.stage.commit()

    def abort(self) -> None:
        if not self._closed:
            try:
                self._writer.close()
            except Exception:
                pass
            self._closed = True
        if self._own_stage:
            self.stage.abort()


def list_pointcloud_topics(path: PathLike) -> dict:
    """{topic: message count} of the PointCloud2 topics of a bag (needs no torch)."""
    with BagReader(path) as bag:
        topics = bag.topics()
        return {t: topics[t][1] for t in bag.pointcloud_topics()}
