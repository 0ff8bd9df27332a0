"""SMPL body model: a loader for user-supplied model files and the differentiable forward pass (LBS).

The forward pass follows Loper et al., "SMPL: A Skinned Multi-Person Linear Model", SIGGRAPH Asia 2015, Sec. 3
(equation numbers of that paper):

    Rodrigues   exp(ω_j)                                              (1)
    LBS         t'_i = Σ_k w_k,i · G'_k(θ, J) · t_i                   (2)
                G'_k = G_k(θ, J) · G_k(θ*, J)⁻¹                        (3)  (removes the rest-pose transform)
                G_k  = Π_{j ∈ A(k)} [exp(ω_j) | j_j ; 0 1]              (4)  (forward kinematics)
    model       T_P(β, θ) = T̄ + B_S(β) + B_P(θ)                        (6)
    shape       B_S(β) = Σ_n β_n S_n                                   (8)
    pose        B_P(θ) = Σ_n (R_n(θ) − R_n(θ*)) P_n, joints 1..K       (9)
    joints      J(β) = 𝒥 (T̄ + B_S(β))                                 (10)

followed by a global rotation ``Rh`` and translation ``Th`` (the EasyMocap / ZJU-MoCap convention:
``v_world = R(Rh) · v + Th``).

Model files are the user's (SMPL is licensed; nothing is downloaded): the official ``.pkl`` (chumpy arrays and a
scipy sparse ``J_regressor``) is read **without chumpy** by a restricted unpickler, and the ``.npz`` files of the
smplx repository are read with ``allow_pickle=False``. Without a file, :func:`load_body_model` falls back to the
procedural template (:mod:`.template`) only when the caller allows it.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from .body_data import SMPL_JOINT_NAMES, SMPL_PARENTS, BodyModelData
from .template import build_template

__all__ = ["BodyModelData", "BodyModel", "BodyOutput", "load_body_model", "read_smpl_file", "rodrigues",
           "lbs", "restricted_load", "SMPL_JOINT_NAMES", "SMPL_PARENTS"]

log = logging.getLogger(__name__)
PathLike = Union[str, Path]


# ----------------------------------------------------------------------------------------------------------
# Restricted unpickling (SMPL .pkl without chumpy; ZJU-MoCap annots.npy)
# ----------------------------------------------------------------------------------------------------------
class _ChStandIn:
    """Stand-in for chumpy's ``Ch``: keeps the pickled state; :func:`_plain` turns it into its array ``x``/``r``."""

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple):  # (dict, slots dict)
            d = {}
            for s in state:
                if isinstance(s, dict):
                    d.update(s)
            state = d
        self.__dict__.update(state if isinstance(state, dict) else {"x": state})

    def array(self) -> np.ndarray:
        for key in ("x", "r", "a"):
            if key in self.__dict__:
                return np.asarray(_plain(self.__dict__[key]))
        raise ValueError(f"chumpy object without an array (state keys {sorted(self.__dict__)})")


_NUMPY_NAMES = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer", "array"}
_SAFE_BUILTINS = {"object", "set", "frozenset", "slice", "complex", "bytearray"}
_SPARSE_NAMES = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}


class _RestrictedUnpickler(pickle.Unpickler):
    """Allows only numpy arrays, scipy sparse matrices, builtin containers and chumpy (→ :class:`_ChStandIn`)."""

    def find_class(self, module: str, name: str):
        top = module.split(".")[0]
        if top == "chumpy":
            return _ChStandIn
        if top == "numpy" and name in _NUMPY_NAMES:
            import importlib

            for mod in (module, module.replace("numpy.core", "numpy._core"),
                        module.replace("numpy._core", "numpy.core")):
                try:
                    return getattr(importlib.import_module(mod), name)
                except (ImportError, AttributeError):
                    continue
        if top == "scipy" and name in _SPARSE_NAMES:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        if (module, name) in {("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")}:
            import copyreg

            return copyreg._reconstructor
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            import builtins

            return getattr(builtins, name)
        if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles written by Python 3
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy / scipy.sparse / chumpy "
                                     "arrays are allowed in these files)")


