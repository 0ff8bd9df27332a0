"""Dynamic voxelisation: hand-worked cases, bad input, and parity with open3d on the real KITTI frame."""
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.sparse import scatter_reduce, voxelize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_hand_worked_voxels_and_point_index():
    pts = torch.tensor([[0.05, 0.05, 0.05, 1.0],    # voxel (z0, y0, x0)
                        [0.15, 0.05, 0.05, 3.0],    # x cell 1
                        [0.06, 0.04, 0.01, 3.0],    # same voxel as the first
                        [5.00, 0.00, 0.00, 9.0],    # outside the range (x max 1.0)
                        [0.35, 0.95, 0.45, 2.0]])
    x, p2v, stats = voxelize(pts, (0.1, 0.1, 0.1), (0, 0, 0, 1.0, 1.0, 0.5), return_stats=True)
    assert x.spatial_shape == (5, 10, 10)
    assert x.coords.tolist() == [[0, 0, 0, 0], [0, 0, 0, 1], [0, 4, 9, 3]]   # sorted by (b, z, y, x)
    assert p2v.tolist() == [0, 1, 0, -1, 2]
    assert torch.allclose(x.feats[0], torch.tensor([0.055, 0.045, 0.03, 2.0]))
    assert stats == dict(num_points=5, num_voxels=3, num_non_finite=0, num_out_of_range=1)
    assert x.voxel_size == (0.1, 0.1, 0.1) and x.origin == (0.0, 0.0, 0.0)
    xm, _ = voxelize(pts, (0.1, 0.1, 0.1), (0, 0, 0, 1.0, 1.0, 0.5), reduce="max")
    assert xm.feats[0, 3] == 3.0
    xn, _ = voxelize(pts, (0.1, 0.1, 0.1), (0, 0, 0, 1.0, 1.0, 0.5), reduce="none")
    assert xn.feats.shape == (3, 0)


def test_batches_and_pillars():
    a = torch.tensor([[0.5, 0.5, 0.5]]); b = torch.tensor([[0.5, 0.5, 0.5], [1.5, 0.5, 2.5]])
    x, p2v = voxelize([a, b], (1, 1, 4), (0, 0, 0, 2, 2, 4), ndim=2)
    assert x.batch_size == 2 and x.spatial_shape == (2, 2)
    assert x.coords.tolist() == [[0, 0, 0], [1, 0, 0], [1, 0, 1]] and p2v.tolist() == [0, 1, 2]


def test_non_finite_points_are_dropped_and_counted():
    pts = torch.tensor([[0.1, 0.1, 0.1], [float("nan"), 0.1, 0.1], [0.2, float("inf"), 0.1]])
    with pytest.warns(RuntimeWarning, match="dropped 2 of 3 points with NaN/inf"):
        x, p2v, stats = voxelize(pts, (1, 1, 1), (0, 0, 0, 1, 1, 1), return_stats=True)
    assert len(x) == 1 and p2v.tolist() == [0, -1, -1] and stats["num_non_finite"] == 2


def test_empty_scan():
    x, p2v = voxelize(torch.zeros(0, 4), (0.1, 0.1, 0.1), (0, 0, 0, 1, 1, 1))
    assert len(x) == 0 and x.feats.shape == (0, 4) and p2v.numel() == 0


@pytest.mark.parametrize("args,exc,match", [
    ((torch.zeros(4, 2), (1, 1, 1), (0, 0, 0, 1, 1, 1)), ValueError, r"\[N, F >= 3\]"),
    ((torch.zeros(4, 3, dtype=torch.int64), (1, 1, 1), (0, 0, 0, 1, 1, 1)), TypeError, "floating point"),
    ((torch.zeros(4, 3), (1, 1), (0, 0, 0, 1, 1, 1)), ValueError, "voxel_size needs 3"),
    ((torch.zeros(4, 3), (1, 0, 1), (0, 0, 0, 1, 1, 1)), ValueError, "positive"),
    ((torch.zeros(4, 3), (1, 1, 1), (0, 0, 0, -1, 1, 1)), ValueError, "max > min"),
    ((np.zeros((4, 3)), (1, 1, 1), (0, 0, 0, 1, 1, 1)), TypeError, "torch.Tensor"),
    (([torch.zeros(4, 3), torch.zeros(4, 4)], (1, 1, 1), (0, 0, 0, 1, 1, 1)), ValueError, "cloud 1 has 4"),
])
def test_bad_input(args, exc, match):
    with pytest.raises(exc, match=match):
        voxelize(*args)


