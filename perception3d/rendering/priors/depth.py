"""Depth priors built in (no weights): multi-view plane sweep, triangulated features, and the depth maps a scene
ships (LM-Gaussian's DUSt3R / Marigold maps, nerfstudio's ``depth_file_path``); plus scale/shift alignment and
the AbsRel / δ metrics used to measure them.

Plane sweep (Collins, CVPR 1996; Gallup et al., CVPR 2007) with ZNCC matching cost: for D fronto-parallel planes
of the reference camera, sampled uniformly in inverse depth between the scene's near and far, every source view
is warped into the reference through the plane's homography ``H = K_s (R + t nᵀ / d) K_r⁻¹`` (``x_s = R x_r + t``,
plane ``nᵀ x_r = d``, n = (0, 0, 1)), the cost is 1 − ZNCC over a window (box filters), averaged over the sources
that see the pixel; the depth is the winner-take-all plane refined by a parabola through its neighbours in
inverse depth, and the confidence is the margin between the best and the mean cost (0 on textureless pixels).
The depth range comes from SIFT matches triangulated with the known cameras (:func:`feature_depths`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..readers.lmgaussian import read_depth_array
from .base import DepthMap, DepthPrior, SceneMemo, to_numpy_image

__all__ = ["PlaneSweepDepth", "FeatureDepth", "geometric_consistency", "ShippedDepth", "feature_depths",
           "align_scale_shift", "depth_metrics", "read_depth_file"]


# ----------------------------------------------------------------------------------------------------------
# Triangulated features
# ----------------------------------------------------------------------------------------------------------
def feature_depths(scene, i: int, ids: Sequence[int], detector: str = "sift",
                   max_reproj: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Sparse depth of view ``i``: its feature matches with each other view in ``ids`` triangulated with the
    scene's (known) cameras. Returns (pixels [M, 2] in view i, camera-z depths [M]); empty when no match
    survives the cheirality / ``max_reproj`` checks."""
    from .pose import match_features, triangulate

    cams = scene.cameras
    vm = cams.viewmats.double().numpy()
    pix, dep = [np.zeros((0, 2))], [np.zeros(0)]
    for j in ids:
        if j == i:
            continue
        p0, p1 = match_features(scene.image(i), scene.image(j), detector)
        if len(p0) < 8:
            continue
        X, good = triangulate(p0, p1, cams.Ks[i].double().numpy(), cams.Ks[j].double().numpy(), vm[i], vm[j],
                              max_reproj)
        z = (np.c_[X, np.ones(len(X))] @ vm[i].T)[:, 2]
        pix.append(p0[good])
        dep.append(z[good])
    return np.concatenate(pix), np.concatenate(dep)


def feature_depth_map(scene, i: int, ids: Sequence[int]) -> tuple[torch.Tensor, int]:
    """:func:`feature_depths` of view ``i`` as a sparse depth map [H, W] (0 where no feature; pixels clamped to
    the image): the anchors a relative depth prior is aligned to; and the number of features."""
    uv, z = feature_depths(scene, i, ids)
    sparse = torch.zeros(scene.height, scene.width)
    u = torch.from_numpy(uv[:, 0]).long().clamp(0, scene.width - 1)
    v = torch.from_numpy(uv[:, 1]).long().clamp(0, scene.height - 1)
    sparse[v, u] = torch.from_numpy(z).float()
    return sparse, len(z)


class FeatureDepth(DepthPrior):
    """Sparse metric depth: triangulated feature matches (:func:`feature_depths`) splatted to their pixels
    (confidence 1 there, 0 elsewhere)."""

    name = "features"
    metric = True

    def __init__(self, detector: str = "sift"):
        self.detector = detector

    def estimate(self, scene, i: int, ids: Optional[Sequence[int]] = None) -> DepthMap:
        ids = list(scene.train_ids if ids is None else ids)
        uv, z = feature_depths(scene, i, ids, self.detector)
        depth = torch.zeros(scene.height, scene.width)
        u, v = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        ok = (u >= 0) & (v >= 0) & (u < scene.width) & (v < scene.height)
        depth[v[ok], u[ok]] = torch.from_numpy(z[ok]).float()
        return DepthMap(depth, (depth > 0).float(), True, self.name)

    def describe(self) -> dict:
        return {"type": self.name, "metric": True, "detector": self.detector, "weights": None}


