"""Body model: SMPL loader (.pkl without chumpy, .npz) and forward checked against hand-computed vertices on a tiny
hand-made model; the procedural template's LBS checked by hand (a rotated elbow); bad files get clear errors."""

import logging
import math
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from perception3d.rendering.human import (SMPL_JOINT_NAMES, SMPL_PARENTS, BodyModel, build_template,
                                          load_body_model, read_smpl_file, rodrigues)
from perception3d.rendering.human.template import TEMPLATE_JOINTS


# ----------------------------------------------------------------------------------------------------------
# a tiny hand-made "SMPL": 3-joint chain along x, 7 vertices
# ----------------------------------------------------------------------------------------------------------
def _tiny_arrays() -> dict:
    v = np.array([[0, .1, 0], [0, -.1, 0], [1, .1, 0], [1, -.1, 0], [2, .1, 0], [2, -.1, 0], [1.5, 0, .2]])
    jreg = np.zeros((3, 7))
    for k in range(3):
        jreg[k, 2 * k] = jreg[k, 2 * k + 1] = 0.5            # joint k = mean of the two vertices at x = k
    w = np.zeros((7, 3))
    for k in range(3):
        w[2 * k:2 * k + 2, k] = 1.0
    w[6, 1] = w[6, 2] = 0.5
    shapedirs = np.zeros((7, 3, 1))
    shapedirs[:, 0, 0] = 0.5 * v[:, 0]                     # β₀ = 2 doubles every x
    posedirs = np.zeros((7, 3, 18))
    posedirs[6, 2, 0] = 0.3                                # vertex 6: z += 0.3 · (R_1 − I)[0, 0]
    kintree = np.array([[4294967295, 0, 1], [0, 1, 2]], dtype=np.int64)
    f = np.array([[0, 2, 3], [2, 4, 5], [0, 6, 4]])
    return dict(v_template=v, shapedirs=shapedirs, posedirs=posedirs, J_regressor=jreg, weights=w,
                kintree_table=kintree, f=f, bs_style="lbs")


def _expected_tiny(Rh_z: float, Th) -> np.ndarray:
    """By hand: β₀ = 2 puts the joints at x = 0, 2, 4; joints 1 and 2 each turn 90° about z, so joint 1 turns its
    subtree 90° about (2, 0, 0) and joint 2 ends at (2, 2, 0) facing −x (180°). Vertex 6 first gets the pose blend
    shape 0.3 · (cos 90° − 1) = −0.3 in z, then half of each transform."""
    v = np.array([[0, .1, 0], [0, -.1, 0],          # joint 0: unmoved
                  [1.9, 0, 0], [2.1, 0, 0],         # (2, ±0.1, 0) turned 90° about (2, 0, 0)
                  [2, 1.9, 0], [2, 2.1, 0],         # (4, ±0.1, 0): (2, 2, 0) + 180° turn of (0, ±0.1, 0)
                  [2.5, 1.5, -0.1]])                # (3, 0, −0.1): mean of (2, 1, −0.1) and (3, 2, −0.1)
    c, s = math.cos(Rh_z), math.sin(Rh_z)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return v @ R.T + np.asarray(Th)


def _tiny_pose() -> torch.Tensor:
    pose = torch.zeros(1, 3, 3)
    pose[0, 1, 2] = pose[0, 2, 2] = math.pi / 2
    return pose


class _FakeCh:  # pickled as chumpy.ch.Ch, like the arrays in the official SMPL .pkl
    pass


