"""The glue between our configs and mmengine's ``Runner`` (what ``tools/train.py`` / ``tools/test.py`` call).

- ``Det3DRunner``: mmengine ``Runner`` that (1) starts torch.distributed with gloo on a machine without a GPU
  (mmengine's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally), (2) loads checkpoints strictly,
  naming missing / unexpected keys, and (3) hands the run's seed to ``SeededDataset``.
- ``merge_cfg_options``: ``--cfg-options`` merged only where the key exists (in the config, or as a
  constructor argument of the ``type`` the dict builds); otherwise a ``KeyError`` that names the key.
- ``prepare_cfg``: the run-time edits a tool does (work dir, seed, resume, launcher, AMP on GPU, wrapper on CPU).
"""
from __future__ import annotations

import copy
import difflib
import inspect
import os
import os.path as osp
from typing import Any, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

from perception3d.engine.checkpoint import check_state_dict_keys, find_latest_checkpoint, state_dict_of
import perception3d.datasets  # noqa: F401  (registers datasets, transforms, samplers, prepare_data functions)
from perception3d.datasets.loading import set_run_seed

__all__ = ["Det3DRunner", "merge_cfg_options", "prepare_cfg", "init_cpu_distributed", "build_runner"]


def init_cpu_distributed(backend: str = "gloo") -> None:
    """``init_process_group`` from torchrun's env vars (RANK, WORLD_SIZE, MASTER_ADDR/PORT), without CUDA."""
    if dist.is_available() and not dist.is_initialized():
        for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            if k not in os.environ:
                raise RuntimeError(f"--launcher pytorch: environment variable {k} is not set; start with "
                                   f"torchrun / tools/dist_train.sh")
        dist.init_process_group(backend=backend)


class Det3DRunner(Runner):
    """mmengine Runner with CPU-distributed setup, strict checkpoint loading and seeded data (module doc)."""

    def setup_env(self, env_cfg: dict) -> None:
        if self.distributed and not torch.cuda.is_available():
            init_cpu_distributed("gloo")  # nccl needs CUDA
        super().setup_env(env_cfg)

    def set_randomness(self, seed, diff_rank_seed: bool = False, deterministic: bool = False) -> None:
        super().set_randomness(seed, diff_rank_seed=diff_rank_seed, deterministic=deterministic)
        set_run_seed(self.seed)

    def load_checkpoint(self, filename: str, map_location="cpu", strict: bool = False,
                        revise_keys: list = [(r"^module.", "")]):
        """Load ``filename`` (our own checkpoints carry RNG states and mmengine objects, so it is read with
        ``weights_only=False``: load only checkpoints you trust), after checking its keys fit the model."""
        from mmengine.model import is_model_wrapper
        from mmengine.runner.checkpoint import _load_checkpoint_to_model
        if not osp.isfile(filename):
            raise FileNotFoundError(f"checkpoint not found: {filename}")
        ckpt = torch.load(filename, map_location=map_location if map_location != "default" else "cpu",
                          weights_only=False)
        lacking = check_state_dict_keys(self.model, state_dict_of(ckpt), source=f"checkpoint {filename}")
        if lacking:
            self.logger.info(f"{filename}: {len(lacking)} tensors the model allows a checkpoint to lack keep their "
                             f"initialisation (e.g. {lacking[0]})")
        self.call_hook("after_load_checkpoint", checkpoint=ckpt)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        ckpt = _load_checkpoint_to_model(model, ckpt, not lacking, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f"Load checkpoint from {filename}")
        return ckpt


# ---------------------------------------------------------------------------------------------- cfg options
def _ctor_params(type_name: Any) -> Optional[set]:
    """Constructor argument names of a registered type (None if it takes **kwargs or cannot be found)."""
    from mmengine.registry import (LOOPS, OPTIM_WRAPPERS, OPTIMIZERS, PARAM_SCHEDULERS, DefaultScope)
    from perception3d.registry import DATA_SAMPLERS, DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS
    cls = type_name if inspect.isclass(type_name) else None
    if cls is None:
        with DefaultScope.overwrite_default_scope("perception3d"):
            for reg in (MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS, DATA_SAMPLERS, OPTIMIZERS, OPTIM_WRAPPERS,
                        PARAM_SCHEDULERS, LOOPS):
                try:
                    cls = reg.get(type_name)
                except Exception:
                    cls = None
                if cls is not None:
                    break
    if cls is None:
        return None
    sig = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls)
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {p for p in sig.parameters if p != "self"}


