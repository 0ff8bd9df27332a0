"""Pose prior from local features (built in, no weights): SIFT / ORB matches → essential matrix → PnP.

The classical two-view + resection pipeline (Hartley & Zisserman ch. 9–11; Nistér's five-point solver in
``cv2.findEssentialMat``): match features with Lowe's ratio test, fit E with RANSAC, decompose it with the
cheirality check (``cv2.recoverPose``), triangulate the inliers, then place every further view by PnP
(``cv2.solvePnPRansac``) on those 3D points. LM-Gaussian gets its poses from DUSt3R; this is the weight-free
stand-in (and a check that given poses are consistent with the images).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from perception3d.structures.cameras import shift_principal_point
from .base import ImageLike, PosePrior, RelativePose, to_uint8_gray

__all__ = ["FeaturePose", "match_features", "triangulate", "solve_pnp", "rotation_angle_deg"]


def _cv_K(K) -> np.ndarray:
    """House K (pixel centres at +0.5) → OpenCV K (centres at integers), float64 numpy."""
    return shift_principal_point(torch.as_tensor(np.asarray(K, dtype=np.float64)).float(), -0.5).double().numpy()


def match_features(image0: ImageLike, image1: ImageLike, detector: str = "sift", max_features: int = 4000,
                   ratio: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Matched keypoints (u, v) of two images, each [M, 2] float64 in the house pixel convention
    (OpenCV's keypoint at integer centre + 0.5). ``detector``: "sift" (float descriptors, L2) or "orb"
    (binary, Hamming); Lowe's ratio test with ``ratio`` and a mutual nearest-neighbour check."""
    import cv2

    g0, g1 = to_uint8_gray(image0, "image0"), to_uint8_gray(image1, "image1")
    if detector == "sift":
        det, norm = cv2.SIFT_create(nfeatures=max_features), cv2.NORM_L2
    elif detector == "orb":
        det, norm = cv2.ORB_create(nfeatures=max_features), cv2.NORM_HAMMING
    else:
        raise ValueError(f"match_features: detector must be 'sift' or 'orb', got {detector!r}")
    k0, d0 = det.detectAndCompute(g0, None)
    k1, d1 = det.detectAndCompute(g1, None)
    if d0 is None or d1 is None or len(k0) < 2 or len(k1) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    bf = cv2.BFMatcher(norm)
    fwd = bf.knnMatch(d0, d1, k=2)
    bwd = {m.queryIdx: m.trainIdx for m in bf.match(d1, d0)}
    good = [p[0] for p in fwd if len(p) == 2 and p[0].distance < ratio * p[1].distance
            and bwd.get(p[0].trainIdx) == p[0].queryIdx]
    p0 = np.array([k0[m.queryIdx].pt for m in good], dtype=np.float64).reshape(-1, 2) + 0.5
    p1 = np.array([k1[m.trainIdx].pt for m in good], dtype=np.float64).reshape(-1, 2) + 0.5
    return p0, p1


