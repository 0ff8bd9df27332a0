"""Spiking neurons that act on ``SparseTensor`` features (or plain tensors).

Two neurons are provided:

* :class:`MultiSpike` — the integer multi-spike neuron of E-3DSNN (Qiu et al., AAAI 2025, the neuron of its SVC/SSC sections, as the authors code it):
  ``s = floor(clamp(u, 0, D) + 0.5)`` with ``D = 4`` (spikes take the integers 0 … D), trained with a
  straight-through surrogate gradient ``ds/du = 1`` on ``0 < u < D`` and ``0`` elsewhere.
  At inference an integer spike ``s`` is ``s`` binary spikes, so a following conv needs only additions.
* :class:`LIFNeuron` — the classic multi-time-step leaky integrate-and-fire neuron
  ``u_t = β·u_{t-1}·(1 − s_{t-1}) + x_t`` (hard reset) or ``u_t = β·u_{t-1} − V_th·s_{t-1} + x_t`` (soft reset),
  ``s_t = H(u_t − V_th)`` with a rectangular surrogate gradient; for static input it returns the spike
  count over the ``T`` steps (an integer in 0 … T), which is interchangeable with ``MultiSpike``.

Both count their firing (sum of spike values, non-zero entries, active sites) when ``record`` is on;
:func:`firing_stats` collects the per-layer numbers for the energy estimate (``tools/snn_energy.py``).
"""
from __future__ import annotations

from typing import Any, Dict, Union

import torch
from torch import Tensor, nn

__all__ = ["multispike", "MultiSpikeFn", "MultiSpike", "LIFNeuron", "SpikingNeuron",
           "firing_stats", "reset_firing_stats", "set_recording"]


