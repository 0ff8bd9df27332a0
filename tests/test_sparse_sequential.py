"""SparseSequential applies feature-wise modules to a SparseTensor's features and sparse modules to the tensor,
with nn.Sequential's (and spconv's) parameter names."""
import torch
from torch import nn

from perception3d.sparse import SparseSequential, SparseTensor, SubMConv3d


def _tensor():
    g = torch.Generator().manual_seed(0)
    coords = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [0, 1, 2, 1], [1, 0, 0, 0]], dtype=torch.int32)
    return SparseTensor(torch.randn(4, 3, generator=g), coords, (2, 3, 2), 2)


def test_features_modules_act_on_feats_and_sparse_modules_on_the_tensor():
    torch.manual_seed(0)
    conv, bn, act = SubMConv3d(3, 5, 3, padding=1, bias=False), nn.BatchNorm1d(5), nn.LeakyReLU(0.1)
    seq = SparseSequential(conv, bn, act).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = _tensor()
    y = seq(x)
    ref = act(bn(conv(x).feats))             # by hand: conv on the tensor, then BN and activation on its features
    assert isinstance(y, SparseTensor) and torch.equal(y.coords, x.coords)
    torch.testing.assert_close(y.feats, ref)
    assert y.coord_set is x.coord_set         # the kernel-map cache travels along
    assert [k for k in seq.state_dict()] == ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                             "1.num_batches_tracked"]


def test_dense_input_passes_through_as_nn_sequential():
    seq = SparseSequential(nn.Linear(3, 2), nn.ReLU())
    x = torch.randn(4, 3)
    torch.testing.assert_close(seq(x), torch.relu(seq[0](x)))
