"""Runner hooks: RNG state in checkpoints, a progress / loss-log / bad-frame summary hook, and switching
augmentations off for the last epochs."""
from __future__ import annotations

import json
import os
import os.path as osp
import random
import sys
import time
from typing import Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from perception3d.fileio import atomic_write_text
from perception3d.registry import HOOKS

__all__ = ["RNGStateHook", "ProgressHook", "DisableAugHook"]


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves python / numpy / torch (and CUDA) RNG states into each checkpoint and restores them on resume,
    so random ops in the model continue the same stream after a resume. (Data randomness is per sample,
    see ``perception3d.datasets.loading``.) In DDP the states of rank 0 are saved."""

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["rng_state"] = dict(python=random.getstate(), numpy=np.random.get_state(),
                                       torch=torch.get_rng_state(),
                                       cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        st = checkpoint.get("rng_state")
        if st is None or not getattr(runner, "_resume", False):
            return
        random.setstate(st["python"])
        np.random.set_state(st["numpy"])
        torch.set_rng_state(st["torch"].cpu() if isinstance(st["torch"], torch.Tensor) else st["torch"])
        if st.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["cuda"])


@HOOKS.register_module()
class ProgressHook(Hook):
    """A one-line progress display (iteration, epoch, it/s, ETA, loss), a ``losses.jsonl`` log of every
    iteration's loss values (``{"iter": i, "loss": ..., ...}``, appended; a resumed run re-appends the
    iterations after its checkpoint, readers keep the last entry per iteration), and a run summary with the
    number of bad frames skipped.

    Args:
        interval: print every ``interval`` iterations (always a bar when stdout is a terminal).
        log_file: name of the JSONL loss log in the work dir (None: no log).
    """

    priority = "BELOW_NORMAL"

    def __init__(self, interval: int = 10, log_file: Optional[str] = "losses.jsonl") -> None:
        self.interval = max(1, int(interval))
        self.log_file = log_file
        self.skipped = 0
        self._t0 = None
        self._it0 = 0

    def before_train(self, runner) -> None:
        self._t0 = time.time()
        self._cpu0 = time.process_time()
        self._it0 = runner.iter
        self.skipped = int(runner.message_hub.get_info("num_skipped_frames", 0) or 0)
        if self.log_file and is_main_process():
            _drop_torn_last_line(osp.join(runner.work_dir, self.log_file))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        samples = (data_batch or {}).get("data_samples") or []
        for s in samples if isinstance(samples, (list, tuple)) else []:
            n = s.get("num_skipped_frames", 0) if isinstance(s, dict) else getattr(s, "num_skipped_frames", 0)
            self.skipped += int(n or 0)
        runner.message_hub.update_info("num_skipped_frames", self.skipped)
        if not is_main_process():
            return
        it = runner.iter + 1
        vals = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in (outputs or {}).items() if "loss" in k}
        if self.log_file:
            with open(osp.join(runner.work_dir, self.log_file), "a") as f:
                f.write(json.dumps(dict(iter=it, epoch=runner.epoch, **vals)) + "\n")
        tty = sys.stdout.isatty()
        if tty or it % self.interval == 0 or it == runner.max_iters:
            done = it - self._it0
            el = time.time() - self._t0
            rate = done / el if el > 0 else 0.0
            eta = (runner.max_iters - it) / rate if rate > 0 else 0.0
            frac = it / max(runner.max_iters, 1)
            bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
            loss = vals.get("loss", sum(vals.values()) if vals else float("nan"))
            msg = (f"[{bar}] iter {it}/{runner.max_iters} epoch {runner.epoch + 1}/{runner.max_epochs} "
                   f"{rate:.2f} it/s eta {eta / 60:.1f} min loss {loss:.4f}")
            print(("\r" + msg) if tty else msg, end="" if tty else "\n", flush=True)

    def after_train(self, runner) -> None:
        from mmengine.dist import all_reduce, get_world_size
        skipped = self.skipped
        if get_world_size() > 1:  # each rank counted the frames it loaded
            t = torch.tensor([float(skipped)])
            all_reduce(t, op="sum")
            skipped = int(t.item())
        if not is_main_process():
            return
        el = time.time() - (self._t0 or time.time())
        cpu = time.process_time() - getattr(self, "_cpu0", 0.0)
        msg = (f"\ntraining done: {runner.iter - self._it0} iterations in {el / 60:.1f} min wall "
               f"({cpu / 60:.1f} min CPU of this process); bad frames skipped: {skipped}")
        print(msg, flush=True)
        runner.logger.info(msg.strip())
        summary = dict(iters=runner.iter, epochs=runner.epoch, train_seconds=el, cpu_seconds=cpu,
                       skipped_frames=skipped)
        atomic_write_text(osp.join(runner.work_dir, "train_summary.json"), json.dumps(summary, indent=1))


def _drop_torn_last_line(path: str) -> None:
    """A run killed while appending to a JSON-lines log leaves a partial last line; cut it off before a resumed
    run appends (otherwise the log holds a line no reader can parse)."""
    if not osp.isfile(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def _dataset_with_pipeline(dataset):
    """The innermost dataset that owns a ``pipeline`` (through wrappers that hold it as ``.dataset``)."""
    seen = dataset
    while not hasattr(seen, "pipeline"):
        inner = getattr(seen, "__dict__", {}).get("dataset")
        if inner is None:
            raise TypeError(f"DisableAugHook: no pipeline found in the training dataset {type(dataset).__name__}")
        seen = inner
    return seen


@HOOKS.register_module()
class DisableAugHook(Hook):
    """Switches data augmentations off for the last ``num_last_epochs`` epochs (OpenPCDet's
    ``DisableAugmentationHook``, DSVT's ``DISABLE_AUG_LIST`` / ``NUM_LAST_EPOCHS: 1``), so that the final steps
    see the data as the evaluation does.

    Decided from the epoch number at the start of every epoch, so a run resumed inside the last epochs drops the
    same transforms. Persistent data-loader workers are restarted to pick up the change.

    Args:
        transforms: type names of the pipeline transforms to drop (e.g. ``"ObjectSample"``,
            ``"GlobalRotScaleTrans"``); names that the pipeline does not hold are ignored.
        num_last_epochs: how many final epochs run without them.
    """

    priority = "NORMAL"

    def __init__(self, transforms=("ObjectSample", "RandomFlip3D", "GlobalRotScaleTrans"),
                 num_last_epochs: int = 1) -> None:
        self.transforms = set(transforms)
        self.num_last_epochs = int(num_last_epochs)
        if self.num_last_epochs < 0:
            raise ValueError(f"DisableAugHook: num_last_epochs must be >= 0, got {num_last_epochs}")
        self.dropped: list = []
        self._applied = False

    def before_train_epoch(self, runner) -> None:
        if self._applied or runner.epoch < runner.max_epochs - self.num_last_epochs:
            return
        self._applied = True
        loader = runner.train_dataloader
        compose = _dataset_with_pipeline(loader.dataset).pipeline
        keep = [t for t in compose.transforms if type(t).__name__ not in self.transforms]
        self.dropped = [type(t).__name__ for t in compose.transforms if type(t).__name__ in self.transforms]
        compose.transforms = keep
        if getattr(loader, "persistent_workers", False):
            loader._iterator = None            # new workers, with the new pipeline, on the next epoch's iter()
        runner.logger.info(f"DisableAugHook: epoch {runner.epoch + 1}/{runner.max_epochs} and after run without "
                           f"{self.dropped or 'any of ' + str(sorted(self.transforms)) + ' (none in the pipeline)'}")