class MultiSpikeFn(torch.autograd.Function):
    """``s = floor(clamp(u, 0, D) + 0.5)``; backward: ``grad · 1[0 < u < D]`` (straight-through)."""

    @staticmethod
    def forward(ctx: Any, u: Tensor, max_spike: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.max_spike = max_spike
        return torch.floor(torch.clamp(u, 0.0, max_spike) + 0.5)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        inside = (u > 0) & (u < ctx.max_spike)
        return grad_out * inside.to(grad_out.dtype), None


def multispike(u: Tensor, max_spike: float = 4.0) -> Tensor:
    """Integer multi-spike of E-3DSNN on any tensor ``u`` (same shape out, values in {0, …, max_spike})."""
    return MultiSpikeFn.apply(u, float(max_spike))


def _feats(x: Any) -> Tensor:
    return x.feats if hasattr(x, "feats") and hasattr(x, "replace") else x


def _wrap(x: Any, f: Tensor) -> Any:
    return x.replace(feats=f) if hasattr(x, "feats") and hasattr(x, "replace") else f


class SpikingNeuron(nn.Module):
    """Base: applies ``self.fire`` to the features and keeps firing counters.

    Counters (summed over the calls since the last :meth:`reset_stats`, only while ``record`` is True):
    ``spikes`` (sum of spike values), ``nonzero`` (non-zero entries), ``elements`` (entries seen),
    ``active_sites`` (rows with any non-zero spike), ``sites`` (rows seen). The firing rate used for
    SOPs is ``spikes / elements`` (spikes per neuron per inference; may exceed 1 for integer spikes).
    """

    def __init__(self) -> None:
        super().__init__()
        self.record = False
        self.reset_stats()

    def reset_stats(self) -> None:
        self.stats: Dict[str, float] = dict(spikes=0.0, nonzero=0.0, elements=0.0, active_sites=0.0,
                                            sites=0.0, calls=0.0)

    def fire(self, u: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Any) -> Any:
        """``x``: ``SparseTensor`` (acts on ``feats [N, C]``) or a tensor ``[..., C]``; returns the same kind."""
        s = self.fire(_feats(x))
        if self.record:
            with torch.no_grad():
                s2 = s.detach().reshape(-1, s.shape[-1]) if s.dim() > 0 and s.numel() else s.detach().reshape(0, 1)
                self.stats["spikes"] += float(s2.sum())
                self.stats["nonzero"] += float((s2 != 0).sum())
                self.stats["elements"] += float(s2.numel())
                self.stats["active_sites"] += float((s2 != 0).any(dim=1).sum())
                self.stats["sites"] += float(s2.shape[0])
                self.stats["calls"] += 1
        return _wrap(x, s)


class MultiSpike(SpikingNeuron):
    """E-3DSNN integer multi-spike neuron (``max_spike`` = D = 4 by default)."""

    def __init__(self, max_spike: float = 4.0) -> None:
        super().__init__()
        if max_spike <= 0:
            raise ValueError(f"MultiSpike: max_spike must be > 0, got {max_spike}")
        self.max_spike = float(max_spike)

    def fire(self, u: Tensor) -> Tensor:
        return multispike(u, self.max_spike)

    def extra_repr(self) -> str:
        return f"max_spike={self.max_spike:g}"


class _HeavisideRect(torch.autograd.Function):
    """``H(v)`` forward; rectangular surrogate ``1[|v| < width/2] / width`` backward."""

    @staticmethod
    def forward(ctx: Any, v: Tensor, width: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        ctx.width = width
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor):  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return g * ((v.abs() < ctx.width / 2).to(g.dtype) / ctx.width), None


class LIFNeuron(SpikingNeuron):
    """Multi-time-step leaky integrate-and-fire neuron.

    Args:
        time_steps: T, the number of steps a static input is presented for.
        tau: membrane time constant; the decay per step is ``β = 1 − 1/τ``.
        v_threshold: firing threshold ``V_th``.
        reset: ``"hard"`` (membrane to 0 after a spike) or ``"soft"`` (subtract ``V_th``).
        surrogate_width: width of the rectangular surrogate gradient around ``V_th``.

    ``forward(x)``: static input ``[N, C]`` (or a ``SparseTensor``) → spike count over T steps ``[N, C]``
    (integers 0 … T). ``forward_seq(x)``: a sequence ``[T, N, C]`` → binary spikes ``[T, N, C]``.
    """

    def __init__(self, time_steps: int = 4, tau: float = 2.0, v_threshold: float = 1.0,
                 reset: str = "hard", surrogate_width: float = 1.0) -> None:
        super().__init__()
        if time_steps < 1:
            raise ValueError(f"LIFNeuron: time_steps must be >= 1, got {time_steps}")
        if tau < 1:
            raise ValueError(f"LIFNeuron: tau must be >= 1, got {tau}")
        if reset not in ("hard", "soft"):
            raise ValueError(f"LIFNeuron: reset must be 'hard' or 'soft', got {reset!r}")
        self.time_steps, self.tau, self.v_threshold = int(time_steps), float(tau), float(v_threshold)
        self.reset, self.surrogate_width = reset, float(surrogate_width)

    def forward_seq(self, x_seq: Tensor) -> Tensor:
        """``x_seq [T, ...]`` input currents → binary spikes ``[T, ...]``."""
        beta = 1.0 - 1.0 / self.tau
        u = torch.zeros_like(x_seq[0])
        s = torch.zeros_like(x_seq[0])
        out = []
        for t in range(x_seq.shape[0]):
            if self.reset == "hard":
                u = beta * u * (1.0 - s) + x_seq[t]
            else:
                u = beta * u - self.v_threshold * s + x_seq[t]
            s = _HeavisideRect.apply(u - self.v_threshold, self.surrogate_width)
            out.append(s)
        return torch.stack(out, 0)

    def fire(self, u: Tensor) -> Tensor:
        return self.forward_seq(u.unsqueeze(0).expand(self.time_steps, *u.shape)).sum(0)

    def extra_repr(self) -> str:
        return f"T={self.time_steps}, tau={self.tau:g}, v_th={self.v_threshold:g}, reset={self.reset}"


def set_recording(model: nn.Module, on: bool = True, reset: bool = True) -> None:
    """Turn firing counters of every spiking neuron in ``model`` on/off (and zero them)."""
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.record = on
            if reset:
                m.reset_stats()


def reset_firing_stats(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.reset_stats()


def firing_stats(model: nn.Module) -> Dict[str, Dict[str, float]]:
    """Per-neuron statistics: ``{name: {firing_rate, nonzero_rate, site_rate, spikes, elements, ...}}``.

    ``firing_rate`` = mean spike value per neuron; ``nonzero_rate`` = fraction of non-zero entries;
    ``site_rate`` = fraction of sites (rows) with at least one spike (what the event-driven conv gathers).
    """
    out: Dict[str, Dict[str, float]] = {}
    for name, m in model.named_modules():
        if isinstance(m, SpikingNeuron):
            st = dict(m.stats)
            e, n = max(st["elements"], 1.0), max(st["sites"], 1.0)
            st.update(firing_rate=st["spikes"] / e, nonzero_rate=st["nonzero"] / e,
                      site_rate=st["active_sites"] / n)
            out[name] = st
    return out


SpikeInput = Union[Tensor, Any]
