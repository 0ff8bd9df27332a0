"""CoherentGS training (Paliwal et al., ECCV 2024): ``method = "coherentgs"`` in a config, run by
``tools/train_gs.py`` like 3DGS. The schedule of the authors' ``train.py``:

1. **Priors** (once): dense depth of each training view from the depth prior, depth-layer masks, optical flow and
   consistency masks between every pair of views (:mod:`.depth_init`).
2. **Depth alignment** (``align_steps``; for a relative depth prior): only the per-view scale and offset of the
   depth move, by the flow-based correspondence loss (:func:`.losses.warping_loss`); then they are baked into the
   initial depth.
3. **Regularised optimisation** (``max_steps``): render one training view; loss

       L = (1 − λ) ML1 + λ (1 − SSIM)                        reconstruction (λ = 0.2)
         + smooth_coeff · [γ TV(M ⊙ D̂) + (1 − γ) TV(D̂)]     multi-view constraint on rendered disparity D̂
         + warp_coeff · (warp_coeff · L_flow)                 flow-based loss on the Gaussians' positions

   with the depth and opacity given by the implicit decoders (single-view constraint, :mod:`.model`); Adam on the
   higher SH bands, scales and rotations, AdamW with cyclic learning rates on the two decoders. No densification:
   the Gaussians are the pixel sites throughout. The authors' VGG perceptual term (weight 0.05) needs ImageNet
   VGG-19 weights, which cannot be had offline, and is left out.

Outputs as :class:`~perception3d.rendering.trainer.GSTrainer`: ``ckpt_latest.pt`` (``params`` = the per-pixel
Gaussians exported as a :class:`GaussianModel`, so ``load_model``, ``tools/render.py`` and
``tools/spare_submit.py`` read it; the CoherentGS state under ``"coherentgs"`` for ``--resume``),
``point_cloud.ply``, ``renders/``, ``metrics.json`` (with ``wall_s`` from the start of the run, priors included,
and the process CPU time ``cpu_s``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from perception3d.fileio import atomic_torch_save, atomic_write_text
from perception3d.ops.image_quality import ssim_differentiable
from perception3d.registry import RENDER_METHODS

from ..config import GSTrainConfig, section
from ..trainer import GSTrainer, build_scene, resolve_background, seed_everything
from .config import DECODER_NGF, INIT_OPACITY, CoherentGSModelConfig, CoherentGSTrainConfig
from .depth_init import correspondences, dense_depth, depth_layers, induced_flow, outside_masks
from .losses import ml1_loss, second_order_tv, warping_loss
from .model import CoherentGaussians

__all__ = ["CoherentGSTrainer"]

_BASE_TRAIN_KEYS = frozenset(f.name for f in dataclasses.fields(GSTrainConfig))


def pixel_stride(stride, views: int) -> int:
    """``model.pixel_stride`` as an int: itself, or for ``"auto"`` ⌈√(views / 3)⌉ (see the config's doc)."""
    if stride == "auto":
        return max(1, math.ceil(math.sqrt(views / 3.0)))
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"model.pixel_stride must be an int >= 1 or 'auto', got {stride!r}")
    return stride


def _by_views(table: dict, views: int, beyond: float) -> float:
    return table[views] if views in table else (beyond if views > max(table) else table[min(table)])


