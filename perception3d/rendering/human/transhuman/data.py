"""Frames of ZJU-MoCap-layout subjects for TransHuman: reference views, a target view and the posed body, at a
working resolution (the authors' ``ratio``), background set to black as in their loader."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..body_model import BodyModel, rodrigues
from ..zju_mocap import ZJUMoCap, read_zju_mocap
from .model import HumanInput

__all__ = ["HumanSubject", "FrameBody", "load_subjects"]


@dataclass
class FrameBody:
    """The posed body of one frame: verts [N, 3] world, vert_transforms [N, 4, 4], Rh [3, 3], Th [3]."""

    verts: torch.Tensor
    vert_transforms: torch.Tensor
    Rh: torch.Tensor
    Th: torch.Tensor


class HumanSubject:
    """One subject (a ZJU-MoCap sequence folder) at ``ratio`` of its image size; images and masks are cached as
    uint8 / bool on first use."""

    def __init__(self, seq: ZJUMoCap, body: BodyModel, ratio: float = 1.0) -> None:
        self.seq, self.body, self.name = seq, body, seq.root.name
        W, H = seq.cameras.width, seq.cameras.height
        self.width, self.height = max(1, round(W * ratio)), max(1, round(H * ratio))
        self.cameras = seq.cameras.resize(self.width, self.height)
        self._img: dict = {}
        self._body: dict = {}

    @property
    def num_frames(self) -> int:
        return len(self.seq)

    @property
    def num_cameras(self) -> int:
        return self.seq.num_cameras

    def check_views(self, views: Sequence[int], what: str) -> None:
        for c in views:
            if not 0 <= int(c) < self.num_cameras:
                raise ValueError(f"{self.seq.root / 'annots.npy'}: {what} view {c} requested, the subject has "
                                 f"{self.num_cameras} cameras")

    def view(self, f: int, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(image float [H, W, 3] with black background, mask bool [H, W]) at the working size."""
        key = (f, c)
        if key not in self._img:
            import cv2

            img = self.seq.image(f, c).numpy()
            msk = self.seq.mask(f, c).numpy().astype(np.uint8)
            if (img.shape[1], img.shape[0]) != (self.width, self.height):
                img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
                msk = cv2.resize(msk, (self.width, self.height), interpolation=cv2.INTER_NEAREST)
            img = img * msk[..., None]
            self._img[key] = (torch.from_numpy(np.round(img * 255).astype(np.uint8)), torch.from_numpy(msk > 0))
        img, msk = self._img[key]
        return img.float() / 255, msk

    def frame_body(self, f: int) -> FrameBody:
        if f not in self._body:
            verts = self.seq.vertices(f)
            n_model = self.body.v_template.shape[0]
            if verts.shape[0] != n_model:
                raise ValueError(f"{self.seq.vertex_paths[f]}: {verts.shape[0]} vertices, the body model has "
                                 f"{n_model} (wrong body model for this dataset?)")
            p = self.seq.params(f)
            S = self.body.num_betas
            betas = p["shapes"][:S][None]
            with torch.no_grad():
                out = self.body(betas=betas, pose=p["poses"][None])
            T = torch.einsum("vk,kij->vij", self.body.weights, out.transforms[0])      # Σ_k w_k G'_k
            self._body[f] = FrameBody(verts, T, rodrigues(p["Rh"]), p["Th"])
        return self._body[f]

    def inputs(self, f: int, views: Sequence[int]) -> HumanInput:
        imgs = torch.stack([self.view(f, c)[0] for c in views])
        cams = self.cameras[list(views)]
        b = self.frame_body(f)
        return HumanInput(imgs, cams.viewmats, cams.Ks, b.verts, b.vert_transforms, b.Rh, b.Th)


def load_subjects(root: str | Path, names: Sequence[str], body: BodyModel, ratio: float,
                  frames: Optional[Sequence[int]] = None) -> list[HumanSubject]:
    """Read ``root/<name>`` for each name (ZJU-MoCap layout; the reader's errors name the offending file)."""
    root = Path(root)
    out = []
    for n in names:
        if not (root / n).is_dir():
            raise FileNotFoundError(f"{root / n}: subject folder not found")
        out.append(HumanSubject(read_zju_mocap(root / n, frames=frames), body, ratio))
    return out
