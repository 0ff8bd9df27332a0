"""Deprecated location: the cameras live in :mod:`perception3d.structures.cameras` (kept so that user code written
against ``perception3d.rendering.cameras`` keeps importing; importing it warns)."""
from perception3d.deprecation import warn_moved_module

warn_moved_module(__name__, "perception3d.structures.cameras")

from perception3d.structures.cameras import *  # noqa: F401,F403,E402
from perception3d.structures.cameras import __all__  # noqa: F401,E402
