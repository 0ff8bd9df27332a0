"""The typed sections of a TransHuman config (``configs/transhuman_*.py``); defaults are the authors'
(``configs/default.yaml`` and ``train_or_eval.yaml`` of pansanity666/TransHuman). A key a section does not have is
an error naming it (:func:`perception3d.rendering.config.section`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

__all__ = ["THDataConfig", "THModelConfig", "THTrainConfig"]


@dataclass
class THDataConfig:
    """``data``: subjects in the ZJU-MoCap layout under ``root``.

    train_subjects / test_subjects: folder names (test subjects are never trained on: unseen people).
    frames: frame indices to read per subject (None: all); eval_frames: which of those the evaluation uses.
    input_views: the reference cameras at evaluation (authors: 0, 7, 15); target_views: the evaluated cameras
        (authors, from Neural Human Performer: 3, 5, 10, 12, 18, 20). Training draws ``num_input_views`` random
        reference cameras and a random target camera per step, as the authors.
    ratio: image scale (authors: 0.5 of ZJU's 1024²).
    body_model: path of the SMPL file; allow_template: use the procedural template when there is none.
    box_pad: growth of the vertex bounds for the body box (authors: 5 cm along world z).
    builtin: settings of the built-in multi-view human dataset (:func:`~..synthetic.ensure_synthetic_humans`),
        generated into ``root`` on first use; empty: ``root`` is a dataset on disk (e.g. ZJU-MoCap).
    """
    root: str = "data/zju_mocap"
    train_subjects: Sequence[str] = ()
    test_subjects: Sequence[str] = ()
    frames: Optional[Sequence[int]] = None
    eval_frames: Optional[Sequence[int]] = None
    input_views: Sequence[int] = (0, 7, 15)
    target_views: Sequence[int] = (3, 5, 10, 12, 18, 20)
    num_input_views: int = 3
    ratio: float = 0.5
    body_model: Optional[str] = None
    allow_template: bool = False
    box_pad: Sequence[float] = (0.0, 0.0, 0.05)
    builtin: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class THModelConfig:
    """``model``: :class:`~.model.TransHuman`'s arguments (authors: 300 tokens, ViT-tiny 192 wide, 3 heads,
    12 layers; DPaRF K = 7, 10 frequencies, α = 0.5; heads 256 wide, attention 128)."""
    num_tokens: int = 300
    dim: int = 192
    depth: int = 12
    heads: int = 3
    knn: int = 7
    knn_freqs: int = 10
    knn_alpha: float = 0.5
    head_width: int = 256
    att_dim: int = 128
    voxel_size: float = 0.005
    encoder_weights: Optional[str] = None
    token_mask_ratio: float = 0.0


@dataclass
class THTrainConfig:
    """``train``: authors' schedule is Adam, lr 7e-4, cosine to 1e-6 after a 10 % warm-up, 1024 rays of 64
    samples per step (patch sampling + LPIPS-VGG 0.1, which needs pretrained VGG: not used here — an MSE loss on
    rays half of which fall on the body mask, the authors' other sampling mode).

    max_steps / max_cpu_minutes / max_minutes: stop at whichever comes first (process CPU time, wall time).
    eval_every: evaluate the test subjects every this many steps (0: only at the end).
    skip_far: evaluation skips samples farther than this from the body (authors' fast inference: 0.1 m).
    train_skip_far: the same test in training (None: every sample in the body box is evaluated, as before). The
    skipped samples get zero density, exactly what evaluation with ``skip_far`` gives them, so the network is
    trained on the renderer it is scored with, and a step evaluates (and back-propagates) only the samples near
    the body. Not the authors' training (they skip only at inference).
    colour_aug: probability that a training step permutes the colour channels of its reference views and of its
    target rays alike (one of the 5 non-identity RGB permutations; black background stays black). Not in the
    authors' recipe (their 10 ZJU-MoCap training people in 3000 epochs); with few training people and a short
    budget it keeps the colour head from memorising the training people's clothes, so that an unseen person's
    colours come from the reference views (see ``bench/transhuman_colour_source.py``). 0 turns it off.
    patch_size: 0 (default) samples the rays one by one as above; P > 0 takes them as ``n_rays // P²`` square P × P
        patches of the target view instead, each centred on a random body-mask pixel (the authors' patch sampling,
        which their LPIPS term needs).
    lambda_dssim: with patches, adds this weight × (1 − SSIM) over the rendered patches (Gaussian window 7, or
        the largest odd one a patch holds, σ 1.5): a weight-free structural term standing in for the authors'
        LPIPS-VGG 0.1, which needs pretrained VGG weights. 0 turns it off.
    num_threads: torch's intra-op threads while :meth:`train` runs (restored after; None: leave torch's
        default). With a CPU-time budget the step count depends on it; the built-in config's figures were
        measured with 1.
    """
    max_steps: int = 300_000
    max_cpu_minutes: Optional[float] = None
    max_minutes: Optional[float] = None
    lr: float = 7e-4
    end_lr: float = 1e-6
    warmup_frac: float = 0.1
    n_rays: int = 1024
    n_samples: int = 64
    body_sample_ratio: float = 0.5
    eval_every: int = 0
    save_every: int = 1000
    log_every: int = 50
    skip_far: Optional[float] = 0.1
    train_skip_far: Optional[float] = None
    chunk: int = 32768
    max_eval_views: Optional[int] = None
    colour_aug: float = 0.0
    patch_size: int = 0
    lambda_dssim: float = 0.0
    num_threads: Optional[int] = None
