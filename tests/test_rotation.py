"""The one quaternion → rotation conversion (structures.rotation), shared by the rasterizer and the readers."""
import math

import torch

from perception3d.rendering import rasterize_torch
from perception3d.structures.rotation import quat_to_rotmat, rotmat_to_quat


def test_known_answer_90_deg_about_z():
    h = math.sqrt(0.5)
    R = quat_to_rotmat(torch.tensor([h, 0.0, 0.0, h], dtype=torch.float64))
    expect = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(R, expect, atol=1e-15, rtol=0)


def test_any_norm_orthonormal_and_round_trip():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(64, 4, generator=g, dtype=torch.float64) * 3.0
    R = quat_to_rotmat(q)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(64, dtype=torch.float64))
    q_back = rotmat_to_quat(R)
    qn = q / q.norm(dim=-1, keepdim=True)
    sign = torch.sign((q_back * qn).sum(-1, keepdim=True))  # q and −q are the same rotation
    torch.testing.assert_close(q_back * sign, qn)


def test_zero_quaternion_gives_no_nan():
    assert torch.isfinite(quat_to_rotmat(torch.zeros(2, 4))).all()


def test_rasterizer_uses_the_shared_helper():
    assert rasterize_torch.quat_to_rotmat is quat_to_rotmat
    q, s = torch.randn(5, 4), torch.rand(5, 3) + 0.1
    M = quat_to_rotmat(q) * s[:, None, :]
    assert torch.equal(rasterize_torch.covariance_3d(q, s), M @ M.transpose(-1, -2))
