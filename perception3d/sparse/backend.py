"""Backend choice for sparse ops: "torch" (always there, CPU and CUDA, forward and backward) or "spconv".

spconv is optional: `spconv-cu120` on a CUDA machine, the `spconv` CPU build for forward-only parity checks.
On CPU the spconv build is only correct single-threaded (a race in its CPU scatter, see NOTES.md), and its
backward calls CUDA unconditionally, so on CPU it is a cross-check and a timing peer, not a training path.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator, Optional

_BACKENDS = ("torch", "spconv")
_default = os.environ.get("PERCEPTION3D_SPARSE_BACKEND", "torch")
_warned_threads = False


def spconv_available() -> bool:
    try:
        import spconv.pytorch  # noqa: F401
    except Exception:  # ImportError, or a CUDA build without a GPU
        return False
    return True


def check_backend(name: Optional[str]) -> Optional[str]:
    if name is not None and name not in _BACKENDS:
        raise ValueError(f"unknown sparse backend {name!r}; choose one of {_BACKENDS}")
    return name


def set_backend(name: str) -> None:
    """Choose the default backend for every sparse module without its own `backend=`."""
    global _default
    _default = check_backend(name)


def get_backend() -> str:
    return _default


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """`with use_backend("spconv"): ...` — temporarily change the default backend."""
    global _default
    old = _default
    set_backend(name)
    try:
        yield
    finally:
        _default = old


def resolve(name: Optional[str], device=None) -> str:
    """The backend to use for a call: the module's own choice, else the default."""
    name = name or _default
    if name == "spconv":
        if not spconv_available():
            raise RuntimeError("sparse backend 'spconv' was asked for but spconv is not installed "
                               "(pip install 'perception3d[spconv]' on CUDA, or `spconv` on CPU)")
        if device is None or getattr(device, "type", device) == "cpu":
            _warn_cpu_threads()
    return name


def _warn_cpu_threads() -> None:
    global _warned_threads
    if not _warned_threads and os.environ.get("OMP_NUM_THREADS") != "1":
        warnings.warn("spconv's CPU build returns wrong results with more than one thread; set OMP_NUM_THREADS=1 "
                      "before starting Python when you use backend='spconv' on CPU", RuntimeWarning, stacklevel=3)
        _warned_threads = True
