"""Deprecated location: the exact-resume sampler, dataset wrapper and collate function live in
:mod:`perception3d.datasets.loading` (kept so that scripts importing ``perception3d.engine.data`` keep working;
importing it warns)."""
from perception3d.deprecation import warn_moved_module

warn_moved_module(__name__, "perception3d.datasets.loading")

from perception3d.datasets.loading import *  # noqa: F401,F403,E402
from perception3d.datasets.loading import __all__  # noqa: F401,E402
