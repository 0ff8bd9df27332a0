"""A procedural articulated body with SMPL's interface — this package's stand-in for SMPL, **not SMPL**.

It lets tests, demos and the built-in human dataset run without the licensed SMPL files: the same 24 joints in
SMPL order with SMPL's kinematic tree, a T-pose mesh, skinning weights, a joint regressor, shape directions and
(zero) pose blend shapes, all as a :class:`~.body_model.BodyModelData` that :class:`~.body_model.BodyModel`
poses exactly like SMPL. Axes as SMPL's template: metres, y up, the body faces +z, its left is +x.

Construction:
- **mesh**: the union of capsules around the bones (one or two per joint), as a signed distance on a grid,
  meshed by marching cubes (scikit-image) — a closed, watertight surface of a few thousand vertices;
- **weights**: for each vertex, the distance d_k to joint k's capsule axis; w_k ∝ max(0, 1 − (d_k − d_min)/δ)²
  (δ = 4 cm), the top 3 kept and normalised: vertices well inside one limb segment belong to that joint only,
  vertices near a joint blend the two or three segments meeting there;
- **J_regressor**: each joint is an affine combination of its 64 nearest vertices (the minimum-norm weights
  that reproduce the designed joint exactly), so joints follow the surface under shape changes like SMPL's;
- **shapedirs** (2): β₀ height (every vertex moves 10 % of its height above/below the pelvis per unit),
  β₁ girth (every vertex moves 10 % of its distance from its own bone axis outwards per unit);
- **posedirs**: zeros.
"""

from __future__ import annotations

import functools

import numpy as np

from .body_data import SMPL_JOINT_NAMES, SMPL_PARENTS, BodyModelData

__all__ = ["build_template", "TEMPLATE_JOINTS", "template_segments"]

# designed T-pose joint positions (metres), SMPL order
TEMPLATE_JOINTS = np.array([
    [0.00, -0.20, 0.00], [0.07, -0.29, 0.00], [-0.07, -0.29, 0.00], [0.00, -0.09, 0.00],
    [0.10, -0.67, 0.00], [-0.10, -0.67, 0.00], [0.00, 0.05, 0.00], [0.09, -1.07, -0.02],
    [-0.09, -1.07, -0.02], [0.00, 0.10, 0.00], [0.11, -1.13, 0.10], [-0.11, -1.13, 0.10],
    [0.00, 0.31, -0.02], [0.08, 0.22, -0.01], [-0.08, 0.22, -0.01], [0.00, 0.38, 0.03],
    [0.17, 0.23, -0.02], [-0.17, 0.23, -0.02], [0.43, 0.23, -0.02], [-0.43, 0.23, -0.02],
    [0.68, 0.23, -0.02], [-0.68, 0.23, -0.02], [0.76, 0.23, -0.02], [-0.76, 0.23, -0.02],
], dtype=np.float64)


def template_segments() -> list[tuple[int, np.ndarray, np.ndarray, float]]:
    """The capsules: (owning joint, end a [3], end b [3], radius). Joint k owns the segment from itself to its
    child (the part its rotation moves); leaves (feet, head, hands) own a short segment beyond the joint."""
    J = TEMPLATE_JOINTS
    seg = [(0, J[0], J[3], 0.12), (0, J[1], J[2], 0.09),                      # pelvis
           (3, J[3], J[6], 0.12), (6, J[6], J[9], 0.13), (9, J[9], J[12], 0.12),  # spine
           (12, J[12], J[15], 0.05), (15, J[15] + [0, 0.04, 0], J[15] + [0, 0.14, 0], 0.09)]  # neck, head
    for s in (0, 1):  # left (+x), right (−x)
        sx = 1.0 if s == 0 else -1.0
        hip, knee, ankle, foot = 1 + s, 4 + s, 7 + s, 10 + s
        collar, shoulder, elbow, wrist, hand = 13 + s, 16 + s, 18 + s, 20 + s, 22 + s
        seg += [(hip, J[hip], J[knee], 0.07), (knee, J[knee], J[ankle], 0.05), (ankle, J[ankle], J[foot], 0.04),
                (foot, J[foot], J[foot] + [0, 0, 0.06], 0.035), (collar, J[collar], J[shoulder], 0.06),
                (shoulder, J[shoulder], J[elbow], 0.05), (elbow, J[elbow], J[wrist], 0.04),
                (wrist, J[wrist], J[hand], 0.035), (hand, J[hand], J[hand] + [sx * 0.07, 0, 0], 0.03)]
    return seg


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points p [N, 3] to segment ab, and the closest points [N, 3]."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    q = a + t[:, None] * ab
    return np.linalg.norm(p - q, axis=1), q


