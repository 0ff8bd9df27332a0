"""Dense depth from triangulated features (built in, no weights): the prior for wide-baseline sparse views.

Plane sweep (:class:`~.depth.PlaneSweepDepth`) compares fronto-parallel windows, which stops working once the views
are 20–70° apart (a window's perspective changes too much): on the fox's three training views it was valid on only
3–28 % of the pixels. Feature descriptors survive such baselines, so this prior starts from them:

1. **Matches** between the reference view and every other view: SIFT (or ORB) with Lowe's ratio test and a mutual
   check (:func:`~.pose.match_features`), kept only within ``epipolar_tol`` pixels of the epipolar line of the
   *known* cameras (F = K_j⁻ᵀ [t]ₓ R K_i⁻¹, Hartley & Zisserman eq. 9.2), which admits a looser ratio than a
   pose-free matcher can use.
2. **Triangulation** with the known cameras (DLT), kept when in front of both cameras (cheirality), reprojecting
   within ``max_reproj`` pixels in both views and seen under at least ``min_angle`` degrees; then a median test
   against the ``k`` nearest anchors in the image drops isolated outliers (|log z − log median| > log ``outlier``).
3. **Densification guided by the image**: inverse depth interpolated linearly over the Delaunay triangulation of
   the anchors, except across depth discontinuities: a triangle whose corners' inverse depths differ by more than
   ``edge_ratio`` (largest / smallest) spans an occluding edge (a foreground object and the wall behind it), and
   interpolating over it would put a surface in the empty space between them, so its pixels, like those outside
   the anchors' convex hull, take the nearest anchor's depth; then a guided filter (He, Sun & Tang, ECCV 2010)
   with the grey image as guide, so the depth follows the image's edges between anchors; the anchors keep their
   values.
4. **Validity**: a pixel is valid within ``max_dist`` (a fraction of the image's longer side) of an anchor; its
   confidence falls as exp(−distance / (max_dist / 2)). Optionally (``with_sweep``) the plane sweep's own valid
   pixels join the anchors (subsampled every ``sweep_stride`` pixels).
5. **Fallback**: a view with fewer than ``min_anchors`` anchors (little texture, or little overlap with the other
   views) raises, or, given ``fallback`` (another prior's config, e.g. the plane sweep), takes that prior's depth;
   ``last_stats`` and the DepthMap's ``source`` say which ran.

Output: a metric :class:`~.base.DepthMap` at the scene's size.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from .base import DepthMap, DepthPrior, SceneMemo, to_numpy_image

__all__ = ["TriangulatedDepth", "triangulated_anchors", "epipolar_matches", "densify_depth", "guided_filter",
           "fundamental_matrix", "interpolate_inverse_depth"]


def fundamental_matrix(K_i: np.ndarray, K_j: np.ndarray, w2c_i: np.ndarray, w2c_j: np.ndarray) -> np.ndarray:
    """F [3, 3] with x_jᵀ F x_i = 0 for house pixels (homogeneous) of views i and j given their K [3, 3] and
    world → camera [4, 4] poses."""
    T = w2c_j @ np.linalg.inv(w2c_i)
    R, t = T[:3, :3], T[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(K_j).T @ tx @ R @ np.linalg.inv(K_i)


_KEYPOINTS = SceneMemo(64)  # (view, detector, max_features) → keypoints, for triangulated_anchors


def _keypoints(image, detector: str, max_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [N, 2] (house pixels) and float32 descriptors [N, D] of an RGB image."""
    import cv2

    from .base import to_uint8_gray

    det = cv2.SIFT_create(nfeatures=max_features) if detector == "sift" else cv2.ORB_create(nfeatures=max_features)
    kp, d = det.detectAndCompute(to_uint8_gray(image), None)
    if d is None or len(kp) < 2:
        return np.zeros((0, 2)), np.zeros((0, 32), np.float32)
    if detector == "orb":  # bits as floats: the squared L2 distance is then the Hamming distance
        d = np.unpackbits(d, axis=1)
    return np.array([k.pt for k in kp], np.float64) + 0.5, d.astype(np.float32)


