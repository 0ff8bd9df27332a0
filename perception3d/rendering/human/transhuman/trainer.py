"""Training and evaluation of TransHuman from a config (``tools/train_human.py configs/transhuman_*.py``).

Each step draws a training subject, a frame, ``num_input_views`` random reference cameras and a random target
camera (the authors' sampling), renders ``n_rays`` rays of the target inside the body box (``body_sample_ratio``
of them on the body mask) and takes an MSE step. Evaluation renders the **unseen test subjects**' target views
from their fixed reference views and scores them with the authors' protocol (:mod:`.metrics`).

Outputs under ``work_dir``: ``ckpt_latest.pt`` (atomic; ``method = "transhuman"``, the config, the weights),
``metrics.json``, ``renders/step_NNNNNN.png`` (rows: reference views | render | ground truth).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ....fileio import atomic_torch_save, atomic_write_text
from ....ops.image_quality import ssim_differentiable
from ....registry import RENDER_METHODS
from ...config import section
from ...trainer import seed_everything
from ..body_model import load_body_model
from .config import THDataConfig, THModelConfig, THTrainConfig
from .data import HumanSubject, load_subjects
from .metrics import evaluate_view
from .model import TransHuman
from .volume import body_box, camera_rays, ray_box

__all__ = ["TransHumanTrainer", "load_transhuman", "render_view", "build_subjects"]
log = logging.getLogger(__name__)


# the RGB channel orders other than the identity (train.colour_aug)
COLOUR_PERMUTATIONS = ([0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0])


def build_subjects(data: THDataConfig, which: str, body) -> list[HumanSubject]:
    """The ``train`` or ``test`` subjects of a data section (generating the built-in dataset when configured)."""
    names = list(data.train_subjects if which == "train" else data.test_subjects)
    root = Path(data.root)
    if data.builtin:   # the built-in multi-view human dataset, generated on first use
        from ..synthetic import ensure_synthetic_humans

        ensure_synthetic_humans(root, **dict(data.builtin))
    return load_subjects(root, names, body, data.ratio, data.frames)


@torch.no_grad()
def render_view(model: TransHuman, subject: HumanSubject, f: int, input_views: Sequence[int], viewmat, K,
                width: int, height: int, box_pad=(0.0, 0.0, 0.05), n_samples: int = 64,
                skip_far: Optional[float] = 0.1, chunk: int = 32768) -> dict:
    """Render one camera of frame ``f`` of ``subject`` from its ``input_views`` → dict(rgb [H, W, 3],
    acc [H, W], mask_at_box bool [H, W])."""
    model.eval()
    ctx = model.encode(subject.inputs(f, input_views))
    box = body_box(ctx.inp.verts, box_pad)
    o, d = camera_rays(viewmat, K, width, height)
    out = model.render_rays(ctx, o, d, box, n_samples, False, chunk, skip_far)
    return dict(rgb=out["rgb"].view(height, width, 3), acc=out["acc"].view(height, width),
                mask_at_box=out["hit"].view(height, width))


@RENDER_METHODS.register_module(name="transhuman")
class TransHumanTrainer:
    """Args as every rendering trainer: cfg (``data``, ``model``, ``train`` sections), work_dir, seed, resume."""

    def __init__(self, cfg, work_dir, seed: int = 0, resume: bool = False, progress: bool = True):
        self.cfg = {k: dict(cfg[k]) if k in cfg else {} for k in ("data", "model", "train")}
        self.data_cfg = section(THDataConfig, self.cfg["data"], "data")
        self.model_cfg = section(THModelConfig, self.cfg["model"], "model")
        self.tcfg = section(THTrainConfig, self.cfg["train"], "train")
        self.work_dir, self.seed, self.progress = Path(work_dir), seed, progress
        self.gen = seed_everything(seed)
        d = self.data_cfg
        if not d.train_subjects or not d.test_subjects:
            raise ValueError("data.train_subjects and data.test_subjects must both name subjects")
        if len(d.input_views) < 1:
            raise ValueError("data.input_views: at least one reference view")
        self.body = load_body_model(d.body_model, allow_template=d.allow_template)
        self.train_subjects = build_subjects(d, "train", self.body)
        self.test_subjects = build_subjects(d, "test", self.body)
        for s in self.test_subjects:
            s.check_views(d.input_views, "input")
            s.check_views(d.target_views, "target")
        for s in self.train_subjects:
            if s.num_cameras < d.num_input_views + 1:
                raise ValueError(f"{s.seq.root}: {s.num_cameras} cameras, training needs "
                                 f"num_input_views + 1 = {d.num_input_views + 1}")
        self.model = TransHuman(self.body.v_template, **dataclasses.asdict(self.model_cfg))
        self.priors = {"image_encoder": "resnet18 weights " + (self.model_cfg.encoder_weights or "none (random init)"),
                       "loss": "MSE (no LPIPS-VGG term: no pretrained VGG offline)"}
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.tcfg.lr)
        self.step, self.cpu_used, self.history = 0, 0.0, []
        self.ckpt_path = self.work_dir / "ckpt_latest.pt"
        if resume and self.ckpt_path.is_file():
            self.load_checkpoint(self.ckpt_path)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if progress:
            n = sum(p.numel() for p in self.model.parameters())
            print(f"[transhuman] {n:,} parameters; {len(self.train_subjects)} training / "
                  f"{len(self.test_subjects)} unseen test subjects; {json.dumps(self.priors)}", flush=True)

    # -- schedule ---------------------------------------------------------------------------------------------
    def progress_frac(self, cpu: float, wall: float) -> float:
        t = self.tcfg
        fr = [self.step / max(1, t.max_steps)]
        if t.max_cpu_minutes:
            fr.append(cpu / (60 * t.max_cpu_minutes))
        if t.max_minutes:
            fr.append(wall / (60 * t.max_minutes))
        return min(1.0, max(fr))

    def lr_at(self, frac: float) -> float:
        """Linear warm-up over ``warmup_frac`` of the run, then cosine to ``end_lr`` (the authors' schedule)."""
        t = self.tcfg
        if frac < t.warmup_frac:
            return t.lr * max(frac / t.warmup_frac, 0.01)
        x = (frac - t.warmup_frac) / max(1e-8, 1 - t.warmup_frac)
        return t.end_lr + 0.5 * (t.lr - t.end_lr) * (1 + math.cos(math.pi * min(1.0, x)))

    # -- one step ---------------------------------------------------------------------------------------------
    def _randint(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.gen))

    def sample_rays(self, s: HumanSubject, f: int, c: int, box: torch.Tensor):
        """``n_rays`` rays of camera c inside the box, ``body_sample_ratio`` of them on the mask →
        (o, d, rgb) each [R, 3]."""
        img, msk = s.view(f, c)
        cam = s.cameras[c]
        o, d = camera_rays(cam.viewmats[0], cam.Ks[0], s.width, s.height)
        hit = ray_box(o, d, box)[2]
        body = torch.nonzero(hit & msk.flatten()).flatten()
        inside = torch.nonzero(hit).flatten()
        if inside.numel() == 0:
            raise ValueError(f"{s.seq.image_paths[f][c]}: the body box is not in this view")
        n = self.tcfg.n_rays
        if self.tcfg.patch_size > 0:
            return self._sample_patches(o, d, img, body if body.numel() else inside, s.width, s.height)
        nb = min(int(n * self.tcfg.body_sample_ratio), body.numel())
        pick = [body[torch.randint(body.numel(), (nb,), generator=self.gen)]] if nb else []
        pick.append(inside[torch.randint(inside.numel(), (n - nb,), generator=self.gen)])
        j = torch.cat(pick)
        return o[j], d[j], img.reshape(-1, 3)[j]

    def _sample_patches(self, o, d, img, centres, W: int, H: int):
        """``n_rays // P²`` square P × P patches (P = ``patch_size``), each centred on a random pixel of ``centres``
        (flat indices; the body-mask pixels) and moved inside the image → (o, d, rgb) each [n·P², 3], patch by patch
        in row-major order."""
        P = self.tcfg.patch_size
        if P > min(W, H):
            raise ValueError(f"train.patch_size {P} is larger than the {W} x {H} images")
        n = max(1, self.tcfg.n_rays // (P * P))
        c = centres[torch.randint(centres.numel(), (n,), generator=self.gen)]
        x0 = (c % W - P // 2).clamp(0, W - P)
        y0 = (c // W - P // 2).clamp(0, H - P)
        r = torch.arange(P)
        j = ((y0[:, None, None] + r[None, :, None]) * W + x0[:, None, None] + r[None, None, :]).reshape(-1)
        return o[j], d[j], img.reshape(-1, 3)[j]

    def photometric_loss(self, pred: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """MSE over the rays, plus ``lambda_dssim`` × (1 − SSIM) over the patches when rays come as patches."""
        loss = F.mse_loss(pred, rgb)
        t = self.tcfg
        if t.patch_size > 0 and t.lambda_dssim > 0:
            P = t.patch_size
            to_img = lambda x: x.reshape(-1, P, P, 3).permute(0, 3, 1, 2)
            window = min(7, P - 1 + P % 2)  # odd, at most the patch
            loss = loss + t.lambda_dssim * (1 - ssim_differentiable(to_img(pred), to_img(rgb), window=window))
        return loss

    def colour_permutation(self) -> Optional[list[int]]:
        """With probability ``train.colour_aug``, one of the 5 non-identity RGB channel orders (else None)."""
        p = self.tcfg.colour_aug
        if p <= 0 or float(torch.rand((), generator=self.gen)) >= p:
            return None
        return COLOUR_PERMUTATIONS[self._randint(len(COLOUR_PERMUTATIONS))]

    def train_step(self) -> dict:
        self.model.train()
        s = self.train_subjects[self._randint(len(self.train_subjects))]
        f = self._randint(s.num_frames)
        perm = torch.randperm(s.num_cameras, generator=self.gen).tolist()
        views, target = perm[:self.data_cfg.num_input_views], perm[self._randint(s.num_cameras)]
        inp = s.inputs(f, views)
        colours = self.colour_permutation()
        if colours is not None:
            inp = dataclasses.replace(inp, images=inp.images[..., colours])
        ctx = self.model.encode(inp)
        box = body_box(ctx.inp.verts, self.data_cfg.box_pad)
        o, d, rgb = self.sample_rays(s, f, target, box)
        if colours is not None:
            rgb = rgb[:, colours]
        out = self.model.render_rays(ctx, o, d, box, self.tcfg.n_samples, True, 1 << 30, self.tcfg.train_skip_far,
                                     self.gen)
        loss = self.photometric_loss(out["rgb"], rgb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        lv = loss.item()
        return {"loss": lv, "psnr": -10 * math.log10(max(lv, 1e-10))}

    # -- loop -------------------------------------------------------------------------------------------------
    def train(self) -> dict:
        t = self.tcfg
        if t.num_threads is None:
            return self._train()
        if t.num_threads < 1:
            raise ValueError(f"train.num_threads must be >= 1 (or None), got {t.num_threads}")
        before = torch.get_num_threads()
        torch.set_num_threads(int(t.num_threads))
        try:
            return self._train()
        finally:
            torch.set_num_threads(before)

    def _train(self) -> dict:
        t = self.tcfg
        t0, c0 = time.time(), time.process_time() - self.cpu_used
        last = None
        while self.step < t.max_steps:
            frac = self.progress_frac(time.process_time() - c0, time.time() - t0)
            if frac >= 1.0:
                break
            for g in self.opt.param_groups:
                g["lr"] = self.lr_at(frac)
            stats = self.train_step()
            self.step += 1
            self.cpu_used = time.process_time() - c0
            if self.step % t.log_every == 0 or self.step == 1:
                self.history.append({"step": self.step, "cpu_s": round(self.cpu_used, 1), **stats})
                if self.progress:
                    print(f"[step {self.step}] loss {stats['loss']:.5f} psnr {stats['psnr']:.2f} "
                          f"lr {self.opt.param_groups[0]['lr']:.2e} cpu {self.cpu_used:.0f}s", flush=True)
            if t.eval_every and self.step % t.eval_every == 0:
                last = self.evaluate()
            if self.step % t.save_every == 0:
                self.save_checkpoint()
        self.save_checkpoint()
        if last is None or last["step"] != self.step:
            last = self.evaluate()
        last.update(wall_s=time.time() - t0, train_cpu_s=self.cpu_used, threads=torch.get_num_threads())
        atomic_write_text(self.work_dir / "metrics.json",
                          json.dumps({"final": last, "history": self.history, "priors": self.priors}, indent=1))
        return last

    @torch.no_grad()
    def evaluate(self, write_grid: bool = True) -> dict:
        """The unseen test subjects' target views from their reference views (authors' protocol)."""
        import imageio.v3 as iio

        from ...trainer import image_grid

        d, t = self.data_cfg, self.tcfg
        rows, per = [], []
        for s in self.test_subjects:
            frames = list(d.eval_frames) if d.eval_frames is not None else [0]
            for f in frames:
                for c in list(d.target_views)[: t.max_eval_views]:
                    cam = s.cameras[c]
                    out = render_view(self.model, s, f, d.input_views, cam.viewmats[0], cam.Ks[0], s.width,
                                      s.height, d.box_pad, t.n_samples, t.skip_far, t.chunk)
                    gt = s.view(f, c)[0]
                    m = evaluate_view(out["rgb"], gt, out["mask_at_box"])
                    per.append({"subject": s.name, "frame": f, "view": c, **m})
                    if len(rows) < 6:
                        rows.append([s.view(f, v)[0] for v in d.input_views] + [out["rgb"], gt])
        res = {"step": self.step, "psnr": float(np.mean([p["psnr"] for p in per])),
               "ssim": float(np.mean([p["ssim"] for p in per])), "lpips": None, "per_view": per}
        if write_grid and rows:
            (self.work_dir / "renders").mkdir(parents=True, exist_ok=True)
            iio.imwrite(self.work_dir / "renders" / f"step_{self.step:06d}.png", image_grid(rows))
        if self.progress:
            print(f"[eval step {self.step}] unseen subjects: PSNR {res['psnr']:.2f} dB  SSIM {res['ssim']:.4f} "
                  f"({len(per)} views)", flush=True)
        return res

    # -- checkpoints ------------------------------------------------------------------------------------------
    def save_checkpoint(self, path=None) -> Path:
        path = Path(path) if path is not None else self.ckpt_path
        atomic_torch_save(path, {
            "method": "transhuman", "step": self.step, "cpu_used": self.cpu_used, "config": self.cfg,
            "state_dict": self.model.state_dict(), "optimizer": self.opt.state_dict(), "history": self.history,
            "priors": self.priors, "seed": self.seed,
            "rng": {"torch": torch.get_rng_state(), "gen": self.gen.get_state()}})
        return path

    def load_checkpoint(self, path) -> None:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        if ck.get("method") != "transhuman":
            raise ValueError(f"{path}: not a TransHuman checkpoint (method={ck.get('method')!r})")
        self.model.load_state_dict(ck["state_dict"])
        self.opt.load_state_dict(ck["optimizer"])
        self.step, self.cpu_used = int(ck["step"]), float(ck.get("cpu_used", 0.0))
        self.history = list(ck.get("history", []))
        torch.set_rng_state(ck["rng"]["torch"])
        self.gen.set_state(ck["rng"]["gen"])


def load_transhuman(path) -> tuple[TransHuman, dict]:
    """(model in eval mode, config) from a TransHuman checkpoint; the body model is rebuilt from the config."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if ck.get("method") != "transhuman" or "state_dict" not in ck:
        raise ValueError(f"{path}: not a TransHuman checkpoint")
    cfg = ck["config"]
    canon = ck["state_dict"]["canonical_verts"]
    mcfg = section(THModelConfig, cfg.get("model", {}), "model")
    model = TransHuman(canon, **{**dataclasses.asdict(mcfg), "encoder_weights": None})
    model.load_state_dict(ck["state_dict"])
    return model.eval(), cfg