def _write_pkl(path, arrays, monkeypatch) -> None:
    import scipy.sparse

    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    _FakeCh.__module__, _FakeCh.__qualname__, _FakeCh.__name__ = "chumpy.ch", "Ch", "Ch"
    ch.Ch = _FakeCh
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    d = dict(arrays)
    for k in ("shapedirs", "v_template"):
        obj = _FakeCh()
        obj.__dict__.update(x=d[k], _dirty_vars=set())
        d[k] = obj
    d["J_regressor"] = scipy.sparse.csc_matrix(d["J_regressor"])
    path.write_bytes(pickle.dumps(d, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    monkeypatch.delitem(sys.modules, "chumpy")


@pytest.mark.parametrize("fmt", ["pkl", "npz"])
def test_tiny_smpl_file_forward_by_hand(tmp_path, monkeypatch, fmt):
    p = tmp_path / f"tiny.{fmt}"
    if fmt == "pkl":
        _write_pkl(p, _tiny_arrays(), monkeypatch)
        assert "chumpy" not in sys.modules
    else:
        a = _tiny_arrays()
        a.pop("bs_style")
        np.savez(p, **a)
    model = load_body_model(p)
    assert model.num_joints == 3 and model.num_betas == 1 and model.parents == [-1, 0, 1]
    out = model(betas=torch.tensor([[2.0]]), pose=_tiny_pose())
    np.testing.assert_allclose(out.joints[0].numpy(), [[0, 0, 0], [2, 0, 0], [2, 2, 0]], atol=1e-6)
    np.testing.assert_allclose(out.vertices[0].numpy(), _expected_tiny(0.0, [0, 0, 0]), atol=1e-6)
    # global rotation (90° about z) and translation applied last
    out = model(betas=torch.tensor([[2.0]]), pose=_tiny_pose(), Rh=torch.tensor([[0, 0, math.pi / 2]]),
                Th=torch.tensor([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(out.vertices[0].numpy(), _expected_tiny(math.pi / 2, [1, 2, 3]), atol=1e-6)


def test_smpl_file_errors(tmp_path, monkeypatch, caplog):
    a = _tiny_arrays()
    a.pop("bs_style")
    bad = dict(a)
    bad.pop("weights")
    np.savez(tmp_path / "missing.npz", **bad)
    with pytest.raises(ValueError, match=r"missing\.npz.*'weights'"):
        read_smpl_file(tmp_path / "missing.npz")
    bad = dict(a, weights=np.ones((7, 4)) / 4)
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(ValueError, match=r"shape\.npz: 'weights' has shape \(7, 4\)"):
        read_smpl_file(tmp_path / "shape.npz")
    # a pickle that names anything but arrays is refused, naming the file
    import os

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"v_template": os.getcwd}))
    with pytest.raises(ValueError, match=r"evil\.pkl: refusing to load"):
        read_smpl_file(tmp_path / "evil.pkl")
    (tmp_path / "trunc.pkl").write_bytes(pickle.dumps(a)[:50])
    with pytest.raises(ValueError, match=r"trunc\.pkl"):
        read_smpl_file(tmp_path / "trunc.pkl")
    # no file: an error saying where to put it, unless the caller allows the template
    with pytest.raises(FileNotFoundError, match=r"smpl\.is\.tue\.mpg\.de.*allow_template"):
        load_body_model(tmp_path / "SMPL_NEUTRAL.pkl")
    with caplog.at_level(logging.WARNING):
        m = load_body_model(tmp_path / "SMPL_NEUTRAL.pkl", allow_template=True)
    assert m.num_joints == 24 and "procedural template" in caplog.text and "SMPL_NEUTRAL.pkl" in caplog.text


# ----------------------------------------------------------------------------------------------------------
# the procedural template
# ----------------------------------------------------------------------------------------------------------
def test_template_structure():
    d = build_template()
    V = d.v_template.shape[0]
    assert 2000 <= V <= 8000 and d.joint_names == SMPL_JOINT_NAMES and tuple(d.parents) == SMPL_PARENTS
    # closed surface: every edge in exactly two triangles, outward normals (positive volume)
    e = np.sort(np.concatenate([d.faces[:, [0, 1]], d.faces[:, [1, 2]], d.faces[:, [2, 0]]]), 1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert (counts == 2).all()
    tri = d.v_template[d.faces].astype(np.float64)
    assert np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6 > 0.03
    # weights: normalised, at most 3 bones per vertex; joints regressed exactly at rest
    np.testing.assert_allclose(d.weights.sum(1), 1, atol=1e-5)
    assert ((d.weights > 0).sum(1) <= 3).all()
    np.testing.assert_allclose(d.J_regressor.astype(np.float64) @ d.v_template, TEMPLATE_JOINTS, atol=1e-4)
    out = BodyModel(d)()
    np.testing.assert_allclose(out.vertices[0].numpy(), d.v_template, atol=1e-6)
    # β₀ (height) stretches heights about the pelvis by 10 %/unit; the joints follow
    out = BodyModel(d)(betas=torch.tensor([[1.0, 0.0]]))
    y0 = TEMPLATE_JOINTS[0, 1]
    np.testing.assert_allclose(out.joints[0, :, 1].numpy(), y0 + 1.1 * (TEMPLATE_JOINTS[:, 1] - y0), atol=1e-4)


def test_template_elbow_lbs_by_hand():
    """Left elbow (joint 18 at (0.43, 0.23, −0.02)) turned 90° about +z: a point p of the forearm goes to
    (0.43 − (p_y − 0.23), 0.23 + (p_x − 0.43), p_z); the wrist (0.68, 0.23, −0.02) to (0.43, 0.48, −0.02), the
    hand joint (0.76, 0.23, −0.02) to (0.43, 0.56, −0.02); vertices without weight on the elbow or below it do not
    move, those with weight w there move by w of the rotation."""
    d = build_template()
    model = BodyModel(d)
    pose = torch.zeros(1, 24, 3)
    pose[0, 18] = torch.tensor([0.0, 0.0, math.pi / 2])
    out = model(pose=pose)
    J = out.joints[0].numpy()
    np.testing.assert_allclose(J[18], [0.43, 0.23, -0.02], atol=1e-5)
    np.testing.assert_allclose(J[20], [0.43, 0.48, -0.02], atol=1e-5)
    np.testing.assert_allclose(J[22], [0.43, 0.56, -0.02], atol=1e-5)
    keep = [k for k in range(24) if k not in (18, 20, 22)]
    np.testing.assert_allclose(J[keep], TEMPLATE_JOINTS[keep], atol=1e-5)

    v = d.v_template.astype(np.float64)
    turned = np.stack([0.43 - (v[:, 1] - 0.23), 0.23 + (v[:, 0] - 0.43), v[:, 2]], 1)
    w = d.weights[:, [18, 20, 22]].sum(1).astype(np.float64)
    got = out.vertices[0].numpy()
    forearm = d.weights[:, 18] == 1.0
    upper_arm = d.weights[:, 16] == 1.0
    assert forearm.sum() >= 20 and upper_arm.sum() >= 20
    np.testing.assert_allclose(got[forearm], turned[forearm], atol=1e-5)
    # unmoved up to float32 rounding: the identity transforms are matrix products (last-bit errors on some CPUs)
    np.testing.assert_allclose(got[upper_arm], d.v_template[upper_arm], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, (1 - w[:, None]) * v + w[:, None] * turned, atol=1e-5)
    assert ((w > 0) & (w < 1)).sum() > 0  # the blend near the elbow is exercised


def test_forward_batched_and_differentiable():
    model = BodyModel(build_template())
    g = torch.Generator().manual_seed(0)
    pose = (0.3 * torch.randn(2, 72, generator=g)).requires_grad_(True)
    betas = torch.randn(2, 2, generator=g)
    out = model(betas, pose, Rh=torch.zeros(2, 3), Th=torch.ones(2, 3))
    one = model(betas[1:], pose[1:].detach())
    torch.testing.assert_close(out.vertices[1].detach(), one.vertices[0] + 1, atol=1e-5, rtol=0)
    out.vertices.square().sum().backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0
    # Rodrigues at zero is the identity and matches scipy elsewhere
    from scipy.spatial.transform import Rotation

    aa = torch.tensor([[0.0, 0.0, 0.0], [0.3, -1.2, 0.5]], dtype=torch.float64)
    np.testing.assert_allclose(rodrigues(aa).numpy(), Rotation.from_rotvec(aa.numpy()).as_matrix(), atol=1e-7)
    with pytest.raises(ValueError, match="pose must be"):
        model(pose=torch.zeros(1, 23, 3))


# ----------------------------------------------------------------------------------------------------------
# canonical-space SparseTensor of the body
# ----------------------------------------------------------------------------------------------------------
def test_canonical_sparse_tensor_by_hand():
    from perception3d.rendering.human.canonical import canonical_bounds, canonical_sparse_tensor

    # 0.1 m cells over [0, 0.4)³: vertices 0 and 1 share cell (x, y, z) = (0, 1, 2), vertex 2 is in (3, 0, 1)
    v = torch.tensor([[0.05, 0.15, 0.25], [0.02, 0.11, 0.29], [0.35, 0.05, 0.15]])
    f = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    st, v2v = canonical_sparse_tensor(v, f, voxel_size=0.1, bounds=(0, 0, 0, 0.4, 0.4, 0.4))
    assert st.spatial_shape == (4, 4, 4) and st.batch_size == 1 and st.voxel_size == (0.1, 0.1, 0.1)
    rows = {tuple(c.tolist()): i for i, c in enumerate(st.coords)}
    assert set(rows) == {(0, 2, 1, 0), (0, 1, 0, 3)}              # (b, z, y, x)
    torch.testing.assert_close(st.feats[rows[(0, 2, 1, 0)]], torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(st.feats[rows[(0, 1, 0, 3)]], torch.tensor([5.0, 5.0]))
    assert v2v.tolist() == [rows[(0, 2, 1, 0)]] * 2 + [rows[(0, 1, 0, 3)]]
    # without features: the mean vertex position
    st, _ = canonical_sparse_tensor(v, voxel_size=0.1, bounds=(0, 0, 0, 0.4, 0.4, 0.4))
    torch.testing.assert_close(st.feats[rows[(0, 2, 1, 0)]], torch.tensor([0.035, 0.13, 0.27]))

    # the template's T-pose, two bodies in a batch: every vertex lands in a voxel of the default grid (5 mm,
    # 5 cm margin, sizes multiples of 32) and lies inside its cell
    tv = torch.as_tensor(build_template().v_template)
    b = canonical_bounds(tv)
    st, v2v = canonical_sparse_tensor(torch.stack([tv, tv + 0.01]), torch.ones(2, len(tv), 4))
    assert st.batch_size == 2 and all(s % 32 == 0 for s in st.spatial_shape) and (v2v >= 0).all()
    assert b[0] == pytest.approx(float(tv[:, 0].min()) - 0.05, abs=1e-6)
    zyx = st.coords[v2v[: len(tv)], 1:].flip(1).double()
    lo = torch.tensor(canonical_bounds(torch.stack([tv, tv + 0.01]))[:3], dtype=torch.float64)
    cell = ((tv.double() - lo) / 0.005).floor()
    assert (zyx - cell).abs().max() <= 1  # float rounding at a cell border at most
    with pytest.raises(ValueError, match=r"features\[0\] must be"):
        canonical_sparse_tensor(tv, torch.ones(3, 4))
