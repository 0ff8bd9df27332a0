"""perception3d.engine: the glue to mmengine (runner, loops, hooks, exact resume, checkpoints)."""
from perception3d.engine.checkpoint import (AtomicLocalBackend, check_state_dict_keys,
                                            find_latest_checkpoint, load_state_dict_strict)
from perception3d.engine.hooks import DisableAugHook, ProgressHook, RNGStateHook
from perception3d.engine.loops import ExactEpochBasedTrainLoop
from perception3d.engine.schedulers import OneCycleMomentum
from perception3d.engine.runner import Det3DRunner, build_runner, merge_cfg_options, prepare_cfg
