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

from perception3d.fileio import atomic_torch_save, atomic_write_text
from perception3d.ops.image_quality import psnr, ssim, ssim_differentiable
from perception3d.registry import RENDER_METHODS

from .config import GSModelConfig, GSTrainConfig, section
from .gaussians import GaussianModel
from .scenes import Scene

__all__ = ["GSTrainer", "build_scene", "resolve_background", "carve_points", "evaluate_views", "image_grid"]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's global generators with ``seed``; returns a torch generator of its own
    seeded alike (the rendering trainers draw their random pixels / rays from it)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def build_scene(data: dict) -> Scene:
    """Build the :class:`Scene` a ``data`` config dict describes.

    Keys:
        type: "blender" | "nerfstudio" (also "instant-ngp") | "colmap" | "lmgaussian" | "dtu" (also "spare") |
            "auto" (picked from the folder, :func:`~perception3d.rendering.scenes.read_scene`) | "default" (the
            built-in scene, written to ``root`` first if missing).
        root: the scene folder. Every other key the reader takes is passed on (``size`` (W, H) or ``downscale``,
            ``only_existing``, ``splits`` …); a key no reader step knows is an error.
        train_views / n_train_views / test_views / holdout_every: the split (see
            :func:`~perception3d.rendering.scenes.select_views`; default: the reader's own split).
        points: a PLY of initial points (x, y, z [, red, green, blue]) to use instead of the format's own
            (COLMAP ``points3D``; LM-Gaussian ``points3d.ply`` is found in ``root`` automatically).
        background: RGB that RGBA images are composited on (readers that take one).
    """
    import inspect

    from .scenes import READERS, find_points_file, read_points_ply, scene_format, select_views

    data = dict(data)
    kind = data.pop("type", "blender")
    split = {k: data.pop(k, None) for k in ("train_views", "n_train_views", "test_views", "holdout_every")}
    points_file = data.pop("points", None)
    if kind == "default":
        from .default_scene import make_default_scene

        if not (Path(data["root"]) / "transforms_train.json").is_file():
            make_default_scene(data["root"], **data.pop("generate", {}))
        else:
            data.pop("generate", None)
        kind = "blender"
    if kind not in READERS:
        raise ValueError(f"data.type must be one of {sorted(READERS) + ['default']}, got {kind!r}")
    if "root" not in data:
        raise ValueError("data.root (the scene folder) is missing")
    root = Path(data.pop("root"))
    if kind == "auto":
        kind = scene_format(root)
        if kind == "dtu" and "dataset" not in data and any(root.glob("cam_*_0000.png")):
            data["dataset"] = "Synthetic"
    reader = READERS[kind]
    accepted = set(inspect.signature(reader).parameters)
    if "background" not in accepted:
        data.pop("background", None)  # readers of formats without alpha (photos) do not composite
    unknown = sorted(set(data) - accepted)
    if unknown:
        raise ValueError(f"data: keys {unknown} are not options of the {kind} reader "
                         f"({', '.join(sorted(accepted - {'root', 'scene_dir'}))})")
    scene = reader(root, **data)
    scene.train_ids, scene.test_ids = select_views(scene, **split)
    if points_file is None and scene.points3d is None:
        points_file = find_points_file(root)
    if points_file is not None:
        pf = Path(points_file)
        if not pf.is_file():
            raise FileNotFoundError(f"data.points: PLY file not found: {pf}")
        scene.points3d, scene.points_rgb = read_points_ply(pf)
        scene.extras["points_file"] = pf
    return scene


