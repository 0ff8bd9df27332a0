"""Sparse conv / pool against dense PyTorch (the ground truth), gradients, spconv weight layout."""
import itertools

import pytest
import torch

from perception3d.sparse import (SparseAvgPool3d, SparseConv2d, SparseConv3d, SparseInverseConv2d,
                                 SparseInverseConv3d, SparseMaxPool2d, SparseMaxPool3d, SparseTensor, SubMConv2d,
                                 SubMConv3d, global_pool)
from sparse_reference import (CONV, CONV_T, MAXPOOL, active_mask, at_sites, dense_weight, random_sparse, site_set,
                              touched_sites)

TOL = 1e-4
SUBM = {2: SubMConv2d, 3: SubMConv3d}
STRIDED = {2: SparseConv2d, 3: SparseConv3d}
INVERSE = {2: SparseInverseConv2d, 3: SparseInverseConv3d}
SHAPES = {3: [(7, 9, 8), (5, 12, 11)], 2: [(13, 11), (9, 16)]}


@pytest.mark.parametrize("nd,shape_i,batch,k,dil", [
    (nd, i, b, k, d) for nd in (2, 3) for i in (0, 1) for b in (1, 3) for k, d in ((1, 1), (3, 1), (3, 2), (5, 1))
    if not (nd == 3 and k == 5 and b == 3)])
def test_subm_equals_dense_conv_at_input_sites(nd, shape_i, batch, k, dil):
    x = random_sparse(SHAPES[nd][shape_i], batch, 5, seed=shape_i * 10 + k + dil)
    conv = SUBM[nd](5, 6, k, dilation=dil)
    y = conv(x)
    ref = CONV[nd](x.dense(), dense_weight(conv.weight), conv.bias, padding=dil * (k - 1) // 2, dilation=dil)
    assert torch.equal(y.coords, x.coords)
    assert (y.feats - at_sites(ref, x.coords)).abs().max() <= TOL


@pytest.mark.parametrize("nd,shape_i,batch,k,s,p,dil", [
    (nd, i, b, k, s, p, d) for nd in (2, 3) for i in (0, 1) for b in (1, 2)
    for k, s, p, d in ((2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 0, 1), (1, 2, 0, 1), (3, 2, 0, 2), (3, 1, 1, 1))])
def test_strided_conv_equals_dense_conv_on_spconv_site_set(nd, shape_i, batch, k, s, p, dil):
    x = random_sparse(SHAPES[nd][shape_i], batch, 4, density=0.2, seed=7 + k + s + p)
    conv = STRIDED[nd](4, 3, k, stride=s, padding=p, dilation=dil)
    y = conv(x)
    ref = CONV[nd](x.dense(), dense_weight(conv.weight), conv.bias, stride=s, padding=p, dilation=dil)
    assert y.spatial_shape == tuple(ref.shape[2:])
    assert y.stride == (s,) * nd
    assert site_set(y) == touched_sites(x, (k,) * nd, s, p, dil)
    assert (y.feats - at_sites(ref, y.coords)).abs().max() <= TOL


@pytest.mark.parametrize("nd,k,s,p,dil", [(3, 2, 2, 0, 1), (3, 3, 2, 1, 1), (3, 3, 2, 0, 2), (2, 3, 2, 1, 1),
                                          (2, 2, 2, 0, 1)])
def test_inverse_conv_equals_conv_transpose_at_parent_sites(nd, k, s, p, dil):
    x = random_sparse(SHAPES[nd][1], 2, 4, density=0.2, seed=3)
    down = STRIDED[nd](4, 6, k, stride=s, padding=p, dilation=dil, indice_key="down1")
    up = INVERSE[nd](6, 5, k, indice_key="down1")
    y = down(x)
    z = up(y)
    assert torch.equal(z.coords, x.coords) and z.spatial_shape == x.spatial_shape and z.stride == x.stride
    w_t = up.weight.movedim(-1, 0)                      # [C_in, C_out, *k] for conv_transpose
    size = [(o - 1) * s - 2 * p + dil * (k - 1) + 1 for o in y.spatial_shape]
    out_pad = [t - q for t, q in zip(x.spatial_shape, size)]
    ref = CONV_T[nd](y.dense(), w_t, up.bias, stride=s, padding=p, output_padding=out_pad, dilation=dil)
    assert (z.feats - at_sites(ref, x.coords)).abs().max() <= TOL


def test_inverse_conv_without_producer_names_the_problem():
    x = random_sparse((6, 6, 6), 1, 2)
    with pytest.raises(ValueError, match="no strided SparseConv"):
        SparseInverseConv3d(2, 2, 3)(x)
    y = SparseConv3d(2, 2, 2, stride=2)(x)
    assert SparseInverseConv3d(2, 2, 2)(y).spatial_shape == (6, 6, 6)   # found without an indice_key


@pytest.mark.parametrize("nd,k,s,p", [(3, 2, 2, 0), (3, 3, 2, 1), (3, 3, 1, 1), (2, 3, 2, 1), (2, 2, 2, 0)])
def test_max_pool_equals_dense_max_over_active_inputs_floored_at_zero(nd, k, s, p):
    x = random_sparse(SHAPES[nd][0], 2, 3, density=0.3, seed=k * s)
    pool = (SparseMaxPool3d if nd == 3 else SparseMaxPool2d)(k, s, p)
    y = pool(x)
    d = x.dense()
    d = torch.where(active_mask(x).to(d.dtype).expand_as(d) > 0, d, torch.full_like(d, -float("inf")))
    ref = MAXPOOL[nd](d, k, s, p).clamp(min=0)            # spconv's max pool starts from zero
    assert site_set(y) == touched_sites(x, (k,) * nd, s, p, 1)
    assert (y.feats - at_sites(ref, y.coords)).abs().max() <= TOL


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1)])
def test_avg_pool_divides_by_active_inputs(k, s, p):
    x = random_sparse((8, 7, 9), 2, 3, density=0.3, seed=11)
    y = SparseAvgPool3d(k, s, p)(x)
    ones = torch.ones((3, 1, k, k, k))
    total = CONV[3](x.dense(), ones, stride=s, padding=p, groups=3)
    count = CONV[3](active_mask(x).float(), ones[:1], stride=s, padding=p)
    assert (y.feats - at_sites(total / count.clamp(min=1), y.coords)).abs().max() <= TOL


