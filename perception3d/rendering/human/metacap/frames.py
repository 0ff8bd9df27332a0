"""One captured frame for MetaCap: the posed body model with its space canonicalisation, the calibrated images and
masks, and the rays sampled from them.

Space canonicalisation (MetaCap's pose-canonicalised space; the authors' ``_unbatched_point_to_mesh_interp`` of
per-vertex inverse skinning transforms): a posed-space point x takes the skinning weights of the body surface next
to it (here the inverse-distance blend of its 4 nearest posed body vertices), forms the blended forward transform
A(x) = Σ_k w_k(x) G_k (G_k: joint k's rest → world transform, LBS eq. 2 of SMPL with the global Rh/Th) and maps
x to the canonical (rest-pose, shaped) space as x_c = A(x)⁻¹ x. Only points within ``threshold`` of the posed body
vertices are sampled (the authors' occupancy grid from the body model: 5 cm for their DDC template, 7.5 cm for
SMPL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from perception3d.structures.cameras import Cameras
from ..body_model import BodyModel, rodrigues
from ..zju_mocap import ZJUMoCap

__all__ = ["FrameBody", "FrameData", "pose_body", "canonical_body", "load_frame", "sample_rays", "camera_rays"]


@dataclass
class FrameBody:
    """A posed body and its canonicalisation.

    Attributes:
        verts: [V, 3] posed vertices (world); verts_c: [V, 3] canonical (rest, shaped) vertices.
        faces: [F, 3]; weights: [V, K] skinning weights; G: [K, 4, 4] rest → world transform of each joint.
    """

    verts: torch.Tensor
    verts_c: torch.Tensor
    faces: torch.Tensor
    weights: torch.Tensor
    G: torch.Tensor
    _trees: dict = field(default_factory=dict, repr=False)

    def tree(self, canonical: bool = False):
        from scipy.spatial import cKDTree

        key = "c" if canonical else "w"
        if key not in self._trees:
            self._trees[key] = cKDTree((self.verts_c if canonical else self.verts).double().numpy())
        return self._trees[key]

    def distance(self, x: torch.Tensor, canonical: bool = False, upper: float = float("inf")) -> torch.Tensor:
        """Distance [N] of points [N, 3] to the nearest (posed or canonical) body vertex (inf beyond ``upper``: the
        tree search stops early)."""
        d, _ = self.tree(canonical).query(x.detach().double().cpu().numpy(), k=1, distance_upper_bound=upper)
        return torch.from_numpy(d).to(x)

    def blended_transforms(self, x: torch.Tensor, canonical: bool = False, k: int = 4) -> torch.Tensor:
        """A(x) [N, 4, 4]: the forward skinning transform at points [N, 3] (weights of the k nearest vertices,
        inverse-distance blended; nearest among posed vertices, or canonical ones for canonical points)."""
        d, idx = self.tree(canonical).query(x.detach().double().cpu().numpy(), k=k)
        d, idx = torch.from_numpy(d).to(x), torch.from_numpy(idx).to(x.device)
        w = 1.0 / d.clamp_min(1e-4)
        w = w / w.sum(-1, keepdim=True)
        sw = (w[..., None] * self.weights[idx]).sum(1)                          # [N, K]
        return torch.einsum("nk,kij->nij", sw, self.G)

    def to_canonical(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed points [N, 3] → (canonical points [N, 3], M [N, 3, 3] the linear part of A(x)⁻¹)."""
        A = self.blended_transforms(x)
        Minv = torch.linalg.inv(A[:, :3, :3])
        xc = torch.einsum("nij,nj->ni", Minv, x - A[:, :3, 3])
        return xc, Minv

    def to(self, device) -> "FrameBody":
        return FrameBody(self.verts.to(device), self.verts_c.to(device), self.faces.to(device),
                         self.weights.to(device), self.G.to(device), self._trees)

    def to_world(self, xc: torch.Tensor) -> torch.Tensor:
        """Canonical points [N, 3] → posed (world) points, skinned with the canonical neighbours' weights."""
        A = self.blended_transforms(xc, canonical=True)
        return torch.einsum("nij,nj->ni", A[:, :3, :3], xc) + A[:, :3, 3]


def pose_body(body: BodyModel, params: dict, source: str = "params") -> FrameBody:
    """Pose ``body`` with ZJU-MoCap parameters (poses [72], Rh [3], Th [3], shapes [S]); shape coefficients beyond
    the model's must be 0 (the built-in dataset stores its template's 2 in a 10-vector)."""
    shapes = params["shapes"].float().reshape(-1)
    S = body.num_betas
    if shapes.numel() > S:
        if torch.any(shapes[S:] != 0):
            raise ValueError(f"{source}: 'shapes' has {shapes.numel()} non-zero coefficients but the body model "
                             f"({body.data.source}) has {S}: wrong body model for this sequence?")
        shapes = shapes[:S]
    with torch.no_grad():
        out = body(betas=shapes[None], pose=params["poses"].float()[None], Rh=params["Rh"].float()[None],
                   Th=params["Th"].float()[None])
    R = rodrigues(params["Rh"].float().reshape(1, 3))[0]
    G = out.transforms[0].clone()
    G[:, :3, :3] = R @ G[:, :3, :3]
    G[:, :3, 3] = G[:, :3, 3] @ R.T + params["Th"].float().reshape(3)
    return FrameBody(out.vertices[0], out.v_shaped[0], body.faces, body.weights, G)


