"""Deprecated location: the exact-resume sampler, dataset wrapper and collate function live in
:mod:`perception3d.datasets.loading` (kept so that scripts importing ``perception3d.engine.data`` keep working)."""
from perception3d.datasets.loading import *  # noqa: F401,F403
from perception3d.datasets.loading import __all__  # noqa: F401