def resolve_background(cfg) -> tuple[torch.Tensor, bool]:
    """(evaluation/render background [3], whether training draws a random one each step) from a config's
    ``train.background`` (RGB or "random"; default ``data.background``, else white) and
    ``train.eval_background`` (default: that colour, or black with "random")."""
    tcfg = section(GSTrainConfig, cfg.get("train", {}), "train")
    bg = tcfg.background
    if bg is None:
        bg = dict(cfg.get("data", {}) or {}).get("background", (1.0, 1.0, 1.0))
    rand = isinstance(bg, str)
    if rand and bg != "random":
        raise ValueError(f"train.background must be an RGB triple or 'random', got {bg!r}")
    ev = tcfg.eval_background
    if ev is None:
        ev = (0.0, 0.0, 0.0) if rand else bg
    if ev is None or len(ev) != 3:
        raise ValueError(f"train.eval_background must be an RGB triple, got {ev!r}")
    return torch.tensor(ev, dtype=torch.float32), rand


@torch.no_grad()
def carve_points(points: torch.Tensor, scene: Scene, ids, masks: Optional[list] = None,
                 require_seen: bool = False) -> torch.Tensor:
    """Keep the points that fall inside the object mask of every view in ``ids`` that sees them (a visual hull);
    ``masks``: one [H, W] bool per view of ``ids`` (default: alpha > 0.5; views without an alpha channel do not
    carve). ``require_seen``: also drop the points that no view sees. points [P, 3] → [P', 3]."""
    keep = torch.ones(len(points), dtype=torch.bool)
    seen_any = torch.zeros(len(points), dtype=torch.bool)
    for k, i in enumerate(ids):
        if masks is not None:
            m = masks[k]
        else:
            a = scene.alpha(i)
            if a is None:
                continue
            m = a > 0.5
        uv, z = scene.cameras[i].project(points)
        uv, z = uv[0], z[0]
        u, v = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside = (z > 0) & (u >= 0) & (v >= 0) & (u < m.shape[1]) & (v < m.shape[0])
        fg = torch.zeros_like(keep)
        fg[inside] = m[v[inside], u[inside]]
        keep &= fg | ~inside
        seen_any |= inside
    if require_seen:
        keep &= seen_any
    return points[keep]


def image_grid(rows: list[list[torch.Tensor]]) -> np.ndarray:
    """Rows of [H, W, 3] float images → one uint8 [sum H, sum W, 3] array."""
    img = torch.cat([torch.cat(r, 1) for r in rows], 0)
    return (img.clamp(0, 1) * 255).round().byte().cpu().numpy()


@torch.no_grad()
def evaluate_views(model: GaussianModel, scene: Scene, ids, background, tile_size: int = 16,
                   sh_degree: Optional[int] = None) -> tuple[dict, list[torch.Tensor]]:
    """PSNR / SSIM (perception3d.ops.image_quality) of the views ``ids``; returns (metrics, renders)."""
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


