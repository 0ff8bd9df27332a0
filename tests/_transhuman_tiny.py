"""Tiny multi-view human subjects in the ZJU-MoCap layout for the TransHuman tests: the procedural template body,
posed and coloured per subject, splatted (one small Gaussian per vertex) by this package's rasterizer from a ring
of cameras; world z up (the body's y-up T-pose is turned by Rh), K and T written as ZJU does (OpenCV K, T in mm)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from perception3d.rendering.human import BodyModel, build_template
from perception3d.rendering.rasterize import rasterize
from perception3d.structures.cameras import look_at


def subject_colours(canonical: np.ndarray, seed: int) -> np.ndarray:
    """Per-vertex RGB: shirt / trousers / skin by height, with a subject-specific palette and stripes."""
    rng = np.random.default_rng(seed)
    shirt, trousers, skin = rng.uniform(0.15, 0.95, 3), rng.uniform(0.1, 0.8, 3), np.array([0.85, 0.65, 0.5])
    y, x = canonical[:, 1], canonical[:, 0]
    col = np.where((y > -0.25)[:, None], shirt, trousers)
    col = np.where(((y > 0.33) | (np.abs(x) > 0.62))[:, None], skin, col)
    stripes = (np.sin(canonical[:, 1] * rng.uniform(20, 40)) > 0.6) & (y > -0.25) & (y < 0.33)
    col = np.where(stripes[:, None], 1 - col, col)
    return col.astype(np.float32)


def write_subject(root: Path, name: str, seed: int, n_cams: int = 8, n_frames: int = 2, size: int = 64,
                  radius: float = 3.0) -> Path:
    body = BodyModel(build_template())
    rng = np.random.default_rng(seed)
    sub = Path(root) / name
    eyes = [(radius * math.cos(2 * math.pi * c / n_cams), radius * math.sin(2 * math.pi * c / n_cams), 1.0)
            for c in range(n_cams)]
    c2w = look_at(torch.tensor(eyes), torch.tensor([0.0, 0.0, 0.95]), up=(0.0, 0.0, 1.0))
    viewmats = torch.linalg.inv(c2w)
    f = 1.2 * size
    K_cv = np.array([[f, 0, size / 2 - 0.5], [0, f, size / 2 - 0.5], [0, 0, 1]])   # OpenCV: centres at integers
    K_house = torch.tensor(K_cv, dtype=torch.float32)
    K_house[:2, 2] += 0.5
    colours = torch.from_numpy(subject_colours(body.v_template.numpy(), seed))
    betas = torch.tensor(rng.uniform(-1, 1, (1, 2)), dtype=torch.float32)
    ims = []
    for fr in range(n_frames):
        pose = torch.zeros(1, 24, 3)
        for j in (16, 17, 18, 19, 1, 2, 4, 5):
            pose[0, j] = torch.tensor(rng.uniform(-0.5, 0.5, 3), dtype=torch.float32)
        Rh = torch.tensor([[math.pi / 2, 0.0, 0.0]])
        Th = torch.tensor([[0.0, 0.0, 1.15]])
        out = body(betas=betas, pose=pose, Rh=Rh, Th=Th)
        verts = out.vertices[0]
        N = verts.shape[0]
        rc, ra, _ = rasterize(verts, torch.tensor([[1.0, 0, 0, 0]]).expand(N, 4), torch.full((N, 3), 0.02),
                              torch.full((N,), 0.95), colours, viewmats, K_house[None].expand(n_cams, 3, 3),
                              size, size, backgrounds=torch.zeros(n_cams, 3))
        names = []
        for c in range(n_cams):
            rel = f"Camera_B{c + 1}/{fr:06d}.png"
            (sub / rel).parent.mkdir(parents=True, exist_ok=True)
            (sub / "mask" / rel).parent.mkdir(parents=True, exist_ok=True)
            import imageio.v3 as iio
            iio.imwrite(sub / rel, (rc[c].clamp(0, 1) * 255).round().byte().numpy())
            iio.imwrite(sub / "mask" / rel, ((ra[c, ..., 0] > 0.5).numpy() * 255).astype(np.uint8))
            names.append(rel)
        ims.append({"ims": names})
        (sub / "new_vertices").mkdir(parents=True, exist_ok=True)
        (sub / "new_params").mkdir(parents=True, exist_ok=True)
        np.save(sub / "new_vertices" / f"{fr}.npy", verts.numpy())
        np.save(sub / "new_params" / f"{fr}.npy", {"poses": pose.reshape(1, 72).numpy(), "Rh": Rh.numpy(),
                                                   "Th": Th.numpy(), "shapes": betas.numpy()}, allow_pickle=True)
    cams = {"K": [K_cv] * n_cams, "D": [np.zeros((5, 1))] * n_cams,
            "R": [viewmats[c, :3, :3].double().numpy() for c in range(n_cams)],
            "T": [viewmats[c, :3, 3:].double().numpy() * 1000 for c in range(n_cams)]}
    np.save(sub / "annots.npy", {"cams": cams, "ims": ims}, allow_pickle=True)
    return sub