def test_scatter_reduce_ignores_minus_one():
    src = torch.tensor([[1.0], [2.0], [5.0], [7.0]])
    idx = torch.tensor([0, 0, -1, 2])
    assert scatter_reduce(src, idx, 3, "mean").squeeze(1).tolist() == [1.5, 0.0, 7.0]
    assert scatter_reduce(src, idx, 3, "max").squeeze(1).tolist() == [2.0, 0.0, 7.0]
    with pytest.raises(ValueError, match="reduce must be"):
        scatter_reduce(src, idx, 3, "median")


def test_voxel_means_equal_open3d_voxel_down_sample_on_real_kitti():
    o3d = pytest.importorskip("open3d")
    path = DATA / "kitti_demo" / "000008.bin"
    if not path.exists():
        pytest.skip("../shared/data/kitti_demo is not here (a fresh clone); runs in CI")
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)[:, :3].astype(np.float64)
    size = 0.2
    down = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)).voxel_down_sample(size)
    ref = np.asarray(down.points)
    # open3d's grid starts at min_bound - size / 2: voxelise on the same grid
    lo = pts.min(0) - size / 2
    hi = lo + size * (np.ceil((pts.max(0) - lo) / size) + 1)
    x, _ = voxelize(torch.from_numpy(pts), (size,) * 3, (*lo.tolist(), *hi.tolist()))
    assert len(x) == ref.shape[0] > 1000
    ours = np.array(sorted(map(tuple, np.round(x.feats.numpy(), 5))))
    theirs = np.array(sorted(map(tuple, np.round(ref, 5))))
    assert np.abs(ours - theirs).max() <= 1e-4


@pytest.mark.parametrize("reduce", ["max", "min"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scatter_reduce_extremum_gradient_equals_autograds(reduce, dtype):
    """The segment max/min's own backward gives exactly autograd's gradients of Tensor.scatter_reduce, including
    ties (duplicated rows share the gradient), extrema of exactly 0 (relu'd input; autograd counts the initial
    zero as a tie) and empty rows."""
    g = torch.Generator().manual_seed(0)
    n, m, c = 2000, 150, 7                                   # rows 140.. stay empty
    index = torch.randint(0, 140, (n,), generator=g)
    src = torch.randn(n, c, generator=g, dtype=dtype)
    src = src.relu() if reduce == "max" else -src.relu()     # many segments whose extremum is exactly 0
    src[10:20] = src[0:10]                                   # exact ties with positive maxima
    index[10:20] = index[0:10]
    a = src.clone().requires_grad_()
    b = src.clone().requires_grad_()
    ref = torch.zeros(m, c, dtype=dtype).scatter_reduce(0, index[:, None].expand(-1, c), a, "a" + reduce[:3],
                                                        include_self=False)
    out = scatter_reduce(b, index, m, reduce)
    assert type(out.grad_fn).__name__ == "_SegmentExtremumBackward"      # the package's backward, not autograd's
    grad = torch.randn(m, c, generator=g, dtype=dtype)
    ref.backward(grad)
    out.backward(grad)
    assert torch.equal(out, ref)
    assert torch.equal(b.grad, a.grad)
    tied = b.grad[0:10] != 0                                 # the duplicated rows each got half
    assert tied.any() and torch.equal(b.grad[0:10][tied], b.grad[10:20][tied])


def test_scatter_reduce_max_gradient_by_hand():
    src = torch.tensor([[1.0], [3.0], [3.0], [2.0], [0.0]], requires_grad=True)
    out = scatter_reduce(src, torch.tensor([0, 0, 0, 1, 2]), 4, "max")
    out.backward(torch.tensor([[6.0], [5.0], [4.0], [3.0]]))
    # row 0: two tied maxima of 3 share 6; row 1: 2 is its own max; row 2: max 0 ties with the initial 0 → 4 / 2
    assert src.grad.squeeze(1).tolist() == [0.0, 3.0, 3.0, 5.0, 2.0]
