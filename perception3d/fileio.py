"""Atomic file writes (a temporary file in the target's folder, then ``os.replace`` onto the final name) and the
package's error for malformed input files, :class:`DataFormatError`.

Every writer takes the destination first: ``atomic_write_bytes(path, data)``, ``atomic_write_text(path, text)``,
``atomic_torch_save(path, obj)``, ``atomic_write_parquet(path, table)``; ``fsync=True`` (checkpoints) also flushes the
file to disk before the rename, so it survives a power cut and not only a kill. :func:`atomic_path` is the
building block for any other writer that wants a file name.

A crash or SIGKILL at any moment leaves either the old file or the new one, never a half-written one; the
temporary file (``.<name>.<pid>.<random>.tmp``) is removed when the write fails, and one left by a SIGKILLed
writer is removed by the next write of the same file. A leaf module: it imports nothing of
the package, so every layer can use it.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Union

PathLike = Union[str, os.PathLike]


class DataFormatError(ValueError):
    """A file on disk is malformed: truncated, the wrong type or shape in a field, a required field missing.

    The message reads ``"<file>: <field>: <what was wrong>"``; ``file`` and ``field`` are also attributes so a tool
    can report them.  A subclass of ``ValueError``, so ``except ValueError`` keeps working.

        raise DataFormatError(path, "P2", "12 values expected, got 9")
    """

    def __init__(self, file: PathLike, field: Optional[str], message: str):
        self.file = str(file)
        self.field = field
        self.reason = message
        super().__init__(f"{file}: {field}: {message}" if field else f"{file}: {message}")

    def __reduce__(self):                      # picklable across worker processes
        return (type(self), (self.file, self.field, self.reason))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: PathLike) -> list:
    """Remove the temporary files ``.<name>.<pid>.<random>.tmp`` that writers of ``path`` killed with SIGKILL
    (no ``finally`` runs) left next to it: those whose process is gone.  Called by every atomic write of
    ``path``, so a killed writer's leftovers disappear on the next write (a resumed run).  Returns the removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}."
    for p in path.parent.iterdir():
        name = p.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


@contextlib.contextmanager
def atomic_path(path: PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for a writer that wants a file name (``torch.save``, ``zipfile``,
    pyarrow, plyfile, ...); when the block ends normally it is renamed onto ``path`` (``fsync=True`` flushes it to
    disk first), when it raises the temporary file is removed and ``path`` is untouched.

        with atomic_path("out/model.pt") as tmp:
            torch.save(state, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_text(path: PathLike, encoding: str = "utf-8") -> str:
    """``Path(path).read_text()``, but bytes that are not ``encoding`` raise :class:`DataFormatError` naming the
    file and the byte offset (a bare ``UnicodeDecodeError`` names neither)."""
    try:
        return Path(path).read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, None, f"not {encoding} text (byte {exc.start}: {exc.reason})") from exc



def read_json(path: PathLike, error: type = ValueError):
    """The JSON document in ``path`` (read with :func:`read_text`); malformed JSON raises ``error`` naming the file
    and where the parse failed."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON ({exc})") from exc

def atomic_write_bytes(path: PathLike, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically; ``fsync=True`` also flushes it to disk before the rename."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(path: PathLike, obj, fsync: bool = False) -> None:
    """``torch.save(obj)`` to ``path`` atomically (checkpoints: pass ``fsync=True`` to survive a power cut)."""
    import torch

    with atomic_path(path, fsync=fsync) as tmp:
        torch.save(obj, tmp)


def atomic_write_parquet(path: PathLike, table, **write_table_kwargs) -> None:
    """``pyarrow.parquet.write_table(table)`` to ``path`` atomically (keyword arguments go to ``write_table``)."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **write_table_kwargs)
