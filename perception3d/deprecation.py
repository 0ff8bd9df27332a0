"""Old import paths of names that moved (import shims): each warns ``DeprecationWarning`` naming the new path.

A module whose contents moved keeps a file at the old path that calls :func:`warn_moved_module`; a module that
lost some names to another sets ``__getattr__ = moved_names(__name__, {name: new_module})`` (PEP 562), so the
names resolve only for outside code and the package itself cannot import through them. ``MOVED`` lists every
shim that has been imported (``tests/test_import_shims.py`` checks that nothing in the package, the tools or the
benchmarks imports through one). Imports nothing of the package.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable, Dict

__all__ = ["warn_moved_module", "moved_names", "MOVED"]

MOVED: Dict[str, Any] = {}  # old module → new module (a whole module) or {name: new module}


def warn_moved_module(old: str, new: str) -> None:
    """Called at the top of a shim module: one DeprecationWarning at import naming the new module."""
    MOVED[old] = new
    warnings.warn(f"{old} is deprecated: its contents moved to {new}; import from there", DeprecationWarning,
                  stacklevel=3)


def moved_names(module: str, names: Dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that resolves ``names`` (old name → the module that now defines it) with a
    DeprecationWarning naming the new path, and raises AttributeError for anything else."""
    MOVED[module] = dict(names)

    def __getattr__(name: str) -> Any:
        if name in names:
            warnings.warn(f"{module}.{name} is deprecated: import {name} from {names[name]}", DeprecationWarning,
                          stacklevel=2)
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
