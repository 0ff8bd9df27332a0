"""3D Gaussian Splatting training (Kerbl et al. 2023, §5–§6) on CPU or GPU.

One training step (Algorithm 1 of the paper, with gsplat's ``DefaultStrategy`` for adaptive density control):
render one training view with the SH degree active at this step (one more band every ``sh_degree_interval``
steps, up to ``model.sh_degree``), loss ``(1 − λ) L1 + λ (1 − SSIM)`` with λ = 0.2 (paper Eq. 7), Adam on all
parameters (means' learning rate decays exponentially to 1 % over the run), then densify / split / prune
and reset opacities as the strategy says (it reads the view-space gradient of ``meta["means2d"]``).

The config is a plain mmengine python config with four dicts: ``data``, ``model``, ``train``, ``strategy``
(see ``configs/gs_lego.py``). Outputs under ``work_dir``: ``ckpt_latest.pt`` (written atomically; resume
with ``resume=True``), ``point_cloud.ply`` (3DGS layout), ``tb/`` TensorBoard scalars, ``renders/`` a grid
PNG of the test views (ground truth | render) at each evaluation, ``metrics.json``.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from perception3d.fileio import atomic_path

from .gaussians import GaussianModel
from .scenes import Scene, read_blender

__all__ = ["GSTrainer", "build_scene", "carve_points", "evaluate_views", "image_grid", "atomic_torch_save"]


def atomic_torch_save(obj, path) -> None:
    """``torch.save`` to a temp file in the same folder, then ``os.replace`` (never a half-written file)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def build_scene(data: dict) -> Scene:
    """Build the :class:`Scene` a ``data`` config dict describes.

    Keys: ``type`` ("blender" | "default"), ``root``, ``size`` (W, H) or ``downscale``, ``splits`` read
    (default train/val/test), ``holdout_every`` (if set: every k-th view of all views read is a test view,
    the rest train, as 3DGS's ``--eval`` llffhold), ``only_existing`` (skip frames without an image file),
    ``background`` RGB. "default" first writes the built-in scene (:mod:`.default_scene`) if ``root`` lacks it.
    """
    data = dict(data)
    kind = data.pop("type", "blender")
    if kind == "default":
        from .default_scene import make_default_scene

        if not (Path(data["root"]) / "transforms_train.json").is_file():
            make_default_scene(data["root"], **data.pop("generate", {}))
        else:
            data.pop("generate", None)
    elif kind != "blender":
        raise ValueError(f"data.type must be 'blender' or 'default', got {kind!r}")
    holdout = data.pop("holdout_every", None)
    scene = read_blender(data.pop("root"), **data)
    if holdout:
        ids = list(range(len(scene)))
        scene.test_ids = [i for i in ids if i % holdout == 0]
        scene.train_ids = [i for i in ids if i % holdout != 0]
    if not scene.train_ids:
        raise ValueError("the scene has no training views")
    return scene


@torch.no_grad()
def carve_points(points: torch.Tensor, scene: Scene, ids) -> torch.Tensor:
    """Keep the points that fall inside the object mask (alpha > 0.5) of every view in ``ids`` that sees them
    (a visual hull); views without an alpha channel do not carve. points [P, 3] → [P', 3]."""
    keep = torch.ones(len(points), dtype=torch.bool)
    for i in ids:
        a = scene.alpha(i)
        if a is None:
            continue
        uv, z = scene.cameras[i].project(points)
        uv, z = uv[0], z[0]
        u, v = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside = (z > 0) & (u >= 0) & (v >= 0) & (u < a.shape[1]) & (v < a.shape[0])
        fg = torch.zeros_like(keep)
        fg[inside] = a[v[inside], u[inside]] > 0.5
        keep &= fg | ~inside
    return points[keep]


def image_grid(rows: list[list[torch.Tensor]]) -> np.ndarray:
    """Rows of [H, W, 3] float images → one uint8 [sum H, sum W, 3] array."""
    img = torch.cat([torch.cat(r, 1) for r in rows], 0)
    return (img.clamp(0, 1) * 255).round().byte().cpu().numpy()


@torch.no_grad()
def evaluate_views(model: GaussianModel, scene: Scene, ids, background, tile_size: int = 16,
                   sh_degree: Optional[int] = None) -> tuple[dict, list[torch.Tensor]]:
    """PSNR / SSIM (perception3d.evaluation.image_metrics) of the views ``ids``; returns (metrics, renders)."""
    from perception3d.evaluation.image_metrics import psnr, ssim

    ps, ss, renders = [], [], []
    for i in ids:
        cam = scene.cameras[i]
        out, _, _ = model.render(cam.viewmats, cam.Ks, cam.width, cam.height, sh_degree=sh_degree,
                                 background=background, tile_size=tile_size)
        pred = out[0].clamp(0, 1)
        gt = scene.image(i)
        ps.append(psnr(pred, gt))
        ss.append(ssim(pred, gt))
        renders.append(pred)
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "psnr_per_view": ps,
            "ssim_per_view": ss}, renders


