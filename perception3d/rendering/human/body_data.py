"""The arrays of a linear blend-skinned body (SMPL layout) and SMPL's joint tree: what the SMPL file reader
(:mod:`.body_model`) and the procedural template body (:mod:`.template`) both produce."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BodyModelData", "SMPL_JOINT_NAMES", "SMPL_PARENTS"]

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand")
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)


# ----------------------------------------------------------------------------------------------------------
# Model data
# ----------------------------------------------------------------------------------------------------------
@dataclass
class BodyModelData:
    """The arrays of a linear blend-skinned body model (SMPL layout; V vertices, K joints, S shape directions).

    Attributes:
        v_template: [V, 3] rest (T-pose) vertices T̄, metres.
        shapedirs: [V, 3, S] shape blend shapes S_n.
        posedirs: [V, 3, 9 (K − 1)] pose blend shapes P_n (rows of (R_k − I) for k = 1..K−1, row-major).
        J_regressor: [K, V] dense joint regressor 𝒥.
        weights: [V, K] skinning weights W (rows sum to 1).
        parents: [K] parent joint index, −1 for the root (kintree_table row 0).
        faces: [F, 3] int64 triangles.
        joint_names: K names.
        source: the file it came from, or a description.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    faces: np.ndarray
    joint_names: tuple = SMPL_JOINT_NAMES
    source: str = ""

    def __post_init__(self) -> None:
        src = self.source or "body model"
        V = self.v_template.shape[0] if self.v_template.ndim == 2 else -1
        K = len(self.parents)
        checks = {
            "v_template": (self.v_template, (V, 3)),
            "shapedirs": (self.shapedirs, (V, 3, None)),
            "posedirs": (self.posedirs, (V, 3, 9 * (K - 1))),
            "J_regressor": (self.J_regressor, (K, V)),
            "weights": (self.weights, (V, K)),
            "faces": (self.faces, (None, 3)),
        }
        for key, (arr, want) in checks.items():
            ok = arr.ndim == len(want) and all(w is None or s == w for s, w in zip(arr.shape, want))
            if not ok or V <= 0:
                shown = tuple("S" if w is None and key == "shapedirs" else ("F" if w is None else w) for w in want)
                raise ValueError(f"{src}: '{key}' has shape {tuple(arr.shape)}, expected {shown} "
                                 f"(V = {V} vertices, K = {K} joints)")
        if self.parents[0] != -1 or any(not (0 <= p < k) for k, p in enumerate(self.parents[1:], 1)):
            raise ValueError(f"{src}: 'kintree_table' parents {self.parents.tolist()} are not a tree rooted at joint "
                             "0 with each parent before its child")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= V):
            raise ValueError(f"{src}: 'f' indexes vertices outside [0, {V})")
        if len(self.joint_names) != K:
            self.joint_names = tuple(f"joint{k}" for k in range(K))

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[2]
