"""Gaussian initialisation on SparseTensor anchors: voxelize() anchors and the kernel-map 3-nearest-neighbour scale
(rendering/anchors.py) against a brute-force reference and scipy's k-d tree."""
import numpy as np
import pytest
import torch

from perception3d.rendering.anchors import neighbour_scales, voxel_anchors
from perception3d.rendering.gaussians import GaussianModel, knn_scales
from perception3d.sparse import SparseTensor


def brute_force_scales(p: torch.Tensor, k: int = 3) -> torch.Tensor:
    """3DGS's rule written out: all pairwise squared distances, the k smallest others, mean, √, floor 1e-7."""
    p = p.double()
    d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    d2.fill_diagonal_(float("inf"))
    return torch.sqrt(d2.sort(1).values[:, :min(k, len(p) - 1)].mean(1).clamp(min=1e-7))


def cloud(seed: int) -> torch.Tensor:
    """Small random clouds of mixed kinds: uniform boxes of random aspect, tight clusters, isolated points."""
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(4, 300, (1,), generator=g))
    p = torch.rand(n, 3, generator=g) * (torch.rand(3, generator=g) * 5 + 0.01)
    if seed % 3 == 0:
        p[: n // 4] *= 0.01        # a dense cluster at the corner, the rest far sparser
    if seed % 4 == 1:
        p[:3] += 40.0              # a few isolated points: the neighbourhood must widen many levels
    return p


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("voxel_size", [None, 0.05, 0.7])
def test_kernel_map_scales_equal_brute_force(seed, voxel_size):
    p = cloud(seed)
    anchors = voxel_anchors(p, voxel_size=voxel_size)
    if voxel_size is None:                      # one anchor per point, in order
        assert torch.equal(anchors.feats[:, :3], p)
    assert torch.equal(neighbour_scales(anchors), brute_force_scales(anchors.feats[:, :3]))


def test_repeated_coords_and_k():
    """Several anchors in one cell (coords repeat: every point of a 2 m grid) and k other than 3."""
    p = cloud(5)
    a = voxel_anchors(p, voxel_size=2.0)
    cells = torch.floor((p - torch.tensor(a.origin[::-1])) / 2.0).int().flip(1)          # (z, y, x)
    t = SparseTensor(p, torch.cat([torch.zeros(len(p), 1, dtype=torch.int32), cells], 1), a.spatial_shape, 1,
                     voxel_size=a.voxel_size, origin=a.origin, check=False)
    assert len(torch.unique(t.coords, dim=0)) == len(a) < len(p)
    for k in (1, 3, 5):
        assert torch.equal(neighbour_scales(t, k), brute_force_scales(p, k))


def test_knn_scales_match_scipy_kdtree():
    from scipy.spatial import cKDTree

    p = cloud(6)
    d, _ = cKDTree(p.double().numpy()).query(p.double().numpy(), k=4)
    ref = np.sqrt(np.clip((d[:, 1:] ** 2).mean(1), 1e-7, None))
    np.testing.assert_allclose(knn_scales(p).double().numpy(), ref, rtol=1e-6)  # float32 output


def test_known_answers_and_edge_cases():
    grid = torch.stack(torch.meshgrid(*[torch.arange(5.0) * 0.1] * 3, indexing="ij"), -1).reshape(-1, 3)
    s = neighbour_scales(voxel_anchors(grid))
    assert len(s) == 125 and torch.allclose(s[62].float(), torch.tensor(0.1))     # interior: 3 neighbours at 0.1
    assert neighbour_scales(voxel_anchors(torch.zeros(1, 3))).tolist() == [0.01]   # a lone anchor
    two = neighbour_scales(voxel_anchors(torch.tensor([[0.0, 0, 0], [3.0, 4.0, 0]])))
    torch.testing.assert_close(two, torch.full((2,), 5.0, dtype=torch.float64))  # fewer than k: the ones there are
    assert len(voxel_anchors(torch.zeros(0, 3))) == 0
    # the far corner of an extent that is an exact multiple of the voxel stays inside the grid
    corners = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert len(voxel_anchors(corners)) == len(voxel_anchors(corners, voxel_size=0.1)) == 2
    assert len(voxel_anchors(torch.rand(5000, 3))) == 5000


def test_anchor_voxels_merge_and_average_colour():
    p = torch.tensor([[0.0, 0, 0], [1e-5, 0, 0], [1.0, 1.0, 1.0]])
    rgb = torch.tensor([[1.0, 0, 0], [0.0, 0, 1.0], [0.0, 1.0, 0]])
    assert len(GaussianModel.from_points(p, rgb, sh_degree=0)) == 3                    # default: one per point
    m = GaussianModel.from_points(p, rgb, sh_degree=0, voxel_size=0.1)
    assert len(m) == 2                                                               # the two 10 µm apart merge
    colours = (m.sh[:, 0] * 0.28209479177387814 + 0.5)
    assert torch.allclose(colours.sort(0).values, torch.tensor([[0.0, 0.0, 0.5], [0.5, 1.0, 0.0]]).sort(0).values,
                          atol=1e-6)
    with pytest.raises(ValueError, match="voxel_size"):
        voxel_anchors(p, voxel_size=-1.0)
    with pytest.raises(ValueError, match="int64"):
        voxel_anchors(p, voxel_size=1e-7)
