"""CUDA parity of sparse convolution: ours on CUDA vs ours on CPU, and vs spconv-cu120 on CUDA (forward and
backward: spconv's backward works on CUDA, unlike its CPU build). Skipped without a GPU; run by
scripts/gpu_check.sh."""
from __future__ import annotations

import pytest
import torch

from perception3d.sparse import SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d, use_backend
from sparse_reference import random_sparse

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

CASES = {
    "subm3": lambda: SubMConv3d(4, 8, 3),
    "subm3_dil2": lambda: SubMConv3d(4, 8, 3, dilation=2),
    "conv_k2s2": lambda: SparseConv3d(4, 8, 2, 2),
    "conv_k3s2p1": lambda: SparseConv3d(4, 8, 3, 2, 1),
}


def _sorted(t: SparseTensor):
    key = t.coords.long()
    order = torch.argsort(((key[:, 0] * 256 + key[:, 1]) * 256 + key[:, 2]) * 256 + key[:, 3])
    return t.coords[order].cpu(), t.feats[order].cpu()


def _run(conv, x: SparseTensor):
    """Forward + backward of 0.5 Σ out² (independent of the output row order) → (coords, feats, dW, dX)."""
    feats = x.feats.clone().requires_grad_()
    conv.zero_grad(set_to_none=True)
    out = conv(x.replace(feats=feats))
    (0.5 * (out.feats ** 2).sum()).backward()
    c, f = _sorted(out)
    return c, f.detach(), conv.weight.grad.cpu(), feats.grad.cpu()


@pytest.mark.parametrize("name", sorted(CASES))
def test_ours_cuda_equals_ours_cpu(name):
    torch.manual_seed(0)
    x = random_sparse((17, 19, 15), 2, 4, density=0.2, seed=1)
    conv = CASES[name]()
    ref = _run(conv, x)
    got = _run(conv.cuda(), x.to("cuda"))
    assert torch.equal(ref[0], got[0]), f"{name}: output sites differ between CPU and CUDA"
    for r, g, what in zip(ref[1:], got[1:], ("feats", "weight grad", "input grad")):
        assert torch.allclose(r, g, atol=1e-4, rtol=1e-4), f"{name} {what}: max |Δ| {(r - g).abs().max():.2e}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_ours_cuda_equals_spconv_cuda(name):
    spconv = pytest.importorskip("spconv.pytorch", reason="spconv-cu120 not installed (scripts/gpu_check.sh)")
    torch.manual_seed(0)
    x = random_sparse((17, 19, 15), 2, 4, density=0.2, seed=2).to("cuda")
    ours = CASES[name]().cuda()
    theirs = {"subm3": lambda: spconv.SubMConv3d(4, 8, 3), "subm3_dil2": lambda: spconv.SubMConv3d(4, 8, 3, dilation=2),
              "conv_k2s2": lambda: spconv.SparseConv3d(4, 8, 2, 2),
              "conv_k3s2p1": lambda: spconv.SparseConv3d(4, 8, 3, 2, 1)}[name]().cuda()
    theirs.load_state_dict(ours.state_dict())
    ref = _run(ours, x)
    feats = x.feats.clone().requires_grad_()
    out = theirs(x.replace(feats=feats).to_spconv())
    (0.5 * (out.features ** 2).sum()).backward()
    c, f = _sorted(SparseTensor.from_spconv(out))
    assert torch.equal(ref[0], c), f"{name}: output sites differ from spconv's"
    assert torch.allclose(ref[1], f.detach(), atol=1e-4, rtol=1e-4), f"{name}: forward differs from spconv"
    assert torch.allclose(ref[2], theirs.weight.grad.cpu(), atol=1e-3, rtol=1e-3), f"{name}: weight grad"
    assert torch.allclose(ref[3], feats.grad.cpu(), atol=1e-3, rtol=1e-3), f"{name}: input grad"


def test_inverse_conv_and_backend_switch_on_cuda():
    spconv_missing = False
    try:
        import spconv.pytorch  # noqa: F401
    except ImportError:
        spconv_missing = True
    torch.manual_seed(0)
    x = random_sparse((17, 19, 15), 2, 4, density=0.2, seed=3)
    down, up = SparseConv3d(4, 6, 3, 2, 1, indice_key="d"), SparseInverseConv3d(6, 5, 3, indice_key="d")
    with torch.no_grad():
        ref = _sorted(up(down(x)))
        xc = x.to("cuda")
        got = _sorted(up.cuda()(down.cuda()(xc)))
    assert torch.equal(ref[0], got[0]) and torch.allclose(ref[1], got[1], atol=1e-4)
    if spconv_missing:
        pytest.skip("spconv-cu120 not installed: the backend switch is not checked")
    conv = SparseConv3d(4, 8, 3, 2, 1).cuda()
    with torch.no_grad():
        a = _sorted(conv(xc))
        with use_backend("spconv"):
            b = _sorted(conv(xc))
    assert torch.equal(a[0], b[0]) and torch.allclose(a[1], b[1], atol=1e-4)