def epipolar_matches(kp0: np.ndarray, d0: np.ndarray, kp1: np.ndarray, d1: np.ndarray, F: np.ndarray,
                     ratio: float = 0.8, epipolar_tol: float = 2.0, chunk: int = 2048,
                     guided: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Guided matching (Hartley & Zisserman §11.9): each keypoint of view 0 is matched among the keypoints of
    view 1 within ``epipolar_tol`` pixels of its epipolar line (F from the known cameras), with Lowe's ratio
    test among those candidates and a mutual check. ``guided=False``: the ratio test and mutual check among all
    keypoints, then the epipolar filter. Returns matched pixels (p0, p1), each [M, 2]."""
    if len(kp0) < 2 or len(kp1) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    x0, x1 = np.c_[kp0, np.ones(len(kp0))], np.c_[kp1, np.ones(len(kp1))]
    n1 = (d1 * d1).sum(1)
    best0 = np.full(len(kp0), -1)
    best_d0 = np.full(len(kp0), np.inf)
    col_best = np.full(len(kp1), np.inf)
    col_arg = np.full(len(kp1), -1)
    for a in range(0, len(kp0), chunk):
        l1 = x0[a:a + chunk] @ F.T  # epipolar lines in view 1 [c, 3]
        dist = np.abs(l1 @ x1.T) / np.maximum(np.hypot(l1[:, :1], l1[:, 1:2]), 1e-12)
        dd = (d0[a:a + chunk] * d0[a:a + chunk]).sum(1)[:, None] + n1[None] - 2 * d0[a:a + chunk] @ d1.T
        dd = np.sqrt(np.maximum(dd, 0))
        if guided:
            dd = np.where(dist < epipolar_tol, dd, np.inf)
        arg = np.argpartition(dd, 1, axis=1)[:, :2]
        two = np.take_along_axis(dd, arg, 1)
        first = two.argmin(1)
        b, d_b = arg[np.arange(len(arg)), first], two[np.arange(len(arg)), first]
        d_2 = two[np.arange(len(arg)), 1 - first]
        ok = np.isfinite(d_b) & (d_b < ratio * d_2)
        best0[a:a + chunk] = np.where(ok, b, -1)
        best_d0[a:a + chunk] = d_b
        cm = dd.min(0)  # the column side of the mutual check
        upd = cm < col_best
        col_best[upd], col_arg[upd] = cm[upd], (dd.argmin(0) + a)[upd]
    i0 = np.nonzero(best0 >= 0)[0]
    i0 = i0[col_arg[best0[i0]] == i0]
    p0, p1 = kp0[i0], kp1[best0[i0]]
    if not guided:
        x0, x1 = np.c_[p0, np.ones(len(p0))], np.c_[p1, np.ones(len(p1))]
        l1 = x0 @ F.T
        ok = np.abs((x1 * l1).sum(1)) / np.maximum(np.hypot(l1[:, 0], l1[:, 1]), 1e-12) < epipolar_tol
        p0, p1 = p0[ok], p1[ok]
    return p0, p1


def triangulated_anchors(scene, i: int, ids: Sequence[int], detector: str = "sift", max_features: int = 4000,
                         ratio: float = 0.8, epipolar_tol: float = 2.0, max_reproj: float = 1.5,
                         min_angle: float = 1.0, k: int = 8, outlier: float = 1.5,
                         guided: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Sparse metric depth of view ``i`` (steps 1–2 of the module doc) from its epipolar-guided matches
    (:func:`epipolar_matches`) with every other view of ``ids``. Returns (pixels [M, 2] in house convention,
    camera-z depths [M]); one anchor per pixel."""
    from .pose import triangulate

    cams = scene.cameras
    vm = cams.viewmats.double().numpy()
    Ks = cams.Ks.double().numpy()
    ci = cams.centers[i].double().numpy()
    pix, dep = [np.zeros((0, 2))], [np.zeros(0)]

    def feats(v):  # each view's keypoints once per scene, not once per view they are matched with
        return _KEYPOINTS.get(scene, (v, detector, max_features),
                              lambda: _keypoints(scene.image(v), detector, max_features))

    for j in ids:
        if j == i:
            continue
        F = fundamental_matrix(Ks[i], Ks[j], vm[i], vm[j])
        p0, p1 = epipolar_matches(*feats(i), *feats(j), F, ratio, epipolar_tol, guided=guided)
        if len(p0) == 0:
            continue
        X, good = triangulate(p0, p1, Ks[i], Ks[j], vm[i], vm[j], max_reproj)
        cj = cams.centers[j].double().numpy()
        a, b = X - ci, X - cj
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        good &= np.degrees(np.arccos(np.clip(cos, -1, 1))) >= min_angle
        z = (np.c_[X, np.ones(len(X))] @ vm[i].T)[:, 2]
        pix.append(p0[good])
        dep.append(z[good])
    uv, z = np.concatenate(pix), np.concatenate(dep)
    if len(z) == 0:
        return uv, z
    # one anchor per pixel (the median of the views that saw it)
    key = np.floor(uv[:, 1]).astype(np.int64) * scene.width + np.floor(uv[:, 0]).astype(np.int64)
    order = np.argsort(key, kind="stable")
    key, uv, z = key[order], uv[order], z[order]
    starts = np.r_[0, np.nonzero(np.diff(key))[0] + 1]
    uv = uv[starts]
    z = np.array([np.median(g) for g in np.split(z, starts[1:])])
    if len(z) > k:  # the median test against the k nearest anchors in the image
        from scipy.spatial import cKDTree

        _, nn = cKDTree(uv).query(uv, k + 1)
        med = np.median(np.log(z[nn[:, 1:]]), 1)
        keep = np.abs(np.log(z) - med) <= np.log(outlier)
        uv, z = uv[keep], z[keep]
    return uv, z


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (ECCV 2010, Alg. 1) of ``src`` [H, W] by a grey ``guide`` [H, W] in [0, 1]."""
    import cv2

    def box(a):
        return cv2.boxFilter(a, cv2.CV_64F, (2 * radius + 1, 2 * radius + 1), normalize=True,
                             borderType=cv2.BORDER_REFLECT)

    I, p = guide.astype(np.float64), src.astype(np.float64)
    mI, mp = box(I), box(p)
    a = (box(I * p) - mI * mp) / (box(I * I) - mI * mI + eps)
    b = mp - a * mI
    return box(a) * I + box(b)


def interpolate_inverse_depth(uv: np.ndarray, inv: np.ndarray, q: np.ndarray,
                              edge_ratio: Optional[float] = None) -> np.ndarray:
    """Inverse depth at query pixels ``q`` [Q, 2], linear over the Delaunay triangulation of the anchors ``uv``
    [M, 2] with values ``inv`` [M]; NaN outside the convex hull and, with ``edge_ratio``, inside every triangle
    whose corners' inverse depths differ by more than that ratio (a depth discontinuity, module doc step 3)."""
    from scipy.spatial import Delaunay

    out = np.full(len(q), np.nan)
    try:
        tri = Delaunay(uv)
    except Exception:  # collinear or too few anchors (QhullError): no triangulation
        return out
    simplex = tri.find_simplex(q)
    inside = simplex >= 0
    s = simplex[inside]
    T = tri.transform[s]  # barycentric coordinates: b = T[:2] (q − T[2])
    b = np.einsum("nij,nj->ni", T[:, :2], q[inside] - T[:, 2])
    bary = np.c_[b, 1.0 - b.sum(1)]
    corners = inv[tri.simplices[s]]  # [n, 3]
    vals = (bary * corners).sum(1)
    if edge_ratio is not None:
        vals[corners.max(1) > float(edge_ratio) * corners.min(1)] = np.nan
    out[inside] = vals
    return out


def densify_depth(uv: np.ndarray, z: np.ndarray, image: np.ndarray, max_dist: float = 0.08,
                  radius: int = 8, eps: float = 1e-3,
                  edge_ratio: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """Dense depth [H, W] and confidence [H, W] from anchors (pixels ``uv`` [M, 2], depths ``z`` [M]) and the
    view's RGB ``image`` [H, W, 3] in [0, 1] (step 3–4 of the module doc; ``edge_ratio``: no interpolation
    across a triangle whose inverse depths span more than this ratio). Needs ≥ 3 anchors."""
    import cv2
    from scipy.interpolate import NearestNDInterpolator

    H, W = image.shape[:2]
    if len(z) < 3:
        raise ValueError(f"densify_depth: need at least 3 anchors, got {len(z)}")
    if edge_ratio is not None and edge_ratio <= 1:
        raise ValueError(f"densify_depth: edge_ratio must be > 1 (or None), got {edge_ratio}")
    inv = 1.0 / z
    vv, uu = np.mgrid[0:H, 0:W]
    q = np.c_[uu.ravel() + 0.5, vv.ravel() + 0.5]
    dense = interpolate_inverse_depth(uv, inv, q, edge_ratio)
    hole = ~np.isfinite(dense)
    if hole.any():
        dense[hole] = NearestNDInterpolator(uv, inv)(q[hole])
    dense = dense.reshape(H, W)
    grey = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2GRAY)
    scale = float(np.median(inv))
    smooth = guided_filter(grey, dense / scale, radius, eps) * scale
    u = np.clip(np.floor(uv[:, 0]).astype(int), 0, W - 1)
    v = np.clip(np.floor(uv[:, 1]).astype(int), 0, H - 1)
    smooth[v, u] = inv
    smooth = np.clip(smooth, inv.min() * 0.5, inv.max() * 2.0)
    seeds = np.ones((H, W), np.uint8)
    seeds[v, u] = 0
    dist = cv2.distanceTransform(seeds, cv2.DIST_L2, 5)
    md = max(max_dist * max(H, W), 1.0)
    conf = np.where(dist <= md, np.exp(-dist / (md / 2)), 0.0)
    return (1.0 / smooth).astype(np.float32), conf.astype(np.float32)


class TriangulatedDepth(DepthPrior):
    """Dense metric depth from features triangulated with the known cameras, densified along the image (module
    doc). ``type="triangulated"`` in a config.

    Args:
        detector, max_features, ratio, epipolar_tol, max_reproj, min_angle: the matching and triangulation
            filters (:func:`triangulated_anchors`).
        max_dist: valid within this fraction of the image's longer side of an anchor.
        radius, eps: the guided filter's window radius (pixels) and regulariser (on inverse depth / its median).
        with_sweep: add the plane sweep's valid pixels (``sweep`` options) to the anchors, every ``sweep_stride``.
        min_anchors: fewer anchors than this → ValueError naming the view, or the ``fallback`` prior.
        edge_ratio: no interpolation across a Delaunay triangle whose anchors' inverse depths differ by more than
            this ratio (a depth discontinuity; None: interpolate everywhere).
        fallback: a depth prior's config (:func:`~perception3d.rendering.priors.build_depth_prior`) for the views
            with fewer than ``min_anchors`` anchors; None raises instead.
    """

    name = "triangulated"
    metric = True

    def __init__(self, detector: str = "sift", max_features: int = 4000, ratio: float = 0.9,
                 epipolar_tol: float = 2.0, max_reproj: float = 1.5, min_angle: float = 1.0, max_dist: float = 0.08,
                 radius: int = 8, eps: float = 1e-3, with_sweep: bool = False, sweep: Optional[dict] = None,
                 sweep_stride: int = 4, min_anchors: int = 20, guided: bool = False,
                 edge_ratio: Optional[float] = 1.3, fallback: Optional[dict] = None):
        if detector not in ("sift", "orb"):
            raise ValueError(f"TriangulatedDepth: detector must be 'sift' or 'orb', got {detector!r}")
        if not 0 < ratio <= 1 or max_dist <= 0 or radius < 1:
            raise ValueError(f"TriangulatedDepth: need 0 < ratio <= 1, max_dist > 0, radius >= 1; got {ratio}, "
                             f"{max_dist}, {radius}")
        self.match = dict(detector=detector, max_features=int(max_features), ratio=float(ratio),
                          epipolar_tol=float(epipolar_tol), max_reproj=float(max_reproj), min_angle=float(min_angle),
                          guided=bool(guided))
        self.max_dist, self.radius, self.eps = float(max_dist), int(radius), float(eps)
        self.with_sweep, self.sweep_cfg, self.sweep_stride = bool(with_sweep), dict(sweep or {}), int(sweep_stride)
        self.min_anchors = int(min_anchors)
        if edge_ratio is not None and edge_ratio <= 1:
            raise ValueError(f"TriangulatedDepth: edge_ratio must be > 1 (or None), got {edge_ratio}")
        self.edge_ratio = None if edge_ratio is None else float(edge_ratio)
        self.fallback = None
        if fallback is not None:
            from . import build_depth_prior

            self.fallback = build_depth_prior(dict(fallback))
        self.last_stats: dict = {}

    def describe(self) -> dict:
        return {"type": self.name, "metric": True, **self.match, "max_dist": self.max_dist,
                "with_sweep": self.with_sweep, "edge_ratio": self.edge_ratio, "min_anchors": self.min_anchors,
                "fallback": None if self.fallback is None else self.fallback.describe(), "weights": None}

    def estimate(self, scene, i: int, ids: Optional[Sequence[int]] = None) -> DepthMap:
        ids = list(scene.train_ids if ids is None else ids)
        if not [j for j in ids if j != i]:
            raise ValueError(f"TriangulatedDepth: view {i} needs at least one other calibrated view with an image")
        uv, z = triangulated_anchors(scene, i, ids, **self.match)
        n_feat = len(z)
        if self.with_sweep:
            from .depth import PlaneSweepDepth

            dm = PlaneSweepDepth(**self.sweep_cfg).estimate(scene, i, ids)
            s = self.sweep_stride
            m = torch.zeros_like(dm.valid)
            m[s // 2::s, s // 2::s] = True
            vv, uu = torch.nonzero(dm.valid & m, as_tuple=True)
            uv = np.r_[uv, np.c_[uu.numpy() + 0.5, vv.numpy() + 0.5]]
            z = np.r_[z, dm.depth[vv, uu].double().numpy()]
        if len(z) < self.min_anchors:
            if self.fallback is not None:
                self.last_stats = {"view": i, "features": n_feat, "anchors": len(z), "fallback": self.fallback.name}
                return self.fallback.estimate(scene, i, ids)
            raise ValueError(f"TriangulatedDepth: view {i} ({scene.names[i]}) has only {len(z)} triangulated "
                             f"anchors (need {self.min_anchors}); too little texture or overlap with views {ids}")
        depth, conf = densify_depth(uv, z, to_numpy_image(scene.image(i)), self.max_dist, self.radius, self.eps,
                                    self.edge_ratio)
        self.last_stats = {"view": i, "features": n_feat, "anchors": len(z), "valid": float((conf > 0).mean())}
        return DepthMap(torch.from_numpy(depth), torch.from_numpy(conf), True, self.name)