class GSTrainer:
    """Trains a :class:`GaussianModel` on a :class:`Scene` from a config (see the module docstring).

    Args:
        cfg: mapping with ``data``, ``model``, ``train``, ``strategy`` dicts (mmengine ``Config`` works).
        work_dir: output folder.
        seed: seeds python, numpy and torch; the same seed and config give the same numbers on CPU.
        resume: continue from ``work_dir/ckpt_latest.pt`` when it exists.
    """

    def __init__(self, cfg, work_dir, seed: int = 0, resume: bool = False, progress: bool = True):
        from gsplat.strategy import DefaultStrategy

        self.cfg = {k: dict(cfg[k]) if k in cfg else {} for k in ("data", "model", "train", "strategy")}
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.seed, self.progress = seed, progress
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)

        tcfg = self.cfg["train"]
        self.max_steps = int(tcfg.get("max_steps", 3000))
        self.max_minutes = tcfg.get("max_minutes", None)
        self.ssim_lambda = float(tcfg.get("ssim_lambda", 0.2))
        self.sh_interval = int(tcfg.get("sh_degree_interval", 1000))
        self.eval_every = int(tcfg.get("eval_every", 1000))
        self.save_every = int(tcfg.get("save_every", 1000))
        self.log_every = int(tcfg.get("log_every", 10))
        self.tile_size = int(tcfg.get("tile_size", 16))
        self.background = torch.tensor(tcfg.get("background", self.cfg["data"].get("background", (1.0, 1.0, 1.0))),
                                       dtype=torch.float32)

        self.scene = build_scene(self.cfg["data"])
        self.scene_scale = float(self.scene.scene_scale) * float(tcfg.get("scene_scale_mult", 1.1))
        self.model = self._init_model()
        self.strategy = DefaultStrategy(**self.cfg["strategy"])
        self.optimizers = self._make_optimizers()
        self.strategy.check_sanity(self.model.params, self.optimizers)
        self.strategy_state = self.strategy.initialize_state(scene_scale=self.scene_scale)
        self.step = 0
        self.order: list[int] = []  # train views left in the current epoch (popped from the end)
        self.history: list[dict] = []
        self.ckpt_path = self.work_dir / "ckpt_latest.pt"
        if resume and self.ckpt_path.is_file():
            self.load_checkpoint(self.ckpt_path)

    # -- set-up -----------------------------------------------------------------------------------------------
    def _init_model(self) -> GaussianModel:
        m = self.cfg["model"]
        deg = int(m.get("sh_degree", 3))
        opa, sc = float(m.get("init_opacity", 0.1)), float(m.get("init_scale", 1.0))
        if m.get("init", "random") == "points" and self.scene.points3d is not None:
            return GaussianModel.from_points(self.scene.points3d, self.scene.points_rgb, deg, opa, sc)
        n = int(m.get("init_num", 100_000))
        center = m.get("init_center", None)
        center = self.scene.scene_center if center is None else torch.tensor(center, dtype=torch.float32)
        extent = float(m.get("init_extent", self.scene.scene_scale / 1.1 * 0.5))
        pts = (torch.rand(n, 3, generator=self.gen) * 2 - 1) * extent + center.reshape(1, 3)
        if m.get("carve_with_masks", False):
            pts = carve_points(pts, self.scene, self.scene.train_ids)
            if len(pts) == 0:
                raise ValueError("carve_with_masks removed every initial point; check the masks/cameras")
        rgb = torch.rand(len(pts), 3, generator=self.gen)
        return GaussianModel.from_points(pts, rgb, deg, opa, sc)

    def _make_optimizers(self) -> dict:
        lr = {"means": 1.6e-4, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2, "sh0": 2.5e-3,
              "shN": 2.5e-3 / 20}
        lr.update(self.cfg["train"].get("lr", {}))
        lr["means"] = lr["means"] * self.scene_scale
        self.base_lr = lr
        return {k: torch.optim.Adam([{"params": [p], "lr": lr[k], "name": k}], eps=1e-15)
                for k, p in self.model.params.items()}

    def _means_lr(self, step: int) -> float:
        base = self.base_lr["means"]
        return base * 0.01 ** (min(step, self.max_steps) / max(self.max_steps, 1))

    def active_sh_degree(self, step: int) -> int:
        return min(step // self.sh_interval, self.model.sh_degree)

    # -- one step -----------------------------------------------------------------------------------------------
    def train_step(self, i: int) -> dict:
        import pytorch_msssim

        cam = self.scene.cameras[i]
        gt = self.scene.image(i)
        out, _, meta = self.model.render(cam.viewmats, cam.Ks, cam.width, cam.height,
                                         sh_degree=self.active_sh_degree(self.step), background=self.background,
                                         tile_size=self.tile_size)
        self.strategy.step_pre_backward(self.model.params, self.optimizers, self.strategy_state, self.step, meta)
        pred = out[0]
        l1 = (pred - gt).abs().mean()
        ssim = pytorch_msssim.ssim(pred.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None], data_range=1.0,
                                   size_average=True)
        loss = (1 - self.ssim_lambda) * l1 + self.ssim_lambda * (1 - ssim)  # 3DGS Eq. 7
        loss.backward()
        for g in self.optimizers["means"].param_groups:
            g["lr"] = self._means_lr(self.step)
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        self.strategy.step_post_backward(self.model.params, self.optimizers, self.strategy_state, self.step, meta,
                                         packed=False)
        with torch.no_grad():
            mse = F.mse_loss(pred.clamp(0, 1), gt)
        return {"loss": float(loss.detach()), "l1": float(l1.detach()), "ssim": float(ssim.detach()),
                "psnr": float(-10 * torch.log10(mse.clamp_min(1e-12)))}

    # -- loop ---------------------------------------------------------------------------------------------------
    def train(self, until: Optional[int] = None) -> dict:
        """Run to ``train.max_steps`` (or to step ``until``, or until ``train.max_minutes``); returns the last
        evaluation's metrics."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        writer = SummaryWriter(str(self.work_dir / "tb"))
        t0 = time.time()
        order = self.order
        stop = self.max_steps if until is None else min(until, self.max_steps)
        bar = tqdm(total=self.max_steps, initial=self.step, disable=not self.progress, dynamic_ncols=True)
        last = None
        try:
            while self.step < stop:
                if self.max_minutes is not None and time.time() - t0 > 60 * float(self.max_minutes):
                    break
                if not order:
                    perm = torch.randperm(len(self.scene.train_ids), generator=self.gen).tolist()
                    order[:] = [self.scene.train_ids[k] for k in perm]
                stats = self.train_step(order.pop())
                self.step += 1
                bar.update(1)
                if self.step % self.log_every == 0 or self.step == 1:
                    for k, v in stats.items():
                        writer.add_scalar(f"train/{k}", v, self.step)
                    writer.add_scalar("train/num_gaussians", len(self.model), self.step)
                    bar.set_postfix(loss=f"{stats['loss']:.4f}", psnr=f"{stats['psnr']:.2f}", n=len(self.model))
                if self.step % self.eval_every == 0:
                    last = self.evaluate(writer)
                if self.step % self.save_every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
        if last is None or last["step"] != self.step:
            last = self.evaluate(writer)
        self.save_checkpoint()
        self.model.save_ply(self.work_dir / "point_cloud.ply")
        last["wall_s"] = time.time() - t0
        with open(self.work_dir / "metrics.json", "w") as f:
            json.dump({"final": last, "history": self.history}, f, indent=1)
        writer.close()
        return last

    def evaluate(self, writer=None) -> dict:
        ids = self.scene.test_ids or self.scene.train_ids[:3]
        metrics, renders = evaluate_views(self.model, self.scene, ids, self.background, self.tile_size)
        metrics.update(step=self.step, num_gaussians=len(self.model),
                       split="test" if self.scene.test_ids else "train")
        self.history.append(metrics)
        if writer is not None:
            writer.add_scalar("eval/psnr", metrics["psnr"], self.step)
            writer.add_scalar("eval/ssim", metrics["ssim"], self.step)
        import imageio.v3 as iio

        (self.work_dir / "renders").mkdir(exist_ok=True)
        grid = image_grid([[self.scene.image(i), r] for i, r in zip(ids, renders)])
        iio.imwrite(self.work_dir / "renders" / f"step_{self.step:06d}.png", grid)
        if self.progress:
            print(f"[eval step {self.step}] {metrics['split']} PSNR {metrics['psnr']:.2f} dB  "
                  f"SSIM {metrics['ssim']:.4f}  ({len(self.model)} Gaussians)", flush=True)
        return metrics

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def save_checkpoint(self, path=None) -> Path:
        path = Path(path) if path is not None else self.ckpt_path
        atomic_torch_save({
            "step": self.step,
            "sh_degree": self.model.sh_degree,
            "params": {k: v.detach().clone() for k, v in self.model.params.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "strategy_state": self.strategy_state,
            "history": self.history,
            "order": list(self.order),
            "config": self.cfg,
            "seed": self.seed,
            "rng": {"torch": torch.get_rng_state(), "gen": self.gen.get_state(), "numpy": np.random.get_state(),
                    "python": random.getstate()},
        }, path)
        return path

    def load_checkpoint(self, path) -> None:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_params(ck["params"])
        self.optimizers = self._make_optimizers()
        for k, o in self.optimizers.items():
            o.load_state_dict(ck["optimizers"][k])
        self.strategy_state = ck["strategy_state"]
        self.step = int(ck["step"])
        self.history = list(ck.get("history", []))
        self.order[:] = list(ck.get("order", []))
        rng = ck.get("rng", {})
        if rng:
            torch.set_rng_state(rng["torch"])
            self.gen.set_state(rng["gen"])
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])


def load_model(path) -> tuple[GaussianModel, dict]:
    """A trained model from a trainer checkpoint (``.pt``) or a 3DGS ``.ply``; returns (model, config or {})."""
    path = Path(path)
    if path.suffix.lower() == ".ply":
        return GaussianModel.load_ply(path), {}
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if "params" not in ck:
        raise ValueError(f"{path}: not a Gaussian-splatting checkpoint (no 'params' key)")
    return GaussianModel(ck["params"], int(ck.get("sh_degree", 3))), ck.get("config", {})


__all__.append("load_model")