@RENDER_METHODS.register_module(name="coherentgs")
class CoherentGSTrainer(GSTrainer):
    """Trains :class:`~.model.CoherentGaussians` on a scene (module doc). Same constructor and outputs as
    :class:`GSTrainer`; the config has ``data``, ``model`` (:class:`~.config.CoherentGSModelConfig`) and ``train``
    (:class:`~.config.CoherentGSTrainConfig`) and no ``strategy`` (there is no densification)."""

    def __init__(self, cfg, work_dir, seed: int = 0, resume: bool = False, progress: bool = True):
        # both clocks (train.max_minutes, train.max_cpu_minutes) count from here: the priors' time is included
        self._t_start, self._cpu_origin = time.time(), time.process_time()
        if dict(cfg.get("strategy", None) or {}):
            raise ValueError("coherentgs: the config has a 'strategy' section, but CoherentGS does not densify "
                             "(one Gaussian per input pixel); remove it")
        self.cfg = {k: dict(cfg[k]) if k in cfg else {} for k in ("data", "model", "train")}
        self.work_dir = Path(work_dir)  # created only once everything is built (no half-made run folder)
        self.seed, self.progress = seed, progress
        self.gen = seed_everything(seed)
        tcfg = self.train_cfg = section(CoherentGSTrainConfig, self.cfg["train"], "train")
        mcfg = self.model_cfg = section(CoherentGSModelConfig, self.cfg["model"], "model")
        self.max_steps, self.max_minutes = int(tcfg.max_steps), tcfg.max_minutes
        self.max_cpu_minutes = tcfg.max_cpu_minutes
        self.ssim_lambda = float(tcfg.ssim_lambda)
        self.eval_every, self.save_every = int(tcfg.eval_every), int(tcfg.save_every)
        self.log_every, self.tile_size = int(tcfg.log_every), int(tcfg.tile_size)
        self.background, self.random_background = resolve_background(self._readable_config())

        dev = tcfg.device
        if dev not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device must be 'auto', 'cpu' or 'cuda', got {dev!r}")
        self.device = torch.device("cuda" if dev == "cuda" or (dev == "auto" and torch.cuda.is_available())
                                   else "cpu")

        from ..priors import build_depth_prior, build_flow_prior

        # a prior that cannot be built (a checkpoint path that does not exist / holds another model) fails here,
        # before the scene is read and before anything is written
        depth_prior = build_depth_prior(dict(mcfg.depth_prior))
        flow_prior = build_flow_prior(dict(mcfg.flow_prior))
        self.scene = build_scene(self.cfg["data"])
        self.priors = {"depth": depth_prior.describe(), "flow": flow_prior.describe()}
        self.model, self.flows, self.masks, self.layers = self._build(depth_prior, flow_prior)
        self.model.to(self.device)
        self.flows, self.masks, self.layers = (x.to(self.device) for x in (self.flows, self.masks, self.layers))
        self._make_optimizers()
        self.step = 0
        self.order: list[int] = []
        self.history: list[dict] = []
        self.align_stats: dict = {}
        self.ckpt_path = self.work_dir / "ckpt_latest.pt"
        if resume and self.ckpt_path.is_file():
            self.load_checkpoint(self.ckpt_path)
        self.init_s = time.time() - self._t_start
        if progress:
            print(f"[coherentgs] {len(self.model)} per-pixel Gaussians from {self.model.num_views} views "
                  f"({self.scene.width}x{self.scene.height}); priors {json.dumps(self.priors, default=str)}; "
                  f"set-up {self.init_s:.1f} s", flush=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def _readable_config(self) -> dict:
        """The config with ``train`` cut to 3DGS's keys (what ``resolve_background`` / ``tools/render.py`` read)."""
        return {**self.cfg, "train": {k: v for k, v in self.cfg["train"].items() if k in _BASE_TRAIN_KEYS}}

    # -- set-up -----------------------------------------------------------------------------------------------
    def _build(self, depth_prior, flow_prior):
        m, t, sc = self.model_cfg, self.train_cfg, self.scene
        ids = list(sc.train_ids)
        V = len(ids)
        self.view_of = {i: k for k, i in enumerate(ids)}
        images = torch.stack([sc.image(i) for i in ids])
        sites = torch.ones(V, sc.height, sc.width, dtype=torch.bool)
        masked = 0  # views with an object mask
        if m.use_alpha:
            for k, i in enumerate(ids):
                a = sc.alpha(i)
                if a is not None:
                    sites[k] = a > 0.5
                    masked += 1
        if m.mask_carving is not None and masked < V:
            raise ValueError(f"model.mask_carving needs an object mask (alpha) in every training view; "
                             f"{V - masked} of {V} have none")
        depths, records = [], []
        for i in ids:
            d, rec = dense_depth(depth_prior, sc, i, ids)
            depths.append(d)
            records.append(rec)
        self.priors["depth_views"] = records
        depth = torch.stack(depths)
        K = int(m.num_mask_channels)
        layers = torch.stack([depth_layers(1.0 / depth[k], K, sites[k]) for k in range(V)])  # full res: the TV term
        cams = sc.cameras[ids]
        Ks, s = cams.Ks.clone(), pixel_stride(m.pixel_stride, V)
        self.priors["pixel_stride"] = s
        if s > 1:  # one Gaussian per s × s block (the last row / column may be partial): mean colour and disparity
            images = F.avg_pool2d(images.permute(0, 3, 1, 2), s, ceil_mode=True).permute(0, 2, 3, 1)
            depth = 1.0 / F.avg_pool2d(1.0 / depth[:, None], s, ceil_mode=True)[:, 0]
            sites = F.avg_pool2d(sites[:, None].float(), s, ceil_mode=True)[:, 0] > 0.5
            Ks[:, :2] /= s
        grid_layers = layers if s == 1 else torch.stack(
            [depth_layers(1.0 / depth[k], K, sites[k], every=max(1, 10 // s)) for k in range(V)])
        if m.mask_carving is not None:
            drop = outside_masks(depth, sites, Ks, cams.viewmats, int(m.mask_carving)) > 0
            self.priors["mask_carving"] = {"tolerance": int(m.mask_carving),
                                           "dropped": round(float(drop.sum() / sites.sum().clamp_min(1)), 4)}
            sites = sites & ~drop
        init = None
        if m.flow_init == "depth":  # pose-guided flow: the search starts where the depth prior says (depth_init)
            init = induced_flow(depth, Ks, cams.viewmats)
        elif m.flow_init != "none":
            raise ValueError(f"model.flow_init must be 'depth' or 'none', got {m.flow_init!r}")
        flows, masks = correspondences(flow_prior, images, sites, float(t.flow_threshold), init)
        self.priors["flow_init"] = m.flow_init
        self.priors["flow_consistent"] = round(float(masks.sum() / max(V * (V - 1), 1) / sites[0].numel()), 4)
        # of the pixels that hold a Gaussian: the share with a consistent correspondence in another view
        pair_sites = (V - 1) * sites.sum()
        self.priors["flow_consistent_sites"] = round(float(masks.sum() / pair_sites.clamp_min(1)), 4)
        init_opacity = m.init_opacity if m.init_opacity is not None else _by_views(INIT_OPACITY, V, 1.4 / V)
        ngf = m.ngf if m.ngf is not None else int(_by_views(DECODER_NGF["xyz"], V, 18))
        ongf = m.opacity_ngf if m.opacity_ngf is not None else int(_by_views(DECODER_NGF["opacity"], V, 12))
        model = CoherentGaussians(cams.viewmats, Ks, images, depth, sites, grid_layers, int(m.sh_degree),
                                  float(m.radius_mult), float(init_opacity), int(ngf), int(ongf),
                                  int(m.decoder_finest_level), int(m.embed_freqs), float(m.depth_residual_scale),
                                  float(m.opacity_residual_scale), bool(t.train_colors))
        return model, flows, masks, layers

    def _make_optimizers(self) -> None:
        t, m = self.train_cfg, self.model
        groups = [{"params": [m.shN], "lr": t.feature_lr / 10, "name": "f_rest"},
                  {"params": [m.scales], "lr": t.scaling_lr, "name": "scaling"},
                  {"params": [m.quats], "lr": t.rotation_lr, "name": "rotation"}]
        if isinstance(m.sh0, torch.nn.Parameter):
            groups.append({"params": [m.sh0], "lr": t.feature_lr, "name": "f_dc"})
        self.optimizers = {"gaussians": torch.optim.Adam(groups, lr=0.0, eps=1e-15)}
        self.schedulers = {}
        for name, dec, (lo, hi), cyc in (("decoder", m.decoder, t.decoder_lr, t.decoder_cycle),
                                         ("decoder_opac", m.decoder_opac, t.opacity_decoder_lr,
                                          t.opacity_decoder_cycle)):
            opt = torch.optim.AdamW(dec.parameters(), lr=float(lo))
            self.optimizers[name] = opt
            self.schedulers[name] = torch.optim.lr_scheduler.CyclicLR(
                opt, base_lr=float(lo), max_lr=float(hi), mode="triangular2",
                step_size_up=max(1, round(float(cyc) * self.max_steps)), cycle_momentum=False)

    # -- stage 2: depth alignment -------------------------------------------------------------------------------
    def _xyz(self, means: torch.Tensor) -> torch.Tensor:
        """[N, 3] per-pixel positions → [V, 3, H, W] through the pixel SparseTensor."""
        return self.model.grid.replace(feats=means).dense()

    def _dense(self, depth: torch.Tensor) -> torch.Tensor:
        """[N] per-pixel depths → [V, 1, H, W] (1 where a pixel holds no Gaussian)."""
        return self.model.grid.replace(feats=(depth - 1)[:, None]).dense() + 1

    def _random_view(self) -> int:
        return int(torch.randint(self.model.num_views, (1,), generator=self.gen))

    def align_depth(self) -> dict:
        """Fit each view's depth scale and offset by the flow correspondence loss, then bake them in. A metric
        depth prior (every view's) is not aligned unless ``train.align_metric_depth`` (see the config's doc)."""
        m, t = self.model, self.train_cfg
        t0 = time.time()
        m.stage = "align"
        opt = torch.optim.Adam([{"params": [m.mono_scale], "lr": float(t.align_lr[0])},
                                {"params": [m.mono_offset], "lr": float(t.align_lr[1])}])
        metric = all(r.get("metric", False) for r in self.priors.get("depth_views", [])) and \
            bool(self.priors.get("depth_views"))
        steps = int(t.align_steps) if t.align_metric_depth or not metric else 0
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
        losses = []
        for _ in range(steps):
            d = m.depth()
            loss = warping_loss(self._xyz(m.means(d)), self.flows, self.masks, self._random_view(), self._dense(d))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            losses.append(float(loss.detach()))
        self.align_stats = {"steps": steps, "metric_depth": metric, "scale": m.mono_scale.detach().tolist(),
                            "offset": (m.mono_offset.detach() * m.d_ref).tolist(),
                            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
                            "seconds": round(time.time() - t0, 1)}
        m.bake_alignment()
        if self.progress:
            print(f"[coherentgs] depth alignment: {json.dumps(self.align_stats)}", flush=True)
        return self.align_stats

    # -- stage 3: one training step --------------------------------------------------------------------------
    def train_step(self, i: int) -> dict:
        m, t = self.model, self.train_cfg
        frac = self.progress_frac()  # steps or the CPU budget, whichever is further
        if frac < t.scale_reset_until and self.step % max(1, round(t.scale_reset_every * self.max_steps)) == 0:
            m.reset_scales()
        m.active_sh_degree = min(sum(frac >= f for f in t.sh_up_at), m.sh_degree)
        cam = self.scene.cameras[i].to(self.device)
        gt = self.scene.image(i).to(self.device).permute(2, 0, 1)[None]
        bg = (torch.rand(3, generator=self.gen) if self.random_background else self.background).to(self.device)
        ss = 1
        if frac >= t.multisample_from and int(t.multisample_max) > 1:
            ss = int(torch.randint(1, int(t.multisample_max) + 1, (1,), generator=self.gen))
        Ks = cam.Ks.clone()
        Ks[:, :2] *= ss
        g = m.unpack(m.decode())
        out, alpha, _ = m.render(cam.viewmats, Ks, cam.width * ss, cam.height * ss, background=bg,
                                 render_mode="RGB+D", gaussians=g, tile_size=self.tile_size)
        out = torch.cat([out, alpha], -1).permute(0, 3, 1, 2)
        if ss > 1:
            out = F.avg_pool2d(out, ss)
        pred, depth, acc = out[:, :3], out[:, 3:4], out[:, 4:5]
        ml1 = ml1_loss(pred, gt)
        ssim = ssim_differentiable(pred, gt)
        loss = (1 - self.ssim_lambda) * ml1 + self.ssim_lambda * (1 - ssim)
        ren_depth = depth / (acc + 1e-6)
        disparity = m.d_ref / (ren_depth + m.d_ref)  # authors: 1 / (depth + 1) in LLFF units
        gamma = t.tv_gamma_start + (1 - t.tv_gamma_start) * frac
        smooth = second_order_tv(disparity[0], self.layers[self.view_of[i]], gamma)
        loss = loss + t.smooth_coeff * smooth
        wrp = warping_loss(self._xyz(g["means"]), self.flows, self.masks, self._random_view(),
                           self._dense(g["depth"])) * t.warp_coeff
        loss = loss + t.warp_coeff * wrp
        loss.backward()
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        for s in self.schedulers.values():
            s.step()
        with torch.no_grad():
            mse = F.mse_loss(pred.clamp(0, 1), gt)
        return {"loss": float(loss.detach()), "ml1": float(ml1.detach()), "ssim": float(ssim.detach()),
                "tv": float(smooth.detach()), "warp": float(wrp.detach()),
                "psnr": float(-10 * torch.log10(mse.clamp_min(1e-12)))}

    # -- loop ---------------------------------------------------------------------------------------------------
    def train(self, until: Optional[int] = None) -> dict:
        """Align the depth (once), then train to ``max_steps`` / ``until`` / the minutes left of ``max_minutes``
        / ``max_cpu_minutes`` (both counted from the start of the run); returns the last evaluation's metrics
        with ``wall_s`` and ``cpu_s`` of the whole run."""
        if self.model.stage == "align":
            self.align_depth()
        budget = self.train_cfg.max_minutes
        if budget is not None:
            self.max_minutes = max(float(budget) - (time.time() - self._t_start) / 60.0, 0.0)
        last = super().train(until)
        last.update(wall_s=time.time() - self._t_start, cpu_s=self.cpu_seconds(),
                    init_s=self.init_s, steps=self.step)
        atomic_write_text(self.work_dir / "metrics.json",
                          json.dumps({"final": last, "history": self.history, "priors": self.priors,
                                      "align": self.align_stats}, indent=1, default=str))
        return last

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def save_checkpoint(self, path=None) -> Path:
        path = Path(path) if path is not None else self.ckpt_path
        exported = self.model.export()
        atomic_torch_save(path, {
            "method": "coherentgs",
            "step": self.step,
            "sh_degree": self.model.sh_degree,
            "params": {k: v.detach().clone() for k, v in exported.params.items()},
            "coherentgs": {"state": self.model.state_dict(), "stage": self.model.stage, "config": self.cfg,
                           "active_sh_degree": self.model.active_sh_degree, "align": self.align_stats,
                           "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                           "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()}},
            "history": self.history,
            "order": list(self.order),
            # readers of any trainer's checkpoint (load_model, resolve_background, tools/render.py) know 3DGS's
            # train keys; the full config travels under "coherentgs"
            "config": self._readable_config(),
            "priors": self.priors,
            "seed": self.seed,
            "rng": self.rng_state(),
        })
        return path

    def load_checkpoint(self, path) -> None:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        if "coherentgs" not in ck:
            raise ValueError(f"{path}: not a CoherentGS checkpoint (no 'coherentgs' state); cannot resume from it")
        st = ck["coherentgs"]
        if st["state"]["depth0"].shape != self.model.depth0.shape:
            raise ValueError(f"{path}: holds {st['state']['depth0'].shape[0]} per-pixel Gaussians, this config "
                             f"makes {len(self.model)}; it was trained on other views or another resolution")
        self.model.load_state_dict(st["state"])  # copies onto the model's device
        self.model.stage = st["stage"]
        self.model.active_sh_degree = int(st["active_sh_degree"])
        self.align_stats = dict(st.get("align", {}))
        for k, o in self.optimizers.items():
            o.load_state_dict(st["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(st["schedulers"][k])
        self.step = int(ck["step"])
        self.history = list(ck.get("history", []))
        self.order[:] = list(ck.get("order", []))
        self.set_rng_state(ck.get("rng", {}))
