"""Checkpoint helpers: atomic writes, finding the newest complete checkpoint, strict key checks.

- ``AtomicLocalBackend``: mmengine's local file backend writing through ``perception3d.fileio.atomic_write_bytes``
  (``.<name>.<random>.tmp`` in the same folder, fsync, ``os.replace`` onto the final name). A SIGKILL at any moment
  leaves either the old file or the new one, never a torn one. Registered as mmengine file backend
  ``'atomic_local'``; the configs give ``default_hooks.checkpoint.backend_args=dict(backend='atomic_local')``.
- ``find_latest_checkpoint(work_dir)``: the ``iter_*.pth`` / ``epoch_*.pth`` with the most training iterations
  (read from its meta), not trusting mmengine's ``last_checkpoint`` text file (written non-atomically).
- ``check_state_dict_keys(model, state_dict)``: raise ``KeyError`` naming missing / unexpected / mis-shaped keys
  (a checkpoint of another model).
"""
from __future__ import annotations

import glob
import os.path as osp
import re
from typing import Any

import torch
from mmengine.fileio import LocalBackend, register_backend

from perception3d import fileio

__all__ = ["AtomicLocalBackend", "find_latest_checkpoint", "check_state_dict_keys",
           "load_checkpoint_file", "load_state_dict_strict", "state_dict_of"]


@register_backend("atomic_local", force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine ``LocalBackend`` whose ``put`` / ``put_text`` are atomic (temp + rename)."""

    def put(self, obj: bytes, filepath) -> None:
        fileio.atomic_write_bytes(filepath, obj, fsync=True)   # checkpoints must survive a power cut

    def put_text(self, obj: str, filepath, encoding: str = "utf-8") -> None:
        fileio.atomic_write_bytes(filepath, obj.encode(encoding), fsync=True)


def _ckpt_iter(path: str) -> int:
    try:
        meta = torch.load(path, map_location="cpu", weights_only=False).get("meta", {})
        return int(meta.get("iter", -1))
    except Exception:  # unreadable / foreign file: never chosen
        return -2


def find_latest_checkpoint(work_dir: str) -> str | None:
    """Newest loadable ``iter_*.pth`` / ``epoch_*.pth`` under ``work_dir`` by its meta ``iter``; None if none."""
    cands = [p for p in glob.glob(osp.join(work_dir, "*.pth")) if re.match(r"(iter|epoch)_\d+\.pth$", osp.basename(p))]
    # newest by the number in the name first; then confirm by reading the meta
    cands.sort(key=lambda p: (osp.getmtime(p), p), reverse=True)
    best, best_it = None, -1
    for p in cands:
        it = _ckpt_iter(p)
        if it > best_it:
            best, best_it = p, it
    return best


def state_dict_of(checkpoint: Any) -> dict:
    """The model state dict inside an mmengine / plain checkpoint, ``module.`` prefixes stripped."""
    sd = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(sd, dict):
        raise TypeError(f"checkpoint: expected a dict with 'state_dict', got {type(checkpoint).__name__}")
    return {re.sub(r"^module\.", "", k): v for k, v in sd.items()}


def check_state_dict_keys(model: torch.nn.Module, state_dict: dict, source: str = "checkpoint") -> list:
    """Raise ``KeyError`` naming the missing, unexpected and shape-mismatched keys (10 of each shown).

    A model may declare keys a checkpoint is allowed to lack with a method ``checkpoint_may_lack(key) -> bool``
    (e.g. a fusion stage started from a LiDAR-only checkpoint: the camera part, never the LiDAR part); those are
    returned instead of raising (load the rest non-strictly)."""
    if hasattr(model, "module"):
        model = model.module
    own = model.state_dict()
    may_lack = getattr(model, "checkpoint_may_lack", None)
    absent = [k for k in own if k not in state_dict]
    allowed = [k for k in absent if may_lack(k)] if callable(may_lack) else []
    allowed_set = set(allowed)
    missing = [k for k in absent if k not in allowed_set]
    unexpected = [k for k in state_dict if k not in own]
    shape = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in state_dict and hasattr(state_dict[k], "shape")
             and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape:
        parts = []
        for name, lst in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", shape)):
            if lst:
                more = f" (+{len(lst) - 10} more)" if len(lst) > 10 else ""
                parts.append(f"{name} ({len(lst)}): {lst[:10]}{more}")
        raise KeyError(f"{source} does not fit {type(model).__name__} — is it a checkpoint of another model? "
                       + "; ".join(parts))
    return allowed


def load_checkpoint_file(path: str, map_location: str = "cpu") -> Any:
    """``torch.load`` of a checkpoint (a trusted file: mmengine checkpoints hold more than tensors, so this is a
    full unpickle); a truncated or damaged file raises :class:`~perception3d.fileio.DataFormatError` saying the
    checkpoint is corrupt, naming it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # zip / pickle / storage errors of a torn or foreign file
        raise fileio.DataFormatError(path, None, f"corrupt checkpoint (cannot be loaded: {type(exc).__name__}: "
                                                 f"{str(exc)[:200]})") from exc


def load_state_dict_strict(model: torch.nn.Module, path: str, map_location: str = "cpu") -> dict:
    """Load a checkpoint file into ``model`` after ``check_state_dict_keys``; returns the checkpoint dict."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = load_checkpoint_file(path, map_location)
    sd = state_dict_of(ckpt)
    lacking = check_state_dict_keys(model, sd, source=f"checkpoint {path}")
    (model.module if hasattr(model, "module") else model).load_state_dict(sd, strict=not lacking)
    return ckpt
