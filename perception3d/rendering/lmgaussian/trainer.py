"""LM-Gaussian (Yu, Long & Tan, "LM-Gaussian: Boost Sparse-view 3D Gaussian Splatting with Large Model Priors",
2024; authors' code hanyangyu1021/LMGaussian, ``stage1_forward.py`` + ``stage2_forward.py``) as a
:class:`~perception3d.rendering.trainer.GSTrainer`:

1. **Background-aware depth-guided initialisation** (§IV-B, :mod:`.init`): the training views' depth prior,
   aligned to the cameras, unprojected with background pixels always kept and occluding points removed.
2. **Multi-modal regularised optimisation** (§IV-C, :mod:`.losses`), per step on one training view::

       L = (1 − λ_dssim) L1 + λ_dssim (1 − SSIM)                              3DGS Eq. 7, λ_dssim = 0.2
         + 0.1 (L_pearson + L_local-pearson)(D_render, D_prior)               Eq. 8
         + 0.01 |N_render − N_prior|₁ + 0.01 (1 − N_render · N_prior)         Eq. 9
         + 0.3 |I_virtual − P_virtual|₁   (render vs point render, one virtual view)   Eq. 11
         + 0.05 (1 − N_render · N(D_render))  in the refinement stage only      Eq. 10

   colour, normal and depth come from one rasterization (features = SH colour ‖ per-Gaussian normal, the
   shortest axis facing the camera, as RaDe-GS renders normals; depth = Σ w z). No densification: the authors'
   forward-facing settings (``densify_from_iter = densify_until_iter = 1000``) never densify (the config's
   ``strategy`` can turn 3DGS's on; ``lmgaussian_lego.py`` does, for its weight-free prior). The depth-normal
   consistency (Eq. 10) never runs in the authors' stage 1: ``stage1_forward.py`` ends at or before
   ``regularization_from_iter`` (6000, where ``stage2_forward.py`` starts from the stage-1 checkpoint) and
   ``stage1_360.py`` / ``stage2_360.py`` end at 12 000 / 30 000 with it at 30 000; so here it runs only in the
   refinement stage, from ``regularization_from``. (On from half of a stage-1 run, it made the training views'
   PSNR fall over the second half: lego 9 views 17.6 → 15.8 dB, Barn 24.4 → 21.4 dB.)
3. **Iterative refinement** (§IV-D): from ``refine_from`` of the run the depth / normal / point losses stop (the
   authors' stage 2 turns them off), the virtual views are rendered, refined by the image refiner, and used as
   targets (L1 × the distance weight, :func:`.virtual.distance_weights`), refreshed ``refine_rounds`` times. With
   no refiner the stage is skipped, which is logged and recorded under ``priors["refiner"]`` in the checkpoint
   and ``metrics.json``; stage 1 then runs to the end.

Optimiser: the authors' ``OptimizationParamsinstant`` learning rates go in the config's ``train.lr``; the means'
rate decays to 1 % over the run. The run's clocks (``train.max_minutes`` of wall time, ``train.max_cpu_minutes`` of
process CPU time) start when the trainer is built, so the priors' time counts: a config and its vanilla-3DGS
baseline with the same budget get the same time (on a shared machine, give both the same CPU budget).
"""
from __future__ import annotations

import logging
import time
from typing import Optional

import torch
import torch.nn.functional as F

from perception3d.ops.image_quality import ssim_differentiable
from perception3d.registry import RENDER_METHODS
from perception3d.structures.rotation import quat_to_rotmat

from ..config import section
from ..gaussians import GaussianModel
from ..rasterize import rasterize
from ..sh import eval_sh
from ..trainer import GSTrainer
from .config import LMGaussianConfig
from .init import background_aware_points, hull_volume_points, view_depth
from .losses import (depth_normal_consistency, local_pearson_loss, masked_l1, normal_prior_loss,
                     pearson_depth_loss)
from .normals import depth_normal_prior, shipped_normal
from .virtual import distance_weights, point_render_targets, virtual_cameras

__all__ = ["LMGaussianTrainer", "gaussian_normals"]

log = logging.getLogger("perception3d.lmgaussian")


def gaussian_normals(quats: torch.Tensor, scales: torch.Tensor, means: torch.Tensor,
                     viewmat: torch.Tensor) -> torch.Tensor:
    """Per-Gaussian normal in the camera frame [N, 3]: the rotation's axis of the smallest scale (a flat
    Gaussian's normal), turned to face the camera. quats [N, 4], scales [N, 3], means [N, 3], viewmat [4, 4]."""
    R = quat_to_rotmat(quats)  # [N, 3, 3], columns are the axes
    idx = scales.detach().argmin(-1)
    n = R.gather(2, idx[:, None, None].expand(-1, 3, 1))[..., 0]
    Rv, tv = viewmat[:3, :3], viewmat[:3, 3]
    n_cam = n @ Rv.T
    pc = means.detach() @ Rv.T + tv
    return torch.where(((n_cam * pc).sum(-1, keepdim=True) > 0), -n_cam, n_cam)