def restricted_load(path: PathLike):
    """Load a pickle (``.pkl``) or a pickled ``.npy`` (object array, e.g. ZJU-MoCap's ``annots.npy``) with
    :class:`_RestrictedUnpickler`; latin-1 decoding so Python-2 pickles (the official SMPL files) read too.
    Chumpy objects come back as plain numpy arrays; a 0-d object array comes back as its item."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        with open(path, "rb") as f:
            if path.suffix == ".npy":
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                _, _, dtype = read_header(f)
                if dtype.hasobject:
                    obj = _RestrictedUnpickler(f, encoding="latin1").load()
                else:
                    f.seek(0)
                    return np.load(f, allow_pickle=False)
            else:
                obj = _RestrictedUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: {e}") from e
    except Exception as e:  # truncated / not a pickle
        raise ValueError(f"{path}: cannot unpickle ({type(e).__name__}: {e})") from e
    obj = _plain(obj)
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    return _plain(obj)


def _plain(obj):
    """Recursively replace chumpy stand-ins by numpy arrays (containers are walked)."""
    if isinstance(obj, _ChStandIn):
        return obj.array()
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        return np.array(_plain(obj.item()), dtype=object) if isinstance(obj.item(), _ChStandIn) else obj
    return obj


_REQUIRED = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


def read_smpl_file(path: PathLike, num_betas: Optional[int] = None) -> BodyModelData:
    """Read an SMPL model file: the official ``.pkl`` (chumpy / scipy sparse inside, no chumpy needed) or an
    ``.npz`` (smplx repository layout). Keys: v_template [V, 3], shapedirs [V, 3, S], posedirs [V, 3, 9 (K−1)]
    (or [3V, 9 (K−1)]), J_regressor [K, V] (sparse or dense), weights [V, K], kintree_table [2, K], f [F, 3].
    ``num_betas`` keeps the first shape directions (default: all)."""
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except Exception as e:
            raise ValueError(f"{path}: cannot read the .npz model file ({type(e).__name__}: {e})") from e
    elif path.suffix == ".pkl":
        raw = restricted_load(path)
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a pickled dict of model arrays, got {type(raw).__name__}")
    else:
        raise ValueError(f"{path}: unknown body-model file type (expected .pkl or .npz)")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing} (an SMPL model needs {list(_REQUIRED)})")
    arr = {}
    for k in _REQUIRED:
        v = raw[k]
        if hasattr(v, "toarray"):  # scipy sparse
            v = v.toarray()
        arr[k] = np.asarray(v)
    V = arr["v_template"].shape[0]
    pd = arr["posedirs"]
    if pd.ndim == 2 and pd.shape[0] == 3 * V:
        arr["posedirs"] = pd.reshape(V, 3, -1)
    kt = arr["kintree_table"]
    if kt.ndim != 2 or kt.shape[0] != 2:
        raise ValueError(f"{path}: 'kintree_table' has shape {tuple(kt.shape)}, expected (2, K)")
    parents = kt[0].astype(np.int64)
    parents[0] = -1  # the root is stored as 4294967295 (uint32 −1) in the official files
    sd = arr["shapedirs"].astype(np.float32)
    if num_betas is not None:
        sd = sd[..., :num_betas]
    return BodyModelData(
        v_template=arr["v_template"].astype(np.float32), shapedirs=sd, posedirs=arr["posedirs"].astype(np.float32),
        J_regressor=arr["J_regressor"].astype(np.float32), weights=arr["weights"].astype(np.float32),
        parents=parents, faces=arr["f"].astype(np.int64), source=str(path))


def load_body_model(path: Optional[PathLike] = None, allow_template: bool = False,
                    num_betas: Optional[int] = None) -> "BodyModel":
    """The SMPL model from ``path`` (``.pkl`` / ``.npz``); when it is None or missing and ``allow_template``,
    the procedural template (:func:`~.template.build_template`) with a logged warning; otherwise a
    ``FileNotFoundError`` saying where to put the file."""
    if path is not None and Path(path).is_file():
        return BodyModel(read_smpl_file(path, num_betas))
    where = (f"no SMPL model file at {path}" if path is not None else "no SMPL model file given")
    hint = ("; download SMPL (basicModel_neutral_lbs_10_207_0_v1.0.0.pkl, or SMPL_NEUTRAL.pkl / .npz of the smplx "
            "package) from https://smpl.is.tue.mpg.de under its licence and pass its path (e.g. "
            "data/smpl/SMPL_NEUTRAL.pkl)")
    if not allow_template:
        raise FileNotFoundError(where + hint + ", or allow the procedural template (allow_template=True)")
    log.warning("%s%s; using this package's procedural template body instead (not SMPL)", where, hint)
    return BodyModel(build_template())


# ----------------------------------------------------------------------------------------------------------
# Forward pass
# ----------------------------------------------------------------------------------------------------------
def rodrigues(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle [..., 3] → rotation matrices [..., 3, 3] (SMPL eq. 1: I + sin θ [k]× + (1 − cos θ) [k]×²).
    Differentiable at 0 (the angle gets a tiny epsilon as in the SMPL / smplx code)."""
    angle = torch.linalg.norm(aa + 1e-8, dim=-1, keepdim=True)
    k = aa / angle
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    Kx = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + s * Kx + (1 - c) * (Kx @ Kx)


@dataclass
class BodyOutput:
    """vertices [B, V, 3] and joints [B, K, 3] posed (world), transforms [B, K, 4, 4] the skinning transforms
    G'_k (rest → posed, before the global Rh/Th), v_shaped [B, V, 3] the shaped T-pose T̄ + B_S(β)."""

    vertices: torch.Tensor
    joints: torch.Tensor
    transforms: torch.Tensor
    v_shaped: torch.Tensor


