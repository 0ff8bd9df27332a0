"""Deprecated location: the cameras live in :mod:`perception3d.structures.cameras` (kept so that user code written
against ``perception3d.rendering.cameras`` keeps importing)."""
from perception3d.structures.cameras import *  # noqa: F401,F403
from perception3d.structures.cameras import __all__  # noqa: F401