@RENDER_METHODS.register_module(name="3dgs")
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

        # the CPU budget counts from here, or from where a subclass started its clock (its priors included)
        self._cpu_origin = getattr(self, "_cpu_origin", time.process_time())
        self.cfg = {k: dict(cfg[k]) if k in cfg else {} for k in ("data", "model", "train", "strategy")}
        self.work_dir = Path(work_dir)  # created only once the scene and model are built (no empty run folders)
        self.seed, self.progress = seed, progress
        self.gen = seed_everything(seed)

        tcfg = self.train_cfg = section(GSTrainConfig, self.cfg["train"], "train")
        self.model_cfg = section(GSModelConfig, self.cfg["model"], "model")
        self.max_steps = int(tcfg.max_steps)
        self.max_minutes = tcfg.max_minutes
        self.max_cpu_minutes = tcfg.max_cpu_minutes
        self.ssim_lambda = float(tcfg.ssim_lambda)
        self.sh_interval = int(tcfg.sh_degree_interval)
        self.eval_every = int(tcfg.eval_every)
        self.save_every = int(tcfg.save_every)
        self.log_every = int(tcfg.log_every)
        self.tile_size = int(tcfg.tile_size)
        # train.background: an RGB colour, or "random" (a new colour every step, 3DGS's --random_background:
        # real captures have no alpha, and a random background keeps the model from explaining the image with
        # transparency); evaluation and renders use train.eval_background (default black for "random").
        self.background, self.random_background = resolve_background(self.cfg)
        self.priors: dict = {}  # which prior ran for what (recorded in the log, checkpoint and metrics.json)
        self.scene = build_scene(self.cfg["data"])
        self.scene_scale = self._scene_scale(tcfg.scene_scale) * float(tcfg.scene_scale_mult)
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
        if self.priors and progress:
            print(f"[priors] {json.dumps(self.priors, default=str)}", flush=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)

    # -- set-up -----------------------------------------------------------------------------------------------
    def _scene_scale(self, how) -> float:
        """train.scene_scale: "rig" (3DGS: 1.1 × the largest camera distance from the rig centre), "depth" (at
        least half the middle of the training views' depth range — sparse / forward-facing rigs whose cameras
        almost coincide), or a number."""
        if isinstance(how, (int, float)):
            return float(how)
        if how == "rig":
            return float(self.scene.scene_scale)
        if how == "depth":
            near, far = self._depth_range()
            return max(float(self.scene.scene_scale), 0.5 * (near * far) ** 0.5)
        raise ValueError(f"train.scene_scale must be 'rig', 'depth' or a number, got {how!r}")

    def _depth_range(self) -> tuple[float, float]:
        from .scenes import depth_range

        r = self.model_cfg.init_depth_range
        return (float(r[0]), float(r[1])) if r is not None else depth_range(self.scene, self.scene.train_ids)

    def _init_model(self) -> GaussianModel:
        """model.init: "points" (the format's points: COLMAP points3D, LM-Gaussian points3d.ply, nerfstudio
        ply_file_path, or data.points), "frustum" (random in the training views' frustum overlap, coloured from
        the images, :func:`~perception3d.rendering.scenes.frustum_points`), "depth_prior" (the training views'
        depth prior unprojected, :mod:`perception3d.rendering.priors`), "auto" (points if the scene has them,
        else frustum) or "random" (a cube, ``init_center ± init_extent``)."""
        m = self.model_cfg
        deg = int(m.sh_degree)
        opa, sc = float(m.init_opacity), float(m.init_scale)
        vs = None if m.init_voxel_size is None else float(m.init_voxel_size)
        how = m.init
        n = int(m.init_num)
        if how == "auto":
            how = "points" if self.scene.points3d is not None else "frustum"
        if how == "points":
            if self.scene.points3d is None or len(self.scene.points3d) == 0:
                raise ValueError("model.init='points' but the scene has no points (COLMAP points3D, LM-Gaussian "
                                 "points3d.ply, nerfstudio ply_file_path or data.points); use init='frustum'")
            return GaussianModel.from_points(self.scene.points3d, self.scene.points_rgb, deg, opa, sc, vs)
        if how == "frustum":
            from .scenes import frustum_points

            near, far = self._depth_range()
            pts, rgb = frustum_points(self.scene, self.scene.train_ids, n, near, far, self.gen)
            return GaussianModel.from_points(pts, rgb, deg, opa, sc, vs)
        if how == "depth_prior":
            from .priors import build_depth_prior, depth_prior_points

            prior = build_depth_prior(dict(m.depth_prior))
            self.priors["depth"] = prior.describe()
            pts, rgb = depth_prior_points(prior, self.scene, self.scene.train_ids, n, self.gen)
            return GaussianModel.from_points(pts, rgb, deg, opa, sc, vs)
        if how != "random":
            raise ValueError(f"model.init must be 'points', 'frustum', 'depth_prior', 'auto' or 'random', got {how!r}")
        center = m.init_center
        center = self.scene.scene_center if center is None else torch.tensor(center, dtype=torch.float32)
        extent = float(m.init_extent if m.init_extent is not None else self.scene.scene_scale / 1.1 * 0.5)
        keep = None
        if m.carve_with_masks:
            def keep(pts: torch.Tensor) -> torch.Tensor:
                pts = carve_points(pts, self.scene, self.scene.train_ids)
                if len(pts) == 0:
                    raise ValueError("carve_with_masks removed every initial point; check the masks/cameras")
                return pts
        return GaussianModel.random(n, center, extent, deg, opa, sc, generator=self.gen, keep=keep, voxel_size=vs)

    def _make_optimizers(self) -> dict:
        lr = {"means": 1.6e-4, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2, "sh0": 2.5e-3,
              "shN": 2.5e-3 / 20}
        lr.update(self.train_cfg.lr)
        lr["means"] = lr["means"] * self.scene_scale
        self.base_lr = lr
        return {k: torch.optim.Adam([{"params": [p], "lr": lr[k], "name": k}], eps=1e-15)
                for k, p in self.model.params.items()}

    def _means_lr(self) -> float:
        """The means' learning rate: 3DGS's exponential decay to 1 % over the run, following
        :meth:`progress_frac` (steps or the CPU budget, whichever is further)."""
        return self.base_lr["means"] * 0.01 ** self.progress_frac()

    def active_sh_degree(self, step: int) -> int:
        return min(step // self.sh_interval, self.model.sh_degree)

    # -- one step -----------------------------------------------------------------------------------------------
    def train_step(self, i: int) -> dict:
        cam = self.scene.cameras[i]
        gt = self.scene.image(i)
        bg = torch.rand(3, generator=self.gen) if self.random_background else self.background
        pred, meta = self.render_colour(cam, bg, self.active_sh_degree(self.step))
        self.strategy.step_pre_backward(self.model.params, self.optimizers, self.strategy_state, self.step, meta)
        l1 = (pred - gt).abs().mean()
        ssim = ssim_differentiable(pred.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None])
        loss = (1 - self.ssim_lambda) * l1 + self.ssim_lambda * (1 - ssim)  # 3DGS Eq. 7
        return self._optimize(loss, meta, pred, gt, l1, ssim)

    def render_colour(self, cam, background: torch.Tensor, sh_degree: int):
        """The training render of one camera: (colour [H, W, 3] over ``background``, the rasterizer's meta)."""
        out, _, meta = self.model.render(cam.viewmats, cam.Ks, cam.width, cam.height, sh_degree=sh_degree,
                                         background=background, tile_size=self.tile_size)
        return out[0], meta

    def _optimize(self, loss: torch.Tensor, meta: dict, pred: torch.Tensor, gt: torch.Tensor, l1: torch.Tensor,
                  ssim: torch.Tensor) -> dict:
        """The end of a step shared by the Gaussian trainers: backward, the means' lr schedule, every optimizer's
        step, the densification strategy's post-backward; returns the step's loss / L1 / SSIM / PSNR."""
        loss.backward()
        for g in self.optimizers["means"].param_groups:
            g["lr"] = self._means_lr()
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        self.strategy.step_post_backward(self.model.params, self.optimizers, self.strategy_state, self.step, meta,
                                         packed=False)
        with torch.no_grad():
            mse = F.mse_loss(pred.detach().clamp(0, 1), gt)
        return {"loss": float(loss.detach()), "l1": float(l1.detach()), "ssim": float(ssim.detach()),
                "psnr": float(-10 * torch.log10(mse.clamp_min(1e-12)))}

    # -- loop ---------------------------------------------------------------------------------------------------
    def train(self, until: Optional[int] = None) -> dict:
        """Run to ``train.max_steps`` (or to step ``until``, or until ``train.max_minutes`` of wall time or
        ``train.max_cpu_minutes`` of process CPU time); returns the last evaluation's metrics with ``wall_s``,
        ``cpu_s`` (evaluation included) and ``steps``."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        writer = SummaryWriter(str(self.work_dir / "tb"))
        t0 = time.time()
        order = self.order
        stop = self.max_steps if until is None else min(until, self.max_steps)
        bar = tqdm(total=self.max_steps, initial=self.step, disable=not self.progress, dynamic_ncols=True)
        # a run resumed from a checkpoint that already holds this step's evaluation (killed after the final
        # checkpoint, while writing the PLY or metrics.json) must not evaluate again: the history would hold
        # the last evaluation twice and differ from an uninterrupted run
        last = self.history[-1] if self.history and self.history[-1].get("step") == self.step else None
        try:
            while self.step < stop:
                if self.max_minutes is not None and time.time() - t0 > 60 * float(self.max_minutes):
                    break
                if self.max_cpu_minutes is not None and self.cpu_seconds() > 60 * float(self.max_cpu_minutes):
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
        last["cpu_s"] = self.cpu_seconds()
        last["steps"] = self.step
        atomic_write_text(self.work_dir / "metrics.json",
                          json.dumps({"final": last, "history": self.history, "priors": self.priors}, indent=1,
                                     default=str))
        writer.close()
        return last

    def cpu_seconds(self) -> float:
        """Process CPU time (user + sys) since the run's clock started (``train.max_cpu_minutes``); a resumed run
        counts from its resumption."""
        return time.process_time() - self._cpu_origin

    def cpu_budget_frac(self) -> float:
        """The fraction of ``train.max_cpu_minutes`` used so far (0 without a CPU budget): the methods whose
        schedule is written as fractions of the run follow it, so a run stopped by the budget still ends its
        schedule."""
        if not self.max_cpu_minutes:
            return 0.0
        return min(self.cpu_seconds() / (60.0 * float(self.max_cpu_minutes)), 1.0)

    def progress_frac(self) -> float:
        """How far the run is, in [0, 1]: the larger of steps / ``max_steps`` and :meth:`cpu_budget_frac`, so a
        schedule written as fractions of the run (CoherentGS's, LM-Gaussian's) ends when either budget does."""
        return min(max(self.step / max(self.max_steps, 1), self.cpu_budget_frac()), 1.0)

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
        # the grid shows at most 8 views (a 47-view held-out set at full size would be a ~50 MB PNG)
        grid = image_grid([[self.scene.image(i), r] for i, r in list(zip(ids, renders))[:8]])
        iio.imwrite(self.work_dir / "renders" / f"step_{self.step:06d}.png", grid)
        if self.progress:
            print(f"[eval step {self.step}] {metrics['split']} PSNR {metrics['psnr']:.2f} dB  "
                  f"SSIM {metrics['ssim']:.4f}  ({len(self.model)} Gaussians)", flush=True)
        return metrics

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def save_checkpoint(self, path=None) -> Path:
        path = Path(path) if path is not None else self.ckpt_path
        atomic_torch_save(path, {
            "step": self.step,
            "sh_degree": self.model.sh_degree,
            "params": {k: v.detach().clone() for k, v in self.model.params.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "strategy_state": self.strategy_state,
            "history": self.history,
            "order": list(self.order),
            "config": self.cfg,
            "priors": self.priors,
            "seed": self.seed,
            "rng": self.rng_state(),
        })
        return path

    def rng_state(self) -> dict:
        """Every random stream a step draws from (torch, the trainer's generator, numpy, python), for checkpoints:
        resuming restores them so that a resumed run draws what the uninterrupted one would."""
        return {"torch": torch.get_rng_state(), "gen": self.gen.get_state(), "numpy": np.random.get_state(),
                "python": random.getstate()}

    def set_rng_state(self, rng: dict) -> None:
        """Restore :meth:`rng_state` (nothing when ``rng`` is empty: a checkpoint from before it was saved)."""
        if rng:
            torch.set_rng_state(rng["torch"])
            self.gen.set_state(rng["gen"])
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])

    def load_checkpoint(self, path) -> None:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_params(ck["params"])
        self.optimizers = self._make_optimizers()
        for k, o in self.optimizers.items():
            o.load_state_dict(ck["optimizers"][k])
        self.strategy_state = ck["strategy_state"]
        self.step = int(ck["step"])
        self.history = list(ck.get("history", []))
        self.priors = dict(ck.get("priors", self.priors))
        self.order[:] = list(ck.get("order", []))
        self.set_rng_state(ck.get("rng", {}))


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