@RENDER_METHODS.register_module(name="lmgaussian")
class LMGaussianTrainer(GSTrainer):
    """LM-Gaussian trainer (module doc). Config: the 3DGS sections plus ``lmgaussian``
    (:class:`~.config.LMGaussianConfig`); ``method = "lmgaussian"``."""

    def __init__(self, cfg, work_dir, seed: int = 0, resume: bool = False, progress: bool = True):
        self._t_begin, self._cpu_origin = time.time(), time.process_time()
        lm_cfg = dict(cfg.get("lmgaussian", None) or {})
        self.lm = section(LMGaussianConfig, lm_cfg, "lmgaussian")
        self.refined: Optional[torch.Tensor] = None
        self.rounds_done = 0
        super().__init__(cfg, work_dir, seed=seed, resume=resume, progress=progress)
        self.cfg["lmgaussian"] = lm_cfg
        self.cfg["method"] = "lmgaussian"
        init_s = time.time() - self._t_begin
        self.priors["init_s"] = round(init_s, 2)
        self.budget_minutes = self.max_minutes
        if self.max_minutes is not None:  # the priors' time counts against the run's budget
            self.max_minutes = max(float(self.max_minutes) - init_s / 60.0, 0.0)
        if progress:
            print(f"[lmgaussian] set-up {init_s:.1f} s; init {self.priors.get('init')}; refiner "
                  f"{self.priors.get('refiner')}", flush=True)

    # -- set-up ------------------------------------------------------------------------------------------------
    def _init_model(self) -> GaussianModel:
        """Everything LM-Gaussian needs before training (so a bad prior fails before the work dir exists):
        the depth prior of the training views, the initial points, the loss targets, the virtual views."""
        from ..priors import build_depth_prior, build_image_refiner

        lm, m, scene = self.lm, self.model_cfg, self.scene
        ids = list(scene.train_ids)
        if len(ids) < 2:
            raise ValueError(f"LM-Gaussian needs at least 2 training views, got {len(ids)} ({ids})")
        prior = build_depth_prior(dict(lm.depth_prior))
        self.priors["depth"] = prior.describe()
        depths = {i: view_depth(prior, scene, i, ids) for i in ids}
        # per-pixel multi-view agreement, only filled when the depth targets use it
        agreement: Optional[dict] = {} if lm.target_min_agree > 0 and lm.depth_loss_prior is None else None
        pts, rgb, stats = background_aware_points(scene, ids, depths, int(m.init_num), lm.background_ratio,
                                                  lm.occlusion_tol, lm.fill_holes, self.gen, agreement)
        if lm.hull_volume_points > 0:  # not the authors' (config doc): the visual hull's volume, 3DGS's random start
            lo, hi = pts.min(0).values, pts.max(0).values
            pad = 0.05 * (hi - lo)
            vol, vol_rgb = hull_volume_points(scene, ids, int(lm.hull_volume_points), lo - pad, hi + pad, self.gen)
            stats["hull_volume"] = len(vol)
        else:
            vol, vol_rgb = pts[:0], rgb[:0]
        self.priors["init"] = {**stats, "points": len(pts) + len(vol)}

        # Pearson depth-loss targets: the prior's own map (relative maps need no alignment: the loss is affine-
        # invariant) and where it is valid
        if lm.depth_loss_prior is None:
            self.depth_targets = {i: (d.raw, d.valid) for i, d in depths.items()}
            if lm.target_min_agree > 0:  # multi-view consistent pixels only (the authors: DUSt3R's confident ones)
                self.depth_targets = {i: (t, v & (agreement[i] >= lm.target_min_agree))
                                      for i, (t, v) in self.depth_targets.items()}
                self.priors["depth_target_coverage"] = {
                    int(i): round(float(v.float().mean()), 4) for i, (_, v) in self.depth_targets.items()}
        else:
            lp = build_depth_prior(dict(lm.depth_loss_prior))
            self.priors["depth_loss"] = lp.describe()
            self.depth_targets = {}
            for i in ids:
                dm = lp.estimate(scene, i, ids)
                if tuple(dm.depth.shape) != (scene.height, scene.width):
                    raise ValueError(f"lmgaussian.depth_loss_prior: view {i} ({scene.names[i]}) depth is "
                                     f"{tuple(dm.depth.shape[::-1])}, the image is {scene.width}x{scene.height}")
                self.depth_targets[i] = (dm.depth.float(), dm.valid)

        # normal-loss targets
        mode = lm.normal_prior
        if mode == "auto":
            mode = "shipped" if scene.extras.get("normal_paths") else "depth"
        self.normal_targets = {}
        if mode == "shipped":
            for i in ids:
                n = shipped_normal(scene, i)
                if n is None:
                    raise ValueError("lmgaussian.normal_prior='shipped' but this scene format ships no normal maps")
                self.normal_targets[i] = (n, torch.ones(n.shape[:2], dtype=torch.bool))
        elif mode == "depth":
            for i in ids:
                valid = depths[i].valid
                if lm.target_min_agree > 0 and lm.depth_loss_prior is None:
                    valid = self.depth_targets[i][1]
                self.normal_targets[i] = depth_normal_prior(depths[i].depth, valid, scene.cameras.Ks[i])
        elif mode is not None:
            raise ValueError(f"lmgaussian.normal_prior must be 'shipped', 'depth', 'auto' or None, got {mode!r}")
        self.priors["normal"] = {"type": mode, "weights": None}
        # an object capture (alpha / mask): off the object the prior's depth is interpolated over the empty
        # background, where nothing is rendered — the depth and normal losses, like the initialisation
        # (background_aware_points), keep to the object
        for targets in (self.depth_targets, self.normal_targets):
            for i, (t, valid) in targets.items():
                obj = scene.mask(i)
                if obj is not None:
                    targets[i] = (t, valid & obj)

        # virtual views: point renders of the initial cloud (stage 1) and refinement targets (stage 2)
        self.virtual = virtual_cameras(scene.cameras, ids, lm.num_virtual)
        self.virtual_targets = None
        if lm.lambda_virtual > 0:
            self.virtual_targets = point_render_targets(pts, rgb, self.virtual, self.background, lm.point_scale,
                                                        self.tile_size)
        self.refine_weights = distance_weights(self.virtual, scene.cameras[ids], lm.refine_gain)
        self.refiner = build_image_refiner(dict(lm.refiner)) if lm.refiner is not None else None
        if self.refiner is None:
            why = "no image refiner given (lmgaussian.refiner " + ("None)" if lm.refiner is None else "type 'none')")
            if lm.stage2_without_refiner:
                log.warning("LM-Gaussian: %s: the refinement stage runs from %.2f of the run without refined "
                            "targets (photometric loss only: the stage-1 regularisers stop there, as in the "
                            "authors' stage2_forward.py)", why, lm.refine_from)
            else:
                log.warning("LM-Gaussian: %s: the iterative refinement stage is skipped and stage 1 runs to the end",
                            why)
            self.priors["refiner"] = {"type": None, "skipped": True, "reason": why,
                                      "stage2_without_refiner": bool(lm.stage2_without_refiner)}
        else:
            self.priors["refiner"] = {**self.refiner.describe(), "skipped": False, "rounds_done": 0}
        # the virtual views' point renders above show the prior's cloud; the hull's volume points start as Gaussians
        return GaussianModel.from_points(torch.cat([pts, vol]), torch.cat([rgb, vol_rgb]), int(m.sh_degree),
                                         float(m.init_opacity), float(m.init_scale))

    # -- schedule ----------------------------------------------------------------------------------------------
    def progress_frac(self) -> float:
        """How far the run is, in [0, 1]: the largest of steps / ``max_steps``, elapsed / ``max_minutes`` and
        CPU time / ``max_cpu_minutes`` (the schedule's fractions and the means' learning-rate decay follow it)."""
        p = super().progress_frac()
        budget = getattr(self, "budget_minutes", None)
        if budget:
            p = max(p, (time.time() - self._t_begin) / (60.0 * float(budget)))
        return min(p, 1.0)

    # -- rendering ---------------------------------------------------------------------------------------------
    def render_with_geometry(self, cam, background: torch.Tensor, sh_degree: int):
        """One rasterization of colour, camera-frame normal and depth. → (rgb [H, W, 3], normal [H, W, 3]
        (blended, not unit), depth [H, W] (Σ w z), alpha [H, W], meta)."""
        m = self.model
        vm = cam.viewmats[0]
        campos = torch.linalg.inv(vm)[:3, 3]
        rgb = torch.clamp_min(eval_sh(sh_degree, m.means - campos, m.sh) + 0.5, 0.0)
        feats = torch.cat([rgb, gaussian_normals(m.quats, m.scales, m.means, vm)], -1)[None]
        bg = torch.cat([torch.as_tensor(background, dtype=feats.dtype, device=feats.device),
                        torch.zeros(3, dtype=feats.dtype, device=feats.device)])[None]
        out, alpha, meta = rasterize(m.means, m.quats, m.scales, m.opacities, feats, cam.viewmats, cam.Ks,
                                     cam.width, cam.height, sh_degree=None, backgrounds=bg, render_mode="RGB+D",
                                     tile_size=self.tile_size)
        o = out[0]
        return o[..., :3], o[..., 3:6], o[..., 6], alpha[0, ..., 0], meta

    # -- refinement stage ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def refine_round(self) -> None:
        """Render every virtual view, refine it with the image refiner (the training images as references) and
        make the results the stage's targets."""
        deg = self.active_sh_degree(self.step)
        refs = [self.scene.image(i) for i in self.scene.train_ids]
        outs = []
        for k in range(len(self.virtual)):
            img = self.render_colour(self.virtual[k], self.background, deg)[0].clamp(0, 1)
            outs.append(self.refiner.refine(img, refs).to(img))
        self.refined = torch.stack(outs)
        self.rounds_done += 1
        self.priors["refiner"]["rounds_done"] = self.rounds_done
        if self.progress:
            print(f"[lmgaussian] refinement round {self.rounds_done} at step {self.step}: {len(outs)} virtual views "
                  f"refined by {self.refiner.name}", flush=True)

    def _stage2(self, p: float) -> bool:
        if p < self.lm.refine_from:
            return False
        if self.refiner is None:  # stage 2 without its refined targets: the stage-1 regularisers stop all the same
            return bool(self.lm.stage2_without_refiner)
        rounds = max(int(self.lm.refine_rounds), 1)
        due = self.lm.refine_from + (1.0 - self.lm.refine_from) * self.rounds_done / rounds
        if self.refined is None or (self.rounds_done < rounds and p >= due):
            self.refine_round()
        return True

    # -- one step ------------------------------------------------------------------------------------------------
    def train_step(self, i: int) -> dict:
        lm = self.lm
        p = self.progress_frac()
        stage2 = self._stage2(p)
        cam = self.scene.cameras[i]
        gt = self.scene.image(i)
        bg = torch.rand(3, generator=self.gen) if self.random_background else self.background
        deg = self.active_sh_degree(self.step)
        depth_normal = lm.lambda_depth_normal > 0 and stage2 and p >= lm.regularization_from  # Eq. 10
        if stage2 and not depth_normal:  # no loss reads normals or depth: colour alone, as a 3DGS step
            rgb, meta = self.render_colour(cam, bg, deg)
        else:
            rgb, normal, depth, alpha, meta = self.render_with_geometry(cam, bg, deg)
            unit_normal = F.normalize(normal, dim=-1, eps=1e-6)
        self.strategy.step_pre_backward(self.model.params, self.optimizers, self.strategy_state, self.step, meta)
        l1 = (rgb - gt).abs().mean()
        ssim = ssim_differentiable(rgb.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None])
        loss = (1 - self.ssim_lambda) * l1 + self.ssim_lambda * (1 - ssim)  # 3DGS Eq. 7
        stats = {}
        if not stage2:
            if lm.lambda_depth > 0:  # Eq. 8
                target, mask = self.depth_targets[i]
                box = max(int(round(lm.local_box_frac * cam.width)), 8)
                ld = pearson_depth_loss(depth, target, mask) + local_pearson_loss(depth, target, box, lm.p_corr,
                                                                                  mask, self.gen)
                loss = loss + lm.lambda_depth * ld
                stats["depth_loss"] = float(ld.detach())
            if i in self.normal_targets:  # Eq. 9
                nt, nm = self.normal_targets[i]
                ln = normal_prior_loss(unit_normal, nt, nm, lm.lambda_normal_l1, lm.lambda_normal_cos)
                loss = loss + ln
                stats["normal_loss"] = float(ln.detach())
            if self.virtual_targets is not None and self.step % max(lm.virtual_every, 1) == 0:  # Eq. 11
                k = int(torch.randint(len(self.virtual), (1,), generator=self.gen))
                img = self.render_colour(self.virtual[k], self.background, deg)[0]
                lv = masked_l1(img, self.virtual_targets[0][k], self.virtual_targets[1][k])
                loss = loss + lm.lambda_virtual * lv
                stats["virtual_loss"] = float(lv.detach())
        elif self.refiner is not None:
            k = int(torch.randint(len(self.virtual), (1,), generator=self.gen))
            img = self.render_colour(self.virtual[k], self.background, deg)[0]
            lr_ = (img - self.refined[k]).abs().mean()
            loss = loss + float(self.refine_weights[k]) * lr_
            stats["refine_loss"] = float(lr_.detach())
        if depth_normal:  # Eq. 10, stage 2 only
            ed = depth / alpha.detach().clamp_min(1e-6)
            ldn = depth_normal_consistency(unit_normal, ed, cam.Ks[0], alpha.detach() > 0.5)
            loss = loss + lm.lambda_depth_normal * ldn
            stats["depth_normal_loss"] = float(ldn.detach())
        return {**self._optimize(loss, meta, rgb, gt, l1, ssim), **stats}
