"""Data-side pieces of exact resume: a sampler that can start mid-epoch, a dataset wrapper that makes every
augmentation a pure function of (seed, epoch, index), a collate function, and bad-frame skipping.

Why: after a SIGKILL the resumed run must see the same batches with the same augmentations as an uninterrupted
run. Per-process RNG streams (main process, dataloader workers re-seeded every epoch) cannot be restored at
an arbitrary iteration, so randomness is tied to the sample instead:

- ``ResumableSampler`` (mmengine ``DefaultSampler`` + ``set_start``): yields ``epoch · len(dataset) + index``
  so the epoch travels with each index into whichever worker loads it, and skips the first ``start``
  indices of this rank's epoch order on resume.
- ``SeededDataset``: decodes (epoch, index), seeds python / numpy / torch with a hash of
  (seed, epoch, index), runs the wrapped dataset, and restores the caller's RNG states (so, with
  ``num_workers=0``, loading does not disturb the model's random stream either).
  A frame that raises is counted and replaced by the next index (deterministically); the count travels in
  the sample as ``data_samples['num_skipped_frames']`` and ``ProgressHook`` sums it for the run's summary.
"""
from __future__ import annotations

import logging
import random
from typing import Any, Iterator, Optional

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS

from perception3d.registry import DATA_SAMPLERS, DATASETS

__all__ = ["ResumableSampler", "SeededDataset", "det3d_collate", "sample_seed", "set_run_seed"]

_RUN_SEED = 0


def set_run_seed(seed: Optional[int]) -> None:
    """Set the base seed ``SeededDataset`` uses when its own ``seed`` is None (the runner calls this)."""
    global _RUN_SEED
    _RUN_SEED = int(seed or 0)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed from (seed, epoch, index) via numpy's SeedSequence (well mixed, platform independent)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(1)[0])


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """``DefaultSampler`` (shuffle by ``seed + epoch``, split over ranks) whose indices carry the epoch
    (``epoch · len(dataset) + i``; decode with ``SeededDataset``) and which can skip the first ``start``
    indices of the current epoch (``set_start``), used once when resuming mid-epoch."""

    def __init__(self, dataset, shuffle: bool = True, seed: Optional[int] = None, round_up: bool = True,
                 encode_epoch: bool = True) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        self.encode_epoch = encode_epoch
        self._start = 0

    def set_start(self, start: int) -> None:
        self._start = int(start)

    def __iter__(self) -> Iterator[int]:
        idx = list(super().__iter__())[self._start:]
        self._start = 0
        if self.encode_epoch:
            n = len(self.dataset)
            idx = [self.epoch * n + i for i in idx]
        return iter(idx)


@DATASETS.register_module()
class SeededDataset:
    """Wraps a dataset (config dict or object): per-sample RNG seeding and bad-frame skipping (see module doc).

    Args:
        dataset: the wrapped dataset or its config.
        seed: base seed (``None``: the run's seed, ``randomness.seed``, given by the runner via ``set_run_seed``).
        max_skips: give up after this many consecutive bad frames.
    """

    def __init__(self, dataset: Any, seed: Optional[int] = None, max_skips: int = 20) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.seed = seed
        self.max_skips = int(max_skips)

    @property
    def metainfo(self) -> dict:
        return getattr(self.dataset, "metainfo", {})

    def __getattr__(self, name: str):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def _seed(self) -> int:
        return int(self.seed) if self.seed is not None else _RUN_SEED

    def __getitem__(self, encoded: int):
        n = len(self.dataset)
        epoch, index = divmod(int(encoded), n)
        states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        inner_before = int(getattr(self.dataset, "num_skipped", 0) or 0)  # datasets that skip on their own
        try:
            skipped = 0
            while True:
                s = sample_seed(self._seed(), epoch, index)
                random.seed(s)
                np.random.seed(s)
                torch.manual_seed(s)
                try:
                    item = self.dataset[index]
                    if item is None:
                        raise ValueError("pipeline returned None")
                    break
                except Exception as e:  # a corrupt / unreadable frame: count it and take the next one
                    skipped += 1
                    print_log(f"SeededDataset: skipping bad frame {index}: {type(e).__name__}: {e}",
                              logger="current", level=logging.WARNING)
                    if skipped > self.max_skips:
                        raise RuntimeError(f"SeededDataset: {skipped} bad frames in a row (last index {index}): "
                                           f"{e}") from e
                    index = (index + 1) % n
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])
        skipped += int(getattr(self.dataset, "num_skipped", 0) or 0) - inner_before
        if skipped and isinstance(item, dict):
            ds = item.get("data_samples")
            if isinstance(ds, dict):
                ds["num_skipped_frames"] = skipped
            elif ds is not None:
                ds.set_metainfo(dict(num_skipped_frames=skipped)) if hasattr(ds, "set_metainfo") else None
        return item


@FUNCTIONS.register_module(force=True)
def det3d_collate(data_batch: list) -> dict:
    """Collate ``Pack3DDetInputs`` outputs: ``{"inputs": {"points": [T, ...]}, "data_samples": [d, ...]}``.

    Unlike mmengine's ``pseudo_collate`` it keeps each frame's data sample whole (a dict stays a dict).
    """
    inputs = [d["inputs"] for d in data_batch]
    if isinstance(inputs[0], dict):
        batched_inputs = {k: [x[k] for x in inputs] for k in inputs[0]}
    else:
        batched_inputs = dict(points=inputs)
    return dict(inputs=batched_inputs, data_samples=[d.get("data_samples") for d in data_batch])
