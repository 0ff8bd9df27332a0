"""``ExactEpochBasedTrainLoop``: mmengine's epoch loop that can resume in the middle of an epoch.

mmengine's ``EpochBasedTrainLoop`` restarts a resumed epoch from its first batch (or, with iteration
checkpoints, replays batches already trained on). This loop starts the epoch at batch
``iter − epoch · len(dataloader)`` by telling the sampler (``ResumableSampler.set_start``) to skip the indices
already consumed, without loading them. The dataloader iterator is created under ``torch.random.fork_rng`` so
that creating it (which draws worker base seeds) never moves the main process's random stream.
"""
from __future__ import annotations

import torch
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop

__all__ = ["ExactEpochBasedTrainLoop"]


def _sampler_of(dataloader):
    bs = getattr(dataloader, "batch_sampler", None)
    return getattr(bs, "sampler", None) or getattr(dataloader, "sampler", None)


@LOOPS.register_module(force=True)
class ExactEpochBasedTrainLoop(EpochBasedTrainLoop):
    """Epoch-based training loop with exact mid-epoch resume (see module docstring)."""

    def run_epoch(self) -> None:
        self.runner.call_hook("before_train_epoch")
        self.runner.model.train()
        n = len(self.dataloader)
        start = self._iter - self._epoch * n  # batches of this epoch already trained (resume)
        if not 0 <= start <= n:
            raise RuntimeError(f"ExactEpochBasedTrainLoop: checkpoint iter {self._iter} does not lie in epoch "
                               f"{self._epoch} of {n} iterations; was the batch size or dataset changed?")
        sampler = _sampler_of(self.dataloader)
        if 0 < start < n:   # (start == n: a checkpoint written at the epoch's last iteration; nothing to skip)
            if not hasattr(sampler, "set_start"):
                raise RuntimeError("ExactEpochBasedTrainLoop: resuming mid-epoch needs a sampler with set_start "
                                   "(train_dataloader.sampler=dict(type='ResumableSampler'))")
            sampler.set_start(start * self.dataloader.batch_size)
        if start < n:
            with torch.random.fork_rng(devices=[]):
                it = iter(self.dataloader)
            for idx in range(start, n):
                self.run_iter(idx, next(it))
        self.runner.call_hook("after_train_epoch")
        self._epoch += 1
