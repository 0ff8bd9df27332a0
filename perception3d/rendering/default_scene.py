"""The built-in default scene: a checker-textured torus around a striped sphere, made of known 3D Gaussians and
rendered by our own rasterizer into a NeRF-synthetic-style dataset, so that 3DGS training and rendering run on
a fresh machine with no download::

    root/transforms_train.json, transforms_test.json   (Blender/OpenGL camera_to_world, camera_angle_x)
    root/train/r_<i>.png, root/test/r_<i>.png           (RGBA, straight alpha, like NeRF-synthetic)
    root/gt_gaussians.ply                              (the ground-truth Gaussians, 3DGS layout)

World frame: z up, object at the origin inside the unit ball. Cameras look at the origin from radius 3.2.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Union

import torch

from ..fileio import atomic_write_text
from perception3d.structures.cameras import focal_from_fov, look_at, opencv_to_opengl
from .gaussians import GaussianModel
from .sh import rgb_to_sh

__all__ = ["default_gaussians", "default_cameras", "make_default_scene"]


def _quat_z_to(n: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (w, x, y, z) rotating +z onto the unit normals n [N, 3]."""
    q = torch.stack([1.0 + n[:, 2], -n[:, 1], n[:, 0], torch.zeros_like(n[:, 0])], -1)
    flip = q[:, 0] < 1e-6  # n = −z: rotate by π about x
    q[flip] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    return q / q.norm(dim=-1, keepdim=True)


def default_gaussians(n_u: int = 64, n_v: int = 20, n_sphere: int = 500) -> GaussianModel:
    """The ground-truth object: flat Gaussians (surfels) tangent to a torus (R = 0.65, r = 0.22, red/yellow
    checker) and to a sphere (radius 0.3, blue/white stripes), opacity 0.95, SH degree 0."""
    R, r = 0.65, 0.22
    u = (torch.arange(n_u) + 0.5) * 2 * math.pi / n_u
    v = (torch.arange(n_v) + 0.5) * 2 * math.pi / n_v
    U, V = torch.meshgrid(u, v, indexing="ij")
    U, V = U.reshape(-1), V.reshape(-1)
    tor = torch.stack([(R + r * torch.cos(V)) * torch.cos(U), (R + r * torch.cos(V)) * torch.sin(U),
                       r * torch.sin(V)], -1)
    n_tor = torch.stack([torch.cos(V) * torch.cos(U), torch.cos(V) * torch.sin(U), torch.sin(V)], -1)
    iu = torch.arange(n_u).repeat_interleave(n_v)
    iv = torch.arange(n_v).repeat(n_u)
    checker = ((iu // 4 + iv // 4) % 2).float()[:, None]
    c_tor = checker * torch.tensor([0.9, 0.15, 0.1]) + (1 - checker) * torch.tensor([0.95, 0.8, 0.2])
    s_tor = torch.stack([torch.full_like(U, 0.7 * 2 * math.pi * (R + r) / n_u),
                         torch.full_like(U, 0.7 * 2 * math.pi * r / n_v), torch.full_like(U, 0.01)], -1)
    # sphere: Fibonacci points
    k = torch.arange(n_sphere, dtype=torch.float32) + 0.5
    phi = torch.acos(1 - 2 * k / n_sphere)
    th = math.pi * (1 + 5 ** 0.5) * k
    n_sph = torch.stack([torch.cos(th) * torch.sin(phi), torch.sin(th) * torch.sin(phi), torch.cos(phi)], -1)
    sph = 0.3 * n_sph
    stripe = ((phi / math.pi * 6).floor() % 2)[:, None]
    c_sph = stripe * torch.tensor([0.15, 0.3, 0.9]) + (1 - stripe) * torch.tensor([0.95, 0.95, 0.95])
    spacing = 0.3 * math.sqrt(4 * math.pi / n_sphere)
    s_sph = torch.tensor([0.8 * spacing, 0.8 * spacing, 0.01]).repeat(n_sphere, 1)
    means = torch.cat([tor, sph])
    normals = torch.cat([n_tor, n_sph])
    rgb = torch.cat([c_tor, c_sph])
    n = len(means)
    params = {
        "means": means,
        "scales": torch.log(torch.cat([s_tor, s_sph])),
        "quats": _quat_z_to(normals),
        "opacities": torch.logit(torch.full((n,), 0.95)),
        "sh0": rgb_to_sh(rgb)[:, None, :],
        "shN": torch.zeros(n, 0, 3),
    }
    return GaussianModel(params, sh_degree=0)


def default_cameras(n: int, radius: float = 3.2, seed: int = 0, elevation_range=(-20.0, 60.0)) -> torch.Tensor:
    """``n`` OpenCV camera → world poses [n, 4, 4] looking at the origin from ``radius``: azimuths evenly
    spread (golden-angle), elevations uniform in ``elevation_range`` degrees."""
    g = torch.Generator().manual_seed(seed)
    az = torch.arange(n) * math.pi * (3 - 5 ** 0.5) + torch.rand(1, generator=g) * 2 * math.pi
    el = torch.deg2rad(torch.empty(n).uniform_(*elevation_range, generator=g))
    eyes = radius * torch.stack([torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)], -1)
    return look_at(eyes, torch.zeros(3), (0.0, 0.0, 1.0))


@torch.no_grad()
def make_default_scene(root: Union[str, Path], n_train: int = 40, n_test: int = 8, size: int = 96,
                       fov_deg: float = 40.0, seed: int = 0) -> Path:
    """Render the default object into ``root`` (NeRF-synthetic layout, see the module doc); returns ``root``.

    The JSON files are written last, so a half-made folder is never taken for a finished one."""
    import imageio.v3 as iio

    root = Path(root)
    model = default_gaussians()
    fov = math.radians(fov_deg)
    f = focal_from_fov(fov, size)
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    metas = {}
    for split, n, sd in (("train", n_train, seed), ("test", n_test, seed + 1)):
        (root / split).mkdir(parents=True, exist_ok=True)
        c2w = default_cameras(n, seed=sd)
        viewmats = torch.linalg.inv(c2w)
        frames = []
        for i in range(n):
            out, alpha, _ = model.render(viewmats[i:i + 1], K[None], size, size, backend="torch")
            a = alpha[0]
            rgb = torch.where(a > 0, out[0] / a.clamp_min(1e-8), torch.zeros_like(out[0]))  # straight alpha
            rgba = torch.cat([rgb, a], -1).clamp(0, 1)
            iio.imwrite(root / split / f"r_{i}.png", (rgba * 255).round().byte().numpy())
            frames.append({"file_path": f"./{split}/r_{i}",
                           "transform_matrix": opencv_to_opengl(c2w[i]).tolist()})
        metas[split] = {"camera_angle_x": fov, "frames": frames}
    model.save_ply(root / "gt_gaussians.ply")
    for split, meta in metas.items():
        atomic_write_text(root / f"transforms_{split}.json", json.dumps(meta, indent=1))
    return root


