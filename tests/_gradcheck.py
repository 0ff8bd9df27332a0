"""Central finite differences for the rasterizer gradient tests (one entry of one input at a time)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def central_difference(loss_fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], k: int, j: int,
                       eps: float = 1e-6) -> float:
    """(loss(x + eps e_j) − loss(x − eps e_j)) / 2 eps, where x is ``inputs[k]`` flattened; the other inputs are
    passed detached and unchanged."""
    x = inputs[k]
    values = []
    for sign in (1.0, -1.0):
        v = x.detach().reshape(-1).clone()
        v[j] += sign * eps
        args = [a.detach() for a in inputs]
        args[k] = v.reshape(x.shape)
        values.append(loss_fn(*args))
    return float(values[0] - values[1]) / (2 * eps)
