"""Real spherical harmonics for view-dependent colour (3DGS, Kerbl et al. 2023, §4 / Appendix).

The basis and sign convention are those of the original 3DGS CUDA code (``forward.cu: computeColorFromSH``),
which is also what gsplat evaluates: degree ``l`` uses ``(l + 1)²`` coefficients per colour channel,
coefficient 0 is the DC term with ``C0 = 1 / (2 √π)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["SH_C0", "num_sh_bases", "sh_bases", "eval_sh", "rgb_to_sh", "sh_to_rgb"]

SH_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
       -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per channel for ``degree`` (0..3): ``(degree + 1)²``."""
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """SH basis functions at unit directions.

    Args:
        degree: 0..3.
        dirs: [..., 3] unit vectors (x, y, z).
    Returns:
        [..., (degree + 1)²] basis values in 3DGS order.
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"sh degree must be in 0..3, got {degree}")
    out = [torch.full_like(dirs[..., 0], SH_C0)]
    if degree >= 1:
        x, y, z = dirs.unbind(-1)
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [_C2[0] * xy, _C2[1] * yz, _C2[2] * (2.0 * zz - xx - yy), _C2[3] * xz, _C2[4] * (xx - yy)]
    if degree >= 3:
        out += [
            _C3[0] * y * (3.0 * xx - yy),
            _C3[1] * xy * z,
            _C3[2] * y * (4.0 * zz - xx - yy),
            _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            _C3[4] * x * (4.0 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, -1)


def eval_sh(degree: int, dirs: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Evaluate SH colours (no +0.5 offset, no clamp: the rasterizer applies those, as 3DGS does).

    Args:
        degree: bands to use (0..3); ``coeffs`` may hold more bands than used.
        dirs: [..., 3] view directions (camera → Gaussian), need not be normalised.
        coeffs: [..., K, 3] with K ≥ (degree + 1)².
    Returns:
        [..., 3].
    """
    n = num_sh_bases(degree)
    if coeffs.shape[-2] < n:
        raise ValueError(f"colors: sh_degree={degree} needs >= {n} SH coefficients, got {coeffs.shape[-2]}")
    b = sh_bases(degree, F.normalize(dirs, dim=-1))
    return (b[..., None] * coeffs[..., :n, :]).sum(-2)


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    """DC coefficient whose colour is ``rgb`` (``(rgb − 0.5) / C0``)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh0: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_sh`."""
    return sh0 * SH_C0 + 0.5