# ----------------------------------------------------------------------------------------------------------
# Plane sweep
# ----------------------------------------------------------------------------------------------------------
def _box(a: np.ndarray, k: int) -> np.ndarray:
    import cv2

    return cv2.boxFilter(a, cv2.CV_32F, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


class PlaneSweepDepth(DepthPrior):
    """Multi-view plane-sweep stereo from the calibrated views (module doc), no weights.

    Args:
        num_planes: depth hypotheses D (uniform in inverse depth).
        window: ZNCC window (pixels at the working resolution).
        max_width: the sweep runs at ≤ this width (the depth map is resized back to the scene's size).
        num_sources: nearest views (by camera centre) used as sources.
        best_sources: the cost of a plane is the mean over the this-many best-matching sources (occlusions).
        depth_range: (near, far); None = from triangulated features (2–98 % × 0.8 / 1.25), else the scene's
            own range (:func:`~perception3d.rendering.scenes.depth_range`).
        min_confidence: pixels below it get depth 0 / confidence 0.
        consistency: keep only pixels whose depth agrees with another view's sweep
            (:func:`geometric_consistency`, the filter of COLMAP / MVSNet's fusion) within
            ``consistency_tol`` = (pixels, relative depth).
    """

    name = "plane_sweep"
    metric = True

    def __init__(self, num_planes: int = 128, window: int = 11, max_width: int = 384, num_sources: int = 4,
                 best_sources: int = 2, depth_range: Optional[tuple[float, float]] = None,
                 min_confidence: float = 0.05, consistency: bool = True, consistency_tol: tuple = (1.0, 0.01)):
        if num_planes < 3 or window < 3 or window % 2 == 0:
            raise ValueError(f"PlaneSweepDepth: need num_planes >= 3 and an odd window >= 3, got "
                             f"{num_planes}, {window}")
        self.num_planes, self.window, self.max_width = int(num_planes), int(window), int(max_width)
        self.num_sources, self.best_sources = int(num_sources), int(best_sources)
        self.depth_range, self.min_confidence, self.consistency = depth_range, min_confidence, bool(consistency)
        self.consistency_tol = tuple(consistency_tol)
        self._memo = SceneMemo(17)
        self.last_range: Optional[tuple[float, float]] = None

    def describe(self) -> dict:
        return {"type": self.name, "metric": True, "num_planes": self.num_planes, "window": self.window,
                "max_width": self.max_width, "consistency": self.consistency, "weights": None}

    def _range(self, scene, i: int, src: Sequence[int]) -> tuple[float, float]:
        if self.depth_range is not None:
            return float(self.depth_range[0]), float(self.depth_range[1])
        _, z = feature_depths(scene, i, src)
        if len(z) >= 20:
            return float(np.percentile(z, 2)) * 0.8, float(np.percentile(z, 98)) * 1.25
        from ..scenes import depth_range

        return depth_range(scene, [i] + list(src))

    def estimate(self, scene, i: int, ids: Optional[Sequence[int]] = None) -> DepthMap:
        ids = list(scene.train_ids if ids is None else ids)
        dm = self._sweep(scene, i, ids)
        if not self.consistency:
            return dm
        near = self._sources(scene, i, ids)  # check against the views the sweep used
        others = {j: self._sweep(scene, j, list(dict.fromkeys(ids + [i]))) for j in near}
        keep = geometric_consistency(scene.cameras, i, dm.depth, {j: o.depth for j, o in others.items()},
                                     *self.consistency_tol)
        conf = dm.confidence * keep
        return DepthMap(torch.where(keep, dm.depth, torch.zeros_like(dm.depth)), conf, True, self.name)

    def _sources(self, scene, i: int, ids: Sequence[int]) -> list[int]:
        """The ``num_sources`` views of ``ids`` nearest to view i (by camera centre)."""
        c = scene.cameras.centers
        return sorted((j for j in ids if j != i), key=lambda j: float((c[j] - c[i]).norm()))[: self.num_sources]

    def _sweep(self, scene, i: int, ids: Sequence[int]) -> DepthMap:
        """View i's sweep against ``ids`` (memoised: the consistency check sweeps the neighbours again)."""
        return self._memo.get(scene, (i, tuple(sorted(ids))), lambda: self._compute_sweep(scene, i, ids))

    def _compute_sweep(self, scene, i: int, ids: Sequence[int]) -> DepthMap:
        import cv2

        ids = [j for j in ids if j != i]
        if not ids:
            raise ValueError(f"PlaneSweepDepth: view {i} needs at least one other calibrated view with an image")
        cams = scene.cameras
        src = self._sources(scene, i, ids)
        near, far = self._range(scene, i, src)
        if not 0 < near < far:
            raise ValueError(f"PlaneSweepDepth: invalid depth range ({near}, {far}) for view {i}")
        self.last_range = (near, far)
        W, H = scene.width, scene.height
        s = min(1.0, self.max_width / W)
        w, h = max(int(round(W * s)), 8), max(int(round(H * s)), 8)
        sc = cams.resize(w, h)

        def gray(j):
            g = cv2.cvtColor(to_numpy_image(scene.image(j)), cv2.COLOR_RGB2GRAY)
            return cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA) if (w, h) != (W, H) else g

        k = self.window
        ref = gray(i)
        mu_r = _box(ref, k)
        var_r = np.maximum(_box(ref * ref, k) - mu_r ** 2, 0)
        Kr = sc.Ks[i].double().numpy().copy()
        Kr[:2, 2] -= 0.5  # OpenCV pixel centres
        Kr_inv = np.linalg.inv(Kr)
        vm = sc.viewmats.double().numpy()
        srcs = []
        for j in src:
            Ks = sc.Ks[j].double().numpy().copy()
            Ks[:2, 2] -= 0.5
            T = vm[j] @ np.linalg.inv(vm[i])  # reference camera → source camera
            srcs.append((gray(j), Ks, T[:3, :3], T[:3, 3]))
        disp = np.linspace(1 / far, 1 / near, self.num_planes)
        cost = np.empty((self.num_planes, h, w), np.float32)
        n = np.array([0.0, 0.0, 1.0])
        ones = np.ones((h, w), np.float32)
        top = min(self.best_sources, len(srcs))
        for p, dsp in enumerate(disp):
            per = np.full((len(srcs), h, w), 2.0, np.float32)  # 2 = the worst ZNCC cost: source does not see it
            for q, (g, Ks, R, t) in enumerate(srcs):
                Hm = Ks @ (R + np.outer(t, n) * dsp) @ Kr_inv  # reference pixel → source pixel
                warped = cv2.warpPerspective(g, Hm, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                seen = cv2.warpPerspective(ones, Hm, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                mu_s = _box(warped, k)
                var_s = np.maximum(_box(warped * warped, k) - mu_s ** 2, 0)
                cov = _box(ref * warped, k) - mu_r * mu_s
                zncc = cov / np.sqrt(var_r * var_s + 1e-6)
                per[q] = np.where(_box(seen, k) > 0.999, 1 - zncc, 2.0)
            # occlusion-robust aggregation: mean of the `top` best sources (Kang et al., CVPR 2001)
            cost[p] = _mean_of_smallest(per, top)
        best = cost.argmin(0)
        rows, cols = np.indices((h, w))
        c0 = cost[best, rows, cols]
        # sub-plane refinement: parabola through the neighbours (in inverse depth)
        lo, hi = np.clip(best - 1, 0, None), np.clip(best + 1, None, self.num_planes - 1)
        cl, ch = cost[lo, rows, cols], cost[hi, rows, cols]
        den = cl - 2 * c0 + ch
        off = np.where((den > 1e-6) & (best > 0) & (best < self.num_planes - 1),
                       0.5 * (cl - ch) / np.maximum(den, 1e-6), 0.0)
        step = disp[1] - disp[0]
        d_best = disp[best] + np.clip(off, -0.5, 0.5) * step
        depth = 1.0 / d_best
        conf = np.clip((cost.mean(0) - c0) / 1.0, 0, 1) * (c0 < 1.0)
        conf *= var_r > 1e-4  # textureless windows: no information
        conf *= (best > 0) & (best < self.num_planes - 1)  # on the range's edge: the true depth may be outside
        depth = cv2.medianBlur(depth.astype(np.float32), 5)
        if (w, h) != (W, H):
            depth = cv2.resize(depth, (W, H), interpolation=cv2.INTER_NEAREST)
            conf = cv2.resize(conf.astype(np.float32), (W, H), interpolation=cv2.INTER_NEAREST)
        conf = np.where(conf >= self.min_confidence, conf, 0).astype(np.float32)
        depth = np.where(conf > 0, depth, 0).astype(np.float32)
        return DepthMap(torch.from_numpy(depth), torch.from_numpy(conf), True, self.name)


def _mean_of_smallest(per: np.ndarray, top: int) -> np.ndarray:
    """Mean over axis 0 of the ``top`` smallest of ``per`` [S, H, W], equal bit for bit to
    ``np.sort(per, 0)[:top].mean(0)``; for ``top`` ≤ 2 by a running minimum and second minimum (a strided sort
    along axis 0 cost a quarter of the sweep)."""
    if len(per) == 1 or top <= 1:
        return per.min(0)
    if top > 2:
        return np.sort(per, 0)[:top].mean(0)
    m1, m2 = np.minimum(per[0], per[1]), np.maximum(per[0], per[1])
    for x in per[2:]:
        m2 = np.minimum(m2, np.maximum(m1, x))
        m1 = np.minimum(m1, x)
    return np.stack([m1, m2]).mean(0)


def geometric_consistency(cams, i: int, depth: torch.Tensor, others: dict, px_tol: float = 1.0,
                          rel_tol: float = 0.01, min_agree: int = 1) -> torch.Tensor:
    """[H, W] bool: pixels of view i whose depth is confirmed by at least ``min_agree`` of the ``others``
    ({view j: depth [H, W]}): the 3D point projected into j, lifted with j's depth there and projected back
    lands within ``px_tol`` pixels with a depth within ``rel_tol`` (the MVS fusion check)."""
    H, W = depth.shape
    vv, uu = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    uv = torch.stack([uu, vv], -1).reshape(-1, 2).float() + 0.5
    d = depth.reshape(-1)
    X = cams[i].unproject(uv, d)[0]
    agree = torch.zeros(H * W, dtype=torch.int32)
    for j, dj in others.items():
        puv, z = cams[j].project(X)
        puv, z = puv[0], z[0]
        u, v = puv[:, 0].floor().long(), puv[:, 1].floor().long()
        inside = (z > 0) & (u >= 0) & (v >= 0) & (u < W) & (v < H)
        zj = torch.zeros_like(d)
        zj[inside] = dj[v[inside], u[inside]]
        ok = inside & (zj > 0)
        Xj = cams[j].unproject(puv, zj)[0]
        back, zb = cams[i].project(Xj)
        err = (back[0] - uv).norm(dim=-1)
        agree += (ok & (err < px_tol) & ((zb[0] - d).abs() < rel_tol * d.clamp_min(1e-12))).int()
    return ((agree >= min_agree) & (d > 0)).reshape(H, W)


# ----------------------------------------------------------------------------------------------------------
# Depth maps shipped with a scene
# ----------------------------------------------------------------------------------------------------------
def read_depth_file(path, size: tuple[int, int], jet: bool = False, expect_size: Optional[tuple[int, int]] = None,
                    scale: float = 1.0) -> torch.Tensor:
    """Read a depth image → [H, W] float32 at ``size`` (W, H) (nearest-neighbour resize).

    ``jet``: an OpenCV ``COLORMAP_JET`` visualisation (LM-Gaussian's ``dust3r_depth``) decoded to [0, 1];
    otherwise a 1-channel 8/16-bit PNG (value × ``scale``; 16-bit divided by 65535 when ``scale`` is 1 and it
    is a relative map) or a ``.npy``. ``expect_size``: the file must be exactly this (W, H), else
    ValueError; without it, the map's aspect ratio must match ``size`` (a depth map of the wrong size is an
    error that names the file, never silently stretched).
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth map not found: {path}")
    d = read_depth_array(path, jet=jet, scale=scale)
    if d.ndim != 2:
        raise ValueError(f"{path}: a depth map must be one channel [H, W], got shape {d.shape}")
    fh, fw = d.shape
    if expect_size is not None and (fw, fh) != tuple(expect_size):
        raise ValueError(f"{path}: depth map is {fw}x{fh}, expected {expect_size[0]}x{expect_size[1]}")
    if abs(fw / fh - size[0] / size[1]) > 0.02 * size[0] / size[1]:
        raise ValueError(f"{path}: depth map is {fw}x{fh}, which does not have the aspect ratio of its image "
                         f"({size[0]}x{size[1]})")
    if (fw, fh) != tuple(size):
        d = cv2.resize(d, tuple(int(v) for v in size), interpolation=cv2.INTER_NEAREST)
    return torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32))


class ShippedDepth(DepthPrior):
    """The depth maps that come with a scene (no network runs):

    * ``kind="dust3r"`` — LM-Gaussian's ``dust3r_depth/depth_map_{k}.png`` (JET colour maps of per-image min–max
      normalised DUSt3R depth at the DUSt3R input size, 512 × 288 for 16:9): relative, 0 = nearest.
    * ``kind="mono"`` — LM-Gaussian's ``depth_maps/depth_<name>.png`` (Marigold affine-invariant depth × 255 at
      the image's full size; 0 = near).
    * ``kind="file"`` — nerfstudio's per-frame ``depth_file_path`` (16-bit PNG or .npy, × ``depth_unit_scale``
      to scene units, e.g. 0.001 for millimetres; metric).

    A map whose size does not fit its image raises ValueError naming the file.
    """

    name = "lmgaussian"

    def __init__(self, kind: str = "dust3r", depth_unit_scale: float = 1e-3):
        if kind not in ("dust3r", "mono", "file"):
            raise ValueError(f"ShippedDepth: kind must be 'dust3r', 'mono' or 'file', got {kind!r}")
        self.kind, self.depth_unit_scale = kind, float(depth_unit_scale)
        self.metric = kind == "file"

    def describe(self) -> dict:
        return {"type": "shipped", "kind": self.kind, "metric": self.metric, "weights": None}

    def estimate(self, scene, i: int, ids: Optional[Sequence[int]] = None) -> DepthMap:
        size = (scene.width, scene.height)
        if self.kind == "file":
            paths = scene.extras.get("depth_paths")
            if not paths or paths[i] is None:
                raise ValueError(f"ShippedDepth(kind='file'): view {i} ({scene.names[i]}) has no depth_file_path")
            d = read_depth_file(paths[i], size, scale=self.depth_unit_scale)
            return DepthMap(d, (d > 0).float(), True, "file")
        key = {"dust3r": "dust3r_depth_paths", "mono": "mono_depth_paths"}[self.kind]
        if key not in scene.extras:
            raise ValueError(f"ShippedDepth(kind={self.kind!r}) needs an LM-Gaussian scene (extras lack {key})")
        path = Path(scene.extras[key][i])
        if self.kind == "dust3r":
            d = read_depth_file(path, size, jet=True, expect_size=tuple(scene.extras.get("intrinsic_size",
                                                                                          (512, 288))))
            d = d + 1e-3  # the nearest pixel is 0 in the map; keep it a valid (positive) relative depth
        else:
            d = read_depth_file(path, size, scale=1 / 255.0) + 1e-3
        return DepthMap(d, None, False, f"lmgaussian:{self.kind}")


# ----------------------------------------------------------------------------------------------------------
# Alignment and metrics
# ----------------------------------------------------------------------------------------------------------
def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None,
                      robust: bool = True) -> tuple[torch.Tensor, float, float]:
    """Least-squares ``a, b`` with ``a · pred + b ≈ target`` over ``mask`` (MiDaS's scale-and-shift alignment);
    ``robust`` re-fits once on the 90 % of pixels with the smallest residual. Returns (a · pred + b, a, b)."""
    m = (target > 0) & torch.isfinite(pred) & torch.isfinite(target)
    if mask is not None:
        m &= mask.bool()
    x, y = pred[m].double(), target[m].double()
    if len(x) < 2:
        raise ValueError(f"align_scale_shift: only {len(x)} valid pixels")

    def fit(x, y):
        A = torch.stack([x, torch.ones_like(x)], 1)
        sol = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
        return float(sol[0]), float(sol[1])

    a, b = fit(x, y)
    if robust and len(x) > 20:
        r = (a * x + b - y).abs()
        keep = r <= torch.quantile(r, 0.9)
        a, b = fit(x[keep], y[keep])
    return (a * pred + b).float(), a, b


def depth_metrics(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> dict:
    """AbsRel = mean |pred − t| / t, RMSE, δ₁ = fraction with max(pred/t, t/pred) < 1.25, over ``mask`` ∩ t > 0
    ∩ pred > 0; also the number of pixels ``n``."""
    m = (target > 0) & (pred > 0)
    if mask is not None:
        m &= mask.bool()
    p, t = pred[m].double(), target[m].double()
    if len(p) == 0:
        raise ValueError("depth_metrics: no pixel is valid in both maps")
    ratio = torch.maximum(p / t, t / p)
    return {"abs_rel": float(((p - t).abs() / t).mean()), "rmse": float(((p - t) ** 2).mean().sqrt()),
            "delta1": float((ratio < 1.25).double().mean()), "n": int(len(p))}
