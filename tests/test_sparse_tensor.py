"""SparseTensor: construction, validation errors, conversions, empty tensors."""
import pytest
import torch

from perception3d.sparse import SparseTensor, SubMConv3d
from sparse_reference import random_sparse


def test_dense_from_dense_round_trip_and_layout():
    x = random_sparse((4, 5, 6), 2, 3, seed=1)
    d = x.dense()
    assert d.shape == (2, 3, 4, 5, 6)
    b, z, y, xx = x.coords[0].tolist()
    assert torch.equal(d[b, :, z, y, xx], x.feats[0])
    back = SparseTensor.from_dense(d)
    order = lambda t: torch.argsort(((t.coords[:, 0] * 4 + t.coords[:, 1]) * 5 + t.coords[:, 2]) * 6 + t.coords[:, 3])
    assert torch.equal(back.coords[order(back)], x.coords[order(x)])
    assert torch.equal(back.feats[order(back)], x.feats[order(x)])
    assert x.dense(channels_first=False).shape == (2, 4, 5, 6, 3)


def test_replace_shares_coordinates_and_kernel_maps():
    x = random_sparse((6, 6, 6), 1, 2)
    SubMConv3d(2, 2, 3)(x)
    y = x.replace(feats=x.feats * 2)
    assert y.coord_set is x.coord_set and len(y.coord_set.kmaps) == 1
    assert y.voxel_size is None and x.replace(voxel_size=(0.1, 0.1, 0.2)).voxel_size == (0.1, 0.1, 0.2)
    with pytest.raises(ValueError, match=r"replace\(feats"):
        x.replace(feats=torch.zeros(len(x) + 1, 2))
    with pytest.raises(TypeError, match="unknown fields"):
        x.replace(colour=1)


def test_split_and_cat_are_inverse():
    x = random_sparse((5, 5, 5), 3, 2, seed=4)
    parts = x.split_batches()
    assert [p.batch_size for p in parts] == [1, 1, 1]
    assert sum(len(p) for p in parts) == len(x)
    y = SparseTensor.cat(parts)
    assert y.batch_size == 3 and torch.equal(y.dense(), x.dense())
    with pytest.raises(ValueError, match="channels"):
        SparseTensor.cat([parts[0], parts[1].replace(feats=torch.zeros(len(parts[1]), 5))])


def test_to_and_from_spconv_share_memory():
    pytest.importorskip("spconv.pytorch")
    x = random_sparse((4, 4, 4), 2, 3)
    t = x.to_spconv()
    assert t.features.data_ptr() == x.feats.data_ptr() and t.indices.data_ptr() == x.coords.data_ptr()
    assert list(t.spatial_shape) == [4, 4, 4] and t.batch_size == 2
    back = SparseTensor.from_spconv(t)
    assert back.feats.data_ptr() == x.feats.data_ptr() and back.spatial_shape == (4, 4, 4)


def test_to_casts_feats_and_keeps_coords():
    x = random_sparse((4, 4, 4), 1, 3)
    y = x.to(torch.float64)
    assert y.dtype == torch.float64 and y.coords.dtype == torch.int32 and y.coord_set is x.coord_set


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(coords=torch.tensor([[0, 1.0, 2, 3]])), TypeError, "integer tensor"),
    (dict(coords=torch.tensor([[0, 1, 2]])), ValueError, r"\[N, 4\]"),
    (dict(coords=torch.tensor([[0, 1, 2, 9]])), ValueError, "spatial axis 2"),
    (dict(coords=torch.tensor([[0, -1, 2, 3]])), ValueError, "spatial axis 0"),
    (dict(coords=torch.tensor([[2, 1, 2, 3]])), ValueError, "batch index"),
    (dict(coords=torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]]), feats=torch.zeros(2, 2)), ValueError, "duplicate"),
    (dict(feats=torch.zeros(1, 2, dtype=torch.int64)), TypeError, "floating-point"),
    (dict(feats=torch.zeros(3, 2)), ValueError, r"\[N, C\] with N = 1"),
    (dict(feats=[[0.0, 1.0]]), TypeError, "feats must be a torch.Tensor"),
    (dict(spatial_shape=(4, 0, 4)), ValueError, "positive"),
    (dict(stride=(1, 2)), ValueError, "stride must have 3 entries"),
])
def test_bad_input_gets_a_clear_error(kwargs, exc, match):
    args = dict(feats=torch.zeros(1, 2), coords=torch.tensor([[0, 1, 2, 3]]), spatial_shape=(4, 4, 4), batch_size=1)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        SparseTensor(**args)


def test_nan_features_rejected_on_request():
    feats = torch.tensor([[float("nan"), 1.0]])
    SparseTensor(feats, torch.tensor([[0, 1, 2, 3]]), (4, 4, 4), 1)        # allowed by default
    with pytest.raises(ValueError, match="non-finite values in 1 rows"):
        SparseTensor(feats, torch.tensor([[0, 1, 2, 3]]), (4, 4, 4), 1, check_nan=True)


def test_empty_tensor_is_valid():
    x = SparseTensor(torch.zeros(0, 4), torch.zeros(0, 4, dtype=torch.int32), (3, 3, 3), 2)
    assert x.dense().shape == (2, 4, 3, 3, 3) and x.dense().abs().sum() == 0
    assert len(SparseTensor.from_dense(torch.zeros(1, 2, 3, 3))) == 0
    assert [len(p) for p in x.split_batches()] == [0, 0]