@functools.lru_cache(maxsize=4)
def _build(voxel: float) -> BodyModelData:
    from skimage.measure import marching_cubes

    segs = template_segments()
    lo = np.array([-0.95, -1.25, -0.20])
    hi = np.array([0.95, 0.70, 0.25])  # a cell of margin around every capsule
    n = np.ceil((hi - lo) / voxel).astype(int) + 1
    axes = [lo[i] + voxel * np.arange(n[i]) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    sdf = np.full(len(grid), np.inf)
    for _, a, b, r in segs:
        sdf = np.minimum(sdf, _segment_distance(grid, a, b)[0] - r)
    verts, faces, _, _ = marching_cubes(sdf.reshape(*n), level=0.0, spacing=(voxel,) * 3)
    verts = verts + lo
    V, K = len(verts), len(SMPL_PARENTS)
    # skinning weights from the distance to each joint's bone axis
    d = np.full((V, K), np.inf)
    closest = np.zeros((V, K, 3))
    for k, a, b, _ in segs:
        dk, qk = _segment_distance(verts, a, b)
        better = dk < d[:, k]
        d[better, k], closest[better, k] = dk[better], qk[better]
    delta = 0.04
    w = np.clip(1.0 - (d - d.min(1, keepdims=True)) / delta, 0.0, None) ** 2
    keep = np.argsort(-w, axis=1)[:, :3]
    mask = np.zeros_like(w, dtype=bool)
    np.put_along_axis(mask, keep, True, axis=1)
    w = np.where(mask, w, 0.0)
    w /= w.sum(1, keepdims=True)
    # joint regressor: minimum-norm affine weights over each joint's 64 nearest vertices
    J_reg = np.zeros((K, V))
    for k in range(K):
        idx = np.argsort(np.linalg.norm(verts - TEMPLATE_JOINTS[k], axis=1))[:64]
        A = np.concatenate([verts[idx].T, np.ones((1, len(idx)))], 0)  # [4, n]
        rhs = np.append(TEMPLATE_JOINTS[k], 1.0)
        J_reg[k, idx] = A.T @ np.linalg.solve(A @ A.T, rhs)
    # shape directions: height about the pelvis, girth away from the own bone axis
    own = np.argmax(w, axis=1)
    shapedirs = np.zeros((V, 3, 2))
    shapedirs[:, 1, 0] = 0.1 * (verts[:, 1] - TEMPLATE_JOINTS[0, 1])
    shapedirs[:, :, 1] = 0.1 * (verts - closest[np.arange(V), own])
    return BodyModelData(
        v_template=verts.astype(np.float32), shapedirs=shapedirs.astype(np.float32),
        posedirs=np.zeros((V, 3, 9 * (K - 1)), np.float32), J_regressor=J_reg.astype(np.float32),
        weights=w.astype(np.float32), parents=np.array(SMPL_PARENTS, dtype=np.int64),
        faces=faces.astype(np.int64), joint_names=SMPL_JOINT_NAMES,
        source="perception3d procedural template (not SMPL)")


def build_template(voxel: float = 0.025) -> BodyModelData:
    """The procedural template body (deterministic; cached per ``voxel``, the marching-cubes cell in metres)."""
    return _build(float(voxel))
