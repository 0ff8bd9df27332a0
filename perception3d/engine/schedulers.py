"""Parameter schedulers that mmengine lacks.

``OneCycleMomentum``: the momentum half of OpenPCDet's ``adam_onecycle`` (``MOMS: [0.95, 0.85]``, after fastai's
one-cycle policy, Smith 2018 §4). While the lr of ``OneCycleLR`` rises, Adam's β₁ falls by a cosine from
``moms[0]`` to ``moms[1]``; while the lr anneals it rises back:

    β₁(t) = m_end + (m_start − m_end) · (1 + cos(π · p)) / 2,   p the fraction of the phase done,

phase 1 (0 ≤ t ≤ pct_start · T − 1): m_start = moms[0], m_end = moms[1]; phase 2: the reverse. The phase
boundary is ``OneCycleLR``'s, so the two stay aligned when given the same ``pct_start`` and span.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from mmengine.optim.scheduler.momentum_scheduler import MomentumSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from perception3d.registry import PARAM_SCHEDULERS

__all__ = ["OneCycleMomentum"]


class _OneCycleMomentumSchedule(_ParamScheduler):
    def __init__(self, optimizer, param_name: str, moms: Sequence[float] = (0.95, 0.85),
                 pct_start: float = 0.4, total_steps: Optional[int] = None, begin: int = 0, end: int = INF,
                 last_step: int = -1, by_epoch: bool = True, verbose: bool = False):
        if len(moms) != 2 or not all(0.0 <= m < 1.0 for m in moms):
            raise ValueError(f"OneCycleMomentum: moms must be two values in [0, 1), got {moms}")
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f"OneCycleMomentum: pct_start must lie in (0, 1), got {pct_start}")
        self.moms = (float(moms[0]), float(moms[1]))
        self.total_steps = int(total_steps) if total_steps is not None else end - begin
        if self.total_steps <= 0 or self.total_steps == INF:
            raise ValueError(f"OneCycleMomentum: needs a finite span (total_steps or end), got {self.total_steps}")
        self.phase_end = float(pct_start * self.total_steps) - 1  # as mmengine's OneCycleLR
        super().__init__(optimizer, param_name, begin=begin, end=end, last_step=last_step, by_epoch=by_epoch,
                         verbose=verbose)

    @staticmethod
    def _cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def _get_value(self):
        t, (high, low) = self.last_step, self.moms
        if t <= self.phase_end:
            value = self._cos(high, low, t / self.phase_end) if self.phase_end > 0 else low
        else:
            span = (self.total_steps - 1) - self.phase_end
            value = self._cos(low, high, min((t - self.phase_end) / span, 1.0))
        return [value for _ in self.optimizer.param_groups]

    @classmethod
    def build_iter_from_epoch(cls, *args, begin=0, end=INF, total_steps=None, by_epoch=True, epoch_length=None,
                              **kwargs):
        if not (by_epoch and epoch_length):
            raise ValueError("OneCycleMomentum: convert_to_iter_based needs by_epoch=True and an epoch length")
        return cls(*args, begin=int(begin * epoch_length), end=end if end == INF else int(end * epoch_length),
                   total_steps=None if total_steps is None else total_steps * epoch_length, by_epoch=False,
                   **kwargs)


@PARAM_SCHEDULERS.register_module()
class OneCycleMomentum(MomentumSchedulerMixin, _OneCycleMomentumSchedule):
    """Cycles SGD's momentum or Adam's β₁ against ``OneCycleLR`` (OpenPCDet ``adam_onecycle``'s ``MOMS``)."""