def test_global_pool_per_batch_entry():
    x = random_sparse((5, 5, 5), 3, 4, seed=2)
    for mode, fn in (("avg", lambda f: f.mean(0)), ("max", lambda f: f.max(0).values)):
        ref = torch.stack([fn(x.feats[x.coords[:, 0] == b]) for b in range(3)])
        assert torch.allclose(global_pool(x, mode), ref, atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        global_pool(x, "sum")


def test_stack_of_subm_convs_builds_the_kernel_map_once():
    x = random_sparse((9, 9, 9), 2, 4)
    convs = [SubMConv3d(4, 4, 3) for _ in range(3)]
    h = x
    for c in convs:
        h = c(h)
    assert len(x.coord_set.kmaps) == 1 and h.coord_set is x.coord_set


def _double(x):
    return x.replace(feats=x.feats.double().requires_grad_())


@pytest.mark.parametrize("make", [
    lambda: SubMConv3d(3, 2, 3), lambda: SubMConv2d(3, 2, 3, dilation=2), lambda: SparseConv3d(3, 2, 3, 2, 1),
    lambda: SparseConv2d(3, 2, 2, 2)])
def test_gradcheck_conv(make):
    x = random_sparse((5, 6, 4) if "3d" in type(make()).__name__ else (7, 6), 2, 3, density=0.3, seed=5)
    conv = make().double()
    xd = _double(x)
    fn = lambda f, w, b: torch.func.functional_call(conv, {"weight": w, "bias": b}, (xd.replace(feats=f),)).feats
    assert torch.autograd.gradcheck(fn, (xd.feats, conv.weight, conv.bias), atol=1e-6)


def test_gradcheck_inverse_conv_and_pools():
    x = _double(random_sparse((6, 5, 6), 2, 3, density=0.3, seed=9))
    down = SparseConv3d(3, 3, 2, 2).double()
    up = SparseInverseConv3d(3, 2, 2).double()
    y = down(x)
    fn = lambda f, w: torch.func.functional_call(up, {"weight": w, "bias": up.bias}, (y.replace(feats=f),)).feats
    assert torch.autograd.gradcheck(fn, (y.feats.detach().requires_grad_(), up.weight), atol=1e-6)
    for pool in (SparseMaxPool3d(2, 2), SparseAvgPool3d(3, 2, 1)):
        assert torch.autograd.gradcheck(lambda f: pool(x.replace(feats=f)).feats, (x.feats,), atol=1e-6)


def test_backward_matches_dense_autograd():
    x = random_sparse((6, 7, 5), 2, 4, density=0.3, seed=1)
    conv = SparseConv3d(4, 3, 3, stride=2, padding=1)
    f = x.feats.clone().requires_grad_()
    y = conv(x.replace(feats=f))
    g = torch.randn_like(y.feats)
    (y.feats * g).sum().backward()
    fd = x.feats.clone().requires_grad_()
    wd = dense_weight(conv.weight.detach()).clone().requires_grad_()
    xd = SparseTensor(fd, x.coords, x.spatial_shape, x.batch_size).dense()
    ref = at_sites(CONV[3](xd, wd, None, stride=2, padding=1), y.coords)
    (ref * g).sum().backward()
    assert (f.grad - fd.grad).abs().max() <= TOL
    assert (dense_weight(conv.weight.grad) - wd.grad).abs().max() <= TOL


@pytest.mark.parametrize("module", [
    lambda: SubMConv3d(3, 4, 3), lambda: SparseConv3d(3, 4, 3, 2, 1), lambda: SparseInverseConv3d(3, 4, 2),
    lambda: SparseMaxPool3d(2, 2), lambda: SparseAvgPool3d(2, 2), lambda: SubMConv2d(3, 4, 3)])
def test_empty_tensor_through_every_op(module):
    m = module()
    nd = 2 if "2d" in type(m).__name__ else 3
    x = SparseTensor(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, 1 + nd, dtype=torch.int32),
                     (8,) * nd, 2)
    if isinstance(m, SparseInverseConv3d):
        x = SparseConv3d(3, 3, 2, 2)(x)
    y = m(x)
    assert y.feats.shape[0] == 0
    y.feats.sum().backward()
    assert global_pool(y, "max").shape == (2, y.feats.shape[1])


