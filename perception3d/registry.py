"""The registries that configs name classes through (mmengine style).

A leaf module: it imports only mmengine, so every layer of the package may register into it without an
upward import. Each registry is a child of mmengine's root registry of the same kind, so that mmengine's
``Runner`` finds our models, datasets, transforms, metrics, hooks and schedulers when ``default_scope='perception3d'``.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

MODELS = Registry("model", parent=MMENGINE_MODELS, scope="perception3d",
                  locations=["perception3d.models"])
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope="perception3d",
                    locations=["perception3d.datasets"])
TRANSFORMS = Registry("transform", parent=MMENGINE_TRANSFORMS, scope="perception3d",
                      locations=["perception3d.datasets"])
METRICS = Registry("metric", parent=MMENGINE_METRICS, scope="perception3d",
                   locations=["perception3d.evaluation"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="perception3d",
                 locations=["perception3d.engine"])
DATA_SAMPLERS = Registry("data sampler", parent=MMENGINE_DATA_SAMPLERS, scope="perception3d",
                         locations=["perception3d.datasets"])
PARAM_SCHEDULERS = Registry("parameter scheduler", parent=MMENGINE_PARAM_SCHEDULERS, scope="perception3d",
                            locations=["perception3d.engine"])
VISUALIZERS = Registry("visualizer", parent=MMENGINE_VISUALIZERS, scope="perception3d",
                       locations=["perception3d.engine"])
# Rendering methods (3DGS, CoherentGS, LM-Gaussian, ...): a config's ``method`` key names the trainer class that
# ``tools/train_gs.py`` builds; each takes ``(cfg, work_dir, seed=, resume=, progress=)`` and writes checkpoints
# that ``rendering.trainer.load_model`` reads (``params`` and ``sh_degree``).
RENDER_METHODS = Registry("render method", scope="perception3d",
                          locations=["perception3d.rendering.trainer",
                                     "perception3d.rendering.coherentgs",
                                     "perception3d.rendering.human.metacap.trainer",
                                     "perception3d.rendering.human.transhuman.trainer",
                                     "perception3d.rendering.lmgaussian"])