def lbs(betas: torch.Tensor, pose: torch.Tensor, v_template: torch.Tensor, shapedirs: torch.Tensor,
        posedirs: torch.Tensor, J_regressor: torch.Tensor, parents: list[int], weights: torch.Tensor) -> BodyOutput:
    """SMPL's forward (eqs. 1–10) without the global transform. betas [B, S], pose [B, K, 3] axis-angle."""
    B, K = pose.shape[0], len(parents)
    v_shaped = v_template + torch.einsum("bs,vcs->bvc", betas, shapedirs)            # eq. 8: B_S(β)
    J = torch.einsum("kv,bvc->bkc", J_regressor, v_shaped)                            # eq. 10: J(β)
    R = rodrigues(pose)                                                                # eq. 1: [B, K, 3, 3]
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    pose_feature = (R[:, 1:] - eye).reshape(B, -1)                                     # R_n(θ) − R_n(θ*), θ* = 0
    v_posed = v_shaped + torch.einsum("bp,vcp->bvc", pose_feature, posedirs)           # eqs. 6, 9: T_P(β, θ)
    # eq. 4: G_k = G_parent(k) · [R_k | J_k − J_parent(k)]
    rel = J.clone()
    rel[:, 1:] = J[:, 1:] - J[:, parents[1:]]
    local = torch.cat([torch.cat([R, rel[..., None]], -1),
                       torch.tensor([0, 0, 0, 1], dtype=R.dtype, device=R.device).expand(B, K, 1, 4)], -2)
    G = [local[:, 0]]
    for k in range(1, K):
        G.append(G[parents[k]] @ local[:, k])
    G = torch.stack(G, 1)                                                              # [B, K, 4, 4]
    # eq. 3: G'_k = G_k · G_k(θ*)⁻¹; the rest transform is a pure translation by J_k, so subtract G_k[:3,:3] J_k
    t = G[..., :3, 3] - torch.einsum("bkij,bkj->bki", G[..., :3, :3], J)
    Gp = torch.cat([torch.cat([G[..., :3, :3], t[..., None]], -1), G[..., 3:, :]], -2)
    # eq. 2: t'_i = Σ_k w_k,i G'_k t_i
    T = torch.einsum("vk,bkij->bvij", weights, Gp)
    verts = torch.einsum("bvij,bvj->bvi", T[..., :3, :3], v_posed) + T[..., :3, 3]
    joints = G[..., :3, 3]
    return BodyOutput(verts, joints, Gp, v_shaped)


class BodyModel(torch.nn.Module):
    """A linear blend-skinned body (SMPL or the procedural template), batched and differentiable.

    ``model(betas, pose, Rh, Th)`` → :class:`BodyOutput` with ``v_world = R(Rh) · v + Th``.
    """

    def __init__(self, data: BodyModelData) -> None:
        super().__init__()
        self.data = data
        self.parents = [int(p) for p in data.parents]
        self.joint_names = tuple(data.joint_names)
        for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
            self.register_buffer(k, torch.as_tensor(getattr(data, k), dtype=torch.float32), persistent=False)
        self.register_buffer("faces", torch.as_tensor(data.faces, dtype=torch.int64), persistent=False)
        self.num_joints, self.num_betas = data.num_joints, data.num_betas

    def forward(self, betas: Optional[torch.Tensor] = None, pose: Optional[torch.Tensor] = None,
                Rh: Optional[torch.Tensor] = None, Th: Optional[torch.Tensor] = None) -> BodyOutput:
        """Args (B = batch; any may be None = zeros, but B is taken from the first given):
            betas: [B, S'] shape coefficients (S' ≤ S; missing ones are 0).
            pose: [B, K, 3] or [B, 3K] axis-angle per joint (joint 0 = root orientation, SMPL's ``poses``).
            Rh: [B, 3] global axis-angle rotation, Th: [B, 3] global translation (metres), applied last.
        """
        given = [x for x in (betas, pose, Rh, Th) if x is not None]
        B = given[0].shape[0] if given else 1
        dev, dt = self.v_template.device, self.v_template.dtype
        K, S = self.num_joints, self.num_betas
        betas = torch.zeros(B, S, device=dev, dtype=dt) if betas is None else betas.to(dt)
        if betas.ndim != 2 or betas.shape[1] > S:
            raise ValueError(f"betas must be [B, <= {S}], got {tuple(betas.shape)}")
        if betas.shape[1] < S:
            betas = torch.cat([betas, betas.new_zeros(B, S - betas.shape[1])], 1)
        pose = torch.zeros(B, K, 3, device=dev, dtype=dt) if pose is None else pose.to(dt).reshape(B, -1, 3)
        if pose.shape[1] != K:
            raise ValueError(f"pose must be [B, {K}, 3] or [B, {3 * K}], got {pose.shape[1]} joints")
        out = lbs(betas, pose, self.v_template, self.shapedirs, self.posedirs, self.J_regressor, self.parents,
                  self.weights)
        if Rh is not None or Th is not None:
            eye = torch.eye(3, device=dev, dtype=dt).expand(B, 3, 3)
            R = rodrigues(Rh.to(dt).reshape(B, 3)) if Rh is not None else eye
            t = Th.to(dt).reshape(B, 1, 3) if Th is not None else torch.zeros(B, 1, 3, device=dev, dtype=dt)
            out.vertices = out.vertices @ R.transpose(1, 2) + t
            out.joints = out.joints @ R.transpose(1, 2) + t
        return out