def test_bad_inputs_to_convs():
    x = random_sparse((5, 5, 5), 1, 3)
    with pytest.raises(ValueError, match="input channels"):
        SubMConv3d(4, 2, 3)(x)
    with pytest.raises(ValueError, match="spatial axes"):
        SubMConv2d(3, 2, 3)(x)
    with pytest.raises(ValueError, match="odd kernel"):
        SubMConv3d(3, 2, 2)(x)
    with pytest.raises(ValueError, match="stride must be 1"):
        SubMConv3d(3, 2, 3, stride=2)
    with pytest.raises(TypeError, match="SparseTensor"):
        SubMConv3d(3, 2, 3)(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="empty output"):
        SparseConv3d(3, 2, 7, stride=1)(x)
    with pytest.raises(ValueError, match="unknown sparse backend"):
        SubMConv3d(3, 2, 3, backend="minkowski")


def test_state_dict_loads_from_spconv_modules_in_both_directions():
    spconv = pytest.importorskip("spconv.pytorch")
    pairs = [(spconv.SubMConv3d(3, 5, 3), SubMConv3d(3, 5, 3)),
             (spconv.SparseConv3d(3, 5, 2, 2), SparseConv3d(3, 5, 2, 2)),
             (spconv.SparseInverseConv3d(3, 5, 2, indice_key="k"), SparseInverseConv3d(3, 5, 2, indice_key="k")),
             (spconv.SubMConv2d(3, 5, 3), SubMConv2d(3, 5, 3))]
    for theirs, ours in pairs:
        ours.load_state_dict(theirs.state_dict())
        assert torch.equal(ours.weight, theirs.weight)
        theirs.load_state_dict(ours.state_dict())
    # and the loaded layout computes the dense conv with that weight
    sp = spconv.SparseConv3d(3, 5, 3, 2, 1)
    ours = SparseConv3d(3, 5, 3, 2, 1)
    ours.load_state_dict(sp.state_dict())
    x = random_sparse((7, 6, 8), 2, 3, seed=4)
    ref = CONV[3](x.dense(), dense_weight(sp.weight.detach()), sp.bias.detach(), stride=2, padding=1)
    y = ours(x)
    assert (y.feats - at_sites(ref, y.coords)).abs().max() <= TOL


