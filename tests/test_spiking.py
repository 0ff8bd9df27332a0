"""Spiking neurons: forward values and surrogate gradients against the definitions, worked by hand."""
import torch
import pytest

from perception3d.models.layers.spiking import (LIFNeuron, MultiSpike, firing_stats, multispike, set_recording)


def test_multispike_forward_and_gradient_by_hand():
    u = torch.tensor([-1.0, 0.0, 0.2, 0.49, 0.5, 1.49, 1.5, 2.7, 3.5, 3.99, 4.0, 7.0], requires_grad=True)
    s = multispike(u, 4.0)
    # floor(clamp(u, 0, 4) + 0.5)
    assert s.tolist() == [0, 0, 0, 0, 1, 1, 2, 3, 4, 4, 4, 4]
    w = torch.arange(1.0, 13.0)
    (s * w).sum().backward()
    inside = [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]           # 1 on 0 < u < 4, else 0 (u = 0 and u = 4 excluded)
    assert u.grad.tolist() == (w * torch.tensor(inside, dtype=torch.float)).tolist()


def test_multispike_other_max_and_dtype():
    u = torch.tensor([[0.6, 2.2, 9.0]], dtype=torch.float64, requires_grad=True)
    s = multispike(u, 2.0)
    assert s.dtype == torch.float64 and s.tolist() == [[1.0, 2.0, 2.0]]
    s.sum().backward()
    assert u.grad.tolist() == [[1.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="max_spike"):
        MultiSpike(0)


def test_multispike_on_sparse_tensor_and_counts():
    try:
        from perception3d.sparse import SparseTensor
    except ImportError:  # the package __init__ may land after tensor.py
        from perception3d.sparse.tensor import SparseTensor
    feats = torch.tensor([[0.0, 0.0], [1.2, 3.6], [-2.0, 0.4], [0.6, 9.0]])
    coords = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0], [1, 0, 1, 0]], dtype=torch.int32)
    x = SparseTensor(feats, coords, (2, 2, 2), 2)
    neuron = MultiSpike()
    set_recording(neuron, True)
    y = neuron(x)
    assert isinstance(y, SparseTensor) and y.coords is x.coords
    assert y.feats.tolist() == [[0, 0], [1, 4], [0, 0], [1, 4]]
    st = firing_stats(neuron)[""]
    assert st["spikes"] == 10 and st["nonzero"] == 4 and st["elements"] == 8
    assert st["firing_rate"] == 10 / 8 and st["site_rate"] == 0.5


def test_lif_dynamics_by_hand():
    # tau = 2 -> beta = 0.5, V_th = 1, hard reset, 4 steps, constant input.
    lif = LIFNeuron(time_steps=4, tau=2.0, v_threshold=1.0, reset="hard")
    x = torch.tensor([[0.5, 0.6, 1.0, 0.8]])
    # 0.5: u = .5, .75, .875, .9375 -> 0 spikes
    # 0.6: u = .6, .9, 1.05 (spike, reset), .6 -> 1 spike
    # 1.0: fires every step -> 4;  0.8: .8, 1.2 (s), .8, 1.2 (s) -> 2
    assert lif(x).tolist() == [[0, 1, 4, 2]]
    soft = LIFNeuron(time_steps=4, tau=2.0, v_threshold=1.0, reset="soft")
    # 0.8 soft: u1=.8; u2=.4+.8=1.2 s; u3=.6-1+.8=.4; u4=.2+.8=1.0 s -> 2
    assert soft(torch.tensor([[0.8]])).tolist() == [[2]]
    seq = lif.forward_seq(torch.tensor([[0.6], [0.6], [0.6], [0.6]]))
    assert seq.reshape(-1).tolist() == [0.0, 0.0, 1.0, 0.0]


def test_lif_surrogate_gradient_flows():
    lif = LIFNeuron(time_steps=2, tau=2.0, v_threshold=1.0, surrogate_width=1.0)
    x = torch.tensor([[0.8, 5.0]], requires_grad=True)
    lif(x).sum().backward()
    # step 1: u = x; |u - 1| < .5 -> grad 1 for 0.8, 0 for 5.0 (far above threshold)
    assert x.grad[0, 0] > 0 and x.grad[0, 1] == 0
    with pytest.raises(ValueError, match="reset"):
        LIFNeuron(reset="weird")
