"""The candidate search shared by the box kernels: queries against an x-sorted array, each query scanning only its
x-window, expanded into (query, element) index pairs in chunks of bounded size, so that cost and memory follow
the number of near pairs rather than N * M (rotated IoU / NMS candidates, points in boxes)."""
from __future__ import annotations

from typing import Iterator, Tuple

import torch

__all__ = ["window_pairs"]


def window_pairs(start: torch.Tensor, end: torch.Tensor, order: torch.Tensor, max_pairs: int
                 ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(q [K], e [K])`` chunks of about ``max_pairs`` pairs (at least one query each): query ``q`` paired
    with every element ``order[start[q]:end[q]]`` of the sorted array (``order`` maps sorted positions to element
    indices; ``start``/``end`` [Q] come from ``searchsorted`` on the sorted key)."""
    dev = start.device
    Q = start.shape[0]
    counts = (end - start).clamp(min=0)
    cum = torch.cumsum(counts, 0)
    q0 = 0
    while q0 < Q:
        base = int(cum[q0 - 1]) if q0 > 0 else 0
        q1 = int(torch.searchsorted(cum, torch.tensor(base + max_pairs, device=dev), right=True))
        q1 = min(max(q1, q0 + 1), Q)
        c = counts[q0:q1]
        q = torch.repeat_interleave(torch.arange(q0, q1, device=dev), c)
        first = torch.cumsum(c, 0) - c
        offs = torch.arange(int(c.sum()), device=dev) - torch.repeat_interleave(first, c)
        yield q, order[start[q] + offs]
        q0 = q1