def _dense_parity_fwd_bwd(conv, x, **dense_kw):
    """Forward and both gradients of ``conv`` on ``x`` against F.conv3d at the output sites."""
    f = x.feats.clone().requires_grad_()
    y = conv(x.replace(feats=f))
    g = torch.randn(y.feats.shape, generator=torch.Generator().manual_seed(5))
    (y.feats * g).sum().backward()
    fd = x.feats.clone().requires_grad_()
    wd = dense_weight(conv.weight.detach()).clone().requires_grad_()
    ref = at_sites(CONV[3](SparseTensor(fd, x.coords, x.spatial_shape, x.batch_size).dense(), wd, None,
                           **dense_kw), y.coords)
    (ref * g).sum().backward()
    scale = max(1.0, float(ref.abs().max()))
    assert (y.feats - conv.bias - ref).abs().max() <= TOL * scale
    assert (f.grad - fd.grad).abs().max() <= TOL * scale
    assert (dense_weight(conv.weight.grad) - wd.grad).abs().max() <= TOL * scale * 10
    return y


def test_chunked_gather_gemm_scatter_with_wide_channels():
    """1024 input channels make a CPU chunk 1024 rows; a dense 16³ grid gives > 1024 pairs per offset, so each
    offset runs in several chunks (forward and backward) — checked against dense F.conv3d."""
    from perception3d.sparse import functional
    x = random_sparse((16, 16, 16), 1, 1024, density=0.7, seed=2)
    conv = SubMConv3d(1024, 2, 3)
    seen = []
    real = functional._chunks

    def spy(counts, skip, device, channels):
        rows, spans = real(counts, skip, device, channels)
        seen.append((rows, max(c for k, c in enumerate(counts) if k != skip)))
        return rows, spans
    functional._chunks = spy
    try:
        _dense_parity_fwd_bwd(conv, x, padding=1)
    finally:
        functional._chunks = real
    assert len(seen) == 2 and all(rows == 1024 and most > 1024 for rows, most in seen), seen   # fwd + bwd


@pytest.mark.parametrize("kind", ["subm", "strided"])
def test_chunked_path_with_tiny_chunks(monkeypatch, kind):
    """Chunks of 7 rows: every offset is split many times, the last chunk is partial; = dense F.conv3d."""
    from perception3d.sparse import functional
    monkeypatch.setattr(functional, "_chunk_rows", lambda device, channels, total: 7)
    x = random_sparse((7, 8, 6), 2, 5, density=0.4, seed=9)
    if kind == "subm":
        _dense_parity_fwd_bwd(SubMConv3d(5, 4, 3), x, padding=1)
    else:
        _dense_parity_fwd_bwd(SparseConv3d(5, 4, 3, stride=2, padding=1), x, stride=2, padding=1)
