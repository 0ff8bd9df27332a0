"""TransHuman (Pan et al., "TransHuman: A Transformer-based Human Representation for Generalizable Neural Human
Rendering", ICCV 2023): reference views of a person → painted canonical body (SparseTensor) → k-means tokens →
TransHE → DPaRF per query point → FDI with pixel-aligned features → volume rendering. No per-subject training:
one network renders any person from V reference views."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ....sparse import SparseTensor
from .dparf import DPaRF
from .encoder import ImageEncoder
from .fdi import FDIHead
from .kmeans import kmeans_labels, pool_by_label
from .painting import paint_body, painted_tokens, project
from .transhe import TransHE
from .volume import near_body, render_rays

__all__ = ["TransHuman", "HumanContext", "HumanInput"]


@dataclass
class HumanInput:
    """One frame as the network sees it.

    images [V, H, W, 3] reference views in [0, 1] (background black); viewmats [V, 4, 4], Ks [V, 3, 3];
    verts [N, 3] posed body vertices (world); vert_transforms [N, 4, 4] per-vertex LBS transforms
    Σ_k w_k G'_k (canonical → posed, body coordinates); Rh [3, 3], Th [3] the global rotation / translation
    (``v_world = Rh v_body + Th``)."""

    images: torch.Tensor
    viewmats: torch.Tensor
    Ks: torch.Tensor
    verts: torch.Tensor
    vert_transforms: torch.Tensor
    Rh: torch.Tensor
    Th: torch.Tensor


@dataclass
class HumanContext:
    """What the reference views give, computed once per frame and shared by all rays."""

    painted: SparseTensor           # canonical painted body, batch = view
    tokens: torch.Tensor            # [V, k, C] TransHE output
    token_pos: torch.Tensor         # [k, 3] posed token centres, body coordinates
    token_rot: torch.Tensor         # [k, 3, 3] token LBS rotations (canonical → posed)
    maps: list                      # the encoder's feature maps (pixel-aligned features are sampled from them)
    inp: HumanInput


class TransHuman(nn.Module):
    """The network. ``canonical_verts`` [N, 3] is the body model's T-pose (it fixes the k-means tokens)."""

    def __init__(self, canonical_verts: torch.Tensor, num_tokens: int = 300, dim: int = 192, depth: int = 12,
                 heads: int = 3, knn: int = 7, knn_freqs: int = 10, knn_alpha: float = 0.5, head_width: int = 256,
                 att_dim: int = 128, voxel_size: float = 0.005, encoder_weights: Optional[str] = None,
                 kmeans_seed: int = 0, token_mask_ratio: float = 0.0) -> None:
        super().__init__()
        cv = torch.as_tensor(canonical_verts, dtype=torch.float32)
        labels = kmeans_labels(cv, num_tokens, seed=kmeans_seed)
        self.num_tokens, self.voxel_size, self.token_mask_ratio = num_tokens, voxel_size, token_mask_ratio
        self.register_buffer("canonical_verts", cv)
        self.register_buffer("labels", labels)
        self.register_buffer("token_canonical", pool_by_label(cv, labels, num_tokens))
        self.encoder = ImageEncoder(dim, encoder_weights)
        self.transhe = TransHE(dim, depth, heads)
        self.dparf = DPaRF(knn, knn_freqs, knn_alpha)
        self.head = FDIHead(dim + self.dparf.d_pe, ImageEncoder.pixel_dim, head_width, att_dim)

    # -- reference views → tokens ------------------------------------------------------------------------------
    def encode(self, inp: HumanInput) -> HumanContext:
        N = self.canonical_verts.shape[0]
        if inp.verts.shape != (N, 3):
            raise ValueError(f"TransHuman: the frame has {tuple(inp.verts.shape)} vertices, the body model {N}")
        V, H, W, _ = inp.images.shape
        maps = self.encoder(inp.images.permute(0, 3, 1, 2))
        holder = lambda uv: self.encoder.holder(self.encoder.pixel_features(maps, uv, W, H))  # noqa: E731
        painted, v2v, _ = paint_body(inp.verts, self.canonical_verts, holder, inp.viewmats, inp.Ks, W, H,
                                     self.voxel_size)
        tokens = painted_tokens(painted, v2v, self.labels, self.num_tokens)              # [V, k, C]
        mask = None
        if self.training and self.token_mask_ratio > 0:
            mask = torch.rand(tokens.shape[:2], device=tokens.device) < self.token_mask_ratio
        tokens = self.transhe(tokens, self.token_canonical, mask)
        verts_body = (inp.verts - inp.Th) @ inp.Rh
        token_pos = pool_by_label(verts_body, self.labels, self.num_tokens)
        rot = pool_by_label(inp.vert_transforms[:, :3, :3].reshape(N, 9), self.labels, self.num_tokens)
        return HumanContext(painted, tokens, token_pos, rot.view(-1, 3, 3), maps, inp)

    # -- query points → raw ----------------------------------------------------------------------------------
    def query(self, ctx: HumanContext, pts: torch.Tensor, viewdir: torch.Tensor) -> torch.Tensor:
        """pts [P, 3] world, viewdir [P, 3] unit → raw [P, 4] (rgb logits, σ)."""
        inp = ctx.inp
        H, W = inp.images.shape[1:3]
        pts_body = (pts - inp.Th) @ inp.Rh
        human = self.dparf(pts_body, ctx.token_pos, ctx.token_rot, ctx.tokens)           # [V, P, C + 63]
        uv, _ = project(pts, inp.viewmats, inp.Ks)
        pixel = self.encoder.pixel_features(ctx.maps, uv, W, H)                          # [V, P, 384]
        return self.head(human, pixel, viewdir)

    def render_rays(self, ctx: HumanContext, o: torch.Tensor, d: torch.Tensor, box: torch.Tensor,
                    n_samples: int = 64, perturb: bool = False, chunk: int = 4096,
                    skip_far: Optional[float] = None, generator: Optional[torch.Generator] = None) -> dict:
        """Render rays o, d [R, 3] through the body box [2, 3] (:func:`.volume.render_rays`). ``skip_far``:
        samples farther than this (metres) from every body vertex get zero density without evaluating the network
        (the authors' fast inference uses 0.1 m)."""
        keep = None if skip_far is None else near_body(ctx.inp.verts, skip_far)
        return render_rays(lambda p, v: self.query(ctx, p, v), o, d, box, n_samples, perturb, chunk, keep,
                           generator)
