"""perception3d.sparse.gelu: F.gelu's values and gradients, with row counts that repeat (bounded oneDNN cache)."""
import torch
import torch.nn.functional as F

from perception3d.models.backbones.dsvt import SetAttention
from perception3d.sparse import gelu


def test_equals_f_gelu_bitwise_forward_and_backward():
    g = torch.Generator().manual_seed(0)
    for n in (1, 255, 256, 257, 1000, 8691):
        x = (torch.randn(n, 64, generator=g) * 3).requires_grad_(True)
        ref = x.detach().clone().requires_grad_(True)
        y, y_ref = gelu(x), F.gelu(ref)
        dy = torch.randn(n, 64, generator=g)
        y.backward(dy)
        y_ref.backward(dy)
        assert y.shape == (n, 64)
        assert torch.equal(y, y_ref), n
        assert torch.equal(x.grad, ref.grad), n


def test_row_counts_reaching_the_kernel_are_bucketed(monkeypatch):
    seen = []
    real = F.gelu

    def spy(x, *a, **k):
        seen.append(x.shape[0])
        return real(x, *a, **k)

    monkeypatch.setattr(torch.nn.functional, "gelu", spy)
    for n in (300, 511, 512, 513, 7000):
        out = gelu(torch.randn(n, 8), bucket=256)
        assert out.shape == (n, 8)
    assert seen == [512, 512, 512, 768, 7168]


def test_dsvt_feed_forward_uses_it():
    assert SetAttention(8, 2, 16, "gelu").activation is gelu
