"""The ``metacap`` rendering method: ``python tools/train_human.py configs/metacap_human_mini.py``.

A run (1) meta-learns the canonical field with Reptile over the frames of the ``meta_sequences`` (skipped with
``meta.outer_steps = 0``: fine-tuning then starts from the geometric initialisation, the authors' "notmeta"
baseline), writing ``WORK_DIR/meta_init.pt``; (2) fine-tunes it on 1/2/4/8 input views of the unseen
``test_frame`` (``finetune.views``), evaluating PSNR on ``data.eval_views`` of that frame (inside the body's
projected box, white background) during the run, and extracts the mesh and its Chamfer distance to the ground
truth (the built-in dataset's clothed mesh, else the body model's); it writes ``WORK_DIR/finetune_<n>views.pt``,
``ckpt_latest.pt`` (the last), and ``metrics.json``. ``tools/render.py CKPT`` renders any of these checkpoints.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from perception3d.registry import RENDER_METHODS
from ...config import section
from ..body_model import BodyModel, load_body_model
from ..zju_mocap import ZJUMoCap, read_zju_mocap
from .field import CanonicalField
from .frames import FrameData, load_frame
from .learner import DEFAULT_LOSS, finetune, occlusion_proxies, psnr, reptile
from .mesh import chamfer_distance, extract_mesh
from .neus import render_image

__all__ = ["MetaCapTrainer", "MetaCapData", "MetaCapModel", "MetaCapMeta", "MetaCapFinetune", "load_metacap",
           "save_metacap", "evaluate_views"]


@dataclass
class MetaCapData:
    """``data``: a ZJU-MoCap root with one sequence per folder (the built-in dataset when ``synthetic`` is set:
    its :func:`~..synthetic.synthetic_settings`, generated on first use).

    meta_sequences / meta_frames: the meta-learning tasks (frame indices into each sequence).
    test_sequence / test_frame: the unseen frame fine-tuned on (must not be among the meta tasks).
    input_views: camera order the n input views are taken from (the first n); eval_views: held-out cameras.
    """
    root: str = "data/zju_synthetic"
    synthetic: Optional[dict] = None
    meta_sequences: Sequence[str] = ("subject0",)
    meta_frames: Sequence[int] = (0,)
    test_sequence: str = "subject0"
    test_frame: int = 1
    input_views: Sequence[int] = (0, 12, 6, 18, 3, 15, 9, 21)
    eval_views: Sequence[int] = (1, 7, 13, 19)
    body_model: Optional[str] = None
    allow_template: bool = False


@dataclass
class MetaCapModel:
    """``model``: the field (:class:`CanonicalField`), the sampler (step along rays, body-model threshold) and
    the device ("auto": CUDA when available; the body-model nearest-vertex searches run on the CPU either way).
    ``sphere_radius`` 0: the initial SDF is positive over the whole sampled shell (see :mod:`.field`; the
    authors' 0.5 would enclose the torso's shell and trap the field in NeuS's fog)."""
    voxel_sizes: Sequence[float] = (0.08, 0.04, 0.02)
    features: int = 2
    hidden: int = 64
    feature_dim: int = 13
    sphere_radius: float = 0.0
    variance_init: float = 0.3
    box_margin: float = 0.15
    step: float = 0.01
    threshold: float = 0.05
    cos_anneal_end: int = 20000
    device: str = "auto"


@dataclass
class MetaCapMeta:
    """``meta``: Reptile (the authors' values by default)."""
    outer_steps: int = 3000
    inner_steps: int = 24
    inner_lr: float = 0.01
    outer_lr: float = 1.0
    warmup_steps_inner: int = 50
    rays: int = 256
    save_every: int = 200


@dataclass
class MetaCapFinetune:
    """``finetune``: views (input-view counts to fine-tune on), steps, Adam lr decayed to lr · final_lr_factor,
    rays per step, eval_steps (PSNR evaluated before these steps and at the end), occlusion handling and its
    proxies, mesh extraction cell, Chamfer samples."""
    views: Sequence[int] = (2,)
    steps: int = 3000
    lr: float = 0.01
    final_lr_factor: float = 0.1
    rays: int = 256
    eval_steps: Sequence[int] = (0, 100, 300, 1000)
    occlusion: bool = False
    proxy_views: int = 8
    proxy_size: int = 64
    occlusion_rings: int = 1
    mesh_voxel: float = 0.01
    chamfer_points: int = 20000
    init: str = "meta"


def _render_cfg(m: MetaCapModel) -> dict:
    return {"step": m.step, "threshold": m.threshold, "cos_anneal_end": m.cos_anneal_end}


def build_field(m: MetaCapModel, active_points: torch.Tensor) -> CanonicalField:
    lo = (active_points.min(0).values - m.box_margin).tolist()
    hi = (active_points.max(0).values + m.box_margin).tolist()
    return CanonicalField(lo, hi, active_points, m.voxel_sizes, m.features, m.threshold, m.hidden,
                          feature_dim=m.feature_dim, sphere_radius=m.sphere_radius, variance_init=m.variance_init)


def save_metacap(path: Path, fld: CanonicalField, active_points: torch.Tensor, cfg: dict, **extra: Any) -> None:
    from perception3d.fileio import atomic_torch_save

    atomic_torch_save(path, {"method": "metacap", "state_dict": fld.state_dict(), "active_points": active_points,
                             "config": cfg, **extra})


def load_metacap(path) -> tuple[CanonicalField, dict]:
    """(field, checkpoint dict) of a MetaCap checkpoint; a checkpoint of another method is a ValueError."""
    from perception3d.cli import check_checkpoint

    check_checkpoint(path)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or ck.get("method") != "metacap":
        got = ck.get("method") if isinstance(ck, dict) else None
        raise ValueError(f"checkpoint {path}: not a MetaCap checkpoint (method={got!r})")
    m = section(MetaCapModel, ck["config"].get("model"), "model")
    fld = build_field(m, ck["active_points"])
    fld.load_state_dict(ck["state_dict"])
    return fld, ck


def evaluate_views(fld: CanonicalField, frame: FrameData, m: MetaCapModel, renders: bool = False) -> dict:
    """PSNR and SSIM of ``frame``'s cameras inside the body's projected box (white background; SSIM with the
    11 × 11 Gaussian window over the box crop, zero-padded when the crop is smaller than the window); with
    ``renders`` also the rendered and ground-truth images."""
    from perception3d.ops.image_quality import ssim

    ps, ss, out = [], [], {"renders": [], "gts": []}
    for c in range(len(frame.cameras)):
        rgb, _ = render_image(fld, frame.body, frame.cameras, c, step=m.step, threshold=m.threshold)
        msk = frame.masks[c][..., None].float()
        gt = frame.images[c].float() / 255.0 * msk + (1 - msk)
        x0, y0, x1, y1 = frame.boxes[c].tolist()
        ps.append(psnr(rgb[y0:y1, x0:x1], gt[y0:y1, x0:x1]))
        ss.append(ssim(rgb[y0:y1, x0:x1], gt[y0:y1, x0:x1], padding="valid" if min(x1 - x0, y1 - y0) >= 11
                       else "same"))
        if renders:
            out["renders"].append(rgb)
            out["gts"].append(gt)
    res = {"psnr": sum(ps) / len(ps), "psnr_per_view": ps, "ssim": sum(ss) / len(ss), "ssim_per_view": ss}
    return {**res, **out} if renders else res


@RENDER_METHODS.register_module(name="metacap")
class MetaCapTrainer:
    """Meta-learning + fine-tuning from a config (module docstring); ``train()`` returns the final metrics."""

    def __init__(self, cfg, work_dir, seed: int = 0, resume: bool = False, progress: bool = True):
        self.cfg = {k: (dict(cfg[k]) if cfg.get(k) is not None else {}) for k in ("data", "model", "meta", "finetune")}
        self.cfg["loss"] = {**DEFAULT_LOSS, **dict(cfg.get("loss") or {})}
        self.data = section(MetaCapData, self.cfg["data"], "data")
        self.model = section(MetaCapModel, self.cfg["model"], "model")
        self.meta = section(MetaCapMeta, self.cfg["meta"], "meta")
        self.ft = section(MetaCapFinetune, self.cfg["finetune"], "finetune")
        if self.ft.init not in ("meta", "random"):
            raise ValueError(f"finetune.init must be 'meta' or 'random', got {self.ft.init!r}")
        bad = [n for n in self.ft.views if not 1 <= n <= len(self.data.input_views)]
        if bad:
            raise ValueError(f"finetune.views {bad}: at most {len(self.data.input_views)} (data.input_views)")
        if self.data.test_sequence in self.data.meta_sequences and self.data.test_frame in self.data.meta_frames:
            raise ValueError(f"data.test_frame {self.data.test_frame} of {self.data.test_sequence} is a meta-learning "
                             "frame: the fine-tuning frame must be unseen")
        self.work_dir, self.seed, self.resume, self.progress = Path(work_dir), seed, resume, progress
        self.priors: dict = {}

    # -- data -------------------------------------------------------------------------------------------------
    def _sequences(self) -> tuple[dict, BodyModel]:
        root = Path(self.data.root)
        if self.data.synthetic is not None:
            from ..synthetic import ensure_synthetic_humans

            ensure_synthetic_humans(root, **dict(self.data.synthetic))
        names = list(dict.fromkeys(list(self.data.meta_sequences) + [self.data.test_sequence]))
        seqs = {}
        for n in names:
            if not (root / n / "annots.npy").is_file():
                raise FileNotFoundError(f"{root / n / 'annots.npy'}: no ZJU-MoCap sequence '{n}' under data.root "
                                        f"{root}")
            seqs[n] = read_zju_mocap(root / n)
        body = load_body_model(self.data.body_model, allow_template=self.data.allow_template)
        self.priors["body_model"] = body.data.source
        return seqs, body

    def _log(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)

    # -- the run ----------------------------------------------------------------------------------------------
    def train(self) -> dict:
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        seqs, body = self._sequences()
        rc = _render_cfg(self.model)
        dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if self.model.device == "auto"
                           else self.model.device)
        self.priors["device"] = str(dev)
        tasks = []
        if self.meta.outer_steps > 0:
            for s in self.data.meta_sequences:
                for f in self.data.meta_frames:
                    if not 0 <= f < len(seqs[s]):
                        raise ValueError(f"data.meta_frames: frame {f} but {seqs[s].root} has {len(seqs[s])}")
                    tasks.append(load_frame(seqs[s], f, body).to(dev))
        tseq = seqs[self.data.test_sequence]
        if not 0 <= self.data.test_frame < len(tseq):
            raise ValueError(f"data.test_frame {self.data.test_frame}: {tseq.root} has {len(tseq)} frames")
        eval_frame = load_frame(tseq, self.data.test_frame, body, self.data.eval_views).to(dev)
        active = torch.cat([t.body.verts_c for t in tasks] + [eval_frame.body.verts_c]).cpu()
        fld = build_field(self.model, active).to(dev)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        results: dict = {"priors": self.priors}
        cfg = {k: v for k, v in self.cfg.items()}
        # (1) Reptile meta-learning
        meta_path = self.work_dir / "meta_init.pt"
        if self.meta.outer_steps > 0:
            start = 0
            if self.resume and meta_path.is_file():
                ck = torch.load(meta_path, map_location="cpu", weights_only=False)
                fld.load_state_dict(ck["state_dict"])
                start = int(ck.get("outer_step", self.meta.outer_steps))
                if "generator" in ck:
                    gen.set_state(ck["generator"])
            t0, c0 = time.time(), time.process_time()

            def cb(step: int, loss: float) -> None:
                done = step + 1
                if done % max(1, self.meta.outer_steps // 20) == 0 or done == self.meta.outer_steps:
                    self._log(f"[meta {done}/{self.meta.outer_steps}] inner loss {loss:.4f}  "
                              f"{time.time() - t0:.0f} s")
                if done % self.meta.save_every == 0 and done < self.meta.outer_steps:
                    save_metacap(meta_path, fld, active, cfg, kind="meta", outer_step=done, generator=gen.get_state())

            reptile(fld, tasks, self.meta.outer_steps, gen, rc, self.cfg["loss"], self.meta.inner_steps,
                    self.meta.inner_lr, self.meta.outer_lr, self.meta.warmup_steps_inner, self.meta.rays,
                    start_step=start, callback=cb)
            save_metacap(meta_path, fld, active, cfg, kind="meta", outer_step=self.meta.outer_steps)
            results["meta_seconds"] = time.time() - t0
            results["meta_cpu_seconds"] = time.process_time() - c0
            del tasks
        # (2) fine-tuning on n views of the unseen frame
        gt_mesh = self._gt_mesh(tseq, eval_frame)
        for n in self.ft.views:
            inp = load_frame(tseq, self.data.test_frame, body, list(self.data.input_views)[:n]).to(dev)
            start = copy.deepcopy(fld) if self.ft.init == "meta" else build_field(self.model, active).to(dev)
            proxy = (occlusion_proxies(fld, inp, rc, self.ft.proxy_views, self.ft.proxy_size, self.ft.occlusion_rings)
                     if self.ft.occlusion else None)
            t0 = time.time()
            # its own random stream: from the meta-learned or the initial weights, the same rays and backgrounds
            ft_gen = torch.Generator().manual_seed(self.seed + 1000 * n)
            hist = finetune(start, inp, self.ft.steps, ft_gen, rc, self.cfg["loss"], self.ft.lr, self.ft.final_lr_factor,
                            self.ft.rays, proxy, evaluate=lambda f: evaluate_views(f, eval_frame, self.model),
                            eval_steps=self.ft.eval_steps)
            for h in hist:
                self._log(f"[finetune {n} views, step {h['step']}] PSNR {h['psnr']:.2f} dB  SSIM {h['ssim']:.3f}  "
                          f"loss {h['loss']:.4f}")
            verts, faces = extract_mesh(start, eval_frame.body, self.ft.mesh_voxel, self.model.threshold)
            cd = chamfer_distance(verts, faces, gt_mesh[0], gt_mesh[1], self.ft.chamfer_points, self.seed)
            res = {"psnr": hist[-1]["psnr"], "ssim": hist[-1]["ssim"], "chamfer_cm": 100 * cd["chamfer"],
                   "pred_to_gt_cm": 100 * cd["a_to_b"], "gt_to_pred_cm": 100 * cd["b_to_a"],
                   "seconds": time.time() - t0, "history": hist,
                   "occlusion_rate": proxy.rate if proxy is not None else None}
            results[f"{n}views"] = res
            self._log(f"[finetune {n} views] PSNR {res['psnr']:.2f} dB  SSIM {res['ssim']:.3f}  "
                      f"Chamfer {res['chamfer_cm']:.2f} cm")
            extra = dict(kind="finetune", sequence=self.data.test_sequence, frame=self.data.test_frame, n_views=n,
                         data_root=str(self.data.root))
            save_metacap(self.work_dir / f"finetune_{n}views.pt", start, active, cfg, **extra)
            save_metacap(self.work_dir / "ckpt_latest.pt", start, active, cfg, **extra)
        from perception3d.fileio import atomic_write_text

        atomic_write_text(self.work_dir / "metrics.json", json.dumps(results, indent=1, default=float))
        flat = {}
        for n in self.ft.views:
            r = results[f"{n}views"]
            flat[f"psnr_{n}views"], flat[f"chamfer_cm_{n}views"] = r["psnr"], r["chamfer_cm"]
            flat[f"ssim_{n}views"] = r["ssim"]
        if "meta_seconds" in results:
            flat["meta_seconds"] = results["meta_seconds"]
        return flat

    def _gt_mesh(self, seq: ZJUMoCap, frame: FrameData):
        from ..synthetic import synthetic_gt_mesh

        fid = seq.frame_ids[self.data.test_frame]
        if (seq.root / "mesh" / f"{fid}.npy").is_file():
            return synthetic_gt_mesh(seq.root, fid)
        self.priors["chamfer_reference"] = "body model (no ground-truth scan)"
        return frame.body.verts, frame.body.faces


def render_checkpoint(path, cameras: str = "test", out=None, n_frames: int = 30, frames: Optional[Sequence[int]] = None,
                      width: Optional[int] = None, elevation: float = 10.0, write=None) -> dict:
    """Render a MetaCap checkpoint (``tools/render.py``): ``cameras="test"`` the checkpoint frame's evaluation
    views (PSNR against the ground truth), ``"orbit"`` ``n_frames`` cameras circling the body (a novel-view
    video); ``frames`` (frame indices of the sequence) pose the body with other frames' body-model parameters
    in turn, each for an equal run of the orbit (novel poses: the canonical field re-posed).
    ``write(path, uint8 image)`` saves each image into ``out/rgb/NNNN.png``. Returns {n_views, out,
    frames: [uint8 images], psnr?}."""
    from perception3d.structures.cameras import Cameras, orbit_path

    fld, ck = load_metacap(path)
    d = section(MetaCapData, ck["config"].get("data"), "data")
    m = section(MetaCapModel, ck["config"].get("model"), "model")
    root = Path(ck.get("data_root", d.root))
    seq_name, frame = ck.get("sequence", d.test_sequence), int(ck.get("frame", d.test_frame))
    seq = read_zju_mocap(root / seq_name)
    body = load_body_model(d.body_model, allow_template=d.allow_template)
    out = Path(out) if out is not None else Path(path).parent / f"render_{cameras}"
    pose_frames = [frame] if not frames else [int(f) for f in frames]
    for f in pose_frames:
        if not 0 <= f < len(seq):
            raise ValueError(f"--frames: frame {f} but {seq.root} has {len(seq)}")
    images, ps = [], []
    if cameras == "test":
        fr = load_frame(seq, frame, body, d.eval_views)
        ev = evaluate_views(fld, fr, m, renders=True)
        images = [(r * 255).round().byte().numpy() for r in ev["renders"]]
        ps = ev["psnr_per_view"]
    elif cameras == "orbit":
        fr = load_frame(seq, frame, body, [0])
        W = width or seq.cameras.width
        centre = (fr.body.verts.min(0).values + fr.body.verts.max(0).values) / 2
        radius = float((seq.cameras.centers - centre).norm(dim=-1).mean())
        c2w = orbit_path(centre, radius, n_frames, elevation=elevation, up=(0.0, 0.0, 1.0))
        K = seq.cameras.Ks[0].clone()
        K[:2] *= W / seq.cameras.width
        cams = Cameras.from_camtoworlds(c2w, K.expand(n_frames, 3, 3), W, W)
        bodies = {f: (fr.body if f == frame else load_frame(seq, f, body, [0]).body) for f in pose_frames}
        for i in range(n_frames):
            rgb, _ = render_image(fld, bodies[pose_frames[i * len(pose_frames) // n_frames]], cams, i, step=m.step,
                                  threshold=m.threshold)
            images.append((rgb * 255).round().byte().numpy())
    else:
        raise ValueError(f"--cameras for a MetaCap checkpoint must be 'test' or 'orbit', got {cameras!r}")
    if write is not None:
        for i, im in enumerate(images):
            write(out / "rgb" / f"{i:04d}.png", im)
    res = {"n_views": len(images), "out": str(out), "frames": images}
    if ps:
        res.update(psnr=sum(ps) / len(ps), psnr_per_view=ps)
    return res
