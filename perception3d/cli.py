"""The command-line boundary of ``tools/*.py``: bad user input gets one line and exit code 2.

Every tool ends with ``run_cli(main)``. A user-input error raised anywhere below it (a missing or unreadable
file, a corrupt checkpoint, a config that does not load, a bad argument value: ``ValueError``, ``TypeError``,
``KeyError``, the ``OSError`` kinds a path can cause, and the package's own error types, which derive from
``ValueError``) is printed as ONE line

    train.py: error: <message naming the file and what was wrong> (--debug shows the traceback)

and the process exits with code 2, as argparse does for a bad option. ``--debug`` anywhere on the command line
(or ``PERCEPTION3D_DEBUG=1``) lets the exception through with its full traceback. Any other exception (a bug)
always keeps its traceback. A ``main`` that returns an ``int`` sets the exit code (a checker's "problems
found" = 1); any other return value means 0.

The tools check their file arguments once, at the boundary, before any heavy work:

- :func:`load_config` — an mmengine config file (+ ``--cfg-options``, ``--skip-missing-cameras``, added to a
  parser by :func:`add_config_args`): ``FileNotFoundError`` when it is missing, ``ConfigError`` naming the file
  when it does not execute;
- :func:`check_checkpoint` — a ``torch.save`` file: ``FileNotFoundError`` when missing; empty, truncated, or with
  damaged bytes (every member of the zip container is CRC-checked, which ``torch.load`` does not do) gives
  ``CheckpointError`` saying the file is corrupt. Nothing is unpickled by the check.

A leaf module (the standard library only at import; mmengine is imported inside :func:`load_config`), so a
tool's ``--help`` and its torch-free paths stay fast.
"""
from __future__ import annotations

import os
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable, List, NoReturn, Optional, Sequence, Union

__all__ = ["CheckpointError", "ConfigError", "USER_ERRORS", "add_config_args", "check_checkpoint", "load_config",
           "one_line", "run_cli"]


class ConfigError(ValueError):
    """A config file that cannot be executed; the message names the file."""


class CheckpointError(ValueError):
    """A checkpoint file that is empty, truncated, damaged or not a checkpoint; the message names the file."""


#: exceptions that mean "the user gave something wrong" (files, configs, argument values)
USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError, IsADirectoryError,
               NotADirectoryError, PermissionError, zipfile.BadZipFile, pickle.UnpicklingError)

_DEBUG_ENV = "PERCEPTION3D_DEBUG"


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (a ``KeyError``'s message without its repr quotes)."""
    msg = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str) \
        else str(exc)
    msg = " ".join(msg.split())
    return msg or type(exc).__name__


def add_config_args(parser, skip_cameras_help: str = "camera datasets: use a frame whose cameras cannot be read "
                                                     "LiDAR-only (counted warning) instead of stopping") -> None:
    """The options every config-driven tool takes: ``--cfg-options key=value ...`` and ``--skip-missing-cameras``
    (both read by :func:`load_config`)."""
    from mmengine.config import DictAction

    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config keys: key=value")
    parser.add_argument("--skip-missing-cameras", action="store_true", help=skip_cameras_help)


def load_config(path: Union[str, os.PathLike], cfg_options: Optional[dict] = None,
                skip_missing_cameras: bool = False):
    """``mmengine.Config.fromfile(path)`` with ``--cfg-options`` merged (unknown keys: ``KeyError``);
    ``FileNotFoundError`` when the file is missing, ``ConfigError`` naming ``path`` when it fails to execute.
    ``skip_missing_cameras``: the config's camera datasets use a frame whose cameras cannot be read LiDAR-only
    (``ValueError`` when it has none)."""
    from mmengine.config import Config

    p = Path(path)
    if not p.is_file():
        if not p.exists():
            raise FileNotFoundError(f"config {path}: no such file")
        raise ConfigError(f"config {path}: not a file")
    try:
        cfg = Config.fromfile(str(p))
    except Exception as exc:  # a config is user code: whatever it raises, the file is what was wrong
        raise ConfigError(f"config {path} cannot be loaded: {type(exc).__name__}: {one_line(exc)}") from exc
    if cfg_options:
        from perception3d.engine.runner import merge_cfg_options
        cfg = merge_cfg_options(cfg, cfg_options)
    if skip_missing_cameras:
        from perception3d.datasets.multiview import set_skip_missing_cameras
        set_skip_missing_cameras(cfg)
    return cfg


def check_checkpoint(path: Union[str, os.PathLike]) -> Path:
    """Check that ``path`` is a complete ``torch.save`` file, without unpickling it; returns it as a ``Path``.

    The zip container that ``torch.save`` writes (PyTorch ≥ 1.6) must open, hold a ``data.pkl`` and pass the
    CRC-32 check of every member, so a truncated file and a file with damaged bytes are both reported as corrupt.
    A legacy (pre-zip) pickle file is accepted when it starts like a pickle.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {path}: not a file")
    size = p.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is corrupt: the file is empty")
    if zipfile.is_zipfile(p):
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
                if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
                    raise CheckpointError(f"checkpoint {path}: a zip file but not a PyTorch checkpoint (no data.pkl)")
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(f"checkpoint {path} is corrupt: {one_line(exc)}") from exc
        if bad is not None:
            raise CheckpointError(f"checkpoint {path} is corrupt: member {bad} fails its CRC check (damaged bytes)")
        return p
    with open(p, "rb") as f:
        head = f.read(2)
    if head[:1] == b"\x80":  # pickle protocol ≥ 2: a legacy torch.save file; torch.load reports its damage
        return p
    if head == b"PK":
        raise CheckpointError(f"checkpoint {path} is corrupt: truncated ({size} bytes; the zip directory at the "
                              f"end of the file is missing)")
    raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint: it is neither a PyTorch zip "
                          f"checkpoint nor a pickle ({size} bytes)")


def _prog(main: Callable) -> str:
    """The file name of the tool that defines ``main`` (``train.py``)."""
    f = getattr(getattr(main, "__code__", None), "co_filename", None)
    return os.path.basename(f if f and not f.startswith("<") else sys.argv[0])


def run_cli(main: Callable[[List[str]], Any], argv: Optional[Sequence[str]] = None,
            prog: Optional[str] = None) -> NoReturn:
    """Call ``main(argv)`` (``argv`` defaults to ``sys.argv[1:]``, ``--debug`` removed) and exit.

    Exit code: ``main``'s return value when it is an ``int``, else 0; 2 with a one-line ``<prog>: error: ...`` on
    stderr for a user-input error (:data:`USER_ERRORS`) unless ``--debug`` is given; 130 on Ctrl-C.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get(_DEBUG_ENV, "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    prog = prog or _prog(main)
    try:
        result = main(args)
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"{prog}: error: {one_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)
