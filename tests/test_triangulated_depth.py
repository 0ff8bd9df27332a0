"""The weight-free triangulated depth prior (``rendering/priors/densify.py``): the fundamental matrix of two known
cameras annihilates true correspondences, guided matching keeps only epipolar-consistent matches, densification
is exact on a plane (inverse depth is affine in the pixel there), and on a ray-cast synthetic capture — whose
depth is known exactly — the prior's depth is accurate where it claims validity."""

import numpy as np
import pytest
import torch

from perception3d.rendering.priors import TriangulatedDepth, build_depth_prior, depth_metrics
from perception3d.rendering.priors.densify import densify_depth, epipolar_matches, fundamental_matrix
from perception3d.structures.cameras import Cameras, look_at


def _two_cameras(W=160, H=120):
    eyes = torch.tensor([[0.0, -4.0, 0.5], [1.6, -3.6, 0.8]])
    K = torch.tensor([[120.0, 0, W / 2], [0, 120.0, H / 2], [0, 0, 1]]).repeat(2, 1, 1)
    return Cameras.from_camtoworlds(look_at(eyes, torch.zeros(3)), K, W, H)


def test_fundamental_matrix_of_known_cameras_annihilates_true_correspondences():
    cams = _two_cameras()
    X = torch.rand(50, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    uv, z = cams.project(X)
    assert (z > 0).all()
    vm, Ks = cams.viewmats.double().numpy(), cams.Ks.double().numpy()
    F = fundamental_matrix(Ks[0], Ks[1], vm[0], vm[1])
    x0 = np.c_[uv[0].double().numpy(), np.ones(50)]
    x1 = np.c_[uv[1].double().numpy(), np.ones(50)]
    l1 = x0 @ F.T
    dist = np.abs((x1 * l1).sum(1)) / np.hypot(l1[:, 0], l1[:, 1])
    assert dist.max() < 1e-4  # pixels (the projection is float32)
    # a point shifted off its epipolar line by 3 px along the line's normal is 3 px away
    n = l1[:, :2] / np.hypot(l1[:, 0], l1[:, 1])[:, None]
    x1s = x1.copy()
    x1s[:, :2] += 3 * n
    assert np.allclose(np.abs((x1s * l1).sum(1)) / np.hypot(l1[:, 0], l1[:, 1]), 3.0, atol=1e-4)


@pytest.mark.parametrize("guided", [True, False])
def test_epipolar_matching_keeps_consistent_matches_only(guided):
    """Descriptors made so that each keypoint of view 0 has an identical twin in view 1 at its true position and
    a near-identical decoy off the epipolar line: only the true pairs survive."""
    cams = _two_cameras()
    g = torch.Generator().manual_seed(1)
    X = torch.rand(40, 3, generator=g) * 2 - 1
    uv, _ = cams.project(X)
    kp0, kp1 = uv[0].double().numpy(), uv[1].double().numpy()
    d = torch.rand(40, 128, generator=g).numpy().astype(np.float32)
    decoy = kp1 + np.array([0.0, 25.0])  # 25 px off (lines are not vertical here)
    kp1_all = np.r_[kp1, decoy]
    d1 = np.r_[d + 0.02, d]  # the decoy's descriptor is the *closer* one
    vm, Ks = cams.viewmats.double().numpy(), cams.Ks.double().numpy()
    F = fundamental_matrix(Ks[0], Ks[1], vm[0], vm[1])
    p0, p1 = epipolar_matches(kp0, d, kp1_all, d1, F, ratio=0.99, epipolar_tol=2.0, guided=guided)
    if guided:  # the decoy is never a candidate: every true pair is found
        assert len(p0) == 40
    else:  # the ratio test picks the decoy, then the epipolar filter drops it
        assert len(p0) == 0
    assert np.allclose(p1, kp1[[np.argmin(np.linalg.norm(kp0 - q, axis=1)) for q in p0]])


def test_densify_is_exact_on_a_plane():
    """Inverse depth of a plane is affine in the pixel: interpolated from 30 anchors, the dense depth matches
    the plane inside the anchors' hull (guided filter on a flat image leaves an affine field unchanged)."""
    H, W = 60, 80
    rng = np.random.default_rng(0)
    inv = lambda u, v: 0.2 + 0.002 * u - 0.001 * v  # noqa: E731
    uv = np.floor(np.c_[rng.uniform(0, W, 30), rng.uniform(0, H, 30)]) + 0.5  # anchors at pixel centres
    uv = np.r_[uv, [[0.5, 0.5], [W - 0.5, 0.5], [0.5, H - 0.5], [W - 0.5, H - 0.5]]]  # the hull covers the image
    z = 1.0 / inv(uv[:, 0], uv[:, 1])
    depth, conf = densify_depth(uv, z, np.full((H, W, 3), 0.5, np.float32), max_dist=0.1, radius=4)
    vv, uu = np.mgrid[0:H, 0:W] + 0.5
    gt = 1.0 / inv(uu, vv)
    inner = np.zeros((H, W), bool)
    inner[9:-9, 9:-9] = True  # the guided filter (two box filters of radius 4) reflects at the border
    assert np.abs(depth - gt)[inner].max() / gt.min() < 1e-3
    assert conf.max() == pytest.approx(1.0) and (conf == 0).any()  # far from every anchor: not valid
    with pytest.raises(ValueError, match="at least 3 anchors"):
        densify_depth(uv[:2], z[:2], np.zeros((H, W, 3), np.float32))


class _PlanesScene:
    """A synthetic capture with exactly known depth: a textured floor (z = 0) and a textured wall (y = 1.2),
    ray-cast from ``n`` cameras 20° apart on an arc of radius 4 looking at the origin (192 × 144). The texture is
    multi-scale blurred noise (blobs and corners, as real surfaces give SIFT)."""

    def __init__(self, n=3, W=192, H=144):
        import cv2

        rng = np.random.default_rng(0)
        tex = sum(cv2.GaussianBlur(rng.random((512, 512)).astype(np.float32), (0, 0), s) * w
                  for s, w in ((1.0, 0.5), (3.0, 2.0), (8.0, 4.0)))
        tex = (tex - tex.min()) / (tex.max() - tex.min())
        self.tex = np.stack([tex, np.roll(tex, 37, 0), np.roll(tex, 91, 1)], -1)
        ang = np.radians(-90 + 20 * (np.arange(n) - (n - 1) / 2))
        eyes = torch.tensor(np.c_[4 * np.cos(ang), 4 * np.sin(ang), np.full(n, 2.0)], dtype=torch.float32)
        K = torch.tensor([[160.0, 0, W / 2], [0, 160.0, H / 2], [0, 0, 1]]).repeat(n, 1, 1)
        self.cameras = Cameras.from_camtoworlds(look_at(eyes, torch.tensor([0.0, 0.3, 0.4])), K, W, H)
        self.width, self.height, self.names = W, H, [f"v{i}" for i in range(n)]
        self.train_ids = list(range(n))
        self.images, self.depths = [], []
        for i in range(n):
            img, d = self._cast(i)
            self.images.append(torch.from_numpy(img))
            self.depths.append(torch.from_numpy(d))

    def _cast(self, i):
        import cv2

        c = self.cameras[i]
        vv, uu = np.mgrid[0:self.height, 0:self.width] + 0.5
        uv = torch.from_numpy(np.c_[uu.ravel(), vv.ravel()]).float()
        o = c.centers[0].double().numpy()
        far = c.unproject(uv, torch.ones(len(uv)))[0].double().numpy()  # the points at camera depth 1
        ray = far - o
        t_floor = -o[2] / ray[:, 2]
        t_wall = (1.2 - o[1]) / ray[:, 1]
        t_floor[t_floor <= 0] = np.inf
        t_wall[t_wall <= 0] = np.inf
        t = np.minimum(t_floor, t_wall)  # camera depth (ray reaches depth 1 at t = 1)
        X = o + t[:, None] * ray
        on_wall = t_wall < t_floor
        s = np.where(on_wall[:, None], X[:, [0, 2]], X[:, [0, 1]])  # texture coordinates on the plane
        m = ((s + 3.0) / 6.0 * 511).astype(np.float32)
        img = np.stack([cv2.remap(self.tex[..., k], m[:, 0].reshape(self.height, self.width),
                                  m[:, 1].reshape(self.height, self.width), cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT) for k in range(3)], -1)
        return img.astype(np.float32), t.reshape(self.height, self.width).astype(np.float32)

    def image(self, i):
        return self.images[i]


def test_triangulated_depth_matches_the_known_depth_of_a_synthetic_capture():
    """Three views 20° apart of two textured planes, depth known exactly by ray casting."""
    s = _PlanesScene()
    prior = build_depth_prior(dict(type="triangulated"))
    assert isinstance(prior, TriangulatedDepth) and prior.describe()["weights"] is None
    res = []
    for i in s.train_ids:
        dm = prior.estimate(s, i, s.train_ids)
        assert dm.metric and dm.depth.shape == (s.height, s.width)
        assert prior.last_stats["features"] >= 80
        assert dm.valid.float().mean() > 0.5
        res.append(depth_metrics(dm.depth, s.depths[i], dm.valid))
    assert np.mean([r["abs_rel"] for r in res]) < 0.03, res
    assert np.mean([r["delta1"] for r in res]) > 0.97, res


def test_triangulated_depth_bad_input():
    s = _PlanesScene(n=2, W=96, H=72)
    with pytest.raises(ValueError, match="detector"):
        TriangulatedDepth(detector="surf")
    with pytest.raises(ValueError, match="at least one other"):
        TriangulatedDepth().estimate(s, 0, [0])
    with pytest.raises(ValueError, match=r"view 0 \(v0\) has only \d+ triangulated anchors \(need 100000\)"):
        TriangulatedDepth(min_anchors=100_000).estimate(s, 0, [0, 1])


def test_interpolation_is_scipys_linear_interpolation_without_an_edge_ratio():
    """Without ``edge_ratio`` the barycentric interpolation equals scipy's LinearNDInterpolator (the reference),
    NaN outside the anchors' hull included."""
    from scipy.interpolate import LinearNDInterpolator

    from perception3d.rendering.priors.densify import interpolate_inverse_depth

    rng = np.random.default_rng(3)
    uv, val = rng.uniform(5, 75, (40, 2)), rng.uniform(0.2, 1.0, 40)
    q = rng.uniform(0, 80, (500, 2))
    ours, ref = interpolate_inverse_depth(uv, val, q), LinearNDInterpolator(uv, val)(q)
    assert np.isnan(ref).any() and np.array_equal(np.isnan(ours), np.isnan(ref))
    assert np.allclose(ours[~np.isnan(ref)], ref[~np.isnan(ref)], atol=1e-9)


def test_edge_ratio_does_not_interpolate_across_a_depth_jump():
    """A foreground object (inverse depth 1.0, left half) in front of a wall (0.25, right half): linear
    interpolation puts surfaces between them in the triangles that span the edge; with ``edge_ratio`` every pixel
    takes one of the two depths, and the triangles inside one surface are still interpolated."""
    from perception3d.rendering.priors.densify import interpolate_inverse_depth

    H, W = 60, 80
    rng = np.random.default_rng(0)
    uv = np.c_[rng.uniform(0, W, 120), rng.uniform(0, H, 120)]
    uv = np.r_[uv, [[0, 0], [W, 0], [0, H], [W, H], [W / 2 - 1, 0], [W / 2 + 1, 0], [W / 2 - 1, H], [W / 2 + 1, H]]]
    fg = uv[:, 0] < W / 2
    inv = np.where(fg, 1.0, 0.25)
    vv, uu = np.mgrid[0:H, 0:W] + 0.5
    q = np.c_[uu.ravel(), vv.ravel()]
    between = lambda x: ((x > 0.26) & (x < 0.99)).mean()  # noqa: E731
    plain = interpolate_inverse_depth(uv, inv, q)
    assert between(plain) > 0.01  # the edge's triangles interpolate a surface in the empty space
    cut = interpolate_inverse_depth(uv, inv, q, edge_ratio=1.3)
    assert between(cut[np.isfinite(cut)]) == 0 and np.isnan(cut).mean() < 0.2
    depth, _ = densify_depth(uv, 1.0 / inv, np.full((H, W, 3), 0.5, np.float32), max_dist=0.5, radius=1,
                             edge_ratio=1.3)
    # away from the edge: within a cut triangle the nearest anchor decides (anchors are ~6 px apart), and the
    # 3 × 3 box filters blur the step
    far = (np.abs(uu - W / 2) > 10).ravel()
    assert np.allclose(1.0 / depth.ravel()[far], np.where(q[far, 0] < W / 2, 1.0, 0.25), rtol=1e-3)
    with pytest.raises(ValueError, match="edge_ratio"):
        TriangulatedDepth(edge_ratio=1.0)


def test_fallback_prior_serves_the_views_with_too_few_anchors():
    """``fallback``: a view below ``min_anchors`` takes the fallback prior's depth (its source says so, and the
    stats and description record it); without one it raises."""
    s = _PlanesScene(n=2, W=96, H=72)
    prior = build_depth_prior(dict(type="triangulated", min_anchors=100_000, fallback=dict(type="features")))
    dm = prior.estimate(s, 0, [0, 1])
    assert dm.source == "features" and prior.last_stats["fallback"] == "features"
    assert prior.describe()["fallback"]["type"] == "features"
    ok = build_depth_prior(dict(type="triangulated", fallback=dict(type="features"))).estimate(s, 0, [0, 1])
    assert ok.source == "triangulated"
    with pytest.raises(ValueError, match="unknown depth prior"):
        TriangulatedDepth(fallback=dict(type="nope"))


def test_triangulated_prior_on_the_real_fox_capture():
    """Real data (../shared/data/ngp_fox, 3 of 50 views at 384 × 683, the fox configs' setting): the prior's depth
    of view 0 from the training views 0 / 24 / 49 against an independent reference, SIFT features of view 0
    triangulated with its 4 nearest views that are not training views (small baselines, ≤ 1 px reprojection).
    ``bench/depth_prior_accuracy.py`` measured, for this view: coverage 0.40, AbsRel 0.048, δ₁ 0.95 over 517
    reference pixels (0.14 once its holes are filled)."""
    from pathlib import Path

    from perception3d.rendering.priors import feature_depths
    from perception3d.rendering.trainer import build_scene

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "ngp_fox"
    if not root.is_dir():
        pytest.skip(f"real fox capture not found at {root}")
    scene = build_scene(dict(type="nerfstudio", root=str(root), only_existing=True, size=(384, 683),
                             n_train_views=3))
    ids = list(scene.train_ids)
    assert ids == [0, 24, 49]
    dm = build_depth_prior(dict(type="triangulated", max_dist=0.15)).estimate(scene, 0, ids)
    assert dm.depth.shape == (scene.height, scene.width) and dm.metric
    assert float(dm.valid.float().mean()) > 0.3
    c = scene.cameras.centers
    others = sorted((j for j in range(len(c)) if j not in ids), key=lambda j: float((c[j] - c[0]).norm()))[:4]
    uv, z = feature_depths(scene, 0, [0] + others, max_reproj=1.0)
    u = np.floor(uv[:, 0]).astype(int).clip(0, scene.width - 1)
    v = np.floor(uv[:, 1]).astype(int).clip(0, scene.height - 1)
    ref = torch.zeros(scene.height, scene.width)
    ref[v, u] = torch.from_numpy(z).float()
    m = depth_metrics(dm.depth, ref, dm.valid)
    assert m["n"] > 300
    assert m["abs_rel"] < 0.08 and m["delta1"] > 0.9
