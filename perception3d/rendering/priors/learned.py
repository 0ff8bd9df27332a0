"""Loaders for the papers' learned priors from a LOCAL checkpoint (nothing is ever downloaded).

Each loader checks that the path exists and that it holds the named architecture's weights (by the parameter
names of the authors' released checkpoints). Depth Anything (v1 and v2, ViT-S/B/L; :mod:`.depth_anything`) and
RAFT (:mod:`.raft`) are built here and run from their checkpoints as released. The other networks are not built
yet, so their
``load()`` raises :class:`PriorUnavailableError` naming the architecture, the file and the built-in prior to use
instead — it never pretends to run a model it does not have. A path that does not exist, or holds another model,
raises ValueError / FileNotFoundError naming the file.

=====================  ======================  ==========================================  ====================
config ``type``         paper                   checkpoint the authors release               built-in instead
=====================  ======================  ==========================================  ====================
``depth_anything``      Depth Anything v1/v2    ``depth_anything_v2_vit{s,b,l}.pth``,        (runs; options
                        (built here)            ``depth_anything_vit{s,b,l}14.pth``          ``version`` 1 / 2,
                                                (``pretrained.*`` DINOv2 + ``depth_head.*``)  ``input_size``)
``marigold``            Marigold                a diffusers folder (``model_index.json``,    ``plane_sweep``
                                                ``unet/``, ``vae/``)
``raft`` (built here)   RAFT                    ``raft-things.pth`` (``fnet.*``, ``cnet.*``,  (runs; ``iters``)
                                                ``update_block.*``)
``flowformerpp``        FlowFormer++            ``things.pth`` (``memory_encoder.*``,        ``dis``
                                                ``memory_decoder.*``)
``dust3r``              DUSt3R                  ``DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth``   ``features``
                                                (``model``: ``patch_embed.*``,
                                                ``enc_blocks.*``, ``dec_blocks.*``,
                                                ``downstream_head1.*``)
``stable_diffusion``    LM-Gaussian refiner     a diffusers folder (``unet/``, ``vae/``)      ``classical``
=====================  ======================  ==========================================  ====================
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from .base import PriorUnavailableError

__all__ = ["LEARNED_PRIORS", "LearnedPriorCheckpoint", "load_learned_prior", "read_state_dict"]

# type → (architecture, kind of prior, parameter-name prefixes that must all occur, built-in replacement)
LEARNED_PRIORS = {
    "depth_anything": ("Depth Anything (DINOv2 ViT + DPT head)", "depth", ("pretrained.", "depth_head."),
                       "plane_sweep"),
    "marigold": ("Marigold (Stable Diffusion U-Net fine-tuned for depth)", "depth", None, "plane_sweep"),
    "raft": ("RAFT", "flow", ("fnet.", "cnet.", "update_block."), "dis"),
    "flowformerpp": ("FlowFormer++", "flow", ("memory_encoder.", "memory_decoder."), "dis"),
    "dust3r": ("DUSt3R (CroCo ViT encoder-decoder + DPT heads)", "pose",
               ("patch_embed.", "enc_blocks.", "dec_blocks.", "downstream_head1."), "features"),
    "stable_diffusion": ("Stable Diffusion (LM-Gaussian's image refiner)", "refiner", None, "classical"),
}


# the learned priors whose networks perception3d builds: type → (module, class), each class constructed as
# cls(state dict, path, **options)
_BUILT = {"depth_anything": (".depth_anything", "DepthAnythingDepth"), "raft": (".raft", "RAFTFlow")}


def _build_network(type: str, state: dict, path: str, **options):
    """The prior class of a built network, lazily imported, constructed from a verified state dict."""
    import importlib

    module, name = _BUILT[type]
    cls = getattr(importlib.import_module(module, __package__), name)
    try:
        return cls(state, path, **options)
    except TypeError as e:
        raise ValueError(f"{type} prior: bad options {sorted(options)} ({e})") from e


def read_state_dict(path: Union[str, Path]) -> dict:
    """Parameter tensors of a ``.pth`` / ``.pt`` / ``.ckpt`` / ``.safetensors`` file (unwrapping the usual
    ``{"model": …}`` / ``{"state_dict": …}`` wrappers and a DataParallel ``module.`` prefix)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prior checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: cannot read a checkpoint ({type(e).__name__}: {e})") from e
    for key in ("model", "state_dict", "module"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not any(hasattr(v, "shape") for v in sd.values()):
        raise ValueError(f"{path}: holds no parameter tensors (not a model checkpoint)")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items() if hasattr(v, "shape")}


class LearnedPriorCheckpoint:
    """A verified local checkpoint of one of :data:`LEARNED_PRIORS` (``type``, ``path``, ``num_tensors``)."""

    def __init__(self, type: str, path: Union[str, Path]):
        if type not in LEARNED_PRIORS:
            raise ValueError(f"unknown learned prior {type!r} (one of {sorted(LEARNED_PRIORS)})")
        self.type, self.path, self._state = type, Path(path), None
        arch, self.kind, prefixes, self.builtin = LEARNED_PRIORS[type]
        self.arch = arch
        if prefixes is None:  # a diffusers pipeline folder
            if not self.path.is_dir():
                raise FileNotFoundError(f"{arch}: expected a diffusers model folder at {self.path}")
            missing = [p for p in ("model_index.json", "unet", "vae") if not (self.path / p).exists()]
            if missing:
                raise ValueError(f"{self.path}: not a diffusers {arch} folder (missing {missing})")
            self.num_tensors = None
            return
        sd = read_state_dict(self.path)
        absent = [p for p in prefixes if not any(k.startswith(p) for k in sd)]
        if absent:
            some = sorted(sd)[:4]
            raise ValueError(f"{self.path}: does not hold {arch} weights — no parameters named {absent}* "
                             f"(found e.g. {some}); is it another model's checkpoint?")
        self.num_tensors = len(sd)
        self._state = sd if type in _BUILT else None

    def load(self, **options):
        """The prior object (Depth Anything), or :class:`PriorUnavailableError` naming what is missing for the
        networks that are not built; ``options`` go to the prior (e.g. ``version=1`` for Depth Anything v1)."""
        if self._state is not None:
            prior = _build_network(self.type, self._state, str(self.path), **options)
            self._state = None
            return prior
        raise PriorUnavailableError(
            f"{self.path} holds {self.arch} weights"
            + (f" ({self.num_tensors} tensors)" if self.num_tensors else "")
            + f", but perception3d does not build the {self.arch} network, so they cannot be run. Use the "
            f"built-in weight-free {self.kind} prior instead: type='{self.builtin}'.")


def load_learned_prior(type: str, checkpoint: Union[str, Path, None], **options):
    """Verify ``checkpoint`` holds the ``type`` prior's weights, then build it with ``options`` (module doc)."""
    if checkpoint is None:
        arch, kind, _, builtin = LEARNED_PRIORS[type] if type in LEARNED_PRIORS else (type, "", None, "")
        raise ValueError(f"the {arch} {kind} prior needs a local checkpoint path (checkpoint=...); nothing is "
                         f"downloaded. Without one, use type='{builtin}'.")
    return LearnedPriorCheckpoint(type, checkpoint).load(**options)