def merge_cfg_options(cfg: Config, options: Optional[dict]) -> Config:
    """Merge ``--cfg-options`` into ``cfg``; a key that exists neither in the config nor as an argument of the
    enclosing ``type`` raises ``KeyError`` naming it (with the closest existing keys)."""
    if not options:
        return cfg
    root = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for full_key in options:
        node: Any = root
        parts = full_key.split(".")
        for depth, part in enumerate(parts):
            is_last = depth == len(parts) - 1
            if isinstance(node, (list, tuple)) and part.isdigit():
                if int(part) >= len(node):
                    raise KeyError(f"--cfg-options {full_key}: index {part} out of range (list of {len(node)})")
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise KeyError(f"--cfg-options {full_key}: '{'.'.join(parts[:depth])}' is not a dict")
            if part in node:
                node = node[part]
                continue
            if is_last and "type" in node:
                params = _ctor_params(node["type"])
                if params is None or part in params:
                    break
                close = difflib.get_close_matches(part, sorted(set(node.keys()) | params), n=3)
            elif is_last and depth == 0:
                close = difflib.get_close_matches(part, list(node.keys()), n=3)
            else:
                close = difflib.get_close_matches(part, list(node.keys()), n=3)
            where = ".".join(parts[:depth]) or "<top level>"
            raise KeyError(f"--cfg-options: config key '{full_key}' does not exist ('{part}' not in {where})"
                           + (f"; did you mean {close}?" if close else ""))
        else:  # the key exists: the new value must be of the kind the config holds there
            _check_kind(full_key, node, options[full_key])
    cfg.merge_from_dict(options)
    return cfg


def _kind(v: Any) -> Optional[str]:
    """The kind of a config value for ``--cfg-options`` checks: bool, int, float, str, list, dict (None: any)."""
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), ((list, tuple), "list"),
                    (dict, "dict")):
        if isinstance(v, t):
            return name
    return None


def _check_kind(key: str, old: Any, new: Any) -> None:
    """``TypeError`` naming ``key`` when ``new`` is of another kind than the config's ``old`` value (None on
    either side is allowed: it switches a part off or on; an int may stand where a float is and a whole float
    where an int is), or a list whose items are of another kind than the config's (all-alike) items."""
    a, b = _kind(old), _kind(new)
    if (a is None or b is None or a == b or (a, b) == ("float", "int")
            or ((a, b) == ("int", "float") and float(new).is_integer())):
        if a == b == "list" and old and new:
            kinds = {_kind(x) for x in old}
            if len(kinds) == 1 and None not in kinds:
                for x in new:
                    _check_kind(f"{key}[]", old[0], x)
        return
    an = {"int": "an int"}
    raise TypeError(f"--cfg-options {key}={new!r}: the config holds {an.get(a, 'a ' + a)} there ({old!r}), not "
                    f"{an.get(b, 'a ' + b)}")


def prepare_cfg(cfg: Config, work_dir: Optional[str] = None, resume: Optional[str | bool] = None,
                seed: Optional[int] = None, launcher: str = "none", amp: Optional[bool] = None) -> Config:
    """Apply a tool's arguments to the config.

    resume: None/False → fresh; True → newest complete checkpoint in the work dir (fresh if none); a path →
    that checkpoint. amp: None → AMP exactly when CUDA is available.
    """
    cfg = copy.deepcopy(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        name = osp.splitext(osp.basename(cfg.filename or "run"))[0]
        cfg.work_dir = osp.join("work_dirs", name)
    if seed is not None:
        cfg.randomness = dict(cfg.get("randomness", {}), seed=seed)
    cfg.launcher = launcher
    if resume:
        ckpt = resume if isinstance(resume, str) else find_latest_checkpoint(cfg.work_dir)
        if ckpt is not None:
            cfg.resume, cfg.load_from = True, ckpt
        else:
            cfg.resume = False
    use_amp = torch.cuda.is_available() if amp is None else amp
    ow = cfg.get("optim_wrapper")
    if ow is not None and use_amp and ow.get("type", "OptimWrapper") == "OptimWrapper":
        ow["type"] = "AmpOptimWrapper"
        ow.setdefault("loss_scale", "dynamic")
    if launcher != "none" and not torch.cuda.is_available():
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None)
        cfg.env_cfg = dict(cfg.get("env_cfg", {}), dist_cfg=dict(backend="gloo"))
    return cfg


def build_runner(cfg: Config) -> Det3DRunner:
    """``Det3DRunner.from_cfg`` after ``prepare_data`` hooks named in ``cfg.prepare_data`` (e.g. build the
    mini dataset when its folder is missing)."""
    prep = cfg.get("prepare_data")
    if prep:
        from mmengine.registry import FUNCTIONS
        kw = dict(prep)
        fn = FUNCTIONS.get(kw.pop("type"))
        if fn is None:
            raise KeyError(f"prepare_data: unknown function {prep['type']!r}")
        fn(**kw)
    return Det3DRunner.from_cfg(cfg)