def triangulate(p0: np.ndarray, p1: np.ndarray, K0, K1, w2c0: np.ndarray, w2c1: np.ndarray,
                max_reproj: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Linear (DLT) triangulation of matches p0 ↔ p1 [M, 2] (house pixels) seen by cameras with world → camera
    [4, 4] poses. Returns (world points [M, 3], good [M] bool: in front of both cameras and reprojecting within
    ``max_reproj`` pixels in both)."""
    import cv2

    K0, K1 = np.asarray(K0, np.float64), np.asarray(K1, np.float64)
    P0 = K0 @ np.asarray(w2c0, np.float64)[:3]
    P1 = K1 @ np.asarray(w2c1, np.float64)[:3]
    if len(p0) == 0:
        return np.zeros((0, 3)), np.zeros(0, bool)
    X = cv2.triangulatePoints(P0, P1, p0.T.astype(np.float64), p1.T.astype(np.float64))
    X = (X[:3] / np.where(np.abs(X[3:]) < 1e-12, 1e-12, X[3:])).T
    good = np.ones(len(X), bool)
    for P, p in ((P0, p0), (P1, p1)):
        x = np.c_[X, np.ones(len(X))] @ P.T
        good &= x[:, 2] > 0
        uv = x[:, :2] / np.where(np.abs(x[:, 2:]) < 1e-12, 1e-12, x[:, 2:])
        good &= np.linalg.norm(uv - p, axis=1) < max_reproj
    return X, good


def solve_pnp(points3d: np.ndarray, pixels: np.ndarray, K, reproj: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """World → camera [4, 4] from ≥ 6 world points [M, 3] and their pixels [M, 2] (house convention) by
    EPnP + RANSAC, refined by Levenberg–Marquardt on the inliers. Returns (w2c, inlier mask [M])."""
    import cv2

    if len(points3d) < 6:
        raise ValueError(f"solve_pnp: need at least 6 2D-3D correspondences, got {len(points3d)}")
    Kcv = _cv_K(K)
    ok, rvec, tvec, inl = cv2.solvePnPRansac(points3d.astype(np.float64), (pixels - 0.5).astype(np.float64), Kcv,
                                             None, reprojectionError=reproj, iterationsCount=2000,
                                             flags=cv2.SOLVEPNP_EPNP)
    if not ok or inl is None or len(inl) < 6:
        raise ValueError(f"solve_pnp: RANSAC found no pose ({0 if inl is None else len(inl)} inliers)")
    idx = inl[:, 0]
    rvec, tvec = cv2.solvePnPRefineLM(points3d[idx].astype(np.float64), (pixels[idx] - 0.5).astype(np.float64),
                                      Kcv, None, rvec, tvec)
    m = np.eye(4)
    m[:3, :3] = cv2.Rodrigues(rvec)[0]
    m[:3, 3] = tvec[:, 0]
    mask = np.zeros(len(points3d), bool)
    mask[idx] = True
    return m, mask


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of a rotation matrix in degrees (e.g. of ``R_est @ R_true.T``: the rotation error)."""
    c = (np.trace(np.asarray(R)) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


class FeaturePose(PosePrior):
    """Relative and absolute poses from local features (module doc), no weights.

    Args:
        detector: "sift" (default; scale-invariant, float descriptors) or "orb" (faster, binary).
        max_features: features per image.
        ratio: Lowe's ratio-test threshold.
        ransac_px: RANSAC inlier threshold in pixels (essential matrix and PnP).
    """

    name = "features"

    def __init__(self, detector: str = "sift", max_features: int = 4000, ratio: float = 0.8,
                 ransac_px: float = 1.0):
        self.detector, self.max_features, self.ratio, self.ransac_px = detector, max_features, ratio, ransac_px

    def describe(self) -> dict:
        return {"type": self.name, "detector": self.detector, "weights": None}

    def _match(self, a, b):
        return match_features(a, b, self.detector, self.max_features, self.ratio)

    def relative_pose(self, image0: ImageLike, image1: ImageLike, K0, K1) -> RelativePose:
        import cv2

        p0, p1 = self._match(image0, image1)
        if len(p0) < 8:
            raise ValueError(f"FeaturePose: only {len(p0)} feature matches between the two images (need >= 8)")
        K0, K1 = _cv_K(K0), _cv_K(K1)
        # normalised image coordinates, so that two different intrinsics work with one essential matrix
        n0 = cv2.undistortPoints((p0 - 0.5).reshape(-1, 1, 2), K0, None).reshape(-1, 2)
        n1 = cv2.undistortPoints((p1 - 0.5).reshape(-1, 1, 2), K1, None).reshape(-1, 2)
        f = 0.5 * (K0[0, 0] + K0[1, 1] + K1[0, 0] + K1[1, 1]) / 2
        E, mask = cv2.findEssentialMat(n0, n1, np.eye(3), method=cv2.RANSAC, prob=0.9999,
                                       threshold=self.ransac_px / f)
        if E is None or E.shape != (3, 3):
            E = None if E is None else E[:3]
        if E is None:
            raise ValueError(f"FeaturePose: no essential matrix from {len(p0)} matches")
        n_in, R, t, mask = cv2.recoverPose(E, n0, n1, np.eye(3), mask=mask)
        return RelativePose(R=R, t=t[:, 0] / max(np.linalg.norm(t), 1e-12), n_matches=len(p0), n_inliers=int(n_in))

    def estimate_poses(self, images: Sequence[ImageLike], Ks) -> torch.Tensor:
        """Views 0 and 1 by the essential matrix (world = camera 0, |t₀₁| = 1); the inlier matches triangulated;
        each further view by PnP against those points (matched through view 0 and view 1)."""
        n = len(images)
        if n < 2:
            raise ValueError(f"FeaturePose.estimate_poses: need at least 2 images, got {n}")
        Ks = [np.asarray(k, np.float64) for k in (Ks if len(Ks) == n else [Ks[0]] * n)]
        rel = self.relative_pose(images[0], images[1], Ks[0], Ks[1])
        w2c = [np.eye(4), rel.matrix]
        # 3D points keyed by their pixel in views 0 and 1
        tracks: list[tuple[int, np.ndarray, np.ndarray]] = []
        p0, p1 = self._match(images[0], images[1])
        X, good = triangulate(p0, p1, Ks[0], Ks[1], w2c[0], w2c[1], max_reproj=4 * self.ransac_px)
        tracks.append((0, p0[good], X[good]))
        tracks.append((1, p1[good], X[good]))
        for j in range(2, n):
            obj, img = [], []
            for v, pix, pts in tracks:
                q0, qj = self._match(images[v], images[j])
                if len(q0) == 0 or len(pix) == 0:
                    continue
                d = np.linalg.norm(q0[:, None] - pix[None], axis=-1)  # match view-v keypoints to tracked pixels
                nn = d.argmin(1)
                ok = d[np.arange(len(q0)), nn] < 1.0
                obj.append(pts[nn[ok]])
                img.append(qj[ok])
            obj = np.concatenate(obj) if obj else np.zeros((0, 3))
            img = np.concatenate(img) if img else np.zeros((0, 2))
            if len(obj) < 6:
                raise ValueError(f"FeaturePose: view {j} shares only {len(obj)} points with views 0/1 (need >= 6)")
            m, _ = solve_pnp(obj, img, Ks[j], reproj=2 * self.ransac_px)
            w2c.append(m)
        return torch.tensor(np.stack(w2c), dtype=torch.float32)