def canonical_body(fb: FrameBody) -> FrameBody:
    """The same body in its canonical space (identity transforms): what the occlusion proxies are rendered in."""
    K = fb.G.shape[0]
    return FrameBody(fb.verts_c, fb.verts_c, fb.faces, fb.weights, torch.eye(4, device=fb.G.device).repeat(K, 1, 1))


@dataclass
class FrameData:
    """Images uint8 [C, H, W, 3], masks bool [C, H, W], cameras [C], the posed body, and per camera the pixel box
    (x0, y0, x1, y1) around the projected body (the "tight" crop rays are drawn from)."""

    images: torch.Tensor
    masks: torch.Tensor
    cameras: Cameras
    body: FrameBody
    boxes: torch.Tensor
    name: str = ""

    def to(self, device) -> "FrameData":
        """The frame on ``device`` (images, masks, cameras, body; the KD-trees stay on the CPU)."""
        return FrameData(self.images.to(device), self.masks.to(device), self.cameras.to(device),
                         self.body.to(device), self.boxes.to(device), self.name)


def _boxes(cams: Cameras, verts: torch.Tensor, margin: int = 4) -> torch.Tensor:
    uv, _ = cams.project(verts)
    lo = uv.min(1).values.floor() - margin
    hi = uv.max(1).values.ceil() + margin
    W, H = cams.width, cams.height
    return torch.stack([lo[:, 0].clamp(0, W - 1), lo[:, 1].clamp(0, H - 1),
                        hi[:, 0].clamp(1, W), hi[:, 1].clamp(1, H)], -1).long()


def load_frame(seq: ZJUMoCap, f: int, body: BodyModel, cameras: Optional[Sequence[int]] = None) -> FrameData:
    """Frame index ``f`` of a sequence with the cameras ``cameras`` (indices into ``seq.cameras``, default all)."""
    cams = list(range(seq.num_cameras)) if cameras is None else [int(c) for c in cameras]
    for c in cams:
        if not 0 <= c < seq.num_cameras:
            raise ValueError(f"{seq.root}: camera {c} requested, the sequence has {seq.num_cameras}")
    fb = pose_body(body, seq.params(f), source=str(seq.root / "new_params" / f"{seq.frame_ids[f]}.npy"))
    stored = seq.vertices(f)
    if stored.shape != fb.verts.shape:
        raise ValueError(f"{seq.vertex_paths[f]}: {stored.shape[0]} vertices but the body model ({body.data.source}) "
                         f"has {fb.verts.shape[0]}: wrong body model for this sequence?")
    images = torch.stack([(seq.image(f, c) * 255).round().to(torch.uint8) for c in cams])
    masks = torch.stack([seq.mask(f, c) for c in cams])
    cs = seq.cameras[cams]
    return FrameData(images, masks, cs, fb, _boxes(cs, fb.verts), f"{seq.root.name}/{seq.frame_ids[f]}")


def camera_rays(cams: Cameras, cam_idx: torch.Tensor, px: torch.Tensor, py: torch.Tensor):
    """World rays through pixel centres: camera indices [N], pixel columns / rows [N] → (origins, unit dirs)."""
    K = cams.Ks[cam_idx]
    c2w = cams.camtoworlds[cam_idx]
    d_cam = torch.stack([(px + 0.5 - K[:, 0, 2]) / K[:, 0, 0], (py + 0.5 - K[:, 1, 2]) / K[:, 1, 1],
                         torch.ones_like(px, dtype=K.dtype)], -1)
    d = torch.einsum("nij,nj->ni", c2w[:, :3, :3], d_cam)
    return c2w[:, :3, 3], d / d.norm(dim=-1, keepdim=True)


def sample_rays(frame: FrameData, n: int, gen: torch.Generator, cams: Optional[Sequence[int]] = None):
    """``n`` random rays from the frame's cameras (``cams``: indices into ``frame.cameras``; default all), pixels
    uniform in each camera's body box → (origins [n, 3], dirs [n, 3], rgb [n, 3] in [0, 1], mask [n] float)."""
    pool = torch.arange(len(frame.cameras)) if cams is None else torch.as_tensor(list(cams))
    ci = pool[torch.randint(len(pool), (n,), generator=gen)]
    b = frame.boxes.cpu()[ci].double()
    px = (b[:, 0] + torch.rand(n, generator=gen, dtype=torch.float64) * (b[:, 2] - b[:, 0])).floor().long()
    py = (b[:, 1] + torch.rand(n, generator=gen, dtype=torch.float64) * (b[:, 3] - b[:, 1])).floor().long()
    dev = frame.images.device
    ci, px, py = ci.to(dev), px.to(dev), py.to(dev)
    o, d = camera_rays(frame.cameras, ci, px, py)
    rgb = frame.images[ci, py, px].float() / 255.0
    m = frame.masks[ci, py, px].float()
    return o, d, rgb, m
